/**
 * A reference world for managed rollouts across several revisions, crashes and racing
 * writers, and the judgement of a whole run from that world alone.
 *
 * The world (written from the Kubernetes definitions, never from lib/rollout/):
 * - Nodes with labels and taints, Ready or not. A node is NotReady during an outage, and
 *   while a started pod of a template that breaks nodes is on it. The node lifecycle
 *   controller taints a NotReady node `node.kubernetes.io/not-ready:NoExecute` and marks
 *   the pods on it not Ready (kwok does not; this world does).
 * - The DaemonSet controller under OnDelete: on every node where the DaemonSet should run
 *   (nodeSelector, required node affinity, NoSchedule/NoExecute taints against the
 *   template's tolerations plus the ones the controller adds to daemon pods) and that has no
 *   pod at all (a terminating pod is still a pod), it creates a pod of the DaemonSet's
 *   current template. Deletions take the grace period; a deleted DaemonSet's pods are
 *   garbage-collected the same way.
 * - A pod is available once Ready for minReadySeconds; Ready needs a started container, a
 *   Ready node and no deletion.
 *
 * The judgement reads only the world: which template's pods were ever created on which
 * node (exposure), which desired nodes have no available pod (unavailability), and what
 * the records say at the end. It knows nothing of `touched`, skip lists or checkpoints.
 *
 * The driver glue (`Run`) carries out the implementation's own decisions and records: the
 * pass mirrors lib/reconcile.ts and lib/apply.ts (repair from live, pin, write-ahead, apply,
 * `stateAfterApply`), the rollout loop mirrors lib/rollout/managed.ts (read the checkpoint,
 * observe, `nextWave`, write the decision conditionally, delete), the rollback mirrors
 * lib/rollback.ts step by step. Every step may be the last one of its process (a crash):
 * the next pass starts from what was written.
 */
import { holdBeforeApply, nextWave, type WaveDecision, type WaveNode, type WavePod, type WavePolicy } from '../../lib/rollout/wave';
import { changedOutsideSinceApply, isPaused, toWaveNode } from '../../lib/rollout/managed';
import { pendingRecreate, pinHolds, pinnedChangedOutside } from '../../lib/plan/plan';
import { managedRollbackSeed, seedManagedRollout, stateAfterApply, type Cause, type DaemonSetState, type ManagedSeed, type Pin, type RolloutState } from '../../lib/store/records';
import type { DesiredDaemonSet } from '../../lib/source/manifest';
import { specChangedByOthersSinceApply, withoutGeneration } from '../../lib/apply';
import type { LiveDaemonSet } from '../../lib/cluster/types';
import { REVISION_ANNOTATION } from '../../lib/labels';

export const T0 = Date.parse('2024-05-01T12:00:00.000Z');
const S = 1000;
const iso = (ms: number): string => new Date(T0 + ms).toISOString();
const secs = (ms: number): string => `${(ms / S).toFixed(1)}s`;

// ---- the definitions ----------------------------------------------------------------------

export type Behaviour = 'good' | 'crashloop' | 'breaks-node';
export interface Template { id: string; behaviour: Behaviour }

interface Taint { key: string; value?: string; effect: 'NoSchedule' | 'NoExecute' | 'PreferNoSchedule' }
interface Toleration { key?: string; operator: 'Exists' | 'Equal'; value?: string; effect?: string }

/** Where every template of this DaemonSet may run: its nodeSelector and tolerations. */
const NODE_SELECTOR = { pool: 'agents' };
const TOLERATIONS: Toleration[] = [{ key: 'dedicated', operator: 'Equal', value: 'agents', effect: 'NoSchedule' }];
/** What the DaemonSet controller adds to every daemon pod (AddOrUpdateDaemonPodTolerations). */
const CONTROLLER_TOLERATIONS: Toleration[] = [
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' },
];

function tolerates(t: Toleration, taint: Taint): boolean {
  if (t.effect !== undefined && t.effect !== taint.effect) return false;
  if (t.operator === 'Exists') return t.key === undefined || t.key === taint.key;
  return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
}

/** The DaemonSet controller's "should run here": the selector matches and every NoSchedule/NoExecute taint is tolerated. */
function shouldRun(labels: Record<string, string>, taints: Taint[]): boolean {
  if (!Object.entries(NODE_SELECTOR).every(([k, v]) => labels[k] === v)) return false;
  const all = [...TOLERATIONS, ...CONTROLLER_TOLERATIONS];
  return taints.filter((t) => t.effect !== 'PreferNoSchedule').every((taint) => all.some((t) => tolerates(t, taint)));
}

/** maxUnavailable as the DaemonSet controller resolves it: percent of desired rounded up, clamped; this product uses at least 1. */
export function budgetOf(maxUnavailable: number | string, desired: number): number {
  if (desired <= 0) return 0;
  const v = typeof maxUnavailable === 'number' ? maxUnavailable : Math.ceil((Number(maxUnavailable.replace('%', '')) * desired) / 100);
  return Math.max(1, Math.min(desired, v));
}

// ---- the world ----------------------------------------------------------------------------

export type StartPod = 'available' | 'none' | 'terminating' | 'crashloop';
export interface NodeSpec {
  name: string;
  /** false: tainted dedicated=other:NoSchedule, which the DaemonSet does not tolerate */
  eligible: boolean;
  pod: StartPod;
  /** NotReady (an outage) from the start until this time (ms), if set */
  notReadyUntil?: number;
}

interface Node { name: string; labels: Record<string, string>; ownTaints: Taint[]; outages: number; readySince?: number }
interface Pod {
  uid: string; name: string; node: string; template: string; owner: number;
  createdAt: number; startsAt: number; containerReady: boolean;
  ready: boolean; readySince?: number;
  deletedAt?: number; goneAt?: number;
  /** how the pod looked before the driver deleted it, at which observation, by which driver (its caches) */
  stale?: { observation: number; driver: number; ready: boolean; readySince?: number };
}
/**
 * templateSince: when the DaemonSet's template last changed (the controller bumps its template generation then, and labels every pod it creates with it);
 * generation: metadata.generation, which the API server moves with every change of the spec (here: of the template), and starts at 1 for a new object
 */
interface LiveDs { uid: number; revision: number; template: string; digest: string; annotations: Annotations; templateSince: number; generation: number; managedFields: ManagedField[] }
/** managedFields as the API server keeps them: per field manager, its operation, its last write and whether it owns spec fields */
interface ManagedField { manager: string; operation: 'Apply' | 'Update'; time: number; spec: boolean }
export interface Annotations { paused?: boolean; autoRollback?: boolean; canary?: number; label?: number }

type Timed = { at: number; seq: number; run: () => void };

export interface Delays { terminateS: number; createS: number; startS: number; breakAfterS: number }

export class World {
  now = 0;
  readonly log: string[] = [];
  readonly nodes = new Map<string, Node>();
  pods: Pod[] = [];
  ds?: LiveDs;
  /** every node a pod of each template was ever created on */
  readonly exposed = new Map<string, Set<string>>();
  private queue: Timed[] = [];
  private seq = 0;
  private uid = 0;
  private dsUid = 1;
  observations = 0;
  /** which driver (one set of watch caches) observes and deletes now */
  driver = 0;
  readonly templates = new Map<string, Template>();
  /** observers called after every change of the world (the judgement) */
  readonly watchers: (() => void)[] = [];
  /** the deletions by the driver, for the judgement */
  readonly onDriverDelete: ((pod: Pod, wasAvailable: boolean) => void)[] = [];

  constructor(nodes: NodeSpec[], readonly minReadySeconds: number, readonly delays: Delays, initial: Template, revision: number, digest: string, annotations: Annotations) {
    this.templates.set(initial.id, initial);
    this.ds = { uid: this.dsUid, revision, template: initial.id, digest, annotations, templateSince: -7200 * S, generation: 1, managedFields: [{ manager: 'daemonset-gitops', operation: 'Apply', time: -7200 * S, spec: true }] };
    for (const n of nodes) {
      const taints: Taint[] = n.eligible ? [] : [{ key: 'dedicated', value: 'other', effect: 'NoSchedule' }];
      this.nodes.set(n.name, { name: n.name, labels: { ...NODE_SELECTOR }, ownTaints: taints, outages: 0, readySince: -3600 * S });
      if (n.notReadyUntil !== undefined) this.outage(n.name, n.notReadyUntil, 'NotReady at the start');
      if (n.pod === 'none') continue;
      const p = this.newPod(n.name, initial.id, -3600 * S);
      if (n.pod === 'crashloop') p.containerReady = false;
      if (n.pod === 'terminating') this.remove(p, 'terminating at the start', 'system');
    }
    this.refresh();
    this.sync();
  }

  // -- definitions over the world --

  isNodeReady(name: string): boolean {
    const n = this.nodes.get(name);
    if (!n || n.outages > 0) return false;
    return !this.pods.some((p) => p.node === name && p.goneAt === undefined && this.templates.get(p.template)?.behaviour === 'breaks-node' && this.now >= p.startsAt + this.delays.breakAfterS * S);
  }

  taintsOf(name: string): Taint[] {
    const n = this.nodes.get(name)!;
    return [...n.ownTaints, ...(this.isNodeReady(name) ? [] : [{ key: 'node.kubernetes.io/not-ready', effect: 'NoExecute' as const }])];
  }

  desiredNodes(): string[] {
    return [...this.nodes.values()].filter((n) => shouldRun(n.labels, this.taintsOf(n.name))).map((n) => n.name).sort();
  }

  // The pods of a NotReady node are not Ready (as `refresh` marks them): also in the instant a
  // template breaks its node, before the event that refreshes the pods has run.
  private isAvailable(p: Pod): boolean {
    return p.ready && p.readySince !== undefined && this.now - p.readySince >= this.minReadySeconds * S && this.isNodeReady(p.node);
  }

  hasAvailablePod(node: string, template?: string): boolean {
    return this.pods.some((p) => p.node === node && p.goneAt === undefined && (template === undefined || p.template === template) && this.isAvailable(p));
  }

  unavailableNodes(): string[] {
    return this.desiredNodes().filter((n) => !this.hasAvailablePod(n));
  }

  /** NotReady by an outage (whatever runs there). */
  inOutage(name: string): boolean {
    return (this.nodes.get(name)?.outages ?? 0) > 0;
  }

  /** A pod of this template is on the node and not being deleted. */
  holds(node: string, template: string): boolean {
    return this.pods.some((p) => p.node === node && p.goneAt === undefined && p.deletedAt === undefined && p.template === template);
  }

  /** Nodes made NotReady by a template, now. */
  brokenNodes(): string[] {
    return [...this.nodes.keys()].filter((n) => this.nodes.get(n)!.outages === 0 && !this.isNodeReady(n)).sort();
  }

  /** The node runs only pods of this template, one of them available. */
  runsOnly(node: string, template: string): boolean {
    const here = this.pods.filter((p) => p.node === node && p.goneAt === undefined);
    return here.length > 0 && here.every((p) => p.template === template && p.deletedAt === undefined) && here.some((p) => this.isAvailable(p));
  }

  // -- what changes it --

  say(line: string): void {
    this.log.push(`t=${secs(this.now)} ${line}`);
  }

  at(at: number, run: () => void): void {
    this.queue.push({ at, seq: ++this.seq, run });
  }

  nextAt(): number | undefined {
    return this.queue.length ? Math.min(...this.queue.map((e) => e.at)) : undefined;
  }

  advanceTo(t: number): void {
    for (;;) {
      const due = this.queue.filter((e) => e.at <= t).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.queue.splice(this.queue.indexOf(due), 1);
      this.now = Math.max(this.now, due.at);
      due.run();
      this.refresh();
      this.sync();
      for (const w of this.watchers) w();
    }
    this.now = Math.max(this.now, t);
    this.refresh();
    for (const w of this.watchers) w();
  }

  outage(node: string, until: number, why: string): void {
    const n = this.nodes.get(node);
    if (!n) return;
    n.outages += 1;
    this.say(`node ${node} NotReady (${why}) until t=${secs(until)}`);
    this.at(until, () => {
      n.outages -= 1;
      if (n.outages === 0) this.say(`node ${node}: outage over`);
    });
  }

  /**
   * A write of a DaemonSet: this tool's server-side apply, or someone's `kubectl set image`
   * (an Update by another field manager, which takes over the fields it sets). Same uid unless
   * it was deleted.
   */
  applyDs(revision: number, template: Template, digest: string, annotations: Annotations, manager: { name: string; operation: 'Apply' | 'Update' } = { name: 'daemonset-gitops', operation: 'Apply' }): void {
    this.templates.set(template.id, template);
    if (!this.ds) this.dsUid += 1;
    const same = this.ds !== undefined && this.ds.template === template.id;
    const templateSince = same ? this.ds!.templateSince : this.now;
    const generation = !this.ds ? 1 : same ? this.ds.generation : this.ds.generation + 1;
    // A forced apply takes back every field another manager held: that manager then owns none of the spec.
    const others = (this.ds?.managedFields ?? []).filter((f) => f.manager !== manager.name).map((f) => (manager.operation === 'Apply' ? { ...f, spec: false } : f));
    const managedFields = [...others, { manager: manager.name, operation: manager.operation, time: this.now, spec: true }];
    this.ds = { uid: this.dsUid, revision, template: template.id, digest, annotations, templateSince, generation, managedFields };
    this.say(`DaemonSet applied: revision ${revision}, template ${template.id} (${template.behaviour}), ${JSON.stringify(annotations)}`);
    this.sync();
    for (const w of this.watchers) w();
  }

  /** kubectl delete ds (cascade background): the garbage collector deletes its pods. */
  deleteDs(): void {
    if (!this.ds) return;
    const uid = this.ds.uid;
    this.ds = undefined;
    this.say('DaemonSet deleted');
    for (const p of this.pods.filter((x) => x.owner === uid && x.deletedAt === undefined)) this.remove(p, 'garbage-collected', 'system');
    for (const w of this.watchers) w();
  }

  /** The driver's DELETE of a pod, with its uid as precondition. */
  deletePod(uid: string): void {
    const p = this.pods.find((x) => x.uid === uid && x.goneAt === undefined);
    if (!p || p.deletedAt !== undefined) return;
    const wasAvailable = this.isAvailable(p);
    p.stale = { observation: this.observations, driver: this.driver, ready: p.ready, readySince: p.readySince };
    this.remove(p, 'deleted by the driver', 'driver');
    this.refresh();
    for (const f of this.onDriverDelete) f(p, wasAvailable);
    this.sync();
    for (const w of this.watchers) w();
  }

  private remove(p: Pod, why: string, by: string): void {
    p.deletedAt = this.now;
    if (by !== 'driver') this.say(`  pod ${p.name} (${p.template}) on ${p.node} ${why}`);
    else this.say(`  DELETE ${p.name} (${p.template}) on ${p.node}${this.isNodeReady(p.node) ? '' : ' (node NotReady)'}`);
    this.at(this.now + this.delays.terminateS * S, () => {
      p.goneAt = this.now;
    });
  }

  private newPod(node: string, template: string, at: number): Pod {
    this.uid += 1;
    const p: Pod = { uid: `uid-${this.uid}`, name: `agent-${node}-${this.uid}`, node, template, owner: this.ds!.uid, createdAt: at, startsAt: at, containerReady: false, ready: false };
    this.pods.push(p);
    let set = this.exposed.get(template);
    if (!set) this.exposed.set(template, (set = new Set()));
    set.add(node);
    if (at >= 0) {
      p.startsAt = at + this.delays.startS * S;
      const behaviour = this.templates.get(template)?.behaviour;
      this.at(p.startsAt, () => {
        if (behaviour !== 'crashloop') p.containerReady = true;
      });
      if (behaviour === 'breaks-node') this.at(p.startsAt + this.delays.breakAfterS * S, () => undefined);
    } else {
      p.containerReady = true;
    }
    return p;
  }

  /** The DaemonSet controller under OnDelete: a pod of the current template on each desired node without one. */
  private sync(): void {
    const ds = this.ds;
    if (!ds) return;
    for (const node of this.desiredNodes()) {
      if (this.pods.some((p) => p.node === node && p.goneAt === undefined)) continue;
      if (this.queue.some((e) => (e as Timed & { create?: string }).create === node)) continue;
      const e: Timed & { create?: string } = {
        at: this.now + this.delays.createS * S,
        seq: ++this.seq,
        create: node,
        run: () => {
          if (!this.ds || !this.desiredNodes().includes(node) || this.pods.some((p) => p.node === node && p.goneAt === undefined)) return;
          const p = this.newPod(node, this.ds.template, this.now);
          this.say(`  controller creates ${p.name} (${p.template}) on ${node}`);
        },
      };
      this.queue.push(e);
    }
  }

  /** Pod Ready condition: container started and Ready, node Ready (the node controller marks pods on a NotReady node not Ready), not deleted. */
  private refresh(): void {
    this.pods = this.pods.filter((p) => p.goneAt === undefined || this.now - p.goneAt < 1);
    for (const p of this.pods) {
      const ready = p.goneAt === undefined && p.deletedAt === undefined && p.containerReady && this.isNodeReady(p.node);
      if (ready && !p.ready) p.readySince = this.now;
      if (!ready) p.readySince = undefined;
      p.ready = ready;
    }
    this.pods = this.pods.filter((p) => p.goneAt === undefined);
  }

  /**
   * What the driver's watch caches show; with `lagging`, pods it deleted at its previous look
   * still look as before. Only its own deletions: every driver opens its caches with a LIST
   * without a resourceVersion, which the API server answers with the latest state (a
   * consistent read), so a deletion made before it began shows.
   */
  observe(lagging: boolean, counted = true): { nodes: WaveNode[]; pods: WavePod[] } {
    if (counted) this.observations += 1;
    const ds = this.ds!;
    const pods = this.pods.filter((p) => p.owner === ds.uid).map((p): WavePod => {
      const stale = lagging && p.stale && p.stale.driver === this.driver && p.stale.observation === this.observations - 1 ? p.stale : undefined;
      const ready = stale ? stale.ready : p.ready;
      const readySince = stale ? stale.readySince : p.readySince;
      const updated = p.template === ds.template;
      // The pod-template-generation label: created since the DaemonSet's template last changed.
      return { name: p.name, uid: p.uid, node: p.node, updated, ready, ...(ready && readySince !== undefined ? { readySince: iso(readySince) } : {}), terminating: !stale && p.deletedAt !== undefined, ...(updated ? { sinceApply: p.createdAt >= ds.templateSince } : {}) };
    }).sort((a, b) => (a.name < b.name ? -1 : 1));
    // The implementation's own view of a node (eligibility.ts), from the node as the API shows it.
    const nodes = [...this.nodes.values()].map((n) => toWaveNode({
      metadata: { name: n.name, labels: { ...n.labels } },
      spec: { taints: this.taintsOf(n.name) },
      status: { conditions: [{ type: 'Ready', status: this.isNodeReady(n.name) ? 'True' : 'False' }] },
    }, { nodeSelector: NODE_SELECTOR, tolerations: TOLERATIONS }));
    return { nodes, pods };
  }

  describeNode(n: string): string {
    return `[${this.pods.filter((p) => p.node === n).map((p) => `${p.template}${p.deletedAt !== undefined ? '†' : this.isAvailable(p) ? '+' : p.ready ? '~' : '-'}`).join(' ')}]${this.isNodeReady(n) ? '' : ' NotReady'}`;
  }

  describe(): string {
    return [...this.nodes.keys()].sort().map((n) => {
      const here = this.pods.filter((p) => p.node === n).map((p) => `${p.template}${p.deletedAt !== undefined ? '†' : this.isAvailable(p) ? '+' : p.ready ? '~' : '-'}`);
      return `${n}${this.isNodeReady(n) ? '' : '(NotReady)'}[${here.join(' ')}]`;
    }).join(' ');
  }
}

// ---- the store: state.json and revision snapshots, with conditional writes -----------------

export interface Snapshot {
  revision: number; template: Template; digest: string; annotations: Annotations; cause: Cause; rollbackTo?: number; pin?: Pin; managedSeed?: ManagedSeed; outcome: string;
  /** the pod template of the live DaemonSet this revision replaced (the snapshot's `replaced`) */
  replacedTemplate?: string;
}

export class Store {
  state?: DaemonSetState;
  /** the ETag of state.json: every write changes it */
  etag = 0;
  readonly revisions = new Map<number, Snapshot>();
  /** observers of every write of state.json (the judgement) */
  readonly onWrite: ((before: DaemonSetState | undefined, after: DaemonSetState) => void)[] = [];

  read(): { state?: DaemonSetState; etag: number } {
    return { state: this.state ? structuredClone(this.state) : undefined, etag: this.etag };
  }

  /** A write conditional on the ETag read (If-Match): false when the state changed since. */
  put(next: DaemonSetState, ifMatch: number): boolean {
    if (ifMatch !== this.etag) return false;
    const before = this.state;
    this.state = structuredClone(next);
    this.etag += 1;
    for (const f of this.onWrite) f(before, this.state);
    return true;
  }

  /** store.updateState: read-modify-write until it lands. */
  update(change: (cur: DaemonSetState | undefined) => DaemonSetState | undefined): DaemonSetState | undefined {
    const { state, etag } = this.read();
    const next = change(state);
    if (!next) return state;
    this.put(next, etag);
    return next;
  }

  claim(s: Omit<Snapshot, 'revision' | 'replacedTemplate'>, replaced: LiveDs | undefined): Snapshot {
    const n = Math.max(0, ...this.revisions.keys()) + 1;
    const full: Snapshot = { ...s, revision: n, ...(replaced ? { replacedTemplate: replaced.template } : {}) };
    this.revisions.set(n, full);
    return full;
  }
}

// ---- the scenario -------------------------------------------------------------------------

export type GitChange =
  | { kind: 'metadata'; what: 'auto-rollback' | 'label' | 'paused' | 'unpaused' }
  | { kind: 'template'; behaviour: Behaviour };
export type Event =
  | { atS: number; kind: 'git'; change: GitChange }
  | { atS: number; kind: 'drift' }
  | { atS: number; kind: 'rollback'; recreate: boolean }
  | { atS: number; kind: 'pause' | 'resume' | 'unpin'; racing: boolean }
  | { atS: number; kind: 'outage'; node: number; forS: number };

export interface Scenario {
  nodes: NodeSpec[];
  maxUnavailable: number | string;
  minReadySeconds: number;
  canary?: number;
  autoRollback: boolean;
  /** the first template pushed to Git (the rollout this run begins with) */
  first: Behaviour;
  events: Event[];
  delays: Delays;
  /** per observation, cycled: whether the driver's caches lag its last deletions */
  lag: boolean[];
  /** global step numbers (counted over every pass) at which the process running that step dies */
  crashes: number[];
  /** named steps at whose first occurrence the process dies (for the tables) */
  crashAtNamed?: string[];
  progressDeadlineSeconds: number;
  passEveryS: number;
}

/** Every step at which a process of this world may die. */
export const STEPS = [
  'pass: start', 'pass: after repair from live',
  'apply: after write-ahead', 'apply: after the delete of a recreate', 'apply: after the apply', 'apply: after the state write',
  'rollback: start', 'rollback: after write-ahead', 'rollback: after recording the recreate', 'rollback: after the delete', 'rollback: after the apply', 'rollback: after the state write',
  'driver: before reading the state', 'driver: after writing the decision', 'driver: after a delete',
] as const;

const NS = 'agents';
const NAME = 'agent';
const GOOD0: Template = { id: 'T0', behaviour: 'good' };

class Crash extends Error {}

/** Git as the pass reads it. */
interface Git { template: Template; digest: string; annotations: Annotations; meta: number }

/**
 * One whole run: the passes of the reconciler (every `passEveryS`), the operator's
 * commands and the world's events, with crashes; returns the story.
 */
export class Run {
  readonly world: World;
  readonly store = new Store();
  git: Git;
  step = 0;
  readonly decisions: string[] = [];
  private lagIndex = 0;
  private templates = 0;
  /** when a rollback --recreate deleted the DaemonSet */
  recreatedAt?: number;
  private readonly crashedAt = new Set<string>();
  /** the steps at which a process died, in order */
  readonly crashes: string[] = [];
  /** what happened, by kind, for the premises of a property */
  readonly happened: Record<string, number> = {};

  count(what: string): void {
    this.happened[what] = (this.happened[what] ?? 0) + 1;
  }

  constructor(readonly sc: Scenario) {
    this.world = new World(sc.nodes, sc.minReadySeconds, sc.delays, GOOD0, 1, 'T0/0', this.baseAnnotations());
    const startedAt = iso(-3600 * S);
    this.store.revisions.set(1, { revision: 1, template: GOOD0, digest: 'T0/0', annotations: this.baseAnnotations(), cause: 'create', outcome: 'healthy' });
    const s = stateAfterApply(undefined, { namespace: NS, name: NAME, revision: 1, digest: 'T0/0', mode: 'managed', generation: 1, at: startedAt, gitDigest: 'T0/0' });
    s.rollout = { ...s.rollout!, phase: 'complete', finishedAt: startedAt };
    s.lastHealthyRevision = 1;
    this.store.put(s, 0);
    this.git = { template: this.newTemplate(sc.first), digest: '', annotations: this.baseAnnotations(), meta: 0 };
    this.git.digest = `${this.git.template.id}/0`;
  }

  private baseAnnotations(): Annotations {
    return { ...(this.sc.canary ? { canary: this.sc.canary } : {}), ...(this.sc.autoRollback ? { autoRollback: true } : {}) };
  }

  private newTemplate(behaviour: Behaviour): Template {
    this.templates += 1;
    return { id: `T${this.templates}`, behaviour };
  }

  /** A step of some process: the crash list may end that process here. */
  private at(what: string): void {
    this.step += 1;
    const named = this.sc.crashAtNamed?.includes(what) && !this.crashedAt.has(what);
    if (named) this.crashedAt.add(what);
    if (this.sc.crashes.includes(this.step) || named) {
      this.crashes.push(what);
      this.world.say(`  ** crash at step ${this.step}: ${what} **`);
      throw new Crash(what);
    }
  }

  /** Runs the scenario: events and passes, then passes until the end. */
  play(untilS: number): void {
    const events = [...this.sc.events].sort((a, b) => a.atS - b.atS);
    for (const e of events) this.world.at(e.atS * S, () => this.event(e));
    for (let t = 0; t <= untilS * S; t += this.sc.passEveryS * S) {
      this.world.advanceTo(t);
      this.guarded(`pass at t=${secs(t)}`, () => this.pass(t + (this.sc.passEveryS - 5) * S));
    }
  }

  private guarded(what: string, f: () => void): void {
    try {
      f();
    } catch (err) {
      if (!(err instanceof Crash)) throw err;
      this.world.say(`  (${what} ended by the crash)`);
    }
  }

  private event(e: Event): void {
    switch (e.kind) {
      case 'git': {
        const c = e.change;
        this.git.meta += 1;
        // After a rollback, what people push is a fix: Git's next version of a pinned DaemonSet holds a good template.
        if (this.store.state?.pin && this.git.template.behaviour !== 'good') this.git.template = this.newTemplate('good');
        if (c.kind === 'template') this.git.template = this.newTemplate(c.behaviour);
        else if (c.what === 'auto-rollback') this.git.annotations = { ...this.git.annotations, autoRollback: true };
        else if (c.what === 'paused') this.git.annotations = { ...this.git.annotations, paused: true };
        else if (c.what === 'unpaused') this.git.annotations = { ...this.git.annotations, paused: false };
        else this.git.annotations = { ...this.git.annotations, label: this.git.meta };
        this.git.digest = `${this.git.template.id}/${this.git.meta}`;
        this.count(c.kind === 'template' ? 'git template change' : 'git metadata change');
        this.world.say(`git: ${c.kind === 'template' ? `new template ${this.git.template.id} (${c.behaviour})` : `metadata change (${c.what})`}, digest ${this.git.digest}`);
        return;
      }
      case 'drift': {
        const ds = this.world.ds;
        if (!ds) return;
        this.world.say('kubectl set image (drift)');
        this.world.applyDs(ds.revision, { id: `${ds.template}-drift`, behaviour: 'good' }, ds.digest, ds.annotations, { name: 'kubectl-set', operation: 'Update' });
        return;
      }
      case 'rollback':
        this.world.say(`operator: rollback${e.recreate ? ' --recreate' : ''}`);
        this.guarded('rollback', () => this.rollback(e.recreate, this.world.now + 25 * S));
        return;
      case 'outage': {
        const names = [...this.world.nodes.keys()].sort();
        this.world.outage(names[e.node % names.length], this.world.now + e.forS * S, 'outage');
        return;
      }
      default: {
        const kind = e.kind;
        const change = (cur: DaemonSetState | undefined): DaemonSetState | undefined => {
          if (!cur) return undefined;
          if (kind === 'pause') return { ...cur, paused: { at: iso(this.world.now), by: 'operator' } };
          if (kind === 'resume') return { ...cur, paused: undefined };
          return { ...cur, pin: undefined };
        };
        // Nobody unpins while Git still holds the version that was rolled back.
        if (kind === 'unpin' && this.git.template.behaviour !== 'good') return;
        // A racing write lands at the driver's next write; one that is not racing lands now, after any still waiting.
        this.flushRacing();
        if (e.racing) this.racing = change;
        else this.store.update(change);
        this.world.say(`operator: ${kind}${e.racing ? ' (lands between the driver\'s read and write)' : ''}`);
      }
    }
  }

  /** A write by another process that lands between the driver's next read and its write. */
  private racing?: (cur: DaemonSetState | undefined) => DaemonSetState | undefined;

  private flushRacing(): void {
    const change = this.racing;
    this.racing = undefined;
    if (change) this.store.update(change);
  }

  // ---- the pass (lib/reconcile.ts) --

  private pass(until: number): void {
    this.at('pass: start');
    this.repairFromLive();
    this.at('pass: after repair from live');
    this.planAndApply();
    this.drive(until);
    this.flushRacing();
    const s = this.store.read().state;
    const auto = this.world.ds?.annotations.autoRollback ?? false;
    // A pinned DaemonSet is not planned for an apply, so a pass does not roll it back again.
    if (s?.rollout?.phase === 'stalled' && auto && !pinHolds(s, { digest: this.git.digest } as DesiredDaemonSet) && s.lastHealthyRevision && s.lastHealthyRevision !== s.currentRevision) {
      this.world.say('auto-rollback: the rollout stalled');
      this.rollback(false, until + 25 * S);
    }
  }

  /** lib/apply.ts repairFromLive: a run killed after its apply left the cluster a revision ahead of S3. */
  private repairFromLive(): void {
    const live = this.world.ds;
    const state = this.store.read().state;
    if (!live || (state && state.currentRevision >= live.revision)) return;
    const snap = this.store.revisions.get(live.revision);
    if (!snap) return;
    if (snap.outcome === 'pending') snap.outcome = 'progressing';
    this.settlePrevious(snap, state?.currentRevision);
    const keep = specChangedByOthersSinceApply(liveObject(live)) ? withoutGeneration : (s: DaemonSetState) => s;
    this.store.update((cur) => keep(seedManagedRollout(stateAfterApply(cur, { namespace: NS, name: NAME, revision: live.revision, digest: snap.digest, mode: 'managed', generation: live.generation, at: iso(this.world.now), gitDigest: cur?.gitDigest, pin: snap.pin, message: 'recorded after an interrupted run', sameTemplate: snap.replacedTemplate === live.template, cause: snap.cause }), snap.managedSeed)));
    this.world.say(`pass: recorded revision ${live.revision} from the live DaemonSet`);
  }

  private settlePrevious(applied: Snapshot, previous: number | undefined): void {
    if (!previous || previous === applied.revision) return;
    const prev = this.store.revisions.get(previous);
    if (!prev) return;
    if (applied.cause === 'rollback') prev.outcome = 'rolled-back';
    else if (prev.outcome === 'progressing' || prev.outcome === 'pending') prev.outcome = 'superseded';
  }

  /** lib/plan (pin, create, update, drift) and lib/apply.ts (write-ahead, apply, record). */
  private planAndApply(): void {
    const state = this.store.read().state;
    const live = this.world.ds;
    const desired = { digest: this.git.digest } as DesiredDaemonSet;
    // plan.ts pendingRecreate, then rollback.ts completeRecreate: a recreate left between its delete and its apply is completed, never Git's version.
    const recreate = pendingRecreate({ state, desired, live: live && liveObject(live) });
    if (recreate !== undefined) {
      const snap = this.store.revisions.get(recreate)!;
      this.world.say(`pass: completing the rollback --recreate written ahead as revision ${recreate}`);
      this.count('recreate completed by a pass');
      if (live) {
        this.world.deleteDs();
        this.recreatedAt ??= this.world.now;
        this.at('apply: after the delete of a recreate');
      }
      this.applyPending(snap, snap.pin?.gitDigest ?? state?.gitDigest ?? null, state, 'apply');
      return;
    }
    // plan.ts pinnedChangedOutside, then rollback.ts restorePinned: the pinned revision's own snapshot again, as a drift correction, the pin kept.
    const restore = pinnedChangedOutside({ state, desired, live: live && liveObject(live) });
    if (restore !== undefined) {
      const snap = this.store.revisions.get(restore)!;
      this.world.say(`pass: restoring pinned revision ${restore}, changed outside`);
      this.applyRevision({ template: snap.template, digest: snap.digest, annotations: snap.annotations, cause: 'drift-correction', gitDigest: state?.pin?.gitDigest ?? null });
      return;
    }
    if (pinHolds(state, desired)) return;
    const current = state ? this.store.revisions.get(state.currentRevision) : undefined;
    let cause: Cause | undefined;
    if (!live) cause = 'create';
    else if (!state || state.appliedDigest !== this.git.digest || state.pin) cause = 'git-change';
    else if (current && live.template !== current.template.id) cause = 'drift-correction';
    if (!cause) {
      // reconcile.ts acceptGeneration: the dry run (here: the template) found the live DaemonSet equal to the revision.
      if (live && state && current && live.revision === state.currentRevision && state.generation !== live.generation) {
        this.store.update((cur) => (cur && cur.currentRevision === state.currentRevision ? { ...cur, generation: live.generation } : undefined));
      }
      return;
    }
    // reconcile.ts holdUnfilled: a template change waits while more desired nodes than maxUnavailable have no running pod.
    if (live && cause !== 'create' && this.git.template.id !== live.template) {
      const held = holdBeforeApply(this.world.observe(false, false), this.sc.maxUnavailable);
      if (held) {
        this.count('template change held');
        this.world.say(`pass: ${held}`);
        return;
      }
    }
    this.applyRevision({ template: this.git.template, digest: this.git.digest, annotations: this.git.annotations, cause, pin: state?.pin ? null : undefined, gitDigest: this.git.digest });
  }

  private applyRevision(req: { template: Template; digest: string; annotations: Annotations; cause: Cause; rollbackTo?: number; pin?: Pin | null; gitDigest: string | null }): { revision: number } {
    const before = this.store.read().state;
    const pin = req.pin === undefined ? before?.pin : req.pin ?? undefined;
    const snap = this.store.claim({ template: req.template, digest: req.digest, annotations: req.annotations, cause: req.cause, rollbackTo: req.rollbackTo, pin, outcome: 'pending' }, this.world.ds);
    this.count(`apply ${req.cause}`);
    this.world.say(`write-ahead: revision ${snap.revision} (${req.cause}${req.rollbackTo ? ` to ${req.rollbackTo}` : ''}), template ${req.template.id}`);
    this.at('apply: after write-ahead');
    return this.applyPending(snap, req.gitDigest, before, 'apply');
  }

  private applyPending(snap: Snapshot, gitDigest: string | null, before: DaemonSetState | undefined, who: 'apply' | 'rollback'): { revision: number } {
    this.world.applyDs(snap.revision, snap.template, snap.digest, snap.annotations);
    this.at(`${who}: after the apply`);
    snap.outcome = 'progressing';
    this.settlePrevious(snap, before?.currentRevision);
    // apply.ts: the seed (a managed rollback's, written ahead) goes with the state write of the revision itself.
    this.store.update((cur) => seedManagedRollout(stateAfterApply(cur, { namespace: NS, name: NAME, revision: snap.revision, digest: snap.digest, mode: 'managed', generation: this.world.ds?.generation, at: iso(this.world.now), gitDigest, pin: snap.pin, sameTemplate: snap.replacedTemplate === snap.template.id, cause: snap.cause }), snap.managedSeed));
    this.at(`${who}: after the state write`);
    return { revision: snap.revision };
  }

  // ---- the rollback (lib/rollback.ts) --

  private rollback(recreate: boolean, until: number): void {
    this.at('rollback: start');
    const state = this.store.read().state;
    const target = state?.lastHealthyRevision;
    if (!state || !target || target === state.currentRevision) return;
    const snapTarget = this.store.revisions.get(target)!;
    const pin: Pin = { revision: target, reason: `rollback to revision ${target}`, at: iso(this.world.now), gitDigest: this.git.digest };
    const snap = this.store.claim({ template: snapTarget.template, digest: snapTarget.digest, annotations: { ...snapTarget.annotations, canary: undefined }, cause: 'rollback', rollbackTo: target, pin, managedSeed: managedRollbackSeed(state), outcome: 'pending' }, this.world.ds);
    this.count(recreate ? 'rollback --recreate' : 'rollback');
    this.world.say(`rollback: write-ahead revision ${snap.revision} (to ${target}), pinned`);
    this.at('rollback: after write-ahead');
    const live = this.world.ds;
    if (recreate && live) {
      // rollback.ts recreateFrom: the pin and the pending recreate recorded before the delete.
      this.store.update((cur) => ({ ...(cur ?? state), pin, recreate: { revision: snap.revision, at: iso(this.world.now), replacedUid: String(live.uid) }, updatedAt: iso(this.world.now) }));
      this.at('rollback: after recording the recreate');
      this.world.deleteDs();
      this.recreatedAt ??= this.world.now;
      this.at('rollback: after the delete');
    }
    this.applyPending(snap, pin.gitDigest, state, 'rollback');
    this.drive(until);
  }

  // ---- the driver (lib/rollout/managed.ts) --

  /** managed.ts driveManaged: the loop, then the hand-over of a rollout still under way when the run stops driving it cleanly. */
  private drive(until: number): void {
    const revision = this.world.ds?.revision;
    this.world.driver += 1;
    this.driveLoop(until);
    if (revision === undefined) return;
    const at = iso(this.world.now);
    this.store.update((cur) => {
      const stored = cur?.rollout;
      const cp = stored?.managed?.checkpoint;
      const wavePhase = stored?.managed?.wavePhase;
      if (!cur || !stored || !cp || cur.currentRevision !== revision || stored.revision !== revision || (wavePhase !== 'progressing' && wavePhase !== 'waiting')) return undefined;
      return { ...cur, rollout: { ...stored, managed: { ...stored.managed, checkpoint: { ...cp, handedOffAt: at } } }, updatedAt: at };
    });
  }

  private driveLoop(until: number): void {
    for (let i = 0; i < 200; i += 1) {
      this.at('driver: before reading the state');
      const read = this.store.read();
      const state = read.state;
      const ds = this.world.ds;
      if (!state || !ds || state.currentRevision !== ds.revision) return;
      if (!state.rollout || state.rollout.mode !== 'managed' || state.rollout.revision !== ds.revision) return;
      if (state.rollout.phase === 'complete') return;
      // managed.ts: someone else's template is not driven or judged for this revision.
      const drifted = changedOutsideSinceApply(state, liveObject(ds));
      if (drifted) {
        this.count('drive refused on a spec changed outside');
        this.world.say(`driver (rev ${ds.revision}): ${drifted}`);
        return;
      }
      const record = state.rollout.managed;
      const lagging = this.sc.lag.length > 0 && this.sc.lag[this.lagIndex++ % this.sc.lag.length];
      const obs = this.world.observe(lagging);
      const a = ds.annotations;
      const policy: WavePolicy = {
        maxUnavailable: this.sc.maxUnavailable,
        minReadySeconds: this.sc.minReadySeconds,
        ...(a.canary ? { canary: { count: a.canary, holdSeconds: 0 } } : {}),
        paused: isPaused(Boolean(a.paused), Boolean(state.paused), record?.checkpoint),
        progressDeadlineSeconds: this.sc.progressDeadlineSeconds,
      };
      const now = new Date(T0 + this.world.now);
      const d = nextWave(obs, policy, record?.checkpoint ? structuredClone(record.checkpoint) : undefined, now);
      this.decisions.push(`t=${secs(this.world.now)} rev ${ds.revision}: ${d.phase}${d.podsToDelete.length ? ` delete [${d.podsToDelete.map((p) => p.node).join(', ')}]` : ''}: ${d.reason}`);
      this.world.say(`decide (rev ${ds.revision}${lagging ? ', lagging cache' : ''}): ${d.phase}${d.podsToDelete.length ? `, delete [${d.podsToDelete.map((p) => p.node).join(', ')}]` : ''}: ${d.reason}`);
      if (this.racing) {
        const change = this.racing;
        this.racing = undefined;
        this.store.update(change);
      }
      const next = { ...state, rollout: toRollout(state.rollout, ds.revision, d, policy.paused), updatedAt: now.toISOString() };
      if (d.phase === 'complete') next.lastHealthyRevision = ds.revision;
      if (!this.store.put(next, read.etag)) {
        this.count('decision refused by a racing write');
        this.world.say('  the state changed while deciding: deciding again');
        continue;
      }
      this.at('driver: after writing the decision');
      for (const p of d.podsToDelete) {
        this.world.deletePod(p.uid);
        this.at('driver: after a delete');
      }
      if (['complete', 'stalled', 'paused'].includes(d.phase) || (d.readyNodesDone && d.phase !== 'complete')) return;
      const wake = d.wakeAt ? Date.parse(d.wakeAt) - T0 : undefined;
      const next2 = Math.min(this.world.nextAt() ?? Infinity, wake ?? Infinity, this.world.now + 10 * S);
      if (next2 > until) return;
      this.world.advanceTo(Math.max(next2, this.world.now));
    }
  }
}

/** The live DaemonSet as plan.ts, apply.ts and managed.ts read it: its uid, generation, managedFields and the revision stamped on it. */
function liveObject(ds: LiveDs): LiveDaemonSet {
  const managedFields = ds.managedFields.map((f) => ({ manager: f.manager, operation: f.operation, time: iso(f.time), ...(f.spec ? { fieldsV1: { 'f:spec': {} } } : {}) }));
  return { metadata: { name: NAME, namespace: NS, uid: String(ds.uid), generation: ds.generation, annotations: { [REVISION_ANNOTATION]: String(ds.revision) }, managedFields }, spec: {} } as unknown as LiveDaemonSet;
}

function toRollout(previous: RolloutState, revision: number, d: WaveDecision, paused: boolean): RolloutState {
  const phase = d.phase === 'complete' ? 'complete' : d.phase === 'stalled' ? 'stalled' : 'progressing';
  return {
    ...previous,
    revision,
    mode: 'managed',
    phase,
    startedAt: d.checkpoint.startedAt,
    lastProgressAt: d.checkpoint.lastProgressAt,
    message: d.reason,
    managed: { checkpoint: d.checkpoint, wavePhase: d.phase, reason: d.reason, notReadyNodes: d.notReadyNodes, brokenNodes: d.brokenNodes, readyNodesDone: d.readyNodesDone, paused },
  };
}

// ---- the judgement: from the world alone ----------------------------------------------------

export interface Verdict { property: 'exposure' | 'budget' | 'healthy' | 'ending'; problem: string }

/**
 * Watches a run's world and records what breaks the properties:
 * - exposure: a template that breaks nodes is created on at most |canary| + k nodes over the
 *   whole run, whatever the revisions that carried it;
 * - budget: of the desired nodes that were available when the rollout began (and not hit by
 *   an outage since), never more than k are without an available pod; and a deletion of an
 *   available pod leaves at most max(k, u + 1) desired nodes unavailable, where u counts the
 *   unavailable nodes outside that set (NotReady, podless, crash-looping: the controller
 *   counts them too, and needs one node in flight so that it never deadlocks);
 * - healthy: a revision is recorded as the last healthy one only while every desired node has
 *   an available pod of that revision's own template (the one its snapshot holds), as
 *   `kubectl rollout status` asks of a DaemonSet (updated and available on every desired
 *   node), whatever template someone else put on the DaemonSet meanwhile; a node NotReady by
 *   an outage only has to hold a pod of it (no pod can be available there, and the product
 *   documents that it does not wait for such a node);
 * - ending: checked by `judgeEnding` once the world is quiet.
 */
export class Judge {
  readonly verdicts: Verdict[] = [];
  readonly k: number;
  readonly canary: number;
  /** desired nodes available when the rollout began, not hit by an outage since */
  readonly from: Set<string>;
  private seen = new Set<string>();

  constructor(private readonly run: Run) {
    const w = run.world;
    const desired = w.desiredNodes();
    this.k = budgetOf(run.sc.maxUnavailable, desired.length);
    this.canary = run.sc.canary ?? 0;
    this.from = new Set(desired.filter((n) => w.hasAvailablePod(n) && w.isNodeReady(n)));
    w.watchers.push(() => this.look());
    w.onDriverDelete.push((pod, wasAvailable) => this.deleted(pod.node, wasAvailable));
    run.store.onWrite.push((before, after) => this.recorded(before, after));
  }

  private recorded(before: DaemonSetState | undefined, after: DaemonSetState): void {
    const revision = after.lastHealthyRevision;
    if (revision === undefined || revision === before?.lastHealthyRevision) return;
    const w = this.run.world;
    const template = this.run.store.revisions.get(revision)?.template;
    // A node NotReady by an outage cannot have an available pod: it counts once it holds the template's pod (the product does not wait for it).
    const without = w.desiredNodes().filter((n) => !template || !(w.hasAvailablePod(n, template.id) || (w.inOutage(n) && w.holds(n, template.id))));
    if (without.length) this.note({ property: 'healthy', problem: `revision ${revision} was recorded healthy while desired nodes [${without.join(', ')}] had no available pod of its template ${template?.id} (they ran ${without.map((n) => `${n}: ${w.describeNode(n)}`).join('; ')})` });
  }

  private note(v: Verdict): void {
    const key = `${v.property}:${v.problem.replace(/t=[\d.]+s/g, '')}`;
    if (this.seen.has(v.property)) return;
    this.seen.add(v.property);
    this.seen.add(key);
    this.verdicts.push({ ...v, problem: `t=${secs(this.run.world.now)}: ${v.problem}` });
  }

  private look(): void {
    const w = this.run.world;
    for (const n of [...this.from]) if (w.nodes.get(n)!.outages > 0) this.from.delete(n);
    for (const [id, nodes] of w.exposed) {
      if (w.templates.get(id)?.behaviour !== 'breaks-node') continue;
      const limit = this.canary + this.k;
      if (nodes.size > limit) this.note({ property: 'exposure', problem: `template ${id}, which breaks nodes, was created on ${nodes.size} nodes [${[...nodes].sort().join(', ')}]; at most |canary| ${this.canary} + k ${this.k} = ${limit}` });
    }
    if (this.run.recreatedAt !== undefined) return; // a recreate replaces every pod at once, by design
    const down = w.unavailableNodes().filter((n) => this.from.has(n));
    if (down.length > this.k) this.note({ property: 'budget', problem: `${down.length} of the nodes available when the rollout began are unavailable [${down.join(', ')}]; budget k = ${this.k}` });
  }

  private deleted(node: string, wasAvailable: boolean): void {
    const w = this.run.world;
    if (!wasAvailable || this.run.recreatedAt !== undefined) return;
    const down = w.unavailableNodes();
    const outside = down.filter((n) => !this.from.has(n));
    const limit = Math.max(this.k, outside.length + 1);
    if (down.length > limit) this.note({ property: 'budget', problem: `deleting the available pod on ${node} left ${down.length} desired nodes unavailable [${down.join(', ')}], ${outside.length} of them for reasons outside the rollout [${outside.join(', ')}]; at most max(k ${this.k}, ${outside.length} + 1) = ${limit}` });
  }

  /** Once the world is quiet: the rollout ended complete or stalled (never waiting), and a rollback ended complete with no node left broken. */
  judgeEnding(): void {
    const r = this.run;
    // The exposure verdict names every node the template reached by the end, not only those at the moment it went over.
    const exposure = this.verdicts.find((v) => v.property === 'exposure');
    if (exposure) {
      const id = /template (\S+),/.exec(exposure.problem)?.[1] ?? '';
      const nodes = [...(r.world.exposed.get(id) ?? [])].sort();
      exposure.problem += `; by the end on ${nodes.length} [${nodes.join(', ')}]`;
    }
    const s = r.store.read().state;
    const live = r.world.ds;
    const phase = s?.rollout?.phase;
    const wave = s?.rollout?.managed?.wavePhase;
    const line = `revision ${s?.currentRevision} ${phase}${wave && wave !== phase ? ` (${wave})` : ''}: ${s?.rollout?.message ?? '(no message)'}`;
    if (!live) {
      this.note({ property: 'ending', problem: `the DaemonSet is not in the cluster at the end; the state says ${line}` });
      return;
    }
    if (phase !== 'complete' && phase !== 'stalled') this.note({ property: 'ending', problem: `never ends: ${line}` });
    const snap = s ? r.store.revisions.get(s.currentRevision) : undefined;
    const broken = r.world.brokenNodes();
    if (snap?.cause === 'rollback' && broken.length > 0) {
      this.note({ property: 'ending', problem: `the rollback to revision ${snap.rollbackTo} ends with broken nodes [${broken.join(', ')}] not repaired: ${line}` });
    }
  }
}
