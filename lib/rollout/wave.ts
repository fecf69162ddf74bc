/**
 * PURE wave decisions for managed rollouts. The DaemonSet runs with `OnDelete`; the
 * reconciler replaces pods by deleting old ones and the cluster's DaemonSet controller
 * creates each replacement, with the new template, on the same node.
 *
 * `nextWave` answers one question: given what the cluster looks like now, which old pods
 * may be deleted right now without ever exceeding `maxUnavailable`? It follows the
 * Kubernetes DaemonSet controller's rolling update (maxSurge = 0) and adds what the
 * controller lacks: a canary with a hold, pause, a progress deadline, NotReady nodes that
 * neither freeze the rollout nor hide a broken update, and a stop as soon as the update
 * is seen to break the nodes it reaches.
 *
 * The driver observes, calls this, stores the returned checkpoint, deletes what it names
 * and calls again on the next pod event or at `wakeAt`. Nothing here does I/O or reads
 * the clock.
 */
import { labelsMatch, parseIntOrPercent } from '../k8s-values';
import type { TouchedNode, WaveCheckpoint, WaveFailure } from '../store/records';
import type { GateOutcome } from './gates';

export type { TouchedNode, WaveCheckpoint, WaveFailure };

export interface WaveNode {
  name: string;
  /** The node's Ready condition is True. */
  ready: boolean;
  /** The DaemonSet should run a pod here (its node selector, affinity and tolerations; see eligibility.ts). */
  desired: boolean;
  labels: Record<string, string>;
}
export interface WavePod {
  name: string; uid: string; node: string;
  updated: boolean;        // runs the target template
  ready: boolean;          // pod condition Ready=True
  readySince?: string;     // ISO time Ready became True
  terminating: boolean;    // deletionTimestamp set
  /**
   * The pod was created for the DaemonSet's current template generation (its
   * `pod-template-generation` label), so after the apply that brought this template: the
   * update reached its node with this revision. False: an updated pod that predates it (a
   * rollback or a revert to a template that still runs there, recognised by its revision
   * hash). Undefined: not known, taken as created for it.
   */
  sinceApply?: boolean;
  /** Restarts of the pod's containers (the restarts gate reads them). */
  restarts?: number;
}
export interface CanaryPolicy { count?: number; selector?: Record<string, string>; holdSeconds: number }
export interface WavePolicy {
  maxUnavailable: number | string;   // integer, or percent string like "25%"
  minReadySeconds: number;
  canary?: CanaryPolicy;
  paused: boolean;
  progressDeadlineSeconds: number;
  /** What the rollout's gates say now (gates.ts, `combineGates`), as the driver measured them. */
  gates?: GateOutcome;
  /**
   * The rollout has metric gates: after the canary, each wave is held once its nodes run the
   * update and are available, until `gates.pending` is gone (its gates passed), before the next
   * wave deletes anything, and the last wave before the rollout is complete.
   */
  gateWaves?: boolean;
}
export interface WaveObservation { nodes: WaveNode[]; pods: WavePod[] }
/** `waiting`: nothing may be deleted for a reason outside the rollout (too many NotReady nodes, no canary node). */
export type WavePhase = 'progressing' | 'complete' | 'stalled' | 'paused' | 'canary-hold' | 'wave-hold' | 'waiting';
export interface WaveDecision {
  podsToDelete: { name: string; uid: string; node: string }[];
  phase: WavePhase;
  reason: string;                  // one human sentence, e.g. "deleting 2 old pods (budget 2 of maxUnavailable 3; 1 unavailable)"
  checkpoint: WaveCheckpoint;
  /** Every desired node but the skipped NotReady ones runs only an updated, available pod. */
  readyNodesDone: boolean;
  /** Skipped: desired nodes NotReady for reasons outside this DaemonSet's rollouts. Reported, left alone, counted against the budget. */
  notReadyNodes: string[];
  /** Desired nodes this rollout deleted a pod from while they were Ready, and that are NotReady now. */
  brokenNodes: string[];
  /**
   * `desired` counts the desired nodes; every other count is over the desired nodes that are
   * not skipped (one per node). `unavailable` includes nodes whose pod is missing or Pending;
   * `budget` is how many available old pods may be deleted now.
   */
  counts: { desired: number; updated: number; updatedAvailable: number; available: number; unavailable: number; maxUnavailable: number; budget: number; skipped: number };
  /**
   * Earliest ISO time at which the driver should decide again with no pod event: minReadySeconds
   * or the settle time elapsing, a canary or wave hold ending, the progress deadline, and, while the
   * progress clock runs, LOOK_AGAIN_SECONDS at most.
   */
  wakeAt?: string;
}

export type InFlightPod = WaveCheckpoint['inFlight'][number];
export type PodRef = WaveDecision['podsToDelete'][number];

const SECOND_MS = 1000;

/**
 * How long an updated pod must have been Ready before its node counts as proven, when
 * `minReadySeconds` is shorter. Pod conditions carry whole-second timestamps (rounded down),
 * so this is between 0 and 1 s of real time after the pod turned Ready.
 */
export const SETTLE_SECONDS = 1;

/**
 * The longest gap between two recorded decisions of a driver that is driving the rollout:
 * while the progress clock runs, a decision's `wakeAt` is never more than
 * LOOK_AGAIN_SECONDS away, and the driver records a decision at least that often (see
 * managed.ts). A longer gap after an unclean end (no `handedOffAt`) is time nobody drove.
 */
export const DRIVEN_GAP_SECONDS = 60;
export const LOOK_AGAIN_SECONDS = 30;

/**
 * Resolves `maxUnavailable` against the number of nodes that should run the pod.
 * Percentages round up, as the DaemonSet controller does (a Deployment rounds down), so a
 * small fleet still gets a budget of at least one node per percent step.
 */
export function resolveMaxUnavailable(value: number | string, desired: number): number {
  const total = Math.max(0, Math.floor(desired));
  const parsed = parseIntOrPercent(value);
  if (!parsed) {
    throw new Error(typeof value === 'number'
      ? `maxUnavailable ${String(value)} is not an integer; use a whole number of pods or a percentage such as "25%"`
      : `maxUnavailable "${value}" is neither an integer nor a percentage such as "25%"`);
  }
  // Integer arithmetic: ceil(p * total / 100) without floating-point surprises.
  const resolved = parsed.percent ? Math.floor((parsed.value * total + 99) / 100) : parsed.value;
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

/** What one desired node looks like for this decision. */
interface NodeFacts {
  name: string;
  ready: boolean;
  labels: Record<string, string>;
  /** Pods that count as available: on a Ready node, Ready for minReadySeconds, not deleted by this rollout. */
  availablePods: WavePod[];
  hasUpdated: boolean;
  /** An updated pod here was created for this template (`sinceApply`): this revision's update reached the node. */
  reachedByUpdate: boolean;
  updatedAvailable: boolean;
  /** The updated pod has been available and Ready for max(minReadySeconds, SETTLE_SECONDS): the update proved itself here. */
  proven: boolean;
  /** When an updated pod that is Ready but not yet proven will be. */
  provenAt?: number;
  /** When pods that are Ready but still inside minReadySeconds become available. */
  becomesAvailableAt: number[];
  /** Old pods that are not yet going away. */
  outdated: WavePod[];
  hasTerminating: boolean;
  inFlightUid?: string;
  /** This rollout deleted a pod here while the node was Ready. */
  touchedWhileReady: boolean;
  /** NotReady and not touched while Ready by this rollout: left alone, and counted against the budget. */
  skipped: boolean;
  /**
   * Broken by an earlier revision of this DaemonSet (`repairNodes`): the old pod here may be
   * replaced although the node is NotReady, and the node is unavailable by this product's doing.
   */
  repair: boolean;
}

function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * The deletion is over: its node holds an updated pod, or the deleted pod is gone and the
 * controller filled the node with a pod of another template (one someone else put on the
 * DaemonSet meanwhile, `kubectl set image`). Such a pod is an old pod like any other, for the
 * rollout that restores this revision's template to replace; waiting for it to become
 * updated would wait forever.
 */
function replacementSeen(entry: InFlightPod, pods: readonly WavePod[]): boolean {
  const here = pods.filter((p) => p.node === entry.node);
  return here.some((p) => p.updated) || (!pods.some((p) => p.uid === entry.uid) && here.some((p) => !p.terminating));
}

/**
 * Groups the observation by desired node. Pods on nodes that are not desired (the node
 * left the cluster, lost a label, gained a taint) are neither waited for nor deleted;
 * a desired node with no pod at all is still a node, and counts as unavailable.
 */
function observeNodes(obs: WaveObservation, inFlight: readonly InFlightPod[], touched: ReadonlyMap<string, TouchedNode>, repairNodes: ReadonlySet<string>, minReadySeconds: number, now: Date, earlierPodsReached: boolean): NodeFacts[] {
  const podsByNode = new Map<string, WavePod[]>();
  for (const pod of obs.pods) {
    const here = podsByNode.get(pod.node);
    if (here) here.push(pod);
    else podsByNode.set(pod.node, [pod]);
  }
  const deletedUids = new Set(inFlight.map((e) => e.uid));
  const inFlightByNode = new Map(inFlight.map((e) => [e.node, e.uid]));
  const nowMs = now.getTime();
  const settleSeconds = Math.max(minReadySeconds, SETTLE_SECONDS);
  return obs.nodes.filter((n) => n.desired).sort(byName).map((node) => {
    const pods = [...(podsByNode.get(node.name) ?? [])].sort(byName);
    // A watch can lag a delete: a pod we deleted is going away whatever the observation says.
    // A pod on a NotReady node serves nothing, whatever its own condition still says.
    const live = node.ready ? pods.filter((p) => !deletedUids.has(p.uid)).map((p) => ({ pod: p, from: availableFrom(p, minReadySeconds) })) : [];
    const availablePods = live.filter((l) => l.from !== undefined && l.from <= nowMs).map((l) => l.pod);
    const provenTimes = availablePods.filter((p) => p.updated).map((p) => provenFrom(p, settleSeconds));
    // A delete decided while the node was Ready that never landed (its pod still there, not
    // terminating, and no updated pod: a run killed between writing the decision and deleting)
    // put nothing there: what the node is now says nothing about this rollout.
    const inFlightUid = inFlightByNode.get(node.name);
    const undelivered = inFlightUid !== undefined && pods.some((p) => p.uid === inFlightUid && !p.terminating) && !pods.some((p) => p.updated && !p.terminating);
    const touchedWhileReady = touched.get(node.name)?.readyAtDelete === true && !undelivered;
    const repair = !node.ready && !touchedWhileReady && repairNodes.has(node.name);
    return {
      name: node.name,
      ready: node.ready,
      labels: node.labels,
      availablePods,
      becomesAvailableAt: live.flatMap((l) => (l.from !== undefined && l.from > nowMs ? [l.from] : [])),
      hasUpdated: pods.some((p) => p.updated && !p.terminating),
      reachedByUpdate: pods.some((p) => p.updated && !p.terminating && (p.sinceApply !== false || earlierPodsReached)),
      updatedAvailable: availablePods.some((p) => p.updated),
      proven: provenTimes.some((t) => t <= nowMs),
      provenAt: provenTimes.length > 0 ? Math.min(...provenTimes) : undefined,
      outdated: pods.filter((p) => !p.updated && !p.terminating),
      hasTerminating: pods.some((p) => p.terminating),
      inFlightUid,
      touchedWhileReady,
      skipped: !node.ready && !touchedWhileReady,
      repair,
    };
  });
}

/**
 * When an available updated pod proves the update on its node. A pod without a Ready time
 * (never the case for a pod the API server reports Ready) is taken as proven: nothing more
 * can be learnt from waiting for it.
 */
function provenFrom(pod: WavePod, settleSeconds: number): number {
  const since = pod.readySince === undefined ? Number.NaN : Date.parse(pod.readySince);
  return Number.isNaN(since) ? Number.NEGATIVE_INFINITY : since + settleSeconds * SECOND_MS;
}

/** A node is done when it runs only an updated, available pod. */
function isNodeDone(f: NodeFacts): boolean {
  return f.updatedAvailable && f.outdated.length === 0 && !f.hasTerminating;
}

/** A skipped NotReady node cannot become available; it is done once the new template sits on it. */
function isSkippedNodeDone(f: NodeFacts): boolean {
  return f.hasUpdated && f.outdated.length === 0;
}

/** The update reached this node while it was Ready, and the node is NotReady now. */
function isBrokenByUpdate(f: NodeFacts): boolean {
  return !f.ready && f.touchedWhileReady && f.hasUpdated;
}

/**
 * The controller will put the current template here without anyone deleting a pod: the node
 * has no pod at all, or only pods already going away (deleted by an earlier wave, an earlier
 * revision, or someone else).
 */
function receivesTemplateWithoutDelete(f: NodeFacts): boolean {
  return !f.hasUpdated && f.outdated.length === 0;
}

/**
 * Whether the update reaches this node without a deletion by this rollout, and how it is to be
 * recorded in `touched`: true, reached while Ready (its going NotReady with the update is
 * evidence that the update breaks nodes); false, reached while NotReady (not evidence, but a
 * node the update may have broken, to repair in a later revision or a rollback); undefined,
 * not reached.
 *
 * Assumptions / invariants:
 * - Every deletion this rollout makes is recorded (in `touched`) before it is made, so a node
 *   that is not in `touched` and has, or will get, the update was filled by the controller
 *   without a deletion of ours: it had no pod, or only one going away, when the revision was
 *   applied, or lost its pod to someone else since.
 * - A Ready node that will receive the update counts as reached while Ready, as if its pod
 *   had been deleted now. A NotReady node that has or will get the update is recorded as
 *   reached while NotReady, also when a run that died right after its apply missed the
 *   moment: what the node was then is not known, so it is no evidence, but it is repaired.
 * - An updated pod that predates this template's apply (`sinceApply: false`: a rollback or a
 *   revert to a template that still runs there) is not this rollout's doing: its node is
 *   neither reached nor exposed. A Ready node that already runs an updated pod is not recorded
 *   either: an outage of a node the update has proven itself on is no evidence against it.
 */
function reachedWithoutDeleteAs(f: NodeFacts): boolean | undefined {
  if (f.ready) return receivesTemplateWithoutDelete(f) ? true : undefined;
  return receivesTemplateWithoutDelete(f) || f.reachedByUpdate ? false : undefined;
}

/**
 * A node recorded while NotReady (its pod deleted, or reached by the controller) that is seen
 * Ready before the update has arrived: the update reaches it while it is Ready after all.
 */
function reachedWhileReady(t: TouchedNode, facts: readonly NodeFacts[]): boolean {
  if (t.readyAtDelete) return false;
  const f = facts.find((x) => x.name === t.node);
  return f !== undefined && f.ready && !f.hasUpdated;
}

/**
 * Nodes the update has reached, or will reach, without proving itself yet: a pod deleted
 * and not yet replaced, a node the controller fills without a deletion, or an updated pod
 * that has not been available for max(minReadySeconds, SETTLE_SECONDS).
 *
 * Assumptions / invariants:
 * - Judged from the observation alone (the pods' template labels, the node's condition), for
 *   every desired node, NotReady ones included: no record of who deleted what is needed, so a
 *   run that starts after another died right after its apply sees the same exposure. Only
 *   updated pods created for this template count (`sinceApply`): a rollback is not held by
 *   nodes that still run the template it restores. A
 *   NotReady node that holds or will hold the update cannot prove it, so it stays exposed
 *   until it is Ready and its updated pod has proven itself there.
 */
function isExposed(f: NodeFacts): boolean {
  return f.inFlightUid !== undefined || receivesTemplateWithoutDelete(f) || (f.reachedByUpdate && !f.proven);
}

/**
 * The one pod to delete on this node, if any: one per node per decision, because the
 * controller replaces a node's pod only after the old one is gone. A node with a pod in
 * flight only retries that same pod (its delete may not have landed); any other pod there
 * waits until the replacement is seen. Pods on NotReady nodes stay, unless a rollback
 * repairs a node that the revision it replaces broke.
 */
function replaceablePod(f: NodeFacts): WavePod | undefined {
  if (!f.ready && !f.repair) return undefined;
  if (f.inFlightUid !== undefined) return f.outdated.find((p) => p.uid === f.inFlightUid);
  const unavailableFirst = (p: WavePod) => (f.availablePods.includes(p) ? 1 : 0);
  return [...f.outdated].sort((a, b) => unavailableFirst(a) - unavailableFirst(b) || byName(a, b))[0];
}

/** Deleting this pod leaves its node exactly as available as it is now. */
function costsNoAvailability(f: NodeFacts, pod: WavePod): boolean {
  return !f.availablePods.includes(pod) || f.availablePods.length > 1;
}

/** The canary nodes for a rollout, chosen among the Ready desired nodes, by name. */
export function chooseCanaryNodes(canary: CanaryPolicy, readyNodes: readonly { name: string; labels: Record<string, string> }[]): string[] {
  const selector = canary.selector;
  const eligible = [...readyNodes].sort(byName).filter((n) => selector === undefined || labelsMatch(selector, n.labels)).map((n) => n.name);
  // A canary policy with neither count nor selector still means "try it somewhere first".
  const count = canary.count ?? (canary.selector === undefined ? 1 : eligible.length);
  return eligible.slice(0, Math.max(0, count));
}

/** Says what a canary policy asks for, for messages. */
export function describeCanary(canary: CanaryPolicy): string {
  return canary.selector ? Object.entries(canary.selector).map(([k, v]) => `${k}=${v}`).join(',') : String(canary.count ?? 1);
}

type CanaryState =
  | { kind: 'none' }                                         // no canary policy, or passed earlier
  | { kind: 'unmatched' }                                    // the policy selects no Ready desired node
  | { kind: 'passed-now'; since?: string }
  | { kind: 'rolling'; members: string[] }                   // canary pods are still being replaced
  | { kind: 'holding'; since: string; until: number; gates?: string };

/**
 * The canary set of this decision: the one chosen earlier while any of it is still a
 * desired node that is not skipped (or is one to repair); otherwise (it was never chosen, or every node of it
 * left or went NotReady untouched) chosen again among the Ready desired nodes.
 */
function canaryMembers(canary: CanaryPolicy, chosen: readonly string[] | undefined, facts: readonly NodeFacts[]): string[] {
  // A canary node an earlier revision broke stays a canary: it is repaired first, and proves the update there.
  const members = chosen ? facts.filter((f) => (!f.skipped || f.repair) && chosen.includes(f.name)).map((f) => f.name) : [];
  return members.length > 0 ? members : chooseCanaryNodes(canary, facts.filter((f) => f.ready));
}

/**
 * Assumptions / invariants:
 * - The canary set is fixed once per rollout; nodes that join later never become canaries.
 *   Only a set with no usable node left (gone, or NotReady before it was touched) is
 *   chosen again: nothing was learnt from it.
 * - A canary node that goes NotReady after it received the update is not skipped: it is a
 *   broken node, and the rollout stops (see nextWave). A canary that never becomes
 *   available stalls at the progress deadline like any wave.
 * - A policy that selects no Ready desired node never passes: an empty canary would send
 *   the first wave to the whole fleet.
 * - The hold clock starts at the first decision that sees every canary node updated and
 *   available, and restarts from zero if any of them becomes unavailable.
 */
function evaluateCanary(canary: CanaryPolicy | undefined, members: readonly string[], passedBefore: boolean, sinceBefore: string | undefined, facts: readonly NodeFacts[], now: Date, gatesPending?: { reason: string; nextAt: number }): CanaryState {
  if (canary === undefined || passedBefore) return { kind: 'none' };
  if (members.length === 0) return { kind: 'unmatched' };
  const memberFacts = facts.filter((f) => members.includes(f.name));
  if (!memberFacts.every((f) => f.updatedAvailable)) return { kind: 'rolling', members: [...members] };
  const since = sinceBefore ?? now.toISOString();
  const until = Date.parse(since) + canary.holdSeconds * SECOND_MS;
  if (now.getTime() < until) return { kind: 'holding', since, until };
  // The hold is over; the canary passes only once its gates have (their measurements are due at `nextAt`).
  if (gatesPending) return { kind: 'holding', since, until: Math.max(gatesPending.nextAt, now.getTime() + 1), gates: gatesPending.reason };
  return { kind: 'passed-now', since };
}

type WaveHold =
  | { kind: 'none' }                                                   // waves are not held, or no wave is open
  | { kind: 'rolling'; wave: number; members: string[] }               // the wave's pods are still being replaced
  | { kind: 'holding'; wave: number; members: string[]; since: string; until: number; gates: string }
  | { kind: 'passed-now'; wave: number; since?: string };

type GatedWave = NonNullable<WaveCheckpoint['gatedWave']>;

/**
 * The hold of the last wave, when waves are held for their gates (`gateWaves`).
 *
 * Assumptions / invariants:
 * - A wave is the set of nodes whose pods one decision deleted after the canary; it is judged
 *   on those nodes alone, as the canary is on its own.
 * - Its hold starts at the first decision that sees every node of it (still desired and not
 *   skipped) updated and available, and restarts from zero if any of them becomes unavailable.
 * - It passes once the gates measuring it are no longer pending; a gate that fails stops the
 *   rollout and one that is inconclusive pauses it (nextWave), as on the canary.
 * - A wave none of whose nodes is left (gone, or NotReady before the update reached them)
 *   passes: there is nothing to judge it on.
 */
function evaluateWaveHold(open: GatedWave | undefined, facts: readonly NodeFacts[], now: Date, gatesPending?: { reason: string; nextAt: number }): WaveHold {
  if (open === undefined || open.passed) return { kind: 'none' };
  const members = facts.filter((f) => open.nodes.includes(f.name) && (!f.skipped || f.repair));
  if (members.length === 0) return { kind: 'passed-now', wave: open.wave };
  const names = members.map((f) => f.name);
  if (!members.every((f) => f.updatedAvailable)) return { kind: 'rolling', wave: open.wave, members: names };
  const since = open.availableSince ?? now.toISOString();
  if (gatesPending) return { kind: 'holding', wave: open.wave, members: names, since, until: Math.max(gatesPending.nextAt, now.getTime() + 1), gates: gatesPending.reason };
  return { kind: 'passed-now', wave: open.wave, since };
}

/** The wave the checkpoint keeps: a new one when this decision deletes outside an open wave, else the open one as it stands now. */
function nextGatedWave(open: GatedWave | undefined, hold: WaveHold, podsToDelete: readonly PodRef[], waveNumber: number): GatedWave | undefined {
  if (podsToDelete.length > 0 && hold.kind !== 'rolling') return { wave: waveNumber, nodes: [...new Set(podsToDelete.map((p) => p.node))].sort() };
  if (!open) return undefined;
  const { availableSince: _since, ...rest } = open;
  if (hold.kind === 'rolling') return { ...rest, nodes: [...new Set([...open.nodes, ...podsToDelete.map((p) => p.node)])].sort() };
  if (hold.kind === 'holding') return { ...rest, availableSince: hold.since };
  if (hold.kind === 'passed-now') return { ...rest, ...(hold.since ? { availableSince: hold.since } : {}), passed: true };
  return open;
}

function nameList(names: readonly string[], limit = 5): string {
  if (names.length <= limit) return names.join(', ');
  return `${names.slice(0, limit).join(', ')} and ${names.length - limit} more`;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function sortedBy<T>(items: T[], key: (t: T) => string): T[] {
  return items.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** What `phaseOf` decides from: the facts of one decision, as `nextWave` assessed them. */
interface PhaseInputs {
  policy: WavePolicy;
  k: number;
  nowMs: number;
  failed: WaveFailure | undefined;
  complete: boolean;
  tooManyNotReady: boolean;
  readyNodesDone: boolean;
  canary: CanaryState;
  members: string[];
  waveHold: WaveHold;
  deadlinePassed: boolean;
  idleMs: number;
  counted: NodeFacts[];
  skipped: NodeFacts[];
  skippedOutside: NodeFacts[];
  pendingSkipped: string[];
  unavailable: number;
  exposed: number;
  /** The exposed nodes that are NotReady: they prove nothing until they are Ready again. */
  exposedNotReady: string[];
  free: PodRef[];
  costly: PodRef[];
  freeNow: PodRef[];
  budget: number;
}

/**
 * The phase of a decision, the pods it deletes (only while progressing) and the sentence that says why.
 *
 * Assumptions / invariants:
 * - Every phase that waits on something outside the rollout (NotReady nodes, a canary that
 *   selects nothing, NotReady nodes that have not taken the template) or on the rollout's own
 *   pods turns `stalled` once the progress deadline has passed, naming what it waited for:
 *   nothing waits silently forever. Only a pause and a canary hold (which ends by itself) stop
 *   the clock.
 */
function phaseOf(x: PhaseInputs): { phase: WavePhase; podsToDelete: PodRef[]; reason: string } {
  const { policy, k, failed, canary, members, counted, unavailable } = x;
  const unavailableNodes = counted.filter((f) => f.availablePods.length === 0).map((f) => f.name);
  const unavailableText = `${unavailable} unavailable${unavailableNodes.length > 0 ? ` (${nameList(unavailableNodes)})` : ''}`;
  const notReadyText = x.skipped.length > 0 ? `, ${x.skipped.length} NotReady` : '';
  const progressText = `${counted.filter((f) => f.updatedAvailable).length}/${counted.length} nodes updated and available, ${unavailableText}`;
  if (failed) return { phase: 'stalled', podsToDelete: [], reason: `stopped: ${failed.reason}; deleting nothing more (${progressText})` };
  if (x.complete) {
    return { phase: 'complete', podsToDelete: [], reason: `complete: ${plural(counted.length, 'node runs', 'nodes run')} the updated template and ${counted.length === 1 ? 'is' : 'are'} available` };
  }
  if (policy.gates?.inconclusive) return { phase: 'paused', podsToDelete: [], reason: `paused: ${policy.gates.inconclusive}; deleting nothing until resumed (${progressText})` };
  if (policy.paused) return { phase: 'paused', podsToDelete: [], reason: `paused: deleting nothing (${progressText})` };
  const stalledFor = `no progress for ${Math.round(x.idleMs / SECOND_MS)}s (deadline ${policy.progressDeadlineSeconds}s)`;
  const waitingOn = (phase: WavePhase, text: string) => (x.deadlinePassed
    ? { phase: 'stalled' as const, podsToDelete: [], reason: `stalled: ${stalledFor} while ${text}` }
    : { phase, podsToDelete: [], reason: `${phase === 'waiting' ? 'waiting: ' : ''}${text}` });
  if (x.tooManyNotReady) {
    return waitingOn('waiting', `${plural(x.skippedOutside.length, 'desired node is', 'desired nodes are')} NotReady (${nameList(x.skippedOutside.map((f) => f.name))}), more than maxUnavailable ${k}; deleting nothing until enough of them are Ready again (${progressText})`);
  }
  if (x.waveHold.kind === 'holding') {
    return { phase: 'wave-hold', podsToDelete: [], reason: `wave ${x.waveHold.wave} (${nameList(x.waveHold.members)}) updated and available; held for its gates: ${x.waveHold.gates}` };
  }
  if (x.readyNodesDone) {
    return waitingOn('progressing', `every Ready node is updated and available; waiting for NotReady ${x.pendingSkipped.length === 1 ? 'node' : 'nodes'} ${nameList(x.pendingSkipped)} to take the new template`);
  }
  if (canary.kind === 'unmatched') {
    return waitingOn('waiting', `the canary (daemonset-gitops.io/canary: "${describeCanary(policy.canary!)}") selects no Ready node that should run this DaemonSet; deleting nothing`);
  }
  if (canary.kind === 'holding' && canary.gates !== undefined) {
    return { phase: 'canary-hold', podsToDelete: [], reason: `canary ${nameList(members)} updated and available for ${policy.canary?.holdSeconds ?? 0}s; held for its gates: ${canary.gates}` };
  }
  if (canary.kind === 'holding') {
    const leftS = Math.ceil((canary.until - x.nowMs) / SECOND_MS);
    return { phase: 'canary-hold', podsToDelete: [], reason: `canary ${nameList(members)} updated and available; holding ${leftS}s more of ${policy.canary?.holdSeconds ?? 0}s` };
  }
  if (x.deadlinePassed) {
    return { phase: 'stalled', podsToDelete: [], reason: `stalled: ${stalledFor}; deleting nothing (${progressText}${notReadyText})` };
  }
  const { free, costly, freeNow, budget, exposed } = x;
  const podsToDelete = [...freeNow, ...costly.slice(0, budget)];
  const scope = canary.kind === 'rolling' ? 'canary: ' : '';
  if (podsToDelete.length > 0) {
    const freeText = freeNow.length > 0 ? `${freeNow.length} already unavailable, ` : '';
    return { phase: 'progressing', podsToDelete, reason: `${scope}deleting ${plural(podsToDelete.length, 'old pod', 'old pods')} (${freeText}budget ${budget} of maxUnavailable ${k}; ${unavailable} unavailable${notReadyText})` };
  }
  if (free.length + costly.length > 0) {
    const notReadyExposed = x.exposedNotReady.length > 0 ? ` (NotReady: ${nameList(x.exposedNotReady)})` : '';
    const held = exposed >= k ? `${exposed} ${exposed === 1 ? 'node runs' : 'nodes run'} the update without being proven yet${notReadyExposed}` : `${unavailableText}${notReadyText}`;
    return { phase: 'progressing', podsToDelete, reason: `${scope}waiting: budget 0 of maxUnavailable ${k} with ${held}; ${plural(free.length + costly.length, 'old pod waits', 'old pods wait')}` };
  }
  return { phase: 'progressing', podsToDelete, reason: `${scope}waiting for replacements to become available (${progressText})` };
}

/** The checkpoint a decision leaves for the next one: what it deleted, which nodes it reached, how the canary stands. */
function nextCheckpoint(x: {
  checkpoint: WaveCheckpoint | undefined;
  at: string;
  facts: NodeFacts[];
  touched: Map<string, TouchedNode>;
  inFlightKept: WaveCheckpoint['inFlight'];
  podsToDelete: PodRef[];
  lastProgressAt: string;
  undrivenMs: number;
  waiting: boolean;
  updatedAvailable: number;
  failed: WaveFailure | undefined;
  canary: CanaryState;
  canaryNodes: string[] | undefined;
  canaryPassed: boolean;
}): WaveCheckpoint {
  const { checkpoint, at, facts, touched, podsToDelete, canary } = x;
  const readyByNode = new Map(facts.map((f) => [f.name, f.ready]));
  const inFlight = sortedBy([
    ...x.inFlightKept.filter((e) => !podsToDelete.some((p) => p.node === e.node)),
    ...podsToDelete.map((p) => ({ node: p.node, uid: p.uid, deletedAt: at })),
  ], (e) => e.node);
  const touchedNext = sortedBy([
    ...[...touched.values()].map((t) => (reachedWhileReady(t, facts) ? { ...t, readyAtDelete: true } : t)),
    ...podsToDelete.filter((p) => !touched.has(p.node)).map((p) => ({ node: p.node, readyAtDelete: readyByNode.get(p.node) === true, at })),
    ...facts.filter((f) => !touched.has(f.name) && f.inFlightUid === undefined && !podsToDelete.some((p) => p.node === f.name))
      .flatMap((f) => {
        const reached = reachedWithoutDeleteAs(f);
        return reached === undefined ? [] : [{ node: f.name, readyAtDelete: reached, at }];
      }),
  ], (t) => t.node);
  // A node to repair is repaired once it is Ready and runs only the updated, available pod: an
  // ordinary node from then on. Ready alone is not enough: the bad pod it still runs may not
  // have started yet, and break it a moment later.
  const doneByNode = new Map(facts.map((f) => [f.name, f.ready && isNodeDone(f)]));
  const repairNodes = (checkpoint?.repairNodes ?? []).filter((n) => doneByNode.get(n) !== true);

  const next: WaveCheckpoint = {
    startedAt: checkpoint?.startedAt ?? at,
    lastProgressAt: x.lastProgressAt,
    decidedAt: at,
    updatedAvailable: x.updatedAvailable,
    waves: (checkpoint?.waves ?? 0) + (podsToDelete.length > 0 ? 1 : 0),
    inFlight,
  };
  if (x.undrivenMs > 0) next.undrivenMs = x.undrivenMs;
  if (x.waiting) next.waitingSince = checkpoint?.waitingSince ?? at;
  if (touchedNext.length > 0) next.touched = touchedNext;
  if (repairNodes.length > 0) next.repairNodes = repairNodes;
  if (x.failed) next.failed = x.failed;
  if (x.canaryNodes !== undefined) next.canaryNodes = [...x.canaryNodes];
  // Kept once the canary has passed: it records when the canary proved itself.
  const canarySince = canary.kind === 'holding' || canary.kind === 'passed-now' ? canary.since
    : canary.kind === 'none' ? checkpoint?.canaryAvailableSince
    : undefined;
  if (canarySince !== undefined) next.canaryAvailableSince = canarySince;
  if (x.canaryPassed) next.canaryPassed = true;
  if (checkpoint?.earlierPodsReached) next.earlierPodsReached = true;
  if (checkpoint?.restores) next.restores = true;
  return next;
}

/**
 * Time since the checkpoint's decision that nobody drove the rollout: a gap longer than a
 * driving run ever leaves (DRIVEN_GAP_SECONDS), after a run that ended without handing the
 * rollout over (killed, timed out, out of memory). A run that ends cleanly records
 * `handedOffAt`, and the gap until the next run counts: the schedule is driving it.
 */
function undrivenSince(checkpoint: WaveCheckpoint | undefined, nowMs: number): number {
  if (checkpoint?.decidedAt === undefined || checkpoint.handedOffAt !== undefined) return 0;
  const decided = Date.parse(checkpoint.decidedAt);
  return Number.isNaN(decided) ? 0 : Math.max(0, nowMs - decided - DRIVEN_GAP_SECONDS * SECOND_MS);
}

/**
 * Decides the next wave of a managed rollout.
 *
 * Assumptions / invariants:
 * - One pod per node, on the desired nodes only (the caller computes them as the DaemonSet
 *   controller does). A desired node without an available pod is unavailable, whatever the
 *   reason: missing, Pending, crash-looping, or on a NotReady node.
 * - NotReady nodes come in three kinds. A node that this rollout deleted a pod from while it
 *   was Ready and that is NotReady now counts as unavailable; once it runs the update it is
 *   evidence that the update breaks nodes: the rollout stops for good (stalled, `failed` in
 *   the checkpoint) until resumed or replaced. A node an earlier revision broke
 *   (`repairNodes`, carried by `checkpointForNextRevision`) is unavailable by this product's
 *   doing and its old pod may be replaced although it is NotReady. Any other NotReady node is
 *   *skipped*: never deleted from and never evidence; when more than k desired nodes are
 *   skipped the rollout waits rather than roll the rest. A rollback (`restores`) repairs every
 *   NotReady node running a pod of another template than the one it restores, and is limited
 *   by the availability budget only, not by exposure: the template it restores proved itself.
 * - Budget: every desired node without an available pod counts against k, skipped ones
 *   included, as the DaemonSet controller counts them: available old pods are deleted only
 *   up to k - (unavailable + skipped). But while nothing this product did is unavailable
 *   (only skipped nodes are), one deletion is always allowed, so NotReady nodes alone never
 *   deadlock the rollout (kubernetes#117204): at most max(k, skipped + 1) nodes are then
 *   unavailable.
 * - Exposure: old pods that are already unavailable cost nothing to replace, but every
 *   deletion sends the update to one more node, and so does every node the controller fills
 *   without a deletion (no pod, only a terminating pod). No more than k nodes are ever
 *   exposed to an update that has not proven itself on them (available for
 *   max(minReadySeconds, SETTLE_SECONDS)): a broken update that shows within that time
 *   reaches at most k nodes beyond the canary.
 * - Updated pods, terminating pods, pods on nodes that are not desired and pods on NotReady
 *   nodes (but the repair nodes) are never deleted.
 * - The progress deadline counts only time the rollout was driven (see `undrivenSince`), and
 *   stops only while paused or holding a canary. Every waiting phase past it is `stalled`
 *   with the reason; when the wait ends, the clock starts again. A rollout stalled by the
 *   deadline deletes nothing and becomes progressing again as soon as more updated pods are
 *   available.
 * - Deterministic: the same inputs give the same decision; the checkpoint is not mutated.
 */
export function nextWave(obs: WaveObservation, declared: WavePolicy, checkpoint: WaveCheckpoint | undefined, now: Date): WaveDecision {
  const at = now.toISOString();
  const nowMs = now.getTime();
  let policy = declared;

  const desiredNames = new Set(obs.nodes.filter((n) => n.desired).map((n) => n.name));
  // A deletion whose node left the desired set will never be replaced: stop waiting for it.
  const inFlightKept = (checkpoint?.inFlight ?? []).filter((e) => desiredNames.has(e.node) && !replacementSeen(e, obs.pods));
  const touched = new Map((checkpoint?.touched ?? []).map((t) => [t.node, t]));
  // A rollback repairs every NotReady node that runs a pod of another template than the one it
  // restores: such a pod exists only where a later revision reached, recorded or not.
  const restores = checkpoint?.restores === true;
  const repairNodes = new Set([...(checkpoint?.repairNodes ?? []), ...(restores ? notReadyWithOutdatedPods(obs) : [])]);
  const facts = observeNodes(obs, inFlightKept, touched, repairNodes, policy.minReadySeconds, now, checkpoint?.earlierPodsReached === true);
  const counted = facts.filter((f) => !f.skipped);
  const skipped = facts.filter((f) => f.skipped);
  const notReadyNodes = skipped.map((f) => f.name);
  const brokenNodes = facts.filter((f) => !f.ready && f.touchedWhileReady).map((f) => f.name);

  const k = effectiveMaxUnavailable(policy.maxUnavailable, facts.length);
  const available = counted.filter((f) => f.availablePods.length > 0).length;
  const unavailable = counted.length - available;
  const updated = counted.filter((f) => f.hasUpdated).length;
  const updatedAvailable = counted.filter((f) => f.updatedAvailable).length;
  // Over every desired node: a skipped NotReady node the update reaches is exposed all the same.
  const exposedNodes = facts.filter(isExposed);
  const exposed = exposedNodes.length;

  // A repair of a node an earlier revision broke is work left, though the node is skipped.
  const repairLeft = facts.some((f) => f.repair && replaceablePod(f) !== undefined);
  // Done only where the update has proven itself: a node that breaks within the settle time must not let the rollout be recorded complete (and healthy).
  const readyNodesDone = counted.every((f) => isNodeDone(f) && (f.proven || !f.reachedByUpdate)) && !repairLeft;
  const pendingSkipped = skipped.filter((f) => !isSkippedNodeDone(f)).map((f) => f.name);
  // With every desired node NotReady the update has proven itself nowhere: not complete (nor healthy), whatever runs there.
  const allDone = readyNodesDone && pendingSkipped.length === 0 && (counted.length > 0 || facts.length === 0);

  const breaking = facts.filter(isBrokenByUpdate).map((f) => f.name);
  const gateFailure = policy.gates?.failed;
  const failed: WaveFailure | undefined = checkpoint?.failed ?? (breaking.length > 0 ? {
    at,
    reason: `the update broke ${plural(breaking.length, 'node', 'nodes')} (${nameList(breaking)}): Ready when this rollout deleted ${breaking.length === 1 ? 'its pod' : 'their pods'}, NotReady since ${breaking.length === 1 ? 'it' : 'they'} received the new template`,
    nodes: breaking,
  } : gateFailure ? { at, reason: gateFailure.reason, nodes: [...gateFailure.nodes] } : undefined);
  // An inconclusive gate pauses the rollout, as a pause by hand does, and says why.
  if (policy.gates?.inconclusive && !policy.paused) policy = { ...policy, paused: true };
  // Nodes broken by an earlier revision are this product's own damage: they never justify the extra deletion below.
  const skippedOutside = skipped.filter((f) => !f.repair);
  const repairing = skipped.length - skippedOutside.length;
  const tooManyNotReady = skippedOutside.length > k;

  const canaryPassedBefore = checkpoint?.canaryPassed === true;
  const members = policy.canary && !canaryPassedBefore ? canaryMembers(policy.canary, checkpoint?.canaryNodes, facts) : [];
  const canary = evaluateCanary(policy.canary, members, canaryPassedBefore, checkpoint?.canaryAvailableSince, facts, now, policy.gates?.pending);
  const canaryPassed = canary.kind === 'passed-now' || canaryPassedBefore;
  const canaryNodes = members.length > 0 ? members : checkpoint?.canaryNodes;
  // After the canary, each wave is held for its gates; a rollback restores a template that proved itself and is not held.
  const gatingWaves = policy.gateWaves === true && !restores && (canary.kind === 'none' || canary.kind === 'passed-now');
  const waveHold: WaveHold = gatingWaves ? evaluateWaveHold(checkpoint?.gatedWave, facts, now, policy.gates?.pending) : { kind: 'none' };
  // The last wave is judged too: the rollout is complete only once its gates have passed.
  const complete = allDone && waveHold.kind !== 'rolling' && waveHold.kind !== 'holding';

  // Which nodes this decision may touch: the canary's (and the nodes to repair) until it passes, then every node.
  const mayAct = !failed && !policy.paused && !tooManyNotReady && canary.kind !== 'holding' && canary.kind !== 'unmatched' && waveHold.kind !== 'holding';
  const inScope = !mayAct ? [] : canary.kind === 'rolling' ? facts.filter((f) => canary.members.includes(f.name) || f.repair)
    : waveHold.kind === 'rolling' ? facts.filter((f) => waveHold.members.includes(f.name) || f.repair)
    : facts;
  const free: PodRef[] = [];
  const costly: PodRef[] = [];
  for (const f of inScope) {
    const pod = replaceablePod(f);
    if (!pod) continue;
    (costsNoAvailability(f, pod) ? free : costly).push({ name: pod.name, uid: pod.uid, node: f.name });
  }
  // Retrying a deletion this rollout already made exposes no new node.
  const retried = free.filter((p) => inFlightKept.some((e) => e.uid === p.uid));
  // A rollback restores a template that proved itself before: only the availability budget limits it.
  const exposureLeft = restores ? Number.POSITIVE_INFINITY : Math.max(k - exposed, 0);
  const freeNow = [...retried, ...free.filter((p) => !retried.includes(p)).slice(0, exposureLeft)];
  const ours = unavailable + repairing;
  const room = Math.max(k - ours - skippedOutside.length, ours === 0 ? 1 : 0);
  const budget = Math.max(0, Math.min(room, costly.length, exposureLeft - (freeNow.length - retried.length)));

  const grew = checkpoint !== undefined && updatedAvailable > checkpoint.updatedAvailable;
  // Waiting on something outside the rollout (NotReady nodes, a canary that selects nothing);
  // when that ends, the clock starts again, and a rollout stalled by the wait goes on.
  const waiting = tooManyNotReady || canary.kind === 'unmatched' || (readyNodesDone && !allDone);
  const waitEnded = checkpoint?.waitingSince !== undefined && !waiting;
  const cannotStall = complete || policy.paused || canary.kind === 'holding' || canary.kind === 'passed-now' || waveHold.kind === 'holding' || waveHold.kind === 'passed-now';
  const progressed = checkpoint === undefined || grew || cannotStall || waitEnded;
  const progressAt = progressed ? at : checkpoint.lastProgressAt;
  const undrivenMs = progressed ? 0 : (checkpoint.undrivenMs ?? 0) + undrivenSince(checkpoint, nowMs);
  const idleMs = nowMs - Date.parse(progressAt) - undrivenMs;
  const deadlinePassed = !cannotStall && idleMs > policy.progressDeadlineSeconds * SECOND_MS;

  const counts = { desired: facts.length, updated, updatedAvailable, available, unavailable, maxUnavailable: k, budget, skipped: skipped.length };
  const { phase, podsToDelete, reason } = phaseOf({
    policy, k, nowMs, failed, complete, tooManyNotReady, readyNodesDone, canary, members, waveHold, deadlinePassed, idleMs,
    counted, skipped, skippedOutside, pendingSkipped, unavailable, exposed, exposedNotReady: exposedNodes.filter((f) => !f.ready).map((f) => f.name), free, costly, freeNow, budget,
  });

  const deletedNow = podsToDelete.length > 0;
  const lastProgressAt = deletedNow ? at : progressAt;
  const undrivenAfter = deletedNow ? 0 : undrivenMs;
  const next = nextCheckpoint({ checkpoint, at, facts, touched, inFlightKept, podsToDelete, lastProgressAt, undrivenMs: undrivenAfter, waiting, updatedAvailable, failed, canary, canaryNodes, canaryPassed });
  if (gatingWaves) {
    const gatedWave = nextGatedWave(checkpoint?.gatedWave, waveHold, podsToDelete, next.waves);
    if (gatedWave) next.gatedWave = gatedWave;
  }

  const clockRuns = (phase === 'progressing' || phase === 'waiting') && !cannotStall;
  const wakeAt = failed ? undefined : earliestWake({
    nowMs,
    minReady: facts.flatMap((f) => [...f.becomesAvailableAt, ...(f.provenAt !== undefined && isExposed(f) ? [f.provenAt] : [])]),
    canaryHoldEnds: canary.kind === 'holding' && !complete ? canary.until : waveHold.kind === 'holding' ? waveHold.until : undefined,
    // Stalling needs idle time strictly beyond the deadline, hence the extra millisecond.
    deadline: clockRuns ? Date.parse(lastProgressAt) + undrivenAfter + policy.progressDeadlineSeconds * SECOND_MS + 1 : undefined,
    // A driver that looks again this often is seen driving (`undrivenSince`).
    lookAgain: clockRuns ? nowMs + LOOK_AGAIN_SECONDS * SECOND_MS : undefined,
  });

  const decision: WaveDecision = { podsToDelete, phase, reason, checkpoint: next, readyNodesDone, notReadyNodes, brokenNodes, counts };
  if (wakeAt !== undefined) decision.wakeAt = wakeAt;
  return decision;
}

/** Desired NotReady nodes that run a pod of another template than the target, not going away. */
function notReadyWithOutdatedPods(obs: WaveObservation): string[] {
  const notReady = new Set(obs.nodes.filter((n) => n.desired && !n.ready).map((n) => n.name));
  return [...new Set(obs.pods.filter((p) => notReady.has(p.node) && !p.updated && !p.terminating).map((p) => p.node))];
}

/** The earliest moment, strictly after now, at which time alone could change the decision. */
function earliestWake(times: { nowMs: number; minReady: number[]; canaryHoldEnds?: number; deadline?: number; lookAgain?: number }): string | undefined {
  const candidates = [...times.minReady, times.canaryHoldEnds, times.deadline, times.lookAgain].filter((t): t is number => t !== undefined && Number.isFinite(t) && t > times.nowMs);
  return candidates.length === 0 ? undefined : new Date(Math.min(...candidates)).toISOString();
}

/**
 * Whether a new pod template for a managed DaemonSet may be applied now, given what the
 * cluster shows (its pods, the nodes, desired as for the template to apply). Returns why not,
 * or undefined. Pure.
 *
 * Assumptions / invariants:
 * - The DaemonSet controller puts the new template, with no deletion by anyone, on every
 *   desired node that has no pod or only pods going away, as soon as it is applied: no wave
 *   decision can keep those nodes from it. So a template change is applied only while at most
 *   maxUnavailable such nodes exist; with more, it waits (the controller fills them with the
 *   current template meanwhile) and the next pass applies it. Together with `nextWave`, which
 *   counts those nodes as exposed from the first decision, an update that breaks nodes reaches
 *   at most maxUnavailable nodes beyond the canary over its whole rollout.
 * - A DaemonSet created, or re-created by a rollback, has no pods: every node gets it at once,
 *   by design; the caller asks only for a template change of a live DaemonSet.
 */
export function holdBeforeApply(obs: WaveObservation, maxUnavailable: number | string): string | undefined {
  const desired = obs.nodes.filter((n) => n.desired).map((n) => n.name).sort();
  const filled = desired.filter((n) => !obs.pods.some((p) => p.node === n && !p.terminating));
  const k = effectiveMaxUnavailable(maxUnavailable, desired.length);
  if (filled.length <= k) return undefined;
  return `held: ${plural(filled.length, 'desired node has', 'desired nodes have')} no running pod (${nameList(filled)}), so the new template would reach ${filled.length === 1 ? 'it' : 'all of them'} at once without a deletion, more than maxUnavailable ${k}; applied by a pass once the DaemonSet controller has given them a pod`;
}
