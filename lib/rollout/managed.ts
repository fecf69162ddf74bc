/**
 * The driver of managed rollouts. The DaemonSet runs with OnDelete; this loop observes
 * nodes and pods, asks the pure `nextWave` which old pods may go now, deletes exactly
 * those, and checkpoints the decision in S3 before waiting for the next change in its
 * watch caches. A run that is killed loses nothing: the next one reads the checkpoint and
 * continues there, and because every decision starts from what the cluster shows at that
 * moment (in-flight deletions included), the budget holds across the handover too.
 */
import type { Cluster } from '../cluster/client';
import type { LiveDaemonSet, LiveNode, LivePod } from '../cluster/types';
import { Cache, changedSince, versionsOf, waitUntil } from '../cluster/watch-cache';
import type { Deps } from '../deps';
import { errorMessage, PreconditionFailedError } from '../errors';
import { CANARY_ANNOTATION, DECLARED_STRATEGY_ANNOTATION } from '../labels';
import { canonicalJson, selectorQuery } from '../k8s-values';
import type { Lease } from '../store/lease';
import type { DaemonSetState, ManagedRecord, RolloutState } from '../store/records';
import { TimelineStore } from '../store/timeline-store';
import type { DaemonSetManifest } from '../source/manifest';
import { parseRolloutAnnotations } from './annotations';
import { nodeShouldRunDaemonPod, PlacementSpec } from './eligibility';
import { runGates, GateRun } from './gate-runner';
import { describeMeasurement, GateSpec } from './gates';
import { prePull } from './pre-pull';
import { doesNotFit, NodeRoom, parseQuantity, podRequests, Resources } from './preflight';
import { emitEvent } from '../cluster/events';
import { controllerCaughtUp } from './status';
import { appendTimelinePoint, timelinePoint } from './timeline';
import { chooseCanaryNodes, describeCanary, holdBeforeApply, LOOK_AGAIN_SECONDS, nextWave, WaveCheckpoint, WaveDecision, WaveNode, WavePod, WavePolicy } from './wave';

export interface ManagedTarget {
  namespace: string;
  name: string;
  revision: number;
}

export interface DriveOptions {
  wait: boolean;
  lease?: Lease;
  marginMs?: number;
  /** The run only watches between waves: a rollback may take the lease over (the reason, for the lease record). */
  preemptible?: string;
}

const MAX_WAIT_MS = 10_000;
/**
 * A decision that changes nothing is still recorded when the recorded one is this old, while
 * the rollout's progress clock runs: the next run tells time it drove from time nobody drove
 * by the recorded decision time (wave.ts: DRIVEN_GAP_SECONDS = 60 > 30 s + MAX_WAIT_MS).
 */
const HEARTBEAT_MS = LOOK_AGAIN_SECONDS * 1000;
/** How long a burst of events may go on before it is decided on, as one. */
const SETTLE_MS = 150;

function podReadyCondition(pod: LivePod) {
  return pod.status?.conditions?.find((c) => c.type === 'Ready');
}

/**
 * `templateGeneration`: the DaemonSet's current template generation
 * (`deprecated.daemonset.template.generation`); a pod labelled with it was created for this
 * template, after the apply that brought it (the controller bumps it with every template change).
 */
export function toWavePod(pod: LivePod, isUpdated: boolean, templateGeneration?: string): WavePod {
  const ready = podReadyCondition(pod);
  const generation = pod.metadata.labels?.['pod-template-generation'];
  return {
    ...(isUpdated && templateGeneration !== undefined && generation !== undefined ? { sinceApply: generation === templateGeneration } : {}),
    name: pod.metadata.name,
    uid: pod.metadata.uid ?? '',
    node: pod.spec.nodeName ?? '',
    updated: isUpdated,
    ready: ready?.status === 'True' && !pod.metadata.deletionTimestamp,
    readySince: ready?.status === 'True' ? ready.lastTransitionTime : undefined,
    terminating: Boolean(pod.metadata.deletionTimestamp),
    restarts: (pod.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0),
  };
}

/** A node as the wave decision sees it: Ready or not, and whether this DaemonSet's template should run there. */
export function toWaveNode(node: LiveNode, template: PlacementSpec): WaveNode {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  const labels = node.metadata.labels ?? {};
  const desired = !node.metadata.deletionTimestamp && nodeShouldRunDaemonPod(template, { name: node.metadata.name, labels, taints: node.spec?.taints ?? [] });
  return { name: node.metadata.name, ready: ready?.status === 'True', desired, labels };
}

/**
 * For a managed DaemonSet whose update has a canary: why the canary cannot run, when it
 * selects none of the Ready nodes the new template should run on (a typo in a selector
 * would otherwise leave the rollout waiting, or worse, send it everywhere).
 */
export function canaryProblem(manifest: { metadata: { annotations?: Record<string, string> }; spec: { template: { spec: unknown } } }, nodes: readonly LiveNode[]): string | undefined {
  const parsed = parseRolloutAnnotations(manifest.metadata.annotations);
  if (!parsed.ok || parsed.value.mode !== 'managed' || !parsed.value.canary) return undefined;
  const template = manifest.spec.template.spec as PlacementSpec;
  const ready = nodes.map((n) => toWaveNode(n, template)).filter((n) => n.ready && n.desired);
  if (chooseCanaryNodes(parsed.value.canary, ready).length > 0) return undefined;
  return `${CANARY_ANNOTATION}: "${describeCanary(parsed.value.canary)}" selects none of the ${ready.length} Ready ${ready.length === 1 ? 'node' : 'nodes'} this DaemonSet should run on, so the update was not applied: fix the node count or the label selector`;
}

/**
 * Why a new pod template (`manifest`) for the managed DaemonSet `live` is not to be applied
 * now (wave.ts, `holdBeforeApply`): more desired nodes than maxUnavailable have no running
 * pod, and the controller would put the new template on all of them at once. One LIST of the
 * DaemonSet's pods, made only when such a change is planned; `nodes` as listed by the caller.
 */
export async function holdForUnfilledNodes(cluster: Cluster, live: LiveDaemonSet, manifest: Pick<DaemonSetManifest, 'spec'>, nodes: readonly LiveNode[]): Promise<string | undefined> {
  const pods = await cluster.watchCache('pods', { namespace: live.metadata.namespace ?? 'default', labelSelector: selectorQuery(live.spec.selector) });
  try {
    const owned = pods.items().filter((p) => p.metadata.ownerReferences?.some((o) => o.controller && o.uid === live.metadata.uid));
    const template = manifest.spec.template.spec as PlacementSpec;
    const obs = { nodes: nodes.map((n) => toWaveNode(n, template)), pods: owned.map((p) => toWavePod(p, false)) };
    return holdBeforeApply(obs, manifest.spec.updateStrategy?.rollingUpdate?.maxUnavailable ?? 1);
  } finally {
    pods.stop();
  }
}

/**
 * Whether a pod runs the DaemonSet's current template, as the DaemonSet controller decides
 * it: the template generation matches, or the pod's revision hash is the newest
 * ControllerRevision's (which also covers a rollback to a template seen before).
 */
export function isPodUpdated(pod: LivePod, templateGeneration: string | undefined, currentHash: string | undefined): boolean {
  const labels = pod.metadata.labels ?? {};
  return (templateGeneration !== undefined && labels['pod-template-generation'] === templateGeneration) ||
    (currentHash !== undefined && labels['controller-revision-hash'] === currentHash);
}

/**
 * Why the live DaemonSet is not the one this tool applied (or accepted) for the current
 * revision: its spec was changed since by someone else (`kubectl set image`, an edit), which
 * the API server counts in `metadata.generation`. Undefined: it is the tool's own, or the
 * state predates the recording of generations.
 *
 * Assumptions / invariants:
 * - `state.generation` is the generation the apply of `state.currentRevision` returned (or
 *   the live one when a pass recorded a revision a killed run had applied, or one a dry run
 *   found equal to Git: a `kubectl rollout restart`); only a spec change moves the generation,
 *   and this tool's own metadata-only revisions and pod deletions never do. A live generation
 *   below it is a cache that has not seen the apply yet, not a change.
 * - While it differs, the pods the controller calls updated run someone else's template: no
 *   decision is taken on them, so the revision is never judged complete (healthy) or stalled
 *   by a template it did not apply. The next pass's plan restores it (drift correction, which
 *   continues this rollout; plan.ts `pinnedChangedOutside` for a pinned revision) or accepts
 *   the generation; with SELF_HEAL=false the rollout stays as it was recorded.
 */
export function changedOutsideSinceApply(state: Pick<DaemonSetState, 'currentRevision' | 'generation'>, ds: Pick<LiveDaemonSet, 'metadata'>): string | undefined {
  const applied = state.generation;
  const live = ds.metadata.generation;
  if (applied === undefined || live === undefined || live <= applied) return undefined;
  return `the DaemonSet's spec was changed outside daemonset-gitops since revision ${state.currentRevision} was applied (generation ${live}, applied as ${applied}): its pods are not judged for revision ${state.currentRevision}`;
}

/**
 * Whether the rollout is paused: by hand (`dsgitops pause`), or by the pause annotation of the
 * manifest applied, except for a rollback's rollout (`restores`). A rollback applies the
 * revision it restores as it was stored, pause included, although that pause was declared for
 * another rollout (and Git may have lifted it since, which the pin keeps out): it must not hold
 * the repair of the nodes the replaced revision broke.
 */
export function isPaused(annotationPaused: boolean, pausedByHand: boolean, checkpoint: Pick<WaveCheckpoint, 'restores'> | undefined): boolean {
  return pausedByHand || (annotationPaused && checkpoint?.restores !== true);
}

function declaredMaxUnavailable(ds: LiveDaemonSet): number | string {
  try {
    const d = JSON.parse(ds.metadata.annotations?.[DECLARED_STRATEGY_ANNOTATION] ?? '{}') as { maxUnavailable?: number | string };
    return d.maxUnavailable ?? 1;
  } catch {
    return 1;
  }
}

function toRollout(previous: RolloutState | undefined, target: ManagedTarget, decision: WaveDecision, pods: WavePod[], generation: number | undefined, paused: boolean, now: string): RolloutState {
  const c = decision.counts;
  const phase = decision.phase === 'complete' ? 'complete' : decision.phase === 'stalled' ? 'stalled' : 'progressing';
  const managed: ManagedRecord = {
    checkpoint: decision.checkpoint,
    wavePhase: decision.phase,
    reason: decision.reason,
    notReadyNodes: decision.notReadyNodes,
    brokenNodes: decision.brokenNodes,
    readyNodesDone: decision.readyNodesDone,
    paused,
  };
  return {
    revision: target.revision,
    mode: 'managed',
    phase,
    generation,
    startedAt: decision.checkpoint.startedAt,
    lastProgressAt: decision.checkpoint.lastProgressAt,
    finishedAt: phase === 'complete' ? previous?.finishedAt ?? now : undefined,
    counts: {
      desired: c.desired,
      current: pods.filter((p) => !p.terminating).length,
      ready: pods.filter((p) => p.ready).length,
      upToDate: c.updated,
      available: c.available,
    },
    message: `${decision.phase === 'paused' ? 'paused: ' : decision.phase === 'canary-hold' ? 'canary: ' : ''}${decision.reason}${decision.checkpoint.waves ? ` (wave ${decision.checkpoint.waves})` : ''}`,
    managed,
  };
}

/** The caches one managed rollout decides from: the DaemonSet, its pods (by its selector), the nodes. */
interface RolloutCaches {
  daemonSet: Cache<LiveDaemonSet>;
  pods: Cache<LivePod>;
  nodes: Cache<LiveNode>;
  /** The pods' selector, as the pod cache was opened with. */
  selector: string;
  all: Cache<unknown>[];
}

async function openCaches(cluster: Cluster, namespace: string, daemonSet: Cache<LiveDaemonSet>, ds: LiveDaemonSet): Promise<RolloutCaches> {
  const selector = selectorQuery(ds.spec.selector);
  const [pods, nodes] = await Promise.all([cluster.watchCache('pods', { namespace, labelSelector: selector }), cluster.watchCache('nodes', {})]);
  return { daemonSet, pods, nodes, selector, all: [daemonSet, pods, nodes] };
}

function stopCaches(caches: RolloutCaches | undefined): void {
  for (const c of caches?.all ?? []) c.stop();
}

/** A cache that stopped following the cluster: its error, as a LIST that failed would have thrown it. */
function failureOf(caches: readonly Cache<unknown>[]): Error | undefined {
  return caches.find((c) => c.failure)?.failure;
}

/** Every pod this run deleted shows as terminating or gone in the cache (the watch has caught up with the deletions). */
function deletionsSeen(pods: Cache<LivePod>, deleted: ReadonlySet<string>): boolean {
  if (deleted.size === 0) return true;
  return !pods.items().some((p) => deleted.has(p.metadata.uid ?? '') && !p.metadata.deletionTimestamp);
}

/**
 * Drives one managed rollout until it completes, stalls, is paused, has only skipped
 * NotReady nodes left, or the time budget runs out. Returns the last rollout state (also
 * stored in S3).
 *
 * Assumptions / invariants:
 * - Every decision is written to S3 before it is acted on, with a write conditional on
 *   what was read (If-Match): a pause or a newer revision that lands between the read and
 *   the write makes the write fail, and the decision is taken again, so a pause
 *   acknowledged during a wave's reads stops that wave.
 * - The lease is confirmed (a conditional write) immediately before pods are deleted: a
 *   run that cannot prove it still holds it deletes nothing.
 * - Every wait is bounded by the run's deadline.
 * - The cluster is read through one LIST+WATCH cache per kind (the DaemonSet, its pods,
 *   the nodes), as a controller reads it: a look costs no request. After deleting, the next
 *   decision waits until the pod cache shows those deletions (as a controller's
 *   expectations do), or until its wait times out; the wave decision treats a deleted pod
 *   as gone whatever a lagging cache says, so deciding on a late cache is safe too.
 * - ControllerRevisions are listed once per template generation the controller has seen:
 *   the newest revision's hash changes only with the template.
 */
export async function driveManaged(deps: Deps, target: ManagedTarget, previous: RolloutState | undefined, options: DriveOptions): Promise<RolloutState | undefined> {
  const { namespace, name } = target;
  const daemonSet = await deps.cluster.watchCache('daemonsets', { namespace, fieldSelector: `metadata.name=${name}` });
  let caches: RolloutCaches | undefined;
  try {
    const ds = daemonSet.items()[0];
    if (!ds) return previous?.revision === target.revision ? previous : undefined;
    caches = await openCaches(deps.cluster, namespace, daemonSet, ds);
    const result = await drive(deps, target, previous, options, caches, (c) => (caches = c));
    return await handOff(deps, target, result);
  } finally {
    daemonSet.stop();
    stopCaches(caches);
  }
}

async function drive(deps: Deps, target: ManagedTarget, previous: RolloutState | undefined, options: DriveOptions, opened: RolloutCaches, reopened: (c: RolloutCaches) => void): Promise<RolloutState | undefined> {
  const { cluster, store, clock, config } = deps;
  const { namespace, name } = target;
  let rollout = previous?.revision === target.revision ? previous : undefined;
  let lastLine = '';
  const margin = options.marginMs ?? 15_000;
  const timeLeft = () => deps.deadline - clock.now().getTime() - margin;
  let caches = opened;
  let revisions: { generationKey: string; currentHash: string | undefined } | undefined;
  // Pre-pull: the nodes whose pods this run pulled the new images on, and a pull that failed.
  const pulled = new Set<string>();
  let pullFailure: { reason: string; nodes: string[] } | undefined;

  for (;;) {
    // A rollback that took the lease over ends this driver at its next look.
    if (options.lease) await options.lease.check();
    const failure = failureOf(caches.all);
    if (failure) throw failure;
    const stored = await store.getState(namespace, name);
    const state = stored?.value;
    if (!state || state.currentRevision !== target.revision) return rollout; // a newer revision took over
    const record = state.rollout?.revision === target.revision ? state.rollout.managed : undefined;
    const ds = caches.daemonSet.items()[0];
    if (!ds) return rollout;
    // Someone else's template is rolling out: nothing is decided (deleted, judged complete or stalled) on it.
    const drifted = changedOutsideSinceApply(state, ds);
    if (drifted) {
      const line = `${drifted} until a pass restores it (drift correction) or accepts the change`;
      deps.logger.log('warn', `revision ${target.revision}: ${line}`, { daemonSet: `${namespace}/${name}`, action: 'rollout-drifted', revision: target.revision, generation: ds.metadata.generation });
      deps.onProgress?.(`${namespace}/${name}: revision ${target.revision}: ${line}`);
      return rollout;
    }
    // The cache has not seen the apply this state records yet, or the controller has not seen the new template: its revision hash would be stale.
    const caughtUp = (d: LiveDaemonSet) => controllerCaughtUp(d) && (d.metadata.generation ?? 0) >= (state.generation ?? 0);
    if (!caughtUp(ds)) {
      if (!options.wait || timeLeft() <= 0) return rollout;
      await waitUntil([caches.daemonSet], () => !caches.daemonSet.items()[0] || caughtUp(caches.daemonSet.items()[0]), Math.max(250, Math.min(MAX_WAIT_MS, timeLeft())));
      if (options.lease) await options.lease.renewIfDue();
      continue;
    }
    const selector = selectorQuery(ds.spec.selector);
    if (selector !== caches.selector) {
      // The DaemonSet was recreated with another selector: follow the pods it selects now.
      stopCaches({ ...caches, all: [caches.pods, caches.nodes] });
      caches = await openCaches(cluster, namespace, caches.daemonSet, ds);
      reopened(caches);
    }
    const generationKey = `${ds.metadata.uid}/${ds.metadata.generation}`;
    if (revisions?.generationKey !== generationKey) {
      const owned = (await cluster.listControllerRevisions(namespace, selector)).filter((r) => r.ownerUid === ds.metadata.uid).sort((x, y) => y.revision - x.revision);
      revisions = { generationKey, currentHash: owned[0]?.hash };
    }
    const { pods, nodes, policy, gates, prePullSeconds } = waveInputs(ds, caches, revisions.currentHash, Boolean(state.paused), config.policy.progressDeadlineSeconds, record?.checkpoint);
    const now = clock.now();
    // Measured before deciding, on the gates' own intervals (gate-runner.ts); the decision takes their verdict.
    const gateRun = gates ? await runGates(deps, target, gates, record, policy.canary !== undefined, pods, nodes, now) : undefined;
    if (gateRun) policy.gates = gateRun.outcome;
    // Before the first deletion of this revision's rollout: an update that cannot fit is refused, and stalls with the reason.
    const refused = record?.checkpoint === undefined && pods.some((p) => !p.updated && !p.terminating) ? await preflightRefusal(deps, ds, caches.nodes.items(), nodes) : undefined;
    if (refused) policy.gates = { ...policy.gates, failed: { reason: `pre-flight: ${refused}`, nodes: [] } };
    if (pullFailure) policy.gates = { ...policy.gates, failed: pullFailure };
    const paused = policy.paused || Boolean(gateRun?.outcome.inconclusive);
    const decision = nextWave({ nodes, pods }, policy, record?.checkpoint, now);
    const seen = versionsOf(caches.all);
    const toPull = prePullSeconds === undefined ? [] : [...new Set(decision.podsToDelete.map((p) => p.node))].filter((n) => !pulled.has(n)).sort();
    if (toPull.length > 0 && !pullFailure) {
      // Before this wave deletes anything: the new images onto its nodes, then decide again on what is there by then.
      deps.onProgress?.(`${namespace}/${name}: revision ${target.revision}: pre-pulling the new images on ${toPull.join(', ')}`);
      const verdict = await prePull(deps, target, ds.spec.template as Parameters<typeof prePull>[2], toPull, prePullSeconds!);
      if (verdict.kind === 'pulled') for (const n of toPull) pulled.add(n);
      else {
        pullFailure = { reason: verdict.reason, nodes: verdict.nodes };
        await emitEvent(deps, { namespace, name, uid: ds.metadata.uid }, 'Warning', 'PrePullFailed', `revision ${target.revision}: ${verdict.reason}`);
      }
      continue;
    }

    // Record the decision before acting on it: a run killed between the two leaves the
    // deletions in inFlight, so the next run counts them against the budget.
    const next = toRollout(rollout, target, decision, pods, ds.metadata.generation, paused, now.toISOString());
    if (gateRun) next.managed = { ...next.managed, gates: { measurements: gateRun.measurements, ...(gateRun.dropped ? { dropped: gateRun.dropped } : {}), ...(gateRun.verdicts.length ? { verdicts: gateRun.verdicts } : {}) } };
    // A decision that deletes nothing and changes nothing (a stalled rollout looked at again) is not written.
    const unchanged = decision.podsToDelete.length === 0 && !gateRun?.added.length && sameDecision(state.rollout, next) && !heartbeatDue(record?.checkpoint, decision, now);
    const written = unchanged || await recordDecision(deps, target, stored!.etag, state, next);
    if (!written) continue; // paused, resumed or replaced meanwhile: decide again on what is there now
    rollout = next;
    if (gateRun?.added.length) await tellMeasurements(deps, target, ds, gateRun);
    const deleted = await deleteWave(deps, target, decision, options);
    lastLine = tellDecision(deps, target, decision, record?.checkpoint, lastLine);
    if (!unchanged) await keepTimeline(deps, target, decision, now);

    // A last wave held for its gates is not "only NotReady nodes left": its measurements are due on their interval.
    if (['complete', 'stalled', 'paused'].includes(decision.phase) || (decision.readyNodesDone && decision.phase !== 'complete' && decision.phase !== 'wave-hold')) return rollout;
    if (!options.wait) return rollout;
    const left = timeLeft();
    if (left <= 0) return rollout;
    const wakeIn = decision.wakeAt ? Date.parse(decision.wakeAt) - clock.now().getTime() : MAX_WAIT_MS;
    const measureIn = gateRun?.nextAt !== undefined ? gateRun.nextAt - clock.now().getTime() : MAX_WAIT_MS;
    const timeout = Math.max(250, Math.min(MAX_WAIT_MS, wakeIn, measureIn, left));
    // The next decision comes after a change the deletions (if any) are part of, and after a burst of events has settled.
    const current = caches;
    await waitUntil(current.all, () => changedSince(current.all, seen) && deletionsSeen(current.pods, deleted), timeout, SETTLE_MS);
    if (options.lease) await options.lease.renewIfDue();
  }
}

/** What a decision is made from, as the caches show it now: the DaemonSet's pods, the nodes, the policy. */
function waveInputs(ds: LiveDaemonSet, caches: RolloutCaches, currentHash: string | undefined, pausedByHand: boolean, defaultDeadlineSeconds: number, checkpoint: WaveCheckpoint | undefined): { pods: WavePod[]; nodes: WaveNode[]; policy: WavePolicy; gates?: GateSpec; prePullSeconds?: number } {
  const byName = (x: { metadata: { name: string } }, y: { metadata: { name: string } }) => (x.metadata.name < y.metadata.name ? -1 : x.metadata.name > y.metadata.name ? 1 : 0);
  const annotations = parseRolloutAnnotations(ds.metadata.annotations);
  const a = annotations.ok ? annotations.value : { paused: false, canary: undefined, progressDeadlineSeconds: undefined };
  const templateGeneration = ds.metadata.annotations?.['deprecated.daemonset.template.generation'];
  const pods = caches.pods.items()
    .filter((p) => p.metadata.ownerReferences?.some((o) => o.controller && o.uid === ds.metadata.uid))
    .sort(byName)
    .map((p) => toWavePod(p, isPodUpdated(p, templateGeneration, currentHash), templateGeneration));
  const template = ds.spec.template.spec as PlacementSpec;
  const nodes = caches.nodes.items().sort(byName).map((n) => toWaveNode(n, template));
  const policy: WavePolicy = {
    maxUnavailable: declaredMaxUnavailable(ds),
    minReadySeconds: ds.spec.minReadySeconds ?? 0,
    canary: a.canary,
    paused: isPaused(a.paused, pausedByHand, checkpoint),
    progressDeadlineSeconds: a.progressDeadlineSeconds ?? defaultDeadlineSeconds,
    ...(annotations.ok && annotations.value.gates?.metrics.length ? { gateWaves: true } : {}),
  };
  return {
    pods, nodes, policy,
    ...(annotations.ok && annotations.value.gates ? { gates: annotations.value.gates } : {}),
    ...(annotations.ok && annotations.value.prePullSeconds !== undefined ? { prePullSeconds: annotations.value.prePullSeconds } : {}),
  };
}

/**
 * Whether the new template fits on every desired node beside the pods that stay there (one
 * LIST of the pods of every namespace, once per rollout, before its first deletion).
 */
async function preflightRefusal(deps: Deps, ds: LiveDaemonSet, liveNodes: readonly LiveNode[], nodes: readonly WaveNode[]): Promise<string | undefined> {
  const template = ds.spec.template as Parameters<typeof doesNotFit>[0];
  if (template.spec?.priorityClassName) return undefined;
  const need = podRequests(template);
  if (need.cpuMilli === 0 && need.memoryBytes === 0) return undefined;
  const desired = new Set(nodes.filter((n) => n.desired).map((n) => n.name));
  const all = await deps.cluster.listObjects({ group: '', version: 'v1', kind: 'Pod', resource: 'pods', namespaced: true }, {});
  const used = new Map<string, Resources>();
  for (const p of all as unknown as (LivePod & { status?: { phase?: string } })[]) {
    const node = p.spec.nodeName;
    if (!node || !desired.has(node) || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
    if (p.metadata.ownerReferences?.some((o) => o.uid === ds.metadata.uid)) continue;
    const r = podRequests(p as Parameters<typeof podRequests>[0]);
    const u = used.get(node) ?? { cpuMilli: 0, memoryBytes: 0 };
    used.set(node, { cpuMilli: u.cpuMilli + r.cpuMilli, memoryBytes: u.memoryBytes + r.memoryBytes });
  }
  const rooms: NodeRoom[] = liveNodes.filter((n) => desired.has(n.metadata.name) && n.status?.allocatable).map((n) => ({
    node: n.metadata.name,
    allocatable: { cpuMilli: (parseQuantity(n.status!.allocatable!.cpu) ?? Infinity) * 1000, memoryBytes: parseQuantity(n.status!.allocatable!.memory) ?? Infinity },
    used: used.get(n.metadata.name) ?? { cpuMilli: 0, memoryBytes: 0 },
  }));
  return doesNotFit(template, rooms.sort((a, b) => (a.node < b.node ? -1 : 1)));
}

/** Each new measurement as an Event on the DaemonSet and a log line: value, condition, verdict. */
async function tellMeasurements(deps: Deps, target: ManagedTarget, ds: LiveDaemonSet, run: GateRun): Promise<void> {
  const key = `${target.namespace}/${target.name}`;
  for (const m of run.added) {
    const line = `revision ${target.revision}: ${describeMeasurement(m)}`;
    deps.logger.log(m.outcome === 'success' ? 'info' : 'warn', line, { daemonSet: key, action: 'gate-measurement', revision: target.revision, gate: m.gate, outcome: m.outcome });
    deps.onProgress?.(`${key}: ${line}`);
    await emitEvent(deps, { namespace: target.namespace, name: target.name, uid: ds.metadata.uid }, m.outcome === 'success' ? 'Normal' : 'Warning', m.outcome === 'success' ? 'GatePassed' : m.outcome === 'failure' ? 'GateFailed' : 'GateInconclusive', line);
  }
}

/** Deletes the decision's pods, after proving the lease is still held; returns the uids deleted. */
async function deleteWave(deps: Deps, target: ManagedTarget, decision: WaveDecision, options: DriveOptions): Promise<Set<string>> {
  const deleted = new Set<string>();
  if (decision.podsToDelete.length === 0) return deleted;
  const deleteAll = async () => {
    for (const p of decision.podsToDelete) {
      try {
        await deps.cluster.deletePod(target.namespace, p.name, p.uid);
        deleted.add(p.uid);
      } catch (err) {
        deps.logger.log('warn', `could not delete pod ${p.name}: ${errorMessage(err)}`, { daemonSet: `${target.namespace}/${target.name}` });
      }
    }
  };
  // Proof that this run still holds the lease, just before it deletes (a preempted run stops here); and
  // while any driver of the run is between that proof and the end of its deletions, no other marks the lease preemptible.
  if (options.lease) await options.lease.whileActing(deleteAll);
  else await deleteAll();
  if (options.lease && options.preemptible) await options.lease.markPreemptible(options.preemptible);
  return deleted;
}

/** Progress and logs for a decision that says something new; returns the line said. */
function tellDecision(deps: Deps, target: ManagedTarget, decision: WaveDecision, before: WaveCheckpoint | undefined, lastLine: string): string {
  const key = `${target.namespace}/${target.name}`;
  const line = `${key}: revision ${target.revision} ${decision.phase}: ${decision.reason}`;
  if (line === lastLine) return line;
  deps.onProgress?.(line);
  if (decision.podsToDelete.length) {
    deps.logger.log('info', `wave ${decision.checkpoint.waves}: deleting ${decision.podsToDelete.map((p) => `${p.name} on ${p.node}`).join(', ')}`, { daemonSet: key, action: 'wave', revision: target.revision });
  }
  if (decision.checkpoint.failed && !before?.failed) {
    deps.logger.log('error', `revision ${target.revision}: ${decision.checkpoint.failed.reason}`, { daemonSet: key, action: 'rollout-failed', revision: target.revision, nodes: decision.checkpoint.failed.nodes });
  }
  return line;
}

/** The decision as a point of the revision's timeline (for `dsgitops ui`'s chart); a failure to keep it costs only the chart. */
async function keepTimeline(deps: Deps, target: ManagedTarget, decision: WaveDecision, now: Date): Promise<void> {
  try {
    await new TimelineStore(deps.objects, deps.store.keys).update(target.namespace, target.name, target.revision, (points) => appendTimelinePoint(points, timelinePoint(decision, now)));
  } catch (err) {
    deps.logger.log('warn', `could not keep the rollout's timeline: ${errorMessage(err)}`, { daemonSet: `${target.namespace}/${target.name}` });
  }
}

/** The same phase, counts and checkpoint: only the wording (elapsed times) and the decision time may differ. */
function sameDecision(before: RolloutState | undefined, after: RolloutState): boolean {
  const essence = (r: RolloutState) => {
    const m = r.managed;
    const checkpoint = m?.checkpoint ? { ...m.checkpoint, decidedAt: undefined } : undefined;
    return canonicalJson({ revision: r.revision, phase: r.phase, counts: r.counts, checkpoint, wavePhase: m?.wavePhase, paused: m?.paused, finishedAt: r.finishedAt });
  };
  return before !== undefined && essence(before) === essence(after);
}

/** Whether the progress clock runs for this decision and the recorded decision is too old to show that a run is driving. */
function heartbeatDue(recorded: WaveCheckpoint | undefined, decision: WaveDecision, now: Date): boolean {
  if (decision.phase !== 'progressing' && decision.phase !== 'waiting') return false;
  const decided = recorded?.decidedAt === undefined ? Number.NaN : Date.parse(recorded.decidedAt);
  return Number.isNaN(decided) || now.getTime() - decided >= HEARTBEAT_MS;
}

/**
 * A run that stops driving a rollout still under way, without having failed (its time is
 * up, only NotReady nodes are left, it does not wait), says so in the checkpoint: the time
 * until the next run decides is then counted against the progress deadline, while the gap
 * after a run that died is not (wave.ts, `undrivenSince`). Returns the rollout as stored.
 */
async function handOff(deps: Deps, target: ManagedTarget, rollout: RolloutState | undefined): Promise<RolloutState | undefined> {
  const wavePhase = rollout?.managed?.wavePhase;
  if (!rollout?.managed?.checkpoint || (wavePhase !== 'progressing' && wavePhase !== 'waiting')) return rollout;
  const at = deps.clock.now().toISOString();
  const after = await deps.store.updateState(target.namespace, target.name, (cur) => {
    const stored = cur?.rollout;
    const cp = stored?.managed?.checkpoint;
    // Only this revision's rollout as the driver left it: a pause, a stall or a newer revision stands.
    if (!cur || !stored || !cp || cur.currentRevision !== target.revision || stored.revision !== target.revision || stored.managed?.wavePhase !== wavePhase) return undefined;
    return { ...cur, rollout: { ...stored, managed: { ...stored.managed, checkpoint: { ...cp, handedOffAt: at } } }, updatedAt: at };
  });
  return after?.currentRevision === target.revision && after.rollout?.revision === target.revision ? after.rollout : rollout;
}

/**
 * Writes the decision into the state that was read, conditionally on its ETag. Returns
 * false, writing nothing, when the state changed since (a pause, a resume, a newer
 * revision): the caller must not act on a decision taken on stale facts.
 */
async function recordDecision(deps: Deps, target: ManagedTarget, etag: string, read: DaemonSetState, rollout: RolloutState): Promise<boolean> {
  const now = deps.clock.now().toISOString();
  try {
    await deps.store.putState({ ...read, rollout, updatedAt: now }, etag);
    return true;
  } catch (err) {
    if (err instanceof PreconditionFailedError) {
      deps.logger.log('info', 'the state changed while deciding (pause, resume or a newer revision); deciding again', { daemonSet: `${target.namespace}/${target.name}` });
      return false;
    }
    throw err;
  }
}
