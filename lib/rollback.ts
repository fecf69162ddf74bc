/**
 * Rollback by manual invoke: apply a stored revision through the same lease, write-ahead
 * and apply path as a reconcile, track its rollout the same way, and pin the DaemonSet so
 * scheduled passes do not re-apply Git's version until Git says something new about it.
 */
import type { LiveDaemonSet } from './cluster/types';
import { ApplyOutcome, applyPending, applyRevision, ApplyRequest, dryRunAsNew, dryRunName, PendingRevision, writeAhead } from './apply';
import { emitEvent } from './cluster/events';
import { clusterLease, Deps } from './deps';
import { ApplyError, DsGitopsError, errorMessage, LeaseHeldError, NotFoundError, RollbackRefusedError, StoreError } from './errors';
import { liveRevision } from './plan/plan';
import type { RollbackEvent } from './events';
import { describeRevisions } from './history';
import { RolloutReport, toRolloutReport } from './report';
import { trackRollouts } from './rollout/track';
import { fetchHead, isUntrusted } from './source/git';
import { commitJudge } from './source/trust';
import { keptLoadOf, loadManifests } from './source/load';
import { rendersPath } from './source/render';
import { canonicalJson } from './k8s-values';
import type { DaemonSetManifest } from './source/manifest';
import type { Lease } from './store/lease';
import { DaemonSetState, managedRollbackSeed, Pin, RevisionSnapshot } from './store/records';
import { mapLimit } from './util';
import { ConfigEntry, copyFromEntry } from './bundle/config-copies';
import { CONFIGMAPS, SECRETS } from './bundle/prune-copies';
import type { LiveObject } from './cluster/resources';
import { DIGEST_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE } from './labels';
import { digestOf, JsonObject } from './source/manifest';

export interface RollbackRequest extends RollbackEvent {
  /** Who asked, for the pin (the CLI passes the local user). */
  by?: string;
}

export interface RollbackReport {
  kind: 'RollbackReport';
  namespace: string;
  name: string;
  /** The revision that was in the cluster. */
  fromRevision?: number;
  /** The stored revision whose manifest was restored. */
  toRevision: number;
  /** The new revision that records this rollback. */
  revision: number;
  recreated: boolean;
  pin: Pin;
  rollout?: RolloutReport;
  /** With VERIFY_COMMITS: why this rollback was not checked against the trusted keys. */
  verification?: string;
  message: string;
}

/** Git's current digest for one DaemonSet (null: not in Git), or undefined when Git cannot be read. */
async function gitDigestNow(deps: Deps, key: string): Promise<string | null | undefined> {
  try {
    // From a head that is not trusted (VERIFY_COMMITS) nothing but its commit is read.
    const tree = await fetchHead(deps.config.git, undefined, { verify: commitJudge(deps.config, () => deps.clock.now()) });
    if (isUntrusted(tree)) throw new Error(`Git's head ${tree.commit.sha.slice(0, 7)} is not trusted: ${tree.verdict.problem ?? 'not signed by a trusted key'}`);
    const { path } = deps.config.git;
    // A path kustomize renders is never rendered by a rollback (a chart repository may be down): the
    // result of the last pass's render of this commit is used when this process or the checkout has it.
    const loaded = rendersPath(tree.dir, path)
      ? keptLoadOf(tree, path, deps.config.policy, deps.config.maxManifestBytes, deps.config.render)
      : loadManifests(tree.dir, path, deps.config.policy, deps.config.maxManifestBytes);
    if (!loaded) throw new Error(`${path} is rendered by kustomize and no render of ${tree.commit.sha.slice(0, 7)} is at hand; a rollback does not render`);
    return loaded.desired.find((d) => d.key === key)?.digest ?? null;
  } catch (err) {
    deps.logger.log('warn', `could not read Git to record what the pin holds against; using the digest the last pass saw: ${errorMessage(err)}`, { daemonSet: key });
    return undefined;
  }
}

/** The newest revision before the current one that rolled out healthy and differs from it. */
export function previousHealthy(revisions: RevisionSnapshot[], current: number | undefined): RevisionSnapshot | undefined {
  const cur = revisions.find((r) => r.revision === current);
  return revisions
    .filter((r) => r.revision < (current ?? Infinity) && r.outcome === 'healthy' && r.digest !== cur?.digest)
    .sort((a, b) => b.revision - a.revision)[0];
}

async function loadRevisions(deps: Deps, namespace: string, name: string): Promise<RevisionSnapshot[]> {
  const numbers = await deps.store.listRevisionNumbers(namespace, name);
  const read = await mapLimit(numbers, 8, (n) => deps.store.getRevision(namespace, name, n));
  return read.flatMap((r) => (r ? [r.value] : []));
}

async function waitUntilGone(deps: Deps, namespace: string, name: string): Promise<void> {
  const deadline = deps.clock.now().getTime() + 120_000;
  while (await deps.cluster.getDaemonSet(namespace, name)) {
    if (deps.clock.now().getTime() > deadline) throw new RollbackRefusedError(`${namespace}/${name} was deleted for recreation but is still there after 2 minutes (finalizers?)`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * `rollback --recreate`: the DaemonSet is deleted, then created from the pending revision.
 *
 * Assumptions / Invariants
 * - Nothing is deleted before the API server accepted the target in a dry run (under another
 *   name: see dryRunAsNew). A refusal there changes nothing in the cluster.
 * - Before the delete, the state records the pin and the pending recreate (`recreate`): from
 *   the moment the DaemonSet is gone, a pass completes this rollback (plan.ts,
 *   pendingRecreate; completeRecreate below) and never creates Git's version in its place.
 * - An apply that fails after the delete leaves that record, and its error says so.
 */
async function recreateFrom(deps: Deps, request: ApplyRequest, pending: PendingRevision, live: LiveDaemonSet): Promise<ApplyOutcome> {
  const { namespace, name } = request;
  const key = `${namespace}/${name}`;
  const revision = pending.snapshot.revision;
  try {
    await dryRunAsNew(deps, request, pending);
  } catch (err) {
    const message = errorMessage(err);
    await deps.store.setOutcome(namespace, name, revision, 'failed', deps.clock.now().toISOString(), `refused in a dry run, before anything was deleted: ${message}`);
    throw new RollbackRefusedError(`the API server refused revision ${request.rollbackTo} of ${key} in a dry run (as ${dryRunName(name)}), so nothing was deleted or changed: ${message}`);
  }
  const at = deps.clock.now().toISOString();
  await deps.store.updateState(namespace, name, (cur) => ({
    ...(cur ?? { schema: 1 as const, namespace, name, currentRevision: liveRevision(live) ?? 0, appliedDigest: '' }),
    pin: pending.pin,
    recreate: { revision, at, replacedUid: live.metadata.uid },
    updatedAt: at,
  }));
  if (deps.config.fault === 'kill-before-delete') process.kill(process.pid, 'SIGKILL');
  await deps.cluster.deleteDaemonSet(namespace, name);
  if (deps.config.fault === 'kill-after-delete') process.kill(process.pid, 'SIGKILL');
  await waitUntilGone(deps, namespace, name);
  return applyAfterDelete(deps, request, pending);
}

/** The apply of a recreate, once the DaemonSet is gone: a failure says what the next pass does. */
async function applyAfterDelete(deps: Deps, request: ApplyRequest, pending: PendingRevision): Promise<ApplyOutcome> {
  try {
    return await applyPending(deps, request, pending);
  } catch (err) {
    const key = `${request.namespace}/${request.name}`;
    const message = `${errorMessage(err)}. ${key} was deleted to be re-created from revision ${request.rollbackTo}; the rollback stays recorded (pinned, written ahead as revision ${pending.snapshot.revision}): the next pass creates it from that revision, never from Git (or run this rollback again; unpin to have Git's version instead)`;
    throw err instanceof DsGitopsError ? Object.assign(err, { message }) : new ApplyError(message, { cause: err });
  }
}

/**
 * A pass's completion of a `rollback --recreate` that stopped between its delete and its
 * apply (killed, or its apply refused): deletes the object being replaced if it is still
 * there, then applies the revision the rollback wrote ahead, with its pin and seed. The
 * caller holds the lease and has confirmed it.
 */
export async function completeRecreate(deps: Deps, o: StoredRevisionTarget, revision: number): Promise<ApplyOutcome> {
  const snap = await storedRevision(deps, o, revision, 'written ahead by a rollback with recreate');
  const request: ApplyRequest = {
    ...storedRevisionRequest(o, snap),
    cause: 'rollback',
    rollbackTo: snap.rollbackTo,
    reason: snap.reason,
    gitDigest: snap.pin?.gitDigest ?? o.state?.gitDigest ?? null,
    pin: snap.pin ?? null,
    managedSeed: snap.managedSeed,
  };
  deps.logger.log('warn', `completing the rollback to revision ${snap.rollbackTo} with recreate that a run left between its delete and its apply (revision ${revision})`, { daemonSet: `${o.namespace}/${o.name}`, action: 'complete-recreate', revision });
  if (o.live) {
    await deps.cluster.deleteDaemonSet(o.namespace, o.name);
    await waitUntilGone(deps, o.namespace, o.name);
  }
  return applyAfterDelete(deps, request, { snapshot: snap, mode: snap.rolloutMode, pin: snap.pin });
}

/**
 * A pass's restore of a pinned revision whose DaemonSet was changed outside this tool
 * (plan.ts, `pinnedChangedOutside`): applies that revision's snapshot again as a drift
 * correction, keeping the pin, so its rollout goes on where it stands (records.ts,
 * `checkpointForNextRevision`: a rollback's repairs included). The caller holds the lease.
 */
export async function restorePinned(deps: Deps, o: StoredRevisionTarget, revision: number): Promise<ApplyOutcome> {
  const snap = await storedRevision(deps, o, revision, 'pinned');
  deps.logger.log('warn', `restoring pinned revision ${revision}, changed outside daemonset-gitops`, { daemonSet: `${o.namespace}/${o.name}`, action: 'restore-pinned', revision });
  return applyRevision(deps, {
    ...storedRevisionRequest(o, snap),
    cause: 'drift-correction',
    gitDigest: o.state?.pin?.gitDigest ?? o.state?.gitDigest ?? null,
  });
}

/** A DaemonSet a pass applies a stored revision to (completeRecreate, restorePinned): what the pass saw of it. */
interface StoredRevisionTarget {
  namespace: string;
  name: string;
  live?: LiveDaemonSet;
  state?: DaemonSetState;
}

/** The snapshot of a revision a pass must apply again (`why` it must: pinned, written ahead…); missing from S3, the error says how to go on. */
async function storedRevision(deps: Deps, o: StoredRevisionTarget, revision: number, why: string): Promise<RevisionSnapshot> {
  const key = `${o.namespace}/${o.name}`;
  const snap = (await deps.store.getRevision(o.namespace, o.name, revision))?.value;
  if (!snap) throw new StoreError(`revision ${revision} of ${key}, ${why}, is missing from S3: dsgitops unpin ${key} lets the next pass apply Git's version`);
  return snap;
}

/** What an apply of a stored revision takes from its snapshot and from what the pass saw; the caller adds the cause and the pin's digests. */
function storedRevisionRequest(o: StoredRevisionTarget, snap: RevisionSnapshot): Pick<ApplyRequest, 'namespace' | 'name' | 'manifest' | 'digest' | 'source' | 'commit' | 'live' | 'state' | 'config'> {
  return {
    namespace: o.namespace,
    name: o.name,
    manifest: snap.manifest as unknown as DaemonSetManifest,
    digest: snap.digest,
    source: snap.source,
    commit: snap.commit,
    live: o.live,
    state: o.state,
    config: snap.config,
  };
}

/** The revision a rollback restores: the one asked for, or the last healthy one before the current. */
async function rollbackTarget(deps: Deps, req: RollbackRequest, state: DaemonSetState | undefined): Promise<RevisionSnapshot> {
  const key = `${req.namespace}/${req.name}`;
  const revisions = await loadRevisions(deps, req.namespace, req.name);
  if (revisions.length === 0) {
    throw new NotFoundError(`no revisions of ${key} are stored for cluster ${deps.config.cluster.name} (check the namespace, the name and CLUSTER_NAME)`);
  }
  if (req.toRevision !== undefined) {
    const asked = revisions.find((r) => r.revision === req.toRevision);
    if (!asked) throw new NotFoundError(`revision ${req.toRevision} of ${key} does not exist; stored revisions: ${describeRevisions(revisions.map((r) => r.revision))}`);
    return asked;
  }
  const healthy = previousHealthy(revisions, state?.currentRevision);
  if (!healthy) {
    throw new RollbackRefusedError(`${key} has no earlier healthy revision to roll back to (current: ${state?.currentRevision ?? 'none'}); pass toRevision to choose one of ${describeRevisions(revisions.map((r) => r.revision))}`);
  }
  return healthy;
}

/** The apply of `target` as a rollback: pinned (against Git's digest now), with its reason and who asked. */
async function pinnedRequest(deps: Deps, req: RollbackRequest, target: RevisionSnapshot, live: LiveDaemonSet | undefined, state: DaemonSetState | undefined): Promise<{ request: ApplyRequest; pin: Pin }> {
  const gitDigest = await gitDigestNow(deps, `${req.namespace}/${req.name}`);
  const reason = req.reason ?? `rollback to revision ${target.revision}`;
  const pin: Pin = {
    revision: target.revision,
    reason,
    by: req.by,
    at: deps.clock.now().toISOString(),
    gitDigest: gitDigest === undefined ? state?.gitDigest ?? null : gitDigest,
  };
  const request: ApplyRequest = {
    namespace: req.namespace,
    name: req.name,
    manifest: target.manifest as unknown as DaemonSetManifest,
    digest: target.digest,
    source: target.source,
    commit: target.commit,
    // The stored, rendered manifest is applied as it is: what rendered it is carried over, nothing renders again.
    rendered: target.rendered,
    cause: 'rollback',
    rollbackTo: target.revision,
    reason,
    live,
    state,
    gitDigest: pin.gitDigest,
    pin,
    // A managed rollback starts where the rollout it replaces left the nodes (records.ts, managedRollbackSeed).
    managedSeed: managedRollbackSeed(state),
    config: target.config,
  };
  return { request, pin };
}

/**
 * The versioned config copies `target` runs with that are no longer in the cluster (pruned, or
 * deleted by hand). A ConfigMap copy is recreated from the data its snapshot holds; a Secret's
 * values were never stored, so a missing Secret copy refuses the rollback, by name, before
 * anything is changed.
 */
async function missingCopies(deps: Deps, target: RevisionSnapshot): Promise<ConfigEntry[]> {
  const entries = target.config ?? [];
  const found = await mapLimit(entries, 8, (e) => deps.cluster.getObject(e.kind === 'Secret' ? SECRETS : CONFIGMAPS, e.namespace, e.copyName));
  const missing = entries.filter((_, i) => !found[i]);
  const secrets = missing.filter((e) => e.kind === 'Secret');
  if (secrets.length > 0) {
    const names = secrets.map((e) => `Secret ${e.namespace}/${e.copyName} (the copy of ${e.name} that revision ${target.revision} runs with)`).join(', ');
    throw new RollbackRefusedError(`revision ${target.revision} of ${target.namespace}/${target.name} needs ${names}, which is no longer in the cluster, and a Secret's values are never stored in S3, so it cannot be restored: nothing was changed. Recreate it under that name with the values of that revision (kubectl -n ${secrets[0].namespace} create secret generic ${secrets[0].copyName} …) and roll back again, or roll back to a revision whose Secrets are still there`);
  }
  return missing;
}

/** Recreates the missing ConfigMap copies from their snapshot's data (immutable, labelled as the pass labels them). */
async function restoreCopies(deps: Deps, key: string, missing: ConfigEntry[]): Promise<void> {
  for (const e of missing) {
    const manifest = copyFromEntry(e) as JsonObject & { metadata: JsonObject };
    const digest = digestOf(manifest);
    const body = {
      ...manifest,
      metadata: { ...manifest.metadata, labels: { ...(manifest.metadata.labels as JsonObject), [MANAGED_BY_LABEL]: MANAGED_BY_VALUE }, annotations: { ...(manifest.metadata.annotations as JsonObject), [DIGEST_ANNOTATION]: digest } },
    };
    await deps.cluster.applyObject(CONFIGMAPS, body as unknown as LiveObject);
    deps.logger.log('info', `ConfigMap ${e.namespace}/${e.copyName}: recreated from its snapshot for the rollback (the copy of ${e.name})`, { daemonSet: key, action: 'restore-copy', object: `ConfigMap ${e.namespace}/${e.copyName}` });
  }
}

/**
 * The rollback itself, with the lease already held. Shared by the manual invoke and by the
 * automatic rollback of a stalled rollout.
 */
async function rollbackHeld(deps: Deps, lease: Lease, req: RollbackRequest, state: DaemonSetState | undefined): Promise<RollbackReport> {
  const { namespace, name } = req;
  const key = `${namespace}/${name}`;
  const target = await rollbackTarget(deps, req, state);
  const manifest = target.manifest as unknown as DaemonSetManifest;
  const live = await deps.cluster.getDaemonSet(namespace, name);
  const recreated = live !== undefined && canonicalJson(live.spec.selector) !== canonicalJson(manifest.spec.selector);
  if (recreated && !req.recreate) {
    throw new RollbackRefusedError(
      `revision ${target.revision} of ${key} has spec.selector ${canonicalJson(manifest.spec.selector)} but the live DaemonSet has ${canonicalJson(live.spec.selector)}, and spec.selector is immutable: nothing was changed. Pass "recreate": true (CLI: --recreate) to delete the DaemonSet and create it from revision ${target.revision}; its pods are replaced all at once`,
    );
  }
  // The configuration goes back with the template: a Secret copy that is gone refuses the rollback here, before anything is written.
  const missing = await missingCopies(deps, target);
  const { request, pin } = await pinnedRequest(deps, req, target, live, state);
  const reason = pin.reason;
  // Write-ahead before the delete: from the moment the DaemonSet is gone, the revision that
  // replaces it (with its pin, and the deleted object as what it replaced) is in S3.
  const pending = await writeAhead(deps, request);
  // Proof that this run still holds the lease (a rollback may have been preempted by another) before it changes anything.
  await lease.confirm();
  await restoreCopies(deps, key, missing);
  const out = recreated ? await recreateFrom(deps, request, pending, live) : await applyPending(deps, request, pending);
  const rolloutState = out.state.rollout;
  await emitEvent(deps, { namespace, name, uid: out.applied.metadata.uid }, 'Normal', 'Pinned',
    `pinned to revision ${target.revision} (applied as revision ${out.revision}): ${reason}. Scheduled passes leave it alone until its manifest changes in Git or it is unpinned`);
  let rollout: RolloutReport | undefined;
  if (req.wait !== false) {
    const tracked = await trackRollouts(deps, [{ namespace, name, revision: out.revision, previous: rolloutState }], { wait: true, lease, preemptible: 'watching a rollback' });
    const r = tracked.rollouts.get(key);
    if (r) rollout = toRolloutReport(r);
  }
  const verification = deps.config.verify?.commits
    ? `not checked against VERIFY_COMMITS: a rollback restores revision ${target.revision} as stored in S3${target.commit ? ` (commit ${target.commit.sha.slice(0, 7)})` : ''}, whose commit was checked when it was applied`
    : undefined;
  if (verification) deps.logger.log('info', verification, { daemonSet: key, action: 'rollback-verification' });
  return {
    kind: 'RollbackReport',
    namespace,
    name,
    fromRevision: state?.currentRevision,
    toRevision: target.revision,
    revision: out.revision,
    recreated,
    pin,
    rollout,
    verification,
    message: `${key} rolled back from revision ${state?.currentRevision ?? '(none)'} to revision ${target.revision} (recorded as revision ${out.revision}) and pinned`,
  };
}

export async function rollback(deps: Deps, req: RollbackRequest): Promise<RollbackReport> {
  const lease = clusterLease(deps);
  // An incident rollback does not wait for a pass that only watches rollouts: it takes the lease over.
  await lease.acquire('rollback', { preempt: true }); // LeaseHeldError: nothing was changed
  try {
    const state = (await deps.store.getState(req.namespace, req.name))?.value;
    return await rollbackHeld(deps, lease, req, state);
  } finally {
    await lease.release();
  }
}

/**
 * AUTO_ROLLBACK: a stalled rollout goes back to the last healthy revision, pinned, with
 * the stall as the reason. Runs inside the reconcile pass, under its lease.
 */
export async function autoRollback(deps: Deps, lease: Lease, key: string, state: DaemonSetState): Promise<string | undefined> {
  const [namespace, name] = key.split('/');
  // A stalled revision that is itself a rollback is the operator's to judge: rolling back again
  // would make a new revision on every pass and take the pin from the revision they chose.
  if (state.pin) {
    deps.logger.log('warn', `revision ${state.currentRevision} is a pinned rollback to revision ${state.pin.revision} and stalled: it is not rolled back again; push a fix to Git, roll back to another revision, or unpin`, { daemonSet: key });
    return undefined;
  }
  const target = state.lastHealthyRevision;
  if (!target || target === state.currentRevision) {
    deps.logger.log('warn', `revision ${state.currentRevision} stalled and there is no earlier healthy revision to roll back to`, { daemonSet: key });
    return undefined;
  }
  try {
    const out = await rollbackHeld(deps, lease, {
      namespace,
      name,
      toRevision: target,
      reason: `automatic rollback: revision ${state.currentRevision} stalled (${state.rollout?.message ?? 'no progress'})`,
      by: 'daemonset-gitops',
    }, state);
    return out.message;
  } catch (err) {
    if (err instanceof LeaseHeldError) throw err;
    deps.logger.log('error', `automatic rollback failed: ${errorMessage(err)}`, { daemonSet: key });
    return undefined;
  }
}
