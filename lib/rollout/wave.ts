/**
 * PURE wave decisions for managed rollouts. The DaemonSet runs with `OnDelete`; the
 * reconciler replaces pods by deleting old ones and the cluster's DaemonSet controller
 * creates each replacement, with the new template, on the same node.
 *
 * `nextWave` answers one question: given what the cluster looks like now, which old pods
 * may be deleted right now without ever exceeding `maxUnavailable`? It follows the
 * Kubernetes DaemonSet controller's rolling update (maxSurge = 0) and adds what the
 * controller lacks: NotReady nodes that neither consume the budget nor stall the rollout,
 * canary nodes with a hold, pause, and a progress deadline.
 *
 * The driver observes, calls this, deletes what it names, stores the returned checkpoint
 * and calls again on the next pod event or at `wakeAt`. Nothing here does I/O or reads
 * the clock.
 */

export interface WaveNode { name: string; ready: boolean; labels: Record<string, string> }
export interface WavePod {
  name: string; uid: string; node: string;
  updated: boolean;        // runs the target template
  ready: boolean;          // pod condition Ready=True
  readySince?: string;     // ISO time Ready became True
  terminating: boolean;    // deletionTimestamp set
}
export interface CanaryPolicy { count?: number; selector?: Record<string, string>; holdSeconds: number }
export interface WavePolicy {
  maxUnavailable: number | string;   // integer, or percent string like "25%"
  minReadySeconds: number;
  canary?: CanaryPolicy;
  paused: boolean;
  progressDeadlineSeconds: number;
}
export interface WaveCheckpoint {
  startedAt: string;
  canaryNodes?: string[];          // fixed at the first decision of a rollout that has a canary policy
  canaryAvailableSince?: string;   // when every canary node last became updated+available
  canaryPassed?: boolean;
  lastProgressAt: string;
  updatedAvailable: number;        // updated+available count at the last decision
  waves: number;                   // decisions that deleted at least one pod
  inFlight: { node: string; uid: string; deletedAt: string }[]; // pods this rollout deleted whose replacement is not yet seen
}
export interface WaveObservation { nodes: WaveNode[]; pods: WavePod[]; desiredNumberScheduled: number }
export type WavePhase = 'progressing' | 'complete' | 'stalled' | 'paused' | 'canary-hold';
export interface WaveDecision {
  podsToDelete: { name: string; uid: string; node: string }[];
  phase: WavePhase;
  reason: string;                  // one human sentence, e.g. "deleting 2 old pods (budget 2 of maxUnavailable 3; 1 unavailable)"
  checkpoint: WaveCheckpoint;
  /** True when every Ready desired node runs an updated, available pod (what remains, if anything, is on NotReady nodes). */
  readyNodesDone: boolean;
  notReadyNodes: string[];         // desired nodes whose node is NotReady: reported, skipped, never touched
  /**
   * `desired` is the controller's desiredNumberScheduled; every other count is over Ready
   * desired nodes (one per node). `unavailable` includes pods the controller has not created
   * yet; `budget` is how many available old pods may be deleted now.
   */
  counts: { desired: number; updated: number; updatedAvailable: number; available: number; unavailable: number; maxUnavailable: number; budget: number };
  /** Earliest ISO time at which the decision could change with no pod event (minReadySeconds elapsing, canary hold ending, the progress deadline). */
  wakeAt?: string;
}

export type InFlightPod = WaveCheckpoint['inFlight'][number];
export type PodRef = WaveDecision['podsToDelete'][number];

const SECOND_MS = 1000;
const PERCENT = /^(\d+)%$/;

/**
 * Resolves `maxUnavailable` against the number of nodes that should run the pod.
 * Percentages round up, as the DaemonSet controller does (a Deployment rounds down), so a
 * small fleet still gets a budget of at least one node per percent step.
 */
export function resolveMaxUnavailable(value: number | string, desired: number): number {
  const total = Math.max(0, Math.floor(desired));
  let resolved: number;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`maxUnavailable ${String(value)} is not an integer; use a whole number of pods or a percentage such as "25%"`);
    resolved = value;
  } else {
    const match = PERCENT.exec(value);
    if (!match) throw new Error(`maxUnavailable "${value}" is neither an integer nor a percentage such as "25%"`);
    // Integer arithmetic: ceil(p * total / 100) without floating-point surprises.
    resolved = Math.floor((Number(match[1]) * total + 99) / 100);
  }
  return Math.min(Math.max(resolved, 0), total);
}

/**
 * The budget actually used: the API rejects maxUnavailable 0 for a rolling update, so a
 * zero here (0, "0%", or a percent of a tiny fleet) would only freeze the rollout.
 */
export function effectiveMaxUnavailable(value: number | string, desired: number): number {
  const k = resolveMaxUnavailable(value, desired);
  return desired > 0 ? Math.max(k, 1) : k;
}

/** When the pod counts (or will count) as available, or undefined when it cannot while it stays as observed. */
export function availableFrom(pod: WavePod, minReadySeconds: number): number | undefined {
  if (!pod.ready || pod.terminating) return undefined;
  if (minReadySeconds <= 0) return Number.NEGATIVE_INFINITY;
  if (pod.readySince === undefined) return undefined;
  const since = Date.parse(pod.readySince);
  return Number.isNaN(since) ? undefined : since + minReadySeconds * SECOND_MS;
}

export function isPodAvailable(pod: WavePod, minReadySeconds: number, now: Date): boolean {
  const from = availableFrom(pod, minReadySeconds);
  return from !== undefined && now.getTime() >= from;
}

export function matchesSelector(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/** What one desired node looks like for this decision. */
interface NodeFacts {
  name: string;
  ready: boolean;
  labels: Record<string, string>;
  pods: WavePod[];
  /** Pods that count as available (a pod this rollout already deleted never does). */
  availablePods: WavePod[];
  hasUpdated: boolean;
  updatedAvailable: boolean;
  /** When pods that are Ready but still inside minReadySeconds become available. */
  becomesAvailableAt: number[];
  /** Old pods that are not yet going away. */
  outdated: WavePod[];
  hasTerminating: boolean;
  inFlightUid?: string;
}

function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function replacementSeen(entry: InFlightPod, pods: readonly WavePod[]): boolean {
  return pods.some((p) => p.node === entry.node && p.updated);
}

/**
 * Groups the observation by desired node. A pod with no node yet is unscheduled: it has no
 * node to be desired on, and the controller's desiredNumberScheduled already counts the
 * node it is meant for as missing a pod.
 */
function observeNodes(obs: WaveObservation, inFlight: readonly InFlightPod[], minReadySeconds: number, now: Date): NodeFacts[] {
  const nodeByName = new Map(obs.nodes.map((n) => [n.name, n]));
  const podsByNode = new Map<string, WavePod[]>();
  for (const pod of obs.pods) {
    if (pod.node === '') continue;
    const here = podsByNode.get(pod.node);
    if (here) here.push(pod);
    else podsByNode.set(pod.node, [pod]);
  }
  const deletedUids = new Set(inFlight.map((e) => e.uid));
  const inFlightByNode = new Map(inFlight.map((e) => [e.node, e.uid]));
  const nowMs = now.getTime();
  const names = [...new Set([...podsByNode.keys(), ...inFlightByNode.keys()])].sort();
  return names.map((name) => {
    const node = nodeByName.get(name);
    const pods = [...(podsByNode.get(name) ?? [])].sort(byName);
    // A watch can lag a delete: a pod we deleted is going away whatever the observation says.
    const live = pods.filter((p) => !deletedUids.has(p.uid)).map((p) => ({ pod: p, from: availableFrom(p, minReadySeconds) }));
    const availablePods = live.filter((l) => l.from !== undefined && l.from <= nowMs).map((l) => l.pod);
    return {
      name,
      ready: node?.ready === true,
      labels: node?.labels ?? {},
      pods,
      availablePods,
      becomesAvailableAt: live.flatMap((l) => (l.from !== undefined && l.from > nowMs ? [l.from] : [])),
      hasUpdated: pods.some((p) => p.updated && !p.terminating),
      updatedAvailable: availablePods.some((p) => p.updated),
      outdated: pods.filter((p) => !p.updated && !p.terminating),
      hasTerminating: pods.some((p) => p.terminating),
      inFlightUid: inFlightByNode.get(name),
    };
  });
}

/** A Ready node is done when it runs only an updated, available pod. */
function isReadyNodeDone(f: NodeFacts): boolean {
  return f.updatedAvailable && f.outdated.length === 0 && !f.hasTerminating;
}

/** A NotReady node cannot become available; it is done once the new template sits on it. */
function isNotReadyNodeDone(f: NodeFacts): boolean {
  return f.hasUpdated && f.outdated.length === 0;
}

/**
 * The one pod to delete on this node, if any: one per node per decision, because the
 * controller replaces a node's pod only after the old one is gone. A node with a pod in
 * flight only retries that same pod (its delete may not have landed); any other pod there
 * waits until the replacement is seen.
 */
function replaceablePod(f: NodeFacts): WavePod | undefined {
  if (f.inFlightUid !== undefined) return f.outdated.find((p) => p.uid === f.inFlightUid);
  const unavailableFirst = (p: WavePod) => (f.availablePods.includes(p) ? 1 : 0);
  return [...f.outdated].sort((a, b) => unavailableFirst(a) - unavailableFirst(b) || byName(a, b))[0];
}

/** Deleting this pod leaves its node exactly as available as it is now. */
function costsNoAvailability(f: NodeFacts, pod: WavePod): boolean {
  return !f.availablePods.includes(pod) || f.availablePods.length > 1;
}

/** The canary nodes for a new rollout, chosen among the Ready desired nodes, by name. */
export function chooseCanaryNodes(canary: CanaryPolicy, readyNodes: readonly { name: string; labels: Record<string, string> }[]): string[] {
  const selector = canary.selector;
  const eligible = [...readyNodes].sort(byName).filter((n) => selector === undefined || matchesSelector(n.labels, selector)).map((n) => n.name);
  // A canary policy with neither count nor selector still means "try it somewhere first".
  const count = canary.count ?? (canary.selector === undefined ? 1 : eligible.length);
  return eligible.slice(0, Math.max(0, count));
}

type CanaryState =
  | { kind: 'none' }                                         // no canary policy, or passed earlier
  | { kind: 'passed-now'; since?: string }
  | { kind: 'rolling'; members: string[] }                   // canary pods are still being replaced
  | { kind: 'holding'; since: string; until: number }
  | { kind: 'unjudgeable'; nodes: string[] };                // every canary node is NotReady or gone

/**
 * Assumptions / invariants:
 * - The canary set is fixed once per rollout; nodes that join later never become canaries.
 * - Only Ready canary nodes are judged; a NotReady one is skipped like any NotReady node.
 *   If no canary node is Ready there is no evidence either way, so the canary neither
 *   passes nor stalls: it waits, and the reason says why. (A canary passing on no
 *   evidence would roll a node-breaking update to the whole fleet.)
 * - The hold clock starts at the first decision that sees every judged canary updated and
 *   available, and restarts from zero if any of them becomes unavailable.
 */
function evaluateCanary(canary: CanaryPolicy | undefined, chosen: readonly string[] | undefined, passedBefore: boolean, sinceBefore: string | undefined, facts: readonly NodeFacts[], now: Date): CanaryState {
  if (canary === undefined || passedBefore || chosen === undefined) return { kind: 'none' };
  if (chosen.length === 0) return { kind: 'passed-now' };
  // A canary node that left the cluster is no longer desired and simply drops out.
  const members = facts.filter((f) => f.ready && chosen.includes(f.name));
  if (members.length === 0) return { kind: 'unjudgeable', nodes: [...chosen] };
  if (!members.every((f) => f.updatedAvailable)) return { kind: 'rolling', members: members.map((f) => f.name) };
  const since = sinceBefore ?? now.toISOString();
  const until = Date.parse(since) + canary.holdSeconds * SECOND_MS;
  return now.getTime() >= until ? { kind: 'passed-now', since } : { kind: 'holding', since, until };
}

function nameList(names: readonly string[], limit = 5): string {
  if (names.length <= limit) return names.join(', ');
  return `${names.slice(0, limit).join(', ')} and ${names.length - limit} more`;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Decides the next wave of a managed rollout.
 *
 * Assumptions / invariants:
 * - One pod per node. A node is desired when a pod of this DaemonSet is on it or a pod we
 *   deleted there has not been replaced yet; a desired node that is NotReady (or unknown)
 *   is listed and left alone: it is never deleted from, never counted in the budget and
 *   never the cause of a stall, so one dead node cannot freeze a fleet-wide rollout.
 * - Unavailability is counted per Ready desired node, and pods the controller has not
 *   created yet count as unavailable, so `unavailable` is never an underestimate. After
 *   this decision at most max(k, unavailable before) Ready nodes are unavailable:
 *   deleting an old pod that is already unavailable costs nothing, and available old pods
 *   are deleted only up to k - unavailable.
 * - Updated pods, terminating pods and pods on NotReady nodes are never deleted.
 * - While paused, holding a canary, or waiting only on NotReady nodes the rollout cannot
 *   stall, and that time does not count toward the deadline. A stalled rollout deletes
 *   nothing and becomes progressing again as soon as more updated pods are available.
 * - Deterministic: the same inputs give the same decision; the checkpoint is not mutated.
 */
export function nextWave(obs: WaveObservation, policy: WavePolicy, checkpoint: WaveCheckpoint | undefined, now: Date): WaveDecision {
  const at = now.toISOString();
  const nowMs = now.getTime();

  const inFlightKept = (checkpoint?.inFlight ?? []).filter((e) => !replacementSeen(e, obs.pods));
  const facts = observeNodes(obs, inFlightKept, policy.minReadySeconds, now);
  const ready = facts.filter((f) => f.ready);
  const notReady = facts.filter((f) => !f.ready);
  const notReadyNodes = notReady.map((f) => f.name);

  const k = effectiveMaxUnavailable(policy.maxUnavailable, obs.desiredNumberScheduled);
  const available = ready.filter((f) => f.availablePods.length > 0).length;
  const expectedReady = Math.max(ready.length, obs.desiredNumberScheduled - notReady.length);
  const unavailable = expectedReady - available;
  const updated = ready.filter((f) => f.hasUpdated).length;
  const updatedAvailable = ready.filter((f) => f.updatedAvailable).length;

  const readyNodesDone = unavailable === 0 && ready.every(isReadyNodeDone);
  const pendingNotReady = notReady.filter((f) => !isNotReadyNodeDone(f)).map((f) => f.name);
  const complete = readyNodesDone && pendingNotReady.length === 0;

  const canaryNodes = checkpoint?.canaryNodes ?? (policy.canary && checkpoint?.canaryPassed !== true ? chooseCanaryNodes(policy.canary, ready) : undefined);
  const canary = evaluateCanary(policy.canary, canaryNodes, checkpoint?.canaryPassed === true, checkpoint?.canaryAvailableSince, facts, now);
  const canaryPassed = canary.kind === 'passed-now' || checkpoint?.canaryPassed === true;

  // Which nodes this decision may touch: the canary's until it passes, then every Ready node.
  const inScope = canary.kind === 'rolling' ? ready.filter((f) => canary.members.includes(f.name))
    : canary.kind === 'holding' || canary.kind === 'unjudgeable' ? []
    : ready;
  const free: PodRef[] = [];
  const costly: PodRef[] = [];
  for (const f of inScope) {
    const pod = replaceablePod(f);
    if (!pod) continue;
    (costsNoAvailability(f, pod) ? free : costly).push({ name: pod.name, uid: pod.uid, node: f.name });
  }
  const budget = Math.min(Math.max(k - unavailable, 0), costly.length);

  const grew = checkpoint !== undefined && updatedAvailable > checkpoint.updatedAvailable;
  const cannotStall = complete || readyNodesDone || policy.paused || canary.kind === 'holding' || canary.kind === 'unjudgeable' || canary.kind === 'passed-now';
  const progressAt = checkpoint === undefined || grew || cannotStall ? at : checkpoint.lastProgressAt;
  const idleMs = nowMs - Date.parse(progressAt);
  const stalled = !cannotStall && idleMs > policy.progressDeadlineSeconds * SECOND_MS;

  let phase: WavePhase;
  let podsToDelete: PodRef[] = [];
  let reason: string;
  const counts = { desired: obs.desiredNumberScheduled, updated, updatedAvailable, available, unavailable, maxUnavailable: k, budget };
  const unavailableNodes = ready.filter((f) => f.availablePods.length === 0).map((f) => f.name);
  const unavailableText = `${unavailable} unavailable${unavailableNodes.length > 0 ? ` (${nameList(unavailableNodes)})` : ''}`;
  const progressText = `${updatedAvailable}/${expectedReady} Ready nodes updated and available, ${unavailableText}`;

  if (complete) {
    phase = 'complete';
    reason = `complete: ${plural(expectedReady, 'Ready node runs', 'Ready nodes run')} the updated template and ${expectedReady === 1 ? 'is' : 'are'} available`;
  } else if (policy.paused) {
    phase = 'paused';
    reason = `paused: deleting nothing (${progressText})`;
  } else if (readyNodesDone) {
    phase = 'progressing';
    reason = `every Ready node is updated and available; waiting for NotReady ${pendingNotReady.length === 1 ? 'node' : 'nodes'} ${nameList(pendingNotReady)} to take the new template`;
  } else if (canary.kind === 'holding') {
    phase = 'canary-hold';
    const leftS = Math.ceil((canary.until - nowMs) / SECOND_MS);
    reason = `canary ${nameList(canaryNodes ?? [])} updated and available; holding ${leftS}s more of ${policy.canary?.holdSeconds ?? 0}s`;
  } else if (canary.kind === 'unjudgeable') {
    phase = 'progressing';
    reason = `canary ${canary.nodes.length === 1 ? 'node' : 'nodes'} ${nameList(canary.nodes)} ${canary.nodes.length === 1 ? 'is' : 'are'} NotReady or gone; waiting for a Ready canary node to judge the update`;
  } else if (stalled) {
    phase = 'stalled';
    reason = `stalled: no progress for ${Math.round(idleMs / SECOND_MS)}s (deadline ${policy.progressDeadlineSeconds}s); deleting nothing (${progressText})`;
  } else {
    phase = 'progressing';
    podsToDelete = [...free, ...costly.slice(0, budget)];
    const scope = canary.kind === 'rolling' ? 'canary: ' : '';
    if (podsToDelete.length > 0) {
      const freeText = free.length > 0 ? `${free.length} already unavailable, ` : '';
      reason = `${scope}deleting ${plural(podsToDelete.length, 'old pod', 'old pods')} (${freeText}budget ${budget} of maxUnavailable ${k}; ${unavailable} unavailable)`;
    } else if (costly.length > 0) {
      reason = `${scope}waiting: budget 0 of maxUnavailable ${k} with ${unavailableText}; ${plural(costly.length, 'old pod waits', 'old pods wait')}`;
    } else {
      reason = `${scope}waiting for replacements to become available (${progressText})`;
    }
  }

  const deletedNow = podsToDelete.length > 0;
  const lastProgressAt = deletedNow ? at : progressAt;
  const inFlight = [
    ...inFlightKept.filter((e) => !podsToDelete.some((p) => p.node === e.node)),
    ...podsToDelete.map((p) => ({ node: p.node, uid: p.uid, deletedAt: at })),
  ].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));

  const next: WaveCheckpoint = {
    startedAt: checkpoint?.startedAt ?? at,
    lastProgressAt,
    updatedAvailable,
    waves: (checkpoint?.waves ?? 0) + (deletedNow ? 1 : 0),
    inFlight,
  };
  if (canaryNodes !== undefined) next.canaryNodes = [...canaryNodes];
  // Kept once the canary has passed: it records when the canary proved itself.
  const canarySince = canary.kind === 'holding' || canary.kind === 'passed-now' ? canary.since
    : canary.kind === 'none' ? checkpoint?.canaryAvailableSince
    : undefined;
  if (canarySince !== undefined) next.canaryAvailableSince = canarySince;
  if (canaryPassed) next.canaryPassed = true;

  const wakeAt = earliestWake({
    nowMs,
    minReady: ready.flatMap((f) => f.becomesAvailableAt),
    canaryHoldEnds: canary.kind === 'holding' && !complete ? canary.until : undefined,
    // Stalling needs idle time strictly beyond the deadline, hence the extra millisecond.
    deadline: phase === 'progressing' && !cannotStall ? Date.parse(lastProgressAt) + policy.progressDeadlineSeconds * SECOND_MS + 1 : undefined,
  });

  const decision: WaveDecision = { podsToDelete, phase, reason, checkpoint: next, readyNodesDone, notReadyNodes, counts };
  if (wakeAt !== undefined) decision.wakeAt = wakeAt;
  return decision;
}

/** The earliest moment, strictly after now, at which time alone could change the decision. */
function earliestWake(times: { nowMs: number; minReady: number[]; canaryHoldEnds?: number; deadline?: number }): string | undefined {
  const candidates = [...times.minReady, times.canaryHoldEnds, times.deadline].filter((t): t is number => t !== undefined && Number.isFinite(t) && t > times.nowMs);
  return candidates.length === 0 ? undefined : new Date(Math.min(...candidates)).toISOString();
}
