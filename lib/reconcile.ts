/**
 * One reconcile pass, top to bottom:
 *
 *   lease -> source -> load -> observe -> plan -> snapshot + apply -> track -> record -> release
 *
 * Each step that fails has one named reason in the report. A problem with one DaemonSet
 * (an invalid manifest, a refused apply) is reported for it and blocks no other.
 */
import { adoptLive } from './adopt';
import { applyRevision, emitEvent, repairFromLive, snapshotOfLive } from './apply';
import type { LiveDaemonSet } from './cluster/types';
import { namespaceAllowed } from './config';
import { clusterLease, Deps } from './deps';
import { ApplyError, DsGitopsError, errorMessage, LeaseHeldError, LeaseLostError } from './errors';
import { MANAGED_SELECTOR } from './labels';
import { decide, DryRunResult, liveRevision, Observed, PlanItem, triage } from './plan/plan';
import { DaemonSetReport, passFailed, ReconcileReport, RolloutReport, summarize, toRolloutReport } from './report';
import { countsOf } from './rollout/status';
import { parseRolloutAnnotations } from './rollout/annotations';
import { canaryProblem } from './rollout/managed';
import { trackRollouts, TrackTarget } from './rollout/track';
import type { CanaryPolicy } from './rollout/wave';
import { checkout, redact } from './source/git';
import { loadManifests } from './source/load';
import { ManifestProblem, where } from './source/manifest';
import type { Lease } from './store/lease';
import type { DaemonSetState, RolloutState } from './store/records';
import { mapLimit } from './util';

export interface ReconcileRequest {
  /** Plan only: no lease, no writes; the report carries the diffs. */
  dryRun?: boolean;
  /** Limit the pass to these namespace/name keys. */
  only?: string[];
  /** Watch rollouts until they end or time runs out (default); false: one look. */
  wait?: boolean;
}

/** Hook for automatic rollback of stalled rollouts (rollback.ts provides it); returns what it did, if anything. */
export type StallHandler = (deps: Deps, lease: Lease, key: string, state: DaemonSetState) => Promise<string | undefined>;

const STATE_READ_CONCURRENCY = 16;
/** DaemonSets dry-run and applied at once: enough to keep a large fleet's first pass short, few enough for the API server. */
const APPLY_CONCURRENCY = 8;

function rolloutReport(live: LiveDaemonSet | undefined, rollout: RolloutState | undefined, revision: number | undefined): RolloutReport | undefined {
  if (!live) return undefined;
  const counts = countsOf(live);
  if (rollout && rollout.revision === revision) return { ...toRolloutReport(rollout), ...counts };
  return { ...counts, phase: 'complete', mode: 'native', revision: revision ?? 0 };
}

export async function reconcile(deps: Deps, req: ReconcileRequest = {}, onStall?: StallHandler): Promise<ReconcileReport> {
  const { config, cluster, store, clock, logger } = deps;
  const dryRun = Boolean(req.dryRun);
  const report: ReconcileReport = {
    kind: 'ReconcileReport',
    runId: deps.runId,
    cluster: config.cluster.name,
    dryRun,
    result: 'succeeded',
    startedAt: clock.now().toISOString(),
    finishedAt: '',
    source: { url: redact(config.git.url, config.git.token), ref: config.git.ref, path: config.git.path },
    summary: {},
    daemonSets: [],
    problems: [],
    kubernetesRequests: 0,
  };
  const requestsBefore = cluster.requestCount;
  const finish = (): ReconcileReport => {
    report.finishedAt = clock.now().toISOString();
    report.summary = summarize(report.daemonSets);
    report.kubernetesRequests = cluster.requestCount - requestsBefore;
    if (report.result !== 'skipped') report.result = report.error || passFailed(report.daemonSets, report.problems) ? 'failed' : 'succeeded';
    logger.log(report.result === 'failed' ? 'error' : 'info', `pass ${report.result}`, { action: 'pass', result: report.result, summary: report.summary, kubernetesRequests: report.kubernetesRequests });
    return report;
  };

  // 1. Lease: exactly one run acts on a cluster at a time. A plan writes nothing and takes none.
  const lease = clusterLease(deps);
  if (!dryRun) {
    try {
      await lease.acquire('reconcile');
    } catch (err) {
      if (err instanceof LeaseHeldError) {
        report.result = 'skipped';
        report.lease = err.current;
        logger.log('info', err.message, { action: 'lease-held', holder: err.current.holder, expiresAt: err.current.expiresAt });
        return finish();
      }
      report.error = { reason: (err as DsGitopsError).reason ?? 'StoreUnavailable', message: errorMessage(err) };
      return finish();
    }
  }

  try {
    // 2. Source.
    const tree = await checkout(config.git);
    report.source!.commit = tree.commit;
    logger.log('info', `fetched ${report.source!.url} at ${config.git.ref}: ${tree.commit.sha.slice(0, 7)} "${tree.commit.subject}"`, { action: 'fetch', commit: tree.commit.sha });

    // 3. Load.
    const loaded = loadManifests(tree.dir, config.git.path, config.policy, config.maxManifestBytes);
    const sourceComplete = !loaded.problems.some((p) => ['yaml-syntax', 'too-large', 'alias-limit', 'path-missing'].includes(p.code));
    const keyed = new Map<string, ManifestProblem[]>();
    for (const p of loaded.problems) {
      if (p.key) keyed.set(p.key, [...(keyed.get(p.key) ?? []), p]);
      else report.problems.push(p);
    }
    for (const p of report.problems) logger.log(p.severity === 'error' ? 'error' : 'info', `${p.file}${p.document ? ` (document ${p.document})` : ''}: ${p.message}`, { action: 'manifest-problem', code: p.code });

    // 4. Observe: one LIST for every managed DaemonSet, plus the recorded state.
    const listed = await cluster.listManagedDaemonSets(MANAGED_SELECTOR);
    const live = new Map(listed.items.map((d) => [`${d.metadata.namespace}/${d.metadata.name}`, d]));
    const desired = new Map(loaded.desired.map((d) => [d.key, d]));
    // Managed DaemonSets outside ALLOWED_NAMESPACES are not this configuration's business.
    const inScope = [...live.keys()].filter((k) => namespaceAllowed(config.policy, k.split('/')[0]));
    let keys = [...new Set([...desired.keys(), ...keyed.keys(), ...inScope])].sort();
    if (req.only?.length) keys = keys.filter((k) => req.only!.includes(k));
    const states = new Map<string, DaemonSetState | undefined>();
    const adoptions = new Map<string, string>();
    await mapLimit(keys, STATE_READ_CONCURRENCY, async (k) => {
      const [namespace, name] = k.split('/');
      let s = (await store.getState(namespace, name))?.value;
      const l = live.get(k);
      if (l && !dryRun && (liveRevision(l) ?? 0) > (s?.currentRevision ?? 0)) s = await repairFromLive(deps, l, s);
      // Stamped by this tool, unknown to this store (a new bucket, prefix or CLUSTER_NAME): adopt it.
      if (l && !dryRun && !s && namespaceAllowed(config.policy, namespace)) {
        const adopted = await adoptLive(deps, l);
        if (adopted) adoptions.set(k, adopted.message);
        s = adopted?.state;
      }
      states.set(k, s);
    });
    // A DaemonSet in Git that is not (yet) managed may still exist: created by hand, or before adoption.
    for (const k of keys) {
      if (desired.has(k) && !live.has(k)) {
        const [namespace, name] = k.split('/');
        const found = await cluster.getDaemonSet(namespace, name);
        if (found) live.set(k, found);
      }
    }

    // 5. Plan (pure), around the server-side dry runs it needs.
    const observed: Observed[] = keys.map((k) => {
      const [namespace, name] = k.split('/');
      return { key: k, namespace, name, desired: desired.get(k), problems: keyed.get(k) ?? [], live: live.get(k), state: states.get(k) };
    });
    // Dry runs refused for a reason that is not the manifest's: those DaemonSets fail this pass.
    const refused = new Map<string, DsGitopsError>();
    const items: PlanItem[] = await mapLimit(observed, APPLY_CONCURRENCY, async (o) => {
      const t = triage(o, { policy: config.policy, sourceComplete });
      if ('decided' in t) return t.decided;
      let result: DryRunResult;
      try {
        result = { ok: true, object: await cluster.dryRunApply(t.dryRun) };
      } catch (err) {
        // Only the API server's verdict on the manifest makes it `invalid`. A missing permission
        // or an overloaded, failing API server says nothing about the manifest: no InvalidManifest Event.
        if (err instanceof ApplyError) result = { ok: false, message: errorMessage(err) };
        else if (err instanceof DsGitopsError) {
          refused.set(o.key, err);
          logger.log('error', err.message, { daemonSet: o.key, action: 'dry-run-failed', reason: err.reason });
          return notPlanned(o, err);
        } else throw err;
      }
      return decide(o, result, config.policy);
    });
    const byKey = new Map(observed.map((o) => [o.key, o]));
    await refuseUnmatchedCanaries(deps, items, byKey);
    if (!dryRun) await mapLimit(items.filter((i) => i.acceptGeneration !== undefined), STATE_READ_CONCURRENCY, (i) => acceptGeneration(deps, byKey.get(i.key)!, i.acceptGeneration!));

    // 6. Snapshot, then apply; one DaemonSet's failure blocks no other.
    const trackTargets: TrackTarget[] = [];
    report.daemonSets = items.map((item): DaemonSetReport => {
      const o = byKey.get(item.key)!;
      const failure = refused.get(item.key);
      return {
        key: item.key,
        namespace: item.namespace,
        name: item.name,
        action: failure ? 'failed' : item.action,
        error: failure && { reason: failure.reason, message: failure.message },
        cause: item.cause,
        applied: false,
        revision: o.state?.currentRevision ?? liveRevision(o.live),
        source: o.desired?.source,
        message: adoptions.has(item.key) ? `${adoptions.get(item.key)}; ${item.message}` : item.message,
        diff: item.diff || undefined,
        problems: item.problems.length ? item.problems : undefined,
        pin: o.state?.pin,
      };
    });
    await mapLimit(items, APPLY_CONCURRENCY, async (item, index) => {
      const o = byKey.get(item.key)!;
      const entry = report.daemonSets[index];
      if (dryRun || !item.apply) {
        entry.rollout = rolloutReport(o.live, o.state?.rollout, entry.revision);
        if (!dryRun) await noteUnapplied(deps, item, o);
        // Stalled rollouts stay watched: a slow rollout that recovers still becomes healthy.
        if (!dryRun && o.live && o.state && (o.state.rollout?.phase === 'progressing' || o.state.rollout?.phase === 'stalled') && o.state.currentRevision === liveRevision(o.live)) {
          trackTargets.push({ namespace: o.namespace, name: o.name, revision: o.state.currentRevision, previous: o.state.rollout, live: o.live, progressDeadlineSeconds: rolloutOptions(o).progressDeadlineSeconds });
        }
        return;
      }
      try {
        // Proof of the lease just before each change (one conditional write shared by the workers waiting for it):
        // a lease lost to another run stops every worker here.
        await lease.confirm();
        if (item.prune) {
          await prune(deps, o);
          entry.action = 'pruned';
          entry.applied = true;
          return;
        }
        const d = o.desired!;
        const out = await applyRevision(deps, {
          namespace: o.namespace,
          name: o.name,
          manifest: d.manifest,
          digest: d.digest,
          source: d.source,
          commit: tree.commit,
          cause: item.cause!,
          live: o.live,
          state: o.state,
          gitDigest: d.digest,
          pin: item.releasesPin ? null : undefined,
        });
        entry.applied = true;
        entry.previousRevision = o.state?.currentRevision;
        entry.revision = out.revision;
        entry.pin = out.state.pin;
        entry.rollout = { ...countsOf(out.applied), phase: 'progressing', mode: out.state.rollout!.mode, revision: out.revision };
        trackTargets.push({ namespace: o.namespace, name: o.name, revision: out.revision, previous: out.state.rollout, progressDeadlineSeconds: rolloutOptions(o).progressDeadlineSeconds });
      } catch (err) {
        if (err instanceof LeaseLostError) throw err;
        entry.action = 'failed';
        entry.error = { reason: (err as DsGitopsError).reason ?? 'Error', message: errorMessage(err) };
        logger.log('error', entry.error.message, { daemonSet: item.key, action: 'apply-failed', reason: entry.error.reason });
      }
    });

    if (dryRun) return finish();

    // 7. Track the rollouts (native: the controller rolls, this run watches).
    if (trackTargets.length > 0) {
      // Only watching from here on: a manual rollback may take the lease over, and this pass then stops at its next look.
      const tracked = await trackRollouts(deps, trackTargets, { wait: req.wait ?? true, lease, preemptible: 'watching rollouts' });
      if (tracked.preemptedBy) report.preempted = tracked.preemptedBy;
      for (const entry of report.daemonSets) {
        const r = tracked.rollouts.get(entry.key);
        if (!r) continue;
        entry.rollout = toRolloutReport(r);
        const o = byKey.get(entry.key);
        const auto = (o ? rolloutOptions(o).autoRollback : undefined) ?? config.policy.autoRollback;
        if (r.phase === 'stalled' && onStall && auto && !tracked.preemptedBy) {
          const s = (await store.getState(entry.namespace, entry.name))?.value;
          if (s) {
            const rolled = await onStall(deps, lease, entry.key, s);
            if (rolled) entry.message = `${entry.message}; ${rolled}`;
          }
        }
      }
    }
  } catch (err) {
    const e = err as DsGitopsError;
    report.error = { reason: e.reason ?? 'Error', message: errorMessage(err) };
    logger.log('error', report.error.message, { action: 'pass-failed', reason: report.error.reason });
  } finally {
    if (!dryRun) {
      try {
        await lease.release();
      } catch (err) {
        logger.log('warn', `could not release the lease (it expires by itself): ${errorMessage(err)}`);
      }
    }
  }
  return finish();
}

/**
 * A managed update whose canary selects no Ready node is refused before anything is
 * applied. The nodes are listed once, and only when such an update is planned.
 */
async function refuseUnmatchedCanaries(deps: Deps, items: PlanItem[], byKey: Map<string, Observed>): Promise<void> {
  const rolling = items.filter((i) => i.apply && i.templateChanged && byKey.get(i.key)?.live && byKey.get(i.key)?.desired && rolloutOptions(byKey.get(i.key)!).canary);
  if (rolling.length === 0) return;
  const nodes = await deps.cluster.listNodes();
  for (const item of rolling) {
    const d = byKey.get(item.key)!.desired!;
    const message = canaryProblem(d.manifest, nodes);
    if (!message) continue;
    Object.assign(item, {
      action: 'invalid',
      apply: false,
      message: `${where(d.source)}: ${message}`,
      problems: [...item.problems, { file: d.source.file, document: d.source.document, key: item.key, code: 'canary-unmatched', severity: 'error', message }],
    });
  }
}

/**
 * The plan item of a DaemonSet whose dry run failed: it applies nothing and raises no Event
 * about its manifest. The report shows it as `failed`, with the error (see `refused`).
 */
function notPlanned(o: Observed, err: DsGitopsError): PlanItem {
  return { key: o.key, namespace: o.namespace, name: o.name, action: 'unchanged', apply: false, message: err.message, problems: o.problems };
}

/** The rollout annotations of what Git declares for this DaemonSet (or of what runs, when Git has none). */
function rolloutOptions(o: Observed): { autoRollback?: boolean; progressDeadlineSeconds?: number; canary?: CanaryPolicy } {
  const annotations = o.desired?.manifest.metadata.annotations ?? o.live?.metadata.annotations;
  const parsed = parseRolloutAnnotations(annotations);
  return parsed.ok ? parsed.value : {};
}

/**
 * Records the generation a dry run found equal to Git (a restart or an edit of a field Git
 * does not set moved it), once, so the next pass takes the steady-state path again instead
 * of paying a dry run for this DaemonSet on every pass. Conditional on the state read.
 */
async function acceptGeneration(deps: Deps, o: Observed, generation: number): Promise<void> {
  const now = deps.clock.now().toISOString();
  const stored = await deps.store.updateState(o.namespace, o.name, (cur) =>
    cur && cur.currentRevision === o.state?.currentRevision && cur.generation !== generation ? { ...cur, generation, updatedAt: now } : undefined,
  );
  if (stored?.generation !== generation) return; // a newer revision took over meanwhile
  deps.logger.log('info', `generation ${generation} changed nothing Git sets: recorded as revision ${o.state?.currentRevision}'s, so later passes skip the dry run`, { daemonSet: o.key, action: 'accept-generation', generation });
}

/**
 * Invalid manifests and uncorrected drift change nothing in the cluster, but the
 * DaemonSet gets a Warning Event the first time each distinct problem is seen.
 */
async function noteUnapplied(deps: Deps, item: PlanItem, o: Observed): Promise<void> {
  if (!o.live || !o.state || (item.action !== 'invalid' && item.action !== 'drifted')) return;
  if (o.state.lastAttempt?.message === item.message) return;
  const reason = item.action === 'invalid' ? 'InvalidManifest' : 'DriftDetected';
  await emitEvent(deps, { namespace: o.namespace, name: o.name, uid: o.live.metadata.uid }, 'Warning', reason, item.message);
  deps.logger.log('warn', item.message, { daemonSet: item.key, action: item.action });
  const now = deps.clock.now().toISOString();
  await deps.store.updateState(o.namespace, o.name, (cur) =>
    cur ? { ...cur, lastAttempt: { at: now, result: 'failed', message: item.message }, updatedAt: now } : undefined,
  );
}

/** Deletes an orphan after recording the live object in its state (write-ahead, as for applies). */
async function prune(deps: Deps, o: Observed): Promise<void> {
  const now = deps.clock.now().toISOString();
  const live = snapshotOfLive(o.live)!;
  await deps.store.updateState(o.namespace, o.name, (cur) => ({
    schema: 1,
    namespace: o.namespace,
    name: o.name,
    currentRevision: cur?.currentRevision ?? liveRevision(o.live) ?? 0,
    appliedDigest: cur?.appliedDigest ?? '',
    ...cur,
    gitDigest: null,
    deleted: { at: now, runId: deps.runId, live },
    updatedAt: now,
  }));
  await deps.cluster.deleteDaemonSet(o.namespace, o.name);
  deps.logger.log('info', 'pruned: no longer in Git (PRUNE=true)', { daemonSet: o.key, action: 'prune' });
}
