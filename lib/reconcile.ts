/**
 * One reconcile pass, top to bottom:
 *
 *   fetch + trust -> load -> observe -> plan -> [lease -> observe + plan again] -> snapshot + apply -> inventory + prune -> track -> record -> release
 *
 * Trust is decided before anything of the tree is read: from an untrusted head (VERIFY_COMMITS)
 * only the commit is read. When Git cannot be fetched or its head is not trusted, the pass
 * still drives and judges the rollouts already under way (all they need is in the cluster and
 * in S3), and rolls back stalled ones; it applies nothing new.
 *
 * Observing and planning only read, so a pass with nothing to write ends after them without
 * taking the lease. A pass that writes takes the lease first and then looks again at what
 * its plan rests on (the live DaemonSets; the state of those it writes, from state.json):
 * another run may have acted between the first look and the lease.
 *
 * Each step that fails has one named reason in the report. A problem with one DaemonSet
 * (an invalid manifest, a refused apply) is reported for it and blocks no other.
 */
import { adoptLive } from './adopt';
import { applyRevision, repairFromLive, snapshotOfLive } from './apply';
import { completeRecreate, restorePinned } from './rollback';
import { emitEvent } from './cluster/events';
import type { LiveDaemonSet } from './cluster/types';
import { namespaceAllowed } from './config';
import { clusterLease, Deps } from './deps';
import { ApplyError, DsGitopsError, errorMessage, LeaseHeldError, LeaseHolder, LeaseLostError, RecordUnreadableError } from './errors';
import { MANAGED_SELECTOR } from './labels';
import { decide, DryRunResult, liveRevision, Observed, PlanItem, triage } from './plan/plan';
import { rolloutModeOf } from './plan/render';
import { DaemonSetReport, passFailed, ReconcileReport, RolloutReport, summarize, toRolloutReport, unreadableRecordEntry } from './report';
import { consistentRow, countsOf, isRolloutComplete } from './rollout/status';
import { parseRolloutAnnotations } from './rollout/annotations';
import { canaryProblem, holdForUnfilledNodes } from './rollout/managed';
import { trackRollouts, TrackTarget } from './rollout/track';
import type { CanaryPolicy } from './rollout/wave';
import { Checkout, fetchHead, isUntrusted, redact, UntrustedHead } from './source/git';
import { givenValue } from './secrets';
import { INCOMPLETE_SOURCE_CODES, loadCheckout, LoadResult, loadWithoutTree } from './source/load';
import { ManifestProblem, where } from './source/manifest';
import { commitJudge, untrustedMessage } from './source/trust';
import { isRecordedPass, passRecord } from './pass-summary';
import { PassRecordStore, StoredPass } from './store/pass-record';
import type { Verification } from './source/verify-commit';
import type { GitCommit } from './source/git';
import type { Lease } from './store/lease';
import type { DaemonSetState, RolloutState } from './store/records';
import type { StateIndexRecord } from './store/state-index';
import { mapLimit } from './util';
import { applyStages, BundleLook, lookAtBundle, ObjectApplied } from './bundle/apply';
import { failedCompanion } from './bundle/companions';
import { STAGES_AFTER_DAEMONSETS, STAGES_BEFORE_DAEMONSETS } from './bundle/plan';
import { CONFIG_COPY_LABEL } from './bundle/config-copies';
import { pruneConfigCopies } from './bundle/prune-copies';
import type { ObjectReport, OrphanReport } from './report';
import { InventoryLook, InventorySource, lookAtInventory, OrphanOutcome, recordAndPrune } from './bundle/inventory-step';

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
/**
 * No apply starts with less than this left of the pass's time budget (a Lambda invocation's
 * remaining time less what the handler keeps for returning): an apply writes a snapshot, the
 * DaemonSet and its state, and must finish, not be killed between them. What is not started
 * is listed in the report (`deferred`); the next pass plans it again.
 */
const APPLY_START_MARGIN_MS = 5_000;
/** DaemonSets dry-run and applied at once: enough to keep a large fleet's first pass short, few enough for the API server. */
const APPLY_CONCURRENCY = 8;

/** A row's rollout: the recorded phase with the counts of the pass's LIST, never `complete` while those counts say otherwise. */
function rolloutReport(live: LiveDaemonSet | undefined, rollout: RolloutState | undefined, revision: number | undefined): RolloutReport | undefined {
  if (!live) return undefined;
  const counts = countsOf(live);
  if (rollout && rollout.revision === revision) return consistentRow({ ...toRolloutReport(rollout), ...counts });
  return consistentRow({ ...counts, phase: isRolloutComplete(live) ? 'complete' : 'progressing', mode: 'native' as const, revision: revision ?? 0 });
}

/** What each step of a pass came to; a pass that stops early has the steps up to there. The report is built from it. */
interface PassSteps {
  /** What was read of Git's head; a pass without a trusted source drives only the rollouts under way. */
  head?: HeadStep;
  source?: Source;
  look?: Look;
  untrusted?: { message: string };
  lease?: LeaseStep;
  applied?: Map<string, ApplyResult>;
  /** The bundle's other objects applied, by id (lib/bundle/apply.ts). */
  objects?: Map<string, ObjectApplied>;
  /** The inventory recorded, and what became of its orphans (lib/bundle/inventory-step.ts). */
  orphans?: OrphanOutcome[];
  tracked?: { rollouts: Map<string, RolloutState>; preemptedBy?: string };
  rolledBack?: Map<string, string>;
  /** Versioned config copies deleted (bundle/prune-copies.ts). */
  prunedCopies?: string[];
  error?: { reason: string; message: string };
}

/**
 * One pass: fetch + trust -> load -> observe + plan -> lease (only to write; then observe + plan
 * again) -> snapshot + apply -> track -> roll back stalled -> release. Each step returns what
 * it came to; the first that fails ends the pass with its reason, and the report is built
 * from the steps' results. Without a source (Git down, or its head untrusted) the plan holds
 * only the rollouts under way, and the pass goes on to drive them.
 */
export async function reconcile(deps: Deps, req: ReconcileRequest = {}, onStall?: StallHandler): Promise<ReconcileReport> {
  const started = { at: deps.clock.now().toISOString(), requests: deps.cluster.requestCount };
  const lease = clusterLease(deps);
  const steps: PassSteps = {};
  const lastPass = readLastPass(deps, req);
  try {
    const reads = startReads(deps);
    steps.head = await fetchAndJudge(deps);
    if ('tree' in steps.head) steps.source = await loadSource(deps, steps.head.tree);
    steps.look = await lookAndPlan(deps, steps.source, req, reads);
    if ('untrusted' in steps.head) steps.untrusted = await refuseUntrusted(deps, req, steps.look, steps.head.untrusted);
    steps.lease = await leaseToWrite(deps, lease, steps.source, req, steps.look);
    if (!steps.lease.acting) return await keepPassRecord(deps, req, passReport(deps, req, started, steps), lastPass);
    steps.look = steps.lease.look;
    steps.objects = await applyStages(deps, steps.look.bundle, STAGES_BEFORE_DAEMONSETS, () => lease.confirm());
    const applying = await applyPlanned(deps, lease, steps.source, steps.look, steps.objects);
    steps.applied = applying.results;
    if (applying.stoppedBy) throw applying.stoppedBy;
    for (const [id, done] of await applyStages(deps, steps.look.bundle, STAGES_AFTER_DAEMONSETS, () => lease.confirm())) steps.objects.set(id, done);
    if (steps.look.inventory) steps.orphans = await recordAndPrune(deps, steps.look.inventory, steps.look.bundle, steps.objects, steps.source!.tree.commit.sha, () => lease.confirm());
    steps.tracked = await trackApplied(deps, lease, req, steps.look, steps.applied);
    steps.rolledBack = await rollBackStalled(deps, lease, steps.look, steps.tracked, onStall);
    steps.prunedCopies = await pruneCopies(deps, lease, steps.source, steps.look, steps.applied, steps.tracked);
  } catch (err) {
    steps.error = { reason: (err as DsGitopsError).reason ?? 'Error', message: errorMessage(err) };
    deps.logger.log('error', steps.error.message, { action: 'pass-failed', reason: steps.error.reason });
  } finally {
    if (steps.lease?.acting) await releaseLease(deps, lease);
  }
  return keepPassRecord(deps, req, passReport(deps, req, started, steps), lastPass);
}

/** Step: the last pass's record as stored, read beside the pass's first reads (none for a dry run or a limited pass, which keep none). */
function readLastPass(deps: Deps, req: ReconcileRequest): Promise<StoredPass | undefined> {
  if (req.dryRun || req.only?.length) return Promise.resolve(undefined);
  const read = new PassRecordStore(deps.objects, deps.store.keys).get();
  read.catch(() => undefined);
  return read;
}

/**
 * Step: the report, kept bounded as the cluster's last pass (store/pass-record.ts) by a pass
 * that wrote anyway or found other problems than the stored record: a pass with nothing to
 * change and nothing new wrong writes nothing. Failing to keep it costs only the page's view of
 * the pass: logged, never fatal.
 */
async function keepPassRecord(deps: Deps, req: ReconcileRequest, report: ReconcileReport, read: Promise<StoredPass | undefined>): Promise<ReconcileReport> {
  if (!isRecordedPass(report, req)) return report;
  try {
    const stored = await read;
    if (stored) await new PassRecordStore(deps.objects, deps.store.keys).put(passRecord(report), stored, Boolean(report.leaseTaken));
  } catch (err) {
    deps.logger.log('warn', `could not keep the pass's report in S3: ${errorMessage(err)}`, { action: 'pass-record-failed' });
  }
  return report;
}

/** Step: the reads that need nothing from Git (the managed DaemonSets, the state index), started while Git is asked. */
function startReads(deps: Deps): Reads {
  const listed = deps.cluster.listManagedDaemonSets(MANAGED_SELECTOR);
  const index = deps.store.index.read();
  // Awaited by the observation; a pass whose source fails reports that instead.
  for (const p of [listed, index]) p.catch(() => undefined);
  return { listed, index };
}

interface Reads {
  listed: Promise<{ items: LiveDaemonSet[] }>;
  index: Promise<StateIndexRecord | undefined>;
}

/** What the pass saw and decided: the observation and the plan made from it. */
interface Look {
  observation: Observation;
  planned: Planned;
  /** The bundle's other objects: what each needs (lib/bundle). */
  bundle: BundleLook;
  /** The inventory and its orphans; undefined without a source or with `only`. */
  inventory?: InventoryLook;
}

/** Step: observe and plan, reading only. */
async function lookAndPlan(deps: Deps, source: Source | undefined, req: ReconcileRequest, reads: Reads): Promise<Look> {
  const observation = await observe(deps, source, req, { record: false, listed: reads.listed, index: reads.index });
  const bundle = await lookAtBundle(deps, bundleObjects(source, req));
  const planned = await plan(deps, observation, source, undefined, bundle);
  return { observation, planned, bundle, inventory: await lookAtOrphans(deps, source, req, { observation, planned, bundle }) };
}

/** Step: the inventory of the objects applied, and the orphans that Git's source no longer holds (reads only). */
function lookAtOrphans(deps: Deps, source: Source | undefined, req: ReconcileRequest, look: Omit<Look, 'inventory'>): Promise<InventoryLook | undefined> {
  const { observation, planned, bundle } = look;
  const from: InventorySource | undefined = source && !req.only?.length
    ? { commit: source.tree.commit.sha, objects: source.loaded.objects, refused: source.loaded.refused ?? [], problems: source.loaded.problems, complete: source.sourceComplete }
    : undefined;
  return lookAtInventory(deps, from, bundle, {
    live: observation.live,
    currentRevision: (key) => observation.byKey.get(key)?.state?.currentRevision ?? liveRevision(observation.live.get(key)),
    desired: source?.loaded.desired ?? [],
    pruned: new Set(planned.items.filter((i) => i.prune).map((i) => i.key)),
  });
}

type LeaseStep =
  | { acting: true; look: Look }
  /** Nothing to write (or a dry run), another run holds the lease, or it could not be taken. */
  | { acting: false; heldBy?: LeaseHolder; error?: { reason: string; message: string } };

/**
 * Step: the lease, only when the plan writes: exactly one run acts on a cluster at a time.
 * Under it, what the plan was made from is looked at again (another run may have acted
 * meanwhile): the live DaemonSets, and the state of those it writes, from state.json.
 */
async function leaseToWrite(deps: Deps, lease: Lease, source: Source | undefined, req: ReconcileRequest, look: Look): Promise<LeaseStep> {
  const writes = req.dryRun ? new Set<string>() : keysToWrite(look.observation, look.planned);
  if (writes.size === 0 && (req.dryRun || (!look.bundle.items.some((i) => i.apply) && !look.inventory?.writes))) return { acting: false };
  try {
    await lease.acquire('reconcile');
  } catch (err) {
    if (err instanceof LeaseHeldError) {
      deps.logger.log('info', err.message, { action: 'lease-held', holder: err.current.holder, expiresAt: err.current.expiresAt });
      return { acting: false, heldBy: err.current };
    }
    return { acting: false, error: { reason: (err as DsGitopsError).reason ?? 'StoreUnavailable', message: errorMessage(err) } };
  }
  try {
    const observation = await observe(deps, source, req, { record: true, fresh: writes });
    const bundle = await lookAtBundle(deps, bundleObjects(source, req));
    const planned = await plan(deps, observation, source, look, bundle);
    const again = { observation, planned, bundle, inventory: await lookAtOrphans(deps, source, req, { observation, planned, bundle }) };
    const { byKey } = again.observation;
    await mapLimit(again.planned.items.filter((i) => i.acceptGeneration !== undefined), STATE_READ_CONCURRENCY, (i) => acceptGeneration(deps, byKey.get(i.key)!, i.acceptGeneration!));
    return { acting: true, look: again };
  } catch (err) {
    await releaseLease(deps, lease); // the pass ends here; the lease is not left to expire
    throw err;
  }
}

async function releaseLease(deps: Deps, lease: Lease): Promise<void> {
  try {
    await lease.release();
  } catch (err) {
    deps.logger.log('warn', `could not release the lease (it expires by itself): ${errorMessage(err)}`);
  }
}

/** What became of one planned DaemonSet under the lease. */
type ApplyResult =
  | { kind: 'unapplied'; track?: TrackTarget }
  | { kind: 'deferred' }
  | { kind: 'pruned' }
  | { kind: 'applied'; revision: number; previousRevision?: number; pin?: DaemonSetState['pin']; rollout: RolloutReport; track: TrackTarget }
  | { kind: 'failed'; error: { reason: string; message: string } };

/**
 * Step: snapshot, then apply, each planned change; one DaemonSet's failure blocks no other.
 * A lost lease stops every worker (`stoppedBy`); what was done before is in the results.
 */
async function applyPlanned(deps: Deps, lease: Lease, source: Source | undefined, look: Look, objects: Map<string, ObjectApplied>): Promise<{ results: Map<string, ApplyResult>; stoppedBy?: unknown }> {
  const results = new Map<string, ApplyResult>();
  const { byKey } = look.observation;
  const failed = [...objects.values()].filter((o) => o.error).map((o) => ({ ...o.item.object, message: o.error!.message }));
  try {
    await mapLimit(look.planned.items, APPLY_CONCURRENCY, async (item) => {
      const o = byKey.get(item.key)!;
      // A DaemonSet whose ConfigMap, Secret or ServiceAccount failed to apply just now is held: its pods could not run.
      const held = item.apply && o.desired ? failedCompanion(o.desired, failed) : undefined;
      if (held) deps.logger.log('error', held, { daemonSet: item.key, action: 'held' });
      results.set(item.key, held ? { kind: 'failed', error: { reason: 'CompanionFailed', message: held } } : await applyOne(deps, lease, source, item, o));
    });
  } catch (err) {
    return { results, stoppedBy: err };
  }
  const deferred = [...results].filter(([, r]) => r.kind === 'deferred').map(([k]) => k).sort();
  if (deferred.length > 0) {
    deps.logger.log('warn', `time ran out before ${deferred.length} change(s) could start: ${deferred.join(', ')}; the next pass applies them`, { action: 'deferred', deferred });
  }
  return { results };
}

async function applyOne(deps: Deps, lease: Lease, source: Source | undefined, item: PlanItem, o: Observed): Promise<ApplyResult> {
  if (!item.apply) {
    await noteUnapplied(deps, item, o);
    if (!tracksRollout(o)) return { kind: 'unapplied' };
    return { kind: 'unapplied', track: { namespace: o.namespace, name: o.name, revision: o.state!.currentRevision, previous: o.state!.rollout, live: o.live, progressDeadlineSeconds: rolloutOptions(o).progressDeadlineSeconds } };
  }
  // Only a plan made from a source applies: without one, nothing is planned to.
  if (!source) throw new Error(`${item.key}: planned to apply without a source`);
  if (deps.deadline - deps.clock.now().getTime() < APPLY_START_MARGIN_MS) return { kind: 'deferred' };
  try {
    // Proof of the lease just before each change (one conditional write shared by the workers waiting for it):
    // a lease lost to another run stops every worker here.
    await lease.confirm();
    if (item.prune) {
      await prune(deps, o);
      return { kind: 'pruned' };
    }
    const d = o.desired!;
    const out = item.completesRecreate !== undefined ? await completeRecreate(deps, o, item.completesRecreate)
      : item.restoresPinned !== undefined ? await restorePinned(deps, o, item.restoresPinned)
      : await applyRevision(deps, {
      namespace: o.namespace,
      name: o.name,
      manifest: d.manifest,
      digest: d.digest,
      source: d.source,
      commit: source.tree.commit,
      rendered: source.loaded.rendered,
      cause: item.cause!,
      live: o.live,
      state: o.state,
      gitDigest: d.digest,
      pin: item.releasesPin ? null : undefined,
      config: d.config,
    });
    return {
      kind: 'applied',
      revision: out.revision,
      previousRevision: o.state?.currentRevision,
      pin: out.state.pin,
      rollout: { ...countsOf(out.applied), phase: 'progressing', mode: out.state.rollout!.mode, revision: out.revision },
      track: { namespace: o.namespace, name: o.name, revision: out.revision, previous: out.state.rollout, progressDeadlineSeconds: rolloutOptions(o).progressDeadlineSeconds },
    };
  } catch (err) {
    if (err instanceof LeaseLostError) throw err;
    const error = { reason: (err as DsGitopsError).reason ?? 'Error', message: errorMessage(err) };
    deps.logger.log('error', error.message, { daemonSet: item.key, action: 'apply-failed', reason: error.reason });
    return { kind: 'failed', error };
  }
}

/**
 * Step: track the rollouts (native: the controller rolls, this run watches; managed: this run
 * drives the waves). Only watching from here on: a manual rollback may take the lease over,
 * and this pass then stops at its next look.
 */
async function trackApplied(deps: Deps, lease: Lease, req: ReconcileRequest, look: Look, applied: Map<string, ApplyResult>): Promise<PassSteps['tracked']> {
  const targets = look.planned.items.flatMap((item) => {
    const r = applied.get(item.key);
    const track = r && (r.kind === 'applied' || r.kind === 'unapplied') ? r.track : undefined;
    return track ? [track] : [];
  });
  if (targets.length === 0) return undefined;
  const tracked = await trackRollouts(deps, targets, { wait: req.wait ?? true, lease, preemptible: 'watching rollouts' });
  return { rollouts: tracked.rollouts, preemptedBy: tracked.preemptedBy };
}

/** Step: a stalled rollout whose DaemonSet (or the policy) asks for it is rolled back, through `onStall`. */
async function rollBackStalled(deps: Deps, lease: Lease, look: Look, tracked: PassSteps['tracked'], onStall?: StallHandler): Promise<Map<string, string>> {
  const done = new Map<string, string>();
  if (!tracked || !onStall || tracked.preemptedBy) return done;
  for (const item of look.planned.items) {
    const r = tracked.rollouts.get(item.key);
    const o = look.observation.byKey.get(item.key);
    const auto = (o ? rolloutOptions(o).autoRollback : undefined) ?? deps.config.policy.autoRollback;
    if (r?.phase !== 'stalled' || !auto) continue;
    const s = (await deps.store.getState(item.namespace, item.name))?.value;
    const rolled = s ? await onStall(deps, lease, item.key, s) : undefined;
    if (rolled) done.set(item.key, rolled);
  }
  return done;
}

/**
 * Step: the versioned config copies no kept revision needs are deleted, under the lease, from a
 * complete source only, and not after a rollback took the lease over (it may restore copies).
 */
async function pruneCopies(deps: Deps, lease: Lease, source: Source | undefined, look: Look, applied: PassSteps['applied'], tracked: PassSteps['tracked']): Promise<string[] | undefined> {
  const live = look.bundle.copies ?? [];
  if (!source?.sourceComplete || tracked?.preemptedBy || live.length === 0) return undefined;
  await lease.confirm();
  const pruned = await pruneConfigCopies(deps, live, {
    source: source.loaded.objects.filter((o) => o.manifest.metadata && (o.manifest.metadata as { labels?: Record<string, string> }).labels?.[CONFIG_COPY_LABEL] !== undefined),
    // A DaemonSet applied in this pass counts from its new revision (its live template before, the one it replaced, is kept too).
    daemonSets: look.observation.observed.map((o) => {
      const r = applied?.get(o.key);
      return r?.kind === 'applied' && o.state ? { ...o, state: { ...o.state, currentRevision: r.revision } } : o;
    }),
    unjudged: new Set([...look.observation.unreadable.keys()].map((k) => k.split('/')[0])),
  });
  return pruned.length > 0 ? pruned : undefined;
}

/** The report of a pass, from what its steps came to. */
function passReport(deps: Deps, req: ReconcileRequest, started: { at: string; requests: number }, steps: PassSteps): ReconcileReport {
  const { config, clock, cluster, logger } = deps;
  const notTaken = steps.lease?.acting === false ? steps.lease : undefined;
  const unread = steps.head && 'unavailable' in steps.head ? steps.head.unavailable : undefined;
  const error = steps.error ?? notTaken?.error ?? (steps.untrusted && { reason: 'CommitUntrusted', message: steps.untrusted.message }) ?? unread;
  // A pass that could not take the lease it needed did nothing: it reports no DaemonSet.
  const reported = steps.look && !notTaken?.heldBy && !notTaken?.error ? steps.look : undefined;
  const daemonSets = reported ? [
    ...reported.planned.items.map((item) => daemonSetReport(steps, item)),
    // A DaemonSet whose record cannot be read is failed alone, and nothing of it is touched.
    ...([...reported.observation.unreadable].map(([key, err]) => unreadableRecordEntry(key, err, liveRevision(reported.observation.live.get(key))))),
  ] : [];
  const problems = [...(steps.source?.problems ?? [])];
  const skipped = !error && notTaken?.heldBy !== undefined;
  const objects = reported ? objectReports(reported.bundle, steps) : [];
  const orphans = reported ? orphanReports(reported.inventory, steps) : [];
  if (reported?.inventory?.unreadable) problems.push({ file: reported.inventory.unreadable.key, code: 'record-unreadable', severity: 'error', message: reported.inventory.unreadable.message });
  const result = skipped ? 'skipped' : error || passFailed(daemonSets, problems) || [...objects, ...orphans].some((o) => o.action === 'failed') ? 'failed' : 'succeeded';
  const deferred = [...(steps.applied ?? [])].filter(([, r]) => r.kind === 'deferred').map(([k]) => k).sort();
  const report: ReconcileReport = {
    kind: 'ReconcileReport',
    runId: deps.runId,
    cluster: config.cluster.name,
    dryRun: Boolean(req.dryRun),
    result,
    startedAt: started.at,
    finishedAt: clock.now().toISOString(),
    ...(skipped ? { lease: notTaken!.heldBy } : {}),
    source: {
      url: redact(config.git.url, givenValue(config.git.token)),
      ref: config.git.ref,
      path: config.git.path,
      ...headReport(steps.head),
    },
    summary: summarize(daemonSets),
    daemonSets,
    ...(objects.length > 0 ? { objects } : {}),
    ...(steps.prunedCopies ? { prunedCopies: steps.prunedCopies } : {}),
    ...(orphans.length > 0 ? { orphans } : {}),
    problems,
    kubernetesRequests: cluster.requestCount - started.requests,
    ...(error ? { error } : {}),
    ...(steps.tracked?.preemptedBy ? { preempted: steps.tracked.preemptedBy } : {}),
    ...(deferred.length > 0 ? {
      deferred,
      stopped: { reason: 'DeadlineReached', message: `the pass's time ran out at ${new Date(deps.deadline).toISOString()} before ${deferred.length} change(s) could start; the next pass applies them` },
    } : {}),
    ...(steps.lease?.acting ? { leaseTaken: true } : {}),
  };
  logger.log(result === 'failed' ? 'error' : 'info', `pass ${result}`, { action: 'pass', result, summary: report.summary, kubernetesRequests: report.kubernetesRequests });
  return report;
}

/** One DaemonSet's entry: what the plan said, then what the apply, the tracking and a rollback made of it. */
function daemonSetReport(steps: PassSteps, item: PlanItem): DaemonSetReport {
  const look = steps.look!;
  const o = look.observation.byKey.get(item.key)!;
  const refused = look.planned.refused.get(item.key);
  const adoption = look.observation.adoptions.get(item.key);
  const entry: DaemonSetReport = {
    key: item.key,
    namespace: item.namespace,
    name: item.name,
    action: refused ? 'failed' : item.action,
    error: refused && { reason: refused.reason, message: refused.message },
    cause: item.cause,
    applied: false,
    revision: o.state?.currentRevision ?? liveRevision(o.live),
    source: o.desired?.source,
    message: adoption ? `${adoption}; ${item.message}` : item.message,
    diff: item.diff || undefined,
    problems: item.problems.length ? item.problems : undefined,
    pin: o.state?.pin,
    ...(item.held ? { held: item.held } : {}),
  };
  const applied = steps.applied?.get(item.key);
  const acted = steps.lease?.acting === true;
  if (!acted || !item.apply || applied?.kind === 'unapplied') entry.rollout = rolloutReport(o.live, o.state?.rollout, entry.revision);
  if (applied?.kind === 'deferred') entry.message = `${entry.message}; not started: the pass's time ran out, the next pass applies it`;
  if (applied?.kind === 'pruned') Object.assign(entry, { action: 'pruned', applied: true });
  if (applied?.kind === 'failed') Object.assign(entry, { action: 'failed', error: applied.error });
  if (applied?.kind === 'applied') Object.assign(entry, { applied: true, previousRevision: applied.previousRevision, revision: applied.revision, pin: applied.pin, rollout: applied.rollout });
  const tracked = steps.tracked?.rollouts.get(item.key);
  if (tracked) entry.rollout = toRolloutReport(tracked);
  const rolled = steps.rolledBack?.get(item.key);
  if (rolled) entry.message = `${entry.message}; ${rolled}`;
  return entry;
}

/** The bundle's objects in the report: what the plan said, then what the apply made of it. */
function objectReports(bundle: BundleLook, steps: PassSteps): ObjectReport[] {
  return bundle.items.map(({ object: o, action, message, diff }) => {
    const done = steps.objects?.get(o.id);
    const entry: ObjectReport = { id: o.id, apiVersion: o.apiVersion, kind: o.kind, namespace: o.namespace, name: o.name, action, applied: false, source: o.source, message, ...(diff ? { diff } : {}) };
    if (o.defaultedNamespace) entry.message = `${entry.message} (namespace ${o.namespace} from DEFAULT_NAMESPACE)`;
    if (action === 'failed') entry.error = { reason: 'Invalid', message };
    if (done?.applied) entry.applied = true;
    if (done?.error) Object.assign(entry, { action: 'failed', error: done.error });
    else if (steps.lease?.acting && !done && action !== 'unchanged' && action !== 'drifted' && action !== 'failed') entry.message = `${entry.message}; not applied in this pass`;
    return entry;
  });
}

/** The inventory's orphans in the report, in the order they are deleted: what the look decided, then what the prune did. */
function orphanReports(inventory: InventoryLook | undefined, steps: PassSteps): OrphanReport[] {
  if (!inventory) return [];
  const done = new Map(steps.orphans?.map((o) => [o.decision.id, o]));
  return inventory.orphans.map((d) => {
    const { entry } = d;
    const base = { id: d.id, apiVersion: entry.group ? `${entry.group}/${entry.version}` : entry.version, kind: entry.kind, namespace: entry.namespace, name: entry.name, ...(entry.file ? { lastSource: entry.file } : {}) };
    const out = done.get(d.id);
    if (out?.error) return { ...base, action: 'failed', pruned: false, message: out.message, error: out.error };
    if (out?.deleted) return { ...base, action: 'pruned', pruned: true, message: out.message };
    if (out) return { ...base, action: 'orphaned', pruned: false, message: out.message };
    return { ...base, action: 'orphaned', pruned: false, message: d.prune ? 'no longer in Git: a pass that applies deletes it (PRUNE=true)' : d.message };
  });
}

/** The objects a pass applies besides DaemonSets: none when it is limited to some DaemonSets (`only`). */
function bundleObjects(source: Source | undefined, req: ReconcileRequest) {
  return req.only?.length || !source ? [] : source.loaded.objects;
}

interface Source {
  tree: Checkout;
  loaded: LoadResult;
  /** False when some file could not be read: what it held is unknown, so nothing is pruned. */
  sourceComplete: boolean;
  /** Problems of one DaemonSet, by namespace/name. */
  keyed: Map<string, ManifestProblem[]>;
  /** Problems that belong to no single DaemonSet (unreadable files, other kinds). */
  problems: ManifestProblem[];
}

/** What the pass got of Git's head: its tree (trusted, or VERIFY_COMMITS off), only its untrusted commit, or nothing. */
type HeadStep =
  | { tree: Checkout }
  | { untrusted: UntrustedHead }
  | { unavailable: { reason: string; message: string } };

/**
 * Step: Git's head at the ref (its tree reused while the remote head has not moved), judged
 * (VERIFY_COMMITS) from its commit object before anything of its tree is read. A fetch that
 * fails does not end the pass: the rollouts under way are driven without Git.
 */
async function fetchAndJudge(deps: Deps): Promise<HeadStep> {
  const { config, logger } = deps;
  const { path } = config.git;
  const url = redact(config.git.url, givenValue(config.git.token));
  // With a fleet file, a cluster reconciles only the commit promoted to it (lib/fleet/cluster-pass.ts pins GIT_REF to it).
  if (config.fleetFile && !/^[0-9a-f]{40}$/i.test(config.git.ref)) {
    const unavailable = { reason: 'NotPromoted', message: `FLEET_FILE is set: cluster ${config.cluster.name} reconciles the commit promoted to it, not the head of ${config.git.ref}; run its pass as the fleet-pass function or dsgitops reconcile does, or unset FLEET_FILE` };
    logger.log('error', `${unavailable.message}; only the rollouts under way are driven this pass`, { action: 'fetch-refused', reason: unavailable.reason });
    return { unavailable };
  }
  let head;
  try {
    head = await fetchHead(config.git, undefined, {
      verify: commitJudge(config, () => deps.clock.now()),
      treeNotNeeded: (t) => loadWithoutTree(t, path, config.policy, config.maxManifestBytes, config.render),
    });
  } catch (err) {
    const unavailable = { reason: (err as DsGitopsError).reason ?? 'SourceUnavailable', message: errorMessage(err) };
    logger.log('error', `${unavailable.message}; only the rollouts under way are driven this pass`, { action: 'fetch-failed', reason: unavailable.reason });
    return { unavailable };
  }
  const reused = !isUntrusted(head) && head.reused;
  logger.log('info', `${reused ? 'unchanged' : 'fetched'} ${url} at ${config.git.ref}: ${head.commit.sha.slice(0, 7)} "${head.commit.subject}"`, { action: 'fetch', commit: head.commit.sha, reused: Boolean(reused) });
  return isUntrusted(head) ? { untrusted: head } : { tree: head };
}

/** The report's word on the head: the commit and its verdict. */
function headReport(head: HeadStep | undefined): { commit?: GitCommit; verification?: Verification } {
  if (!head || 'unavailable' in head) return {};
  const { commit, verdict } = 'tree' in head ? head.tree : head.untrusted;
  return { commit, ...(verdict ? { verification: verdict } : {}) };
}

/** Step: the manifests of a trusted (or unverified) tree, rendered by kustomize when GIT_PATH holds a kustomization. */
async function loadSource(deps: Deps, tree: Checkout): Promise<Source> {
  const { config, logger } = deps;
  const { path } = config.git;
  const loaded = await loadCheckout(tree, path, config.policy, config.maxManifestBytes, config.render);
  const sourceComplete = !loaded.problems.some((p) => INCOMPLETE_SOURCE_CODES.includes(p.code));
  const keyed = new Map<string, ManifestProblem[]>();
  const problems: ManifestProblem[] = [];
  for (const p of loaded.problems) {
    if (p.key) keyed.set(p.key, [...(keyed.get(p.key) ?? []), p]);
    else problems.push(p);
  }
  for (const p of problems) logger.log(p.severity === 'error' ? 'error' : 'info', `${p.file}${p.document ? ` (document ${p.document})` : ''}: ${p.message}`, { action: 'manifest-problem', code: p.code });
  return { tree, loaded, sourceComplete, keyed, problems };
}

interface Observation {
  observed: Observed[];
  byKey: Map<string, Observed>;
  adoptions: Map<string, string>;
  /** What each DaemonSet's decision rests on: its live resourceVersion and its state's ETag. */
  basis: Map<string, string>;
  /** Running DaemonSets whose record lags the cluster (a run stopped early, a new store): recording them writes. */
  unrecorded: Set<string>;
  /** DaemonSets whose state or revision record in S3 cannot be read: left out of the plan, reported failed. */
  unreadable: Map<string, RecordUnreadableError>;
  live: Map<string, LiveDaemonSet>;
}

/**
 * Step: one LIST of the managed DaemonSets and the recorded state of each (one GET of the
 * state index, state.json for `fresh` keys and those the index cannot vouch for). With
 * `record` (under the lease) a record that lags the cluster is repaired or adopted. Without a
 * source, only the DaemonSets whose rollout is under way are observed, and no record is made.
 */
async function observe(
  deps: Deps,
  source: Source | undefined,
  req: ReconcileRequest,
  options: { record: boolean; fresh?: Set<string>; listed?: Promise<{ items: LiveDaemonSet[] }>; index?: Promise<StateIndexRecord | undefined> },
): Promise<Observation> {
  const { config, cluster, store } = deps;
  const listed = await (options.listed ?? cluster.listManagedDaemonSets(MANAGED_SELECTOR));
  const live = new Map(listed.items.map((d) => [`${d.metadata.namespace}/${d.metadata.name}`, d]));
  const desired = new Map(source?.loaded.desired.map((d) => [d.key, d]));
  // Managed DaemonSets outside ALLOWED_NAMESPACES are not this configuration's business.
  const inScope = [...live.keys()].filter((k) => namespaceAllowed(config.policy, k.split('/')[0]));
  let keys = [...new Set([...desired.keys(), ...(source?.keyed.keys() ?? []), ...inScope])].sort();
  if (req.only?.length) keys = keys.filter((k) => req.only!.includes(k));
  const recorded = await store.readStates(keys, { fresh: options.fresh, repair: !req.dryRun, index: options.index });
  const unreadable = new Map(recorded.unreadable);
  keys = keys.filter((k) => !unreadable.has(k));
  const states = new Map<string, DaemonSetState | undefined>();
  const basis = new Map<string, string>();
  const adoptions = new Map<string, string>();
  const unrecorded = new Set<string>();
  await mapLimit(keys, STATE_READ_CONCURRENCY, async (k) => {
    const [namespace] = k.split('/');
    let s = recorded.states.get(k)?.value;
    const l = live.get(k);
    basis.set(k, `${l?.metadata.resourceVersion ?? '-'} ${recorded.states.get(k)?.etag ?? '-'}`);
    const lags = l && (liveRevision(l) ?? 0) > (s?.currentRevision ?? 0);
    if (l && (lags || !s) && namespaceAllowed(config.policy, namespace)) unrecorded.add(k);
    if (!options.record || !l || !source) return states.set(k, s);
    try {
      if (lags) s = await repairFromLive(deps, l, s);
      // Stamped by this tool, unknown to this store (a new bucket, prefix or CLUSTER_NAME): adopt it.
      if (!s && namespaceAllowed(config.policy, namespace)) {
        const adopted = await adoptLive(deps, l);
        if (adopted) adoptions.set(k, adopted.message);
        s = adopted?.state;
      }
    } catch (err) {
      if (!(err instanceof RecordUnreadableError)) throw err;
      unreadable.set(k, err);
      return;
    }
    if (s !== recorded.states.get(k)?.value) basis.set(k, 'recorded now');
    states.set(k, s);
  });
  keys = keys.filter((k) => !unreadable.has(k));
  for (const [k, err] of unreadable) deps.logger.log('error', err.message, { daemonSet: k, action: 'record-unreadable', reason: err.reason, key: err.key });
  // A DaemonSet in Git that is not (yet) managed may still exist: created by hand, or before adoption.
  for (const k of keys) {
    if (desired.has(k) && !live.has(k)) {
      const [namespace, name] = k.split('/');
      const found = await cluster.getDaemonSet(namespace, name);
      if (found) live.set(k, found);
    }
  }
  let observed: Observed[] = keys.map((k) => {
    const [namespace, name] = k.split('/');
    return { key: k, namespace, name, desired: desired.get(k), problems: source?.keyed.get(k) ?? [], live: live.get(k), state: states.get(k) };
  });
  if (!source) {
    observed = observed.filter(tracksRollout);
    unrecorded.clear();
  }
  return { observed, byKey: new Map(observed.map((o) => [o.key, o])), adoptions, basis, unrecorded, unreadable, live };
}

interface Planned {
  items: PlanItem[];
  /** Dry runs refused for a reason that is not the manifest's: those DaemonSets fail this pass. */
  refused: Map<string, DsGitopsError>;
}

/**
 * Step: the plan (pure), around the server-side dry runs it needs; nothing is written. A
 * DaemonSet observed as it was for `earlier` keeps the decision made then, dry run included.
 */
async function plan(deps: Deps, observation: Observation, source: Source | undefined, earlier?: { observation: Observation; planned: Planned }, bundle?: BundleLook): Promise<Planned> {
  const { config, cluster, logger } = deps;
  // Namespaces this pass creates before its DaemonSets: a DaemonSet new in one cannot be dry-run yet, and is created as Git has it.
  const newNamespaces = new Set(bundle?.items.filter((i) => i.object.kind === 'Namespace' && i.object.group === '' && i.action === 'create').map((i) => i.object.name));
  const refused = new Map<string, DsGitopsError>();
  if (!source) return { items: observation.observed.map(underWayWithoutGit), refused };
  const decidedBefore = new Map(earlier?.planned.items.map((i) => [i.key, i]));
  const items: PlanItem[] = await mapLimit(observation.observed, APPLY_CONCURRENCY, async (o) => {
    const before = decidedBefore.get(o.key);
    if (before && earlier!.observation.basis.get(o.key) === observation.basis.get(o.key)) {
      const failure = earlier!.planned.refused.get(o.key);
      if (failure) refused.set(o.key, failure);
      return before;
    }
    const t = triage(o, { policy: config.policy, sourceComplete: source.sourceComplete });
    if ('decided' in t) return t.decided;
    let result: DryRunResult;
    try {
      result = { ok: true, object: !o.live && newNamespaces.has(o.namespace) ? (t.dryRun as LiveDaemonSet) : await cluster.dryRunApply(t.dryRun) };
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
  await refuseUnmatchedCanaries(deps, items, observation.byKey);
  await holdUnfilled(deps, items, observation.byKey);
  return { items, refused };
}

/** The DaemonSets whose plan writes something (the cluster, a state, a revision, an Event): empty for a pass with nothing to do. */
function keysToWrite(observation: Observation, planned: Planned): Set<string> {
  const keys = new Set(observation.unrecorded);
  for (const item of planned.items) {
    const o = observation.byKey.get(item.key)!;
    if (item.apply || item.acceptGeneration !== undefined || notesUnapplied(item, o) || tracksRollout(o)) keys.add(item.key);
  }
  return keys;
}

/** A rollout still progressing (or stalled: a slow one that recovers still becomes healthy) is watched, and its progress recorded. */
function tracksRollout(o: Observed): boolean {
  const phase = o.state?.rollout?.phase;
  return Boolean(o.live && o.state && (phase === 'progressing' || phase === 'stalled') && o.state.currentRevision === liveRevision(o.live));
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
 * A managed template change is held (not applied this pass) while more desired nodes than
 * maxUnavailable have no running pod: the controller would give the new template to all of
 * them at once, without a deletion (rollout/wave.ts, `holdBeforeApply`). Creates and the
 * completion of a `rollback --recreate` are never held: the DaemonSet has no pods then. The
 * nodes are listed once, and pods only for such a change.
 */
async function holdUnfilled(deps: Deps, items: PlanItem[], byKey: Map<string, Observed>): Promise<void> {
  const changing = items.filter((i) => {
    const o = byKey.get(i.key);
    return i.apply && i.templateChanged && i.completesRecreate === undefined && i.restoresPinned === undefined && i.cause !== 'create' && o?.live && o.desired && rolloutModeOf(o.desired.manifest) === 'managed';
  });
  if (changing.length === 0) return;
  const nodes = await deps.cluster.listNodes();
  for (const item of changing) {
    const o = byKey.get(item.key)!;
    const held = await holdForUnfilledNodes(deps.cluster, o.live!, o.desired!.manifest, nodes);
    if (!held) continue;
    deps.logger.log('warn', `${item.key}: ${held}`, { daemonSet: item.key, action: 'held' });
    // A copy: a later plan that reuses this pass's decision (same observation) asks again.
    items[items.indexOf(item)] = { ...item, apply: false, message: `${item.message}: ${held}`, held };
  }
}

/** The plan item of a rollout under way in a pass that has no source: it is driven and judged, nothing is applied. */
function underWayWithoutGit(o: Observed): PlanItem {
  const message = `Git's head not read this pass: revision ${o.state!.currentRevision}'s rollout (${o.state!.rollout!.phase}) is driven from the cluster and S3; nothing new is applied`;
  return { key: o.key, namespace: o.namespace, name: o.name, action: 'unchanged', apply: false, message, problems: [] };
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
  if (!notesUnapplied(item, o) || !o.live || !o.state) return;
  const reason = item.action === 'invalid' ? 'InvalidManifest' : 'DriftDetected';
  await emitEvent(deps, { namespace: o.namespace, name: o.name, uid: o.live.metadata.uid }, 'Warning', reason, item.message);
  deps.logger.log('warn', item.message, { daemonSet: item.key, action: item.action });
  const now = deps.clock.now().toISOString();
  await deps.store.updateState(o.namespace, o.name, (cur) =>
    cur ? { ...cur, lastAttempt: { at: now, result: 'failed', message: item.message }, updatedAt: now } : undefined,
  );
}

/** An invalid manifest or uncorrected drift not yet noted for this DaemonSet (with this message). */
function notesUnapplied(item: PlanItem, o: Observed): boolean {
  return Boolean(o.live && o.state && (item.action === 'invalid' || item.action === 'drifted') && o.state.lastAttempt?.message !== item.message);
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

/** DaemonSets already told (by an Event) that this commit is not applied to them: a warm process says it once. */
const announcedUntrusted = new Set<string>();

/**
 * Step, when the head is not trusted: nothing of its tree was read, so nothing from it is
 * planned or applied. The report names the commit, the signer and the fix, and so does a
 * Warning Event on each managed DaemonSet in ALLOWED_NAMESPACES: none of them gets Git's
 * changes until the head is trusted.
 */
async function refuseUntrusted(deps: Deps, req: ReconcileRequest, look: Look, head: UntrustedHead): Promise<{ message: string }> {
  const { commit, verdict } = head;
  const message = untrustedMessage(commit, verdict);
  deps.logger.log('error', message, { action: 'commit-untrusted', commit: commit.sha, signer: verdict.signer ?? null });
  if (req.dryRun) return { message };
  for (const [key, live] of look.observation.live) {
    const [namespace, name] = key.split('/');
    const seen = `${deps.config.cluster.name} ${key} ${commit.sha}`;
    if (!namespaceAllowed(deps.config.policy, namespace) || announcedUntrusted.has(seen)) continue;
    announcedUntrusted.add(seen);
    await emitEvent(deps, { namespace, name, uid: live.metadata.uid }, 'Warning', 'UntrustedCommit', message);
  }
  return { message };
}
