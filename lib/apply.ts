/**
 * The one write path to the cluster, shared by reconcile and rollback:
 *
 *   writeAhead: snapshot (revision number claimed with If-None-Match: *, pin included)
 *   applyPending: server-side apply of the stamped manifest
 *     -> outcome on the snapshot, state (If-Match), Event on the DaemonSet.
 *
 * `applyRevision` runs both; a caller that must act on the cluster between them (a rollback
 * that deletes the DaemonSet to recreate it) calls them one after the other itself.
 * A revision that is in the cluster is therefore always in S3, and a run killed between any
 * two steps leaves a state that the next run completes (see `repairFromLive` and the
 * reuse of a pending snapshot below): the snapshot carries everything the state write sets
 * besides the revision itself (a rollback's pin, a managed rollback's seed).
 */
import type { ConfigEntry } from './bundle/config-copies';
import { emitEvent } from './cluster/events';
import type { LiveDaemonSet } from './cluster/types';
import type { Deps } from './deps';
import { ApplyError, DsGitopsError, errorMessage } from './errors';
import { canonicalJson } from './k8s-values';
import { FIELD_MANAGER } from './labels';
import { changeCauseOf } from './plan/change-cause';
import { liveRevision } from './plan/plan';
import { render, RolloutMode, rolloutModeOf } from './plan/render';
import type { GitCommit } from './source/git';
import { DaemonSetManifest, SourceLocation, imagesOf } from './source/manifest';
import { Cause, DaemonSetState, ManagedSeed, Pin, RevisionSnapshot, RolloutState, seedManagedRollout, stateAfterApply } from './store/records';

export interface ApplyRequest {
  namespace: string;
  name: string;
  manifest: DaemonSetManifest;
  digest: string;
  source?: SourceLocation;
  commit?: GitCommit;
  cause: Cause;
  rollbackTo?: number;
  reason?: string;
  live?: LiveDaemonSet;
  state?: DaemonSetState;
  /** Git's digest of this DaemonSet now (null: not in Git); kept in state for pin decisions. */
  gitDigest: string | null;
  /** The pin to set with this revision (rollback), or null to clear one. Undefined keeps the current pin. */
  pin?: Pin | null;
  /** A managed rollback's seed: written ahead with the snapshot, set with the state. */
  managedSeed?: ManagedSeed;
  /** The configuration this revision runs with (its versioned copies), for the snapshot. */
  config?: ConfigEntry[];
  /** What rendered the manifest (a kustomization), recorded with the snapshot. */
  rendered?: RevisionSnapshot['rendered'];
}

/** A revision written ahead of its apply: its number is claimed and nothing is in the cluster yet. */
export interface PendingRevision {
  snapshot: RevisionSnapshot;
  mode: RolloutMode;
  /** The pin the apply sets (for a rollback), or undefined for none. */
  pin?: Pin;
}

export interface ApplyOutcome {
  revision: number;
  applied: LiveDaemonSet;
  state: DaemonSetState;
  snapshot: RevisionSnapshot;
}

/** The live object as it goes into a snapshot: no managedFields, which are large and say nothing to people. */
export function snapshotOfLive(live: LiveDaemonSet | undefined): Record<string, unknown> | null {
  if (!live) return null;
  const copy = structuredClone(live) as LiveDaemonSet;
  delete copy.metadata.managedFields;
  return copy as unknown as Record<string, unknown>;
}

function describeCause(cause: Cause, rollbackTo?: number): string {
  return cause === 'rollback' ? `rollback to ${rollbackTo}` : cause;
}

function pinText(pin: Pin | undefined | null): string | undefined {
  return pin ? `revision ${pin.revision}: ${pin.reason}` : undefined;
}

/** The same pin, but for when it was set: a rollback retried after a kill sets its pin again. */
function samePin(a: Pin | undefined, b: Pin | undefined): boolean {
  if (!a || !b) return a === b;
  return a.revision === b.revision && a.reason === b.reason && a.by === b.by && a.gitDigest === b.gitDigest;
}

/**
 * Picks the revision number to write. Normally the next one; but a snapshot that a killed
 * run wrote and never applied, for this same manifest, is reused instead of leaving a gap
 * and a duplicate. A pending snapshot for a different manifest is marked superseded.
 */
async function claimOrReuse(deps: Deps, req: ApplyRequest, snapshot: Omit<RevisionSnapshot, 'revision'>): Promise<RevisionSnapshot> {
  const { store } = deps;
  const numbers = await store.listRevisionNumbers(req.namespace, req.name);
  const latest = numbers.length ? numbers[numbers.length - 1] : 0;
  const recorded = req.state?.currentRevision ?? 0;
  if (latest > recorded && latest !== liveRevision(req.live)) {
    const orphan = await store.getRevision(req.namespace, req.name, latest);
    if (orphan && orphan.value.outcome === 'pending') {
      const same = orphan.value.digest === req.digest && orphan.value.cause === req.cause && orphan.value.rollbackTo === req.rollbackTo && samePin(orphan.value.pin, snapshot.pin);
      if (same) {
        deps.logger.log('info', `reusing revision ${latest}, written by a run that stopped before applying it`, { daemonSet: `${req.namespace}/${req.name}`, revision: latest });
        return orphan.value;
      }
      await store.setOutcome(req.namespace, req.name, latest, 'superseded', deps.clock.now().toISOString(), 'never applied: the run that wrote it stopped before applying it');
    }
  }
  return store.claimRevision(snapshot, latest);
}

export async function applyRevision(deps: Deps, req: ApplyRequest): Promise<ApplyOutcome> {
  return applyPending(deps, req, await writeAhead(deps, req));
}

/** The snapshot step: claims the revision number and writes everything the apply will do, pin included. */
export async function writeAhead(deps: Deps, req: ApplyRequest): Promise<PendingRevision> {
  const now = deps.clock.now().toISOString();
  const mode: RolloutMode = rolloutModeOf(req.manifest);
  const pin = req.pin === undefined ? req.state?.pin : req.pin ?? undefined;
  const snapshot = await claimOrReuse(deps, req, {
    schema: 1,
    cluster: deps.config.cluster.name,
    namespace: req.namespace,
    name: req.name,
    cause: req.cause,
    rollbackTo: req.rollbackTo,
    reason: req.reason,
    manifest: req.manifest as unknown as Record<string, unknown>,
    digest: req.digest,
    rolloutMode: mode,
    source: req.source,
    commit: req.commit,
    replaced: snapshotOfLive(req.live),
    runId: deps.runId,
    createdAt: now,
    outcome: 'pending',
    outcomeAt: now,
    pin,
    ...(req.managedSeed && mode === 'managed' ? { managedSeed: req.managedSeed } : {}),
    ...(req.config?.length ? { config: req.config } : {}),
    ...(req.rendered ? { rendered: req.rendered } : {}),
  });
  if (deps.config.fault === 'kill-after-snapshot') process.kill(process.pid, 'SIGKILL');
  return { snapshot, mode, pin };
}

/** What is sent to the API server for `req` as revision `revision`: its manifest, stamped. */
function bodyOf(req: ApplyRequest, revision: number, pin: Pin | undefined, mode: RolloutMode): DaemonSetManifest {
  return render(req.manifest, {
    revision,
    commit: req.commit?.sha,
    digest: req.digest,
    sourcePath: req.source?.file,
    pinned: pinText(pin),
    changeCause: changeCauseOf({ cause: req.cause, commit: req.commit, rollbackTo: req.rollbackTo, by: pin?.by, reason: req.reason }),
  }, mode);
}

/** The name a recreate's target is dry-run under: the live object of the real name has another, immutable, selector. */
export function dryRunName(name: string): string {
  const suffix = '-dsgitops-recreate-check';
  return `${name.slice(0, 253 - suffix.length)}${suffix}`;
}

/**
 * A server-side dry run of creating what applying `pending` for `req` would create, under
 * another name (dryRunName): for a rollback that must delete the DaemonSet before it can apply
 * it (`--recreate`; the API server refuses the target under the real name while the live
 * object's selector differs). Validation and admission (webhooks, policies) judge the object
 * as they would the real create, but for its name. Throws the API server's refusal.
 */
export async function dryRunAsNew(deps: Deps, req: ApplyRequest, pending: PendingRevision): Promise<void> {
  const body = bodyOf(req, pending.snapshot.revision, pending.pin, pending.mode);
  body.metadata = { ...body.metadata, name: dryRunName(req.name) };
  await deps.cluster.dryRunApply(body);
}

/** The apply step, for a revision `writeAhead` wrote for this same request. */
export async function applyPending(deps: Deps, req: ApplyRequest, pending: PendingRevision): Promise<ApplyOutcome> {
  const { cluster, store, clock, config, logger } = deps;
  const key = `${req.namespace}/${req.name}`;
  const { snapshot, mode, pin } = pending;
  const revision = snapshot.revision;
  const body = bodyOf(req, revision, pin, mode);
  let applied: LiveDaemonSet;
  try {
    applied = await cluster.apply(body);
  } catch (err) {
    const message = errorMessage(err);
    await store.setOutcome(req.namespace, req.name, revision, 'failed', clock.now().toISOString(), message);
    await store.updateState(req.namespace, req.name, (cur) =>
      cur ? { ...cur, lastAttempt: { at: clock.now().toISOString(), revision, result: 'failed', message }, updatedAt: clock.now().toISOString() } : undefined,
    );
    // A typed refusal (a missing permission, an unreachable API server) keeps its reason; anything else is an apply failure.
    throw err instanceof DsGitopsError ? err : new ApplyError(`applying revision ${revision} of ${key} failed: ${message}`, { cause: err });
  }
  if (config.fault === 'kill-after-apply') process.kill(process.pid, 'SIGKILL');

  const appliedAt = clock.now().toISOString();
  await store.setOutcome(req.namespace, req.name, revision, 'progressing', appliedAt, undefined, appliedAt);
  await settlePrevious(deps, snapshot, req.state?.currentRevision, appliedAt, req.state?.rollout);
  // The seed goes with the state write of the revision itself: no run ever sees the rollback's rollout without it.
  const state = (await store.updateState(req.namespace, req.name, (cur) => seedManagedRollout(stateAfterApply(cur, {
    namespace: req.namespace,
    name: req.name,
    revision,
    digest: req.digest,
    mode,
    generation: applied.metadata.generation,
    at: appliedAt,
    gitDigest: req.gitDigest,
    source: req.source,
    commit: req.commit,
    pin,
    sameTemplate: sameTemplate(req.live, applied),
    cause: req.cause,
  }), snapshot.managedSeed)))!;

  const commitText = req.commit ? ` from commit ${req.commit.sha.slice(0, 7)} "${req.commit.subject}" by ${req.commit.author}` : '';
  const message = `revision ${revision} (${describeCause(req.cause, req.rollbackTo)})${commitText}: ${imagesOf(req.manifest).join(', ')}`;
  await emitEvent(deps, { namespace: req.namespace, name: req.name, uid: applied.metadata.uid }, req.cause === 'drift-correction' ? 'Warning' : 'Normal',
    req.cause === 'rollback' ? 'RolledBack' : req.cause === 'drift-correction' ? 'DriftCorrected' : 'RevisionApplied', message);
  logger.log('info', `applied ${message}`, { daemonSet: key, action: 'apply', revision, cause: req.cause, digest: req.digest, commit: req.commit?.sha });
  return { revision, applied, state, snapshot };
}

/**
 * The pod template did not change: the DaemonSet's pods are the same before and after (both
 * objects as the API server returned them, defaults included). False when either is missing.
 */
export function sameTemplate(before: Pick<LiveDaemonSet, 'spec'> | null | undefined, after: Pick<LiveDaemonSet, 'spec'>): boolean {
  return before != null && canonicalJson(before.spec.template) === canonicalJson(after.spec.template);
}

/** What became of the revision that `applied` replaced: rolled back, or superseded before it finished rolling out. */
async function settlePrevious(deps: Deps, applied: RevisionSnapshot, previous: number | undefined, at: string, previousRollout: RolloutState | undefined): Promise<void> {
  const { namespace, name, revision } = applied;
  if (!previous || previous === revision) return;
  const prev = await deps.store.getRevision(namespace, name, previous);
  const o = prev?.value.outcome;
  // What its gates measured stays with the revision, past its rollout's record in state.json.
  const gates = previousRollout?.revision === previous && previousRollout.managed?.gates?.measurements.length ? previousRollout.managed.gates : undefined;
  if (applied.cause === 'rollback' && o !== 'rolled-back') {
    await deps.store.setOutcome(namespace, name, previous, 'rolled-back', at, `rolled back to revision ${applied.rollbackTo} (as revision ${revision})${applied.reason ? `: ${applied.reason}` : ''}`, undefined, gates);
  } else if (o === 'progressing' || o === 'pending') {
    await deps.store.setOutcome(namespace, name, previous, 'superseded', at, `revision ${revision} was applied before it finished rolling out`, undefined, gates);
  }
}

/**
 * A run killed after its apply but before it recorded state leaves the cluster one
 * revision ahead of S3. The snapshot is there (write-ahead), so the state is rebuilt from
 * it, pin included: a rollback killed here still holds against Git's version.
 */
export async function repairFromLive(deps: Deps, live: LiveDaemonSet, state: DaemonSetState | undefined): Promise<DaemonSetState | undefined> {
  const rev = liveRevision(live);
  if (rev === undefined || (state && state.currentRevision >= rev)) return state;
  const { namespace = 'default', name } = live.metadata;
  const snap = await deps.store.getRevision(namespace, name, rev);
  if (!snap) return state;
  const now = deps.clock.now().toISOString();
  if (snap.value.outcome === 'pending') {
    await deps.store.setOutcome(namespace, name, rev, 'progressing', now, 'applied by a run that stopped before recording it', now);
  }
  await settlePrevious(deps, snap.value, state?.currentRevision, now, state?.rollout);
  deps.logger.log('info', `recorded revision ${rev}, which a run that stopped early had applied`, { daemonSet: `${namespace}/${name}`, revision: rev });
  // Which generation the apply left is lost with the run. The live one is recorded as this tool's
  // unless another field manager changed the spec at or after the apply: then none is, so the plan
  // looks (a dry run, or a pinned revision restored) before the revision is judged on what runs
  // (managed.ts, changedOutsideSinceApply).
  const keep = specChangedByOthersSinceApply(live) ? withoutGeneration : (s: DaemonSetState) => s;
  return deps.store.updateState(namespace, name, (cur) => keep(seedManagedRollout(stateAfterApply(cur, {
    namespace,
    name,
    revision: rev,
    digest: snap.value.digest,
    mode: snap.value.rolloutMode,
    generation: live.metadata.generation,
    at: now,
    gitDigest: cur?.gitDigest,
    source: snap.value.source,
    commit: snap.value.commit,
    pin: snap.value.pin,
    message: 'recorded after an interrupted run',
    sameTemplate: sameTemplate(snap.value.replaced as LiveDaemonSet | null, live),
    cause: snap.value.cause,
  }), snap.value.managedSeed)));
}

/**
 * Whether a field manager other than this tool changed the DaemonSet's spec at or after this
 * tool's last apply, as managedFields tell it: an entry of another manager (not a status
 * update) that owns spec fields, timed no earlier than this tool's Apply entry (times are whole
 * seconds: the same second counts as after). Without an Apply entry of this tool, nothing says
 * what it left: true.
 */
export function specChangedByOthersSinceApply(live: Pick<LiveDaemonSet, 'metadata'>): boolean {
  const entries = (live.metadata.managedFields ?? []) as { manager?: string; operation?: string; time?: string; subresource?: string; fieldsV1?: Record<string, unknown> }[];
  const ours = entries.find((e) => e.manager === FIELD_MANAGER && e.operation === 'Apply' && !e.subresource);
  const appliedAt = ours?.time === undefined ? Number.NaN : Date.parse(ours.time);
  if (Number.isNaN(appliedAt)) return true;
  return entries.some((e) => e !== ours && !e.subresource && e.fieldsV1?.['f:spec'] !== undefined && e.time !== undefined && Date.parse(e.time) >= appliedAt);
}

/** The state without the generation this tool left (its rollout keeps the one it is for). */
export function withoutGeneration(state: DaemonSetState): DaemonSetState {
  const { generation: _unknown, ...rest } = state;
  return rest;
}
