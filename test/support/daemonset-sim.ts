/**
 * A reference model of one DaemonSet with `updateStrategy: OnDelete` on a changing cluster,
 * written from the Kubernetes definitions and nothing else, so that it can judge managed-rollout
 * wave decisions as an independent oracle. It never asks the code under test what a number
 * should be.
 *
 * What it models, and where each rule comes from:
 * - The DaemonSet controller (pkg/controller/daemon): a pod is wanted on every node where the
 *   DaemonSet should run (here a per-node `desired` flag, which a label change or a NoSchedule
 *   taint clears). With OnDelete it creates a pod with the DaemonSet's current template on a
 *   desired node that has no pod (a terminating pod still counts as a pod until it is gone).
 *   A node whose labels stop matching gets its pod deleted by the controller; a node tainted
 *   NoSchedule keeps its running pod. The pods of a deleted node disappear after the pod
 *   garbage collector's delay, and until then look as they did.
 * - Availability (the API's definition): a pod is available once its Ready condition has been
 *   True for minReadySeconds; a terminating pod is not available, and the pods of a NotReady
 *   node are not Ready (the node lifecycle controller marks them so; kwok does not, this
 *   model does). For a DaemonSet, unavailable = desired nodes without an available pod, for
 *   any reason, NotReady nodes included.
 * - maxUnavailable: an integer, or a percent of the desired nodes rounded up (intstr with
 *   roundUp, as the DaemonSet controller resolves it), clamped to 0..desired; this product
 *   uses at least 1 when there is a desired node.
 * - The judgement reads the world only: which template's pods were created where, which
 *   desired nodes lack an available pod, which nodes a template broke (the world knows: a pod
 *   of that template landed there) and which are NotReady for a reason of their own (an
 *   outage). It keeps no record of what the rollout touched or skipped: those are the
 *   implementation's notions, and an oracle that kept them as the implementation does would
 *   agree with it by construction.
 *
 * `drive` plays the reconciler's driver: observe, decide, delete what the decision names,
 * sleep until the next event or the decision's `wakeAt`, and decide again; it checks every
 * decision against the oracle and writes a trace a person can read.
 */

import type { CanaryPolicy, WaveCheckpoint, WaveDecision, WaveObservation, WavePod, WavePolicy } from '../../lib/rollout/wave';

export type { CanaryPolicy, WaveCheckpoint, WaveDecision, WaveObservation, WavePod, WavePolicy };

export const T0 = Date.parse('2024-05-01T12:00:00.000Z');
const SECOND = 1000;
/** When nothing is scheduled and the decision names no wakeAt, the driver looks again after this. */
export const POLL_MS = 10 * SECOND;

export const iso = (ms: number): string => new Date(T0 + ms).toISOString();
const secs = (ms: number): string => `${(ms / SECOND).toFixed(1)}s`;

export type Decide = (obs: WaveObservation, policy: WavePolicy, checkpoint: WaveCheckpoint | undefined, now: Date) => WaveDecision;

/** Which template a pod runs: the one the failed update brought (`new`) or the one before it (`old`). */
export type Template = 'old' | 'new';
/** What a template does to a node when its pod lands there. */
export type Behaviour = 'good' | 'crashloop' | 'breaks-node';

/** maxUnavailable resolved from the definition: percent of desired rounded up, clamped, at least 1. */
export function resolveBudget(maxUnavailable: number | string, desired: number): number {
  if (desired <= 0) return 0;
  let value: number;
  if (typeof maxUnavailable === 'number') value = maxUnavailable;
  else {
    const percent = Number(maxUnavailable.replace(/%$/, ''));
    value = Math.ceil((percent * desired) / 100);
  }
  return Math.max(1, Math.min(desired, Math.max(0, value)));
}

export const POOL_LABEL = 'pool';
export const CANARY_LABEL = 'canary';

export interface InitialNode {
  name: string;
  ready: boolean;
  /** the DaemonSet should run here; `false` models a NoSchedule taint it does not tolerate */
  desired: boolean;
  canary: boolean;
  /** what runs there at the start */
  pod: 'old-available' | 'old-starting' | 'old-crashloop' | 'new-available' | 'none';
}

export interface Delays {
  terminateS: number[];   // deletion to the pod being gone (grace period)
  createS: number[];      // pod gone (or node without a pod) to the controller's replacement
  startS: number[];       // replacement created to its container being Ready
  gcS: number[];          // node deleted to its pods being garbage-collected
}

export type WorldChange =
  /** an outage unrelated to the update: the named node, or the next one this rollout never touched */
  | { kind: 'node-not-ready'; node: string; outage: number }
  | { kind: 'node-ready'; outage: number }     // ... and it comes back
  | { kind: 'unlabel'; node: string }          // nodeSelector stops matching: the controller deletes its pod
  | { kind: 'taint'; node: string }            // NoSchedule taint not tolerated: no longer desired, pod keeps running
  | { kind: 'untaint'; node: string }
  | { kind: 'delete-node'; node: string }
  | { kind: 'add-node'; node: string }
  | { kind: 'pause' }
  | { kind: 'resume' };

export interface ClusterSpec {
  nodes: InitialNode[];
  behaviours: Record<Template, Behaviour>;
  /** the template the DaemonSet holds (what the controller creates) and the rollout's target */
  template: Template;
  minReadySeconds: number;
  maxUnavailable: number | string;
  delays: Delays;
  world: { atS: number; change: WorldChange }[];
}

interface NodeState {
  name: string;
  ready: boolean;
  desired: boolean;
  labels: Record<string, string>;
  tainted: boolean;
  outage: boolean;          // NotReady for a reason unrelated to the update
  brokenBy?: string;        // uid of the pod whose landing broke it
}

interface PodState {
  name: string;
  uid: string;
  node: string;
  template: Template;
  /** the DaemonSet's template generation when the pod was created (its pod-template-generation label) */
  generation: number;
  containerReady: boolean;
  ready: boolean;               // the Ready condition as the API reports it
  readySince?: number;
  terminatingSince?: number;
  deletedBy?: 'driver' | 'controller';
  /** the observation on which the driver decided to delete it */
  deletedAfterObservation?: number;
  /** how the pod looked just before the driver deleted it, for a lagging observation */
  beforeDelete?: { ready: boolean; readySince?: number };
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type Pending =
  | { at: number; seq: number; kind: 'remove-pod'; uid: string }
  | { at: number; seq: number; kind: 'create-pod'; node: string }
  | { at: number; seq: number; kind: 'container-ready'; uid: string }
  | { at: number; seq: number; kind: 'world'; change: WorldChange };

/** The cluster. Time is milliseconds since T0. */
export class Cluster {
  now = 0;
  paused = false;
  /** the rollout's target template: pods running it are `updated` */
  target: Template;
  /** what the DaemonSet's template is now: what the controller creates */
  template: Template;
  readonly log: string[] = [];
  /** desired nodes available when the rollout began and not hit by an outage since: the budget's nodes */
  readonly budgeted = new Set<string>();
  /** nodes an outage hit after the update had reached them (the driver deleted a pod there, or no old pod is left there to delete) */
  readonly outageAfterUpdate = new Set<string>();
  /**
   * Desired nodes NotReady from the start with no pod: the controller puts the update there without
   * a deletion, and it cannot prove itself on a NotReady node. Such a node counts as exposed to an
   * unproven update, so while it stays NotReady a stall is an answer too.
   */
  readonly unprovenAtStart = new Set<string>();
  private readonly deletedOn = new Set<string>();
  /** every node that got a pod of a template created during the simulation, by template */
  readonly received: Record<Template, Set<string>> = { old: new Set(), new: new Set() };
  /** when the controller last created a pod of each template */
  readonly lastCreatedAt: Partial<Record<Template, number>> = {};
  /** nodes ever in the cluster */
  readonly everNodes = new Set<string>();
  /** world changes that took effect, by kind */
  readonly applied: Record<string, number> = {};

  private readonly nodes = new Map<string, NodeState>();
  private readonly outages = new Map<number, string>();
  private pods: PodState[] = [];
  private pending: Pending[] = [];
  private seq = 0;
  private uidCounter = 0;
  /** the DaemonSet's template generation: the controller bumps it with every template change */
  private templateGeneration = 0;
  private readonly delayIndex: Record<keyof Delays, number> = { terminateS: 0, createS: 0, startS: 0, gcS: 0 };
  private observations = 0;

  constructor(readonly spec: ClusterSpec) {
    this.target = spec.template;
    this.template = spec.template;
    // The pods there at the start predate the update: created under the template generation before it.
    this.templateGeneration = 0;
    for (const n of spec.nodes) {
      const labels: Record<string, string> = { [POOL_LABEL]: 'agents' };
      if (n.canary) labels[CANARY_LABEL] = 'true';
      this.addNode({ name: n.name, ready: n.ready, desired: n.desired, labels, tainted: !n.desired, outage: false });
      if (n.pod === 'none') {
        if (n.desired && !n.ready) this.unprovenAtStart.add(n.name);
        continue;
      }
      const template: Template = n.pod === 'new-available' ? 'new' : 'old';
      const p = this.newPod(n.name, template);
      if (n.pod === 'old-available' || n.pod === 'new-available') {
        p.containerReady = true;
        if (n.ready) {
          p.ready = true;
          p.readySince = -3600 * SECOND;
        }
      }
      if (n.pod === 'old-starting') this.schedule({ at: this.delay('startS'), kind: 'container-ready', uid: p.uid });
    }
    // The update is applied at the start: the controller's template generation moves on.
    this.templateGeneration = 1;
    for (const w of spec.world) this.schedule({ at: w.atS * SECOND, kind: 'world', change: w.change });
    this.syncController();
    this.say(`start: ${this.describe()}`);
    this.advanceTo(0);   // what happens at the very start is seen by the first decision
    for (const n of this.desiredNodes()) if (this.isNodeReady(n) && this.hasAvailablePod(n)) this.budgeted.add(n);
  }

  // ---- the oracle ----------------------------------------------------------------------

  desiredNodes(): string[] {
    return [...this.nodes.values()].filter((n) => n.desired).map((n) => n.name);
  }

  k(): number {
    return resolveBudget(this.spec.maxUnavailable, this.desiredNodes().length);
  }

  /** Desired nodes that are NotReady for a reason of their own (an outage, or from the start), not because a template broke them. */
  outageNodes(): string[] {
    return this.desiredNodes().filter((n) => {
      const node = this.nodes.get(n);
      return node !== undefined && !node.ready && node.brokenBy === undefined;
    });
  }

  /** Desired nodes that a template broke: NotReady since a pod of it landed there. */
  brokenNodes(): string[] {
    return this.desiredNodes().filter((n) => this.nodes.get(n)?.brokenBy !== undefined);
  }

  notReadyNodes(): string[] {
    return this.desiredNodes().filter((n) => !this.nodes.get(n)?.ready);
  }

  isNodeReady(name: string): boolean {
    return this.nodes.get(name)?.ready ?? false;
  }

  private isAvailable(p: PodState): boolean {
    const node = this.nodes.get(p.node);
    return p.terminatingSince === undefined && p.ready && node !== undefined && node.ready &&
      p.readySince !== undefined && this.now - p.readySince >= this.spec.minReadySeconds * SECOND;
  }

  podIsAvailable(uid: string): boolean {
    const p = this.pods.find((x) => x.uid === uid);
    return p !== undefined && this.isAvailable(p);
  }

  hasAvailablePod(node: string): boolean {
    return this.pods.some((p) => p.node === node && this.isAvailable(p));
  }

  /** Desired and without an available pod: Pending, missing, crash-looping, on a NotReady node. */
  unavailableNodes(): string[] {
    return this.desiredNodes().filter((n) => !this.hasAvailablePod(n));
  }

  /** Runs only pods of the target template, and one of them is available. */
  isDone(node: string): boolean {
    const here = this.pods.filter((p) => p.node === node);
    return here.length > 0 && here.every((p) => p.template === this.target) && here.some((p) => this.isAvailable(p));
  }

  /**
   * Every desired node is done, but a NotReady one, which cannot be available: it counts once
   * it runs only the target template (this product's definition of a finished rollout).
   */
  isComplete(): boolean {
    return this.desiredNodes().every((n) => this.isDone(n) || (!this.isNodeReady(n) && this.runsOnlyTarget(n)));
  }

  private runsOnlyTarget(node: string): boolean {
    const here = this.pods.filter((p) => p.node === node);
    return here.length > 0 && here.every((p) => p.template === this.target && p.terminatingSince === undefined);
  }

  readyNodesDone(): boolean {
    return this.desiredNodes().every((n) => !this.isNodeReady(n) || this.isDone(n));
  }

  nodesMatching(labels: Record<string, string>): string[] {
    return [...this.nodes.values()].filter((n) => Object.entries(labels).every(([key, v]) => n.labels[key] === v)).map((n) => n.name);
  }

  // ---- what the driver sees and does ---------------------------------------------------

  /**
   * Nodes and the DaemonSet's pods as a LIST would return them. With `lagging`, pods the
   * driver deleted at its previous decision (and only those: a moment ago) still look as
   * they did before, not yet terminating.
   */
  observe(lagging: boolean): { obs: WaveObservation; lagged: number } {
    let lagged = 0;
    this.observations += 1;
    const pods = this.pods.map((p): WavePod => {
      const stale = lagging && p.deletedBy === 'driver' && p.deletedAfterObservation === this.observations - 1 && p.beforeDelete;
      if (stale && p.beforeDelete) {
        lagged += 1;
        return view(p, p.beforeDelete.ready, p.beforeDelete.readySince, false, this.target, this.templateGeneration);
      }
      return view(p, p.ready, p.readySince, p.terminatingSince !== undefined, this.target, this.templateGeneration);
    });
    const nodes = [...this.nodes.values()].map((n) => ({ name: n.name, ready: n.ready, desired: n.desired, labels: { ...n.labels } }));
    return { obs: { nodes, pods }, lagged };
  }

  /** What the driver's DELETE calls do (with the pod's uid as precondition). */
  deletePods(refs: { name: string; uid: string; node: string }[]): void {
    for (const ref of refs) {
      const p = this.pods.find((x) => x.uid === ref.uid);
      if (!p) {
        this.say(`  DELETE ${ref.name}: not found`);
        continue;
      }
      if (p.terminatingSince !== undefined) {
        this.say(`  DELETE ${p.name}: already terminating`);
        continue;
      }
      const node = this.nodes.get(p.node);
      this.deletedOn.add(p.node);
      p.beforeDelete = { ready: p.ready, readySince: p.readySince };
      this.terminate(p, 'driver');
      p.deletedAfterObservation = this.observations;
      this.say(`  DELETE ${p.name} (${p.template}) on ${p.node}${node?.ready ? '' : ' (node NotReady)'}`);
    }
    this.syncController();
  }

  nextEventAt(): number | undefined {
    let at: number | undefined;
    for (const e of this.pending) if (at === undefined || e.at < at) at = e.at;
    return at;
  }

  /** Time of the last scheduled world change (the world is still after it). */
  lastWorldChangeAt(): number {
    return Math.max(0, ...this.spec.world.map((w) => w.atS * SECOND));
  }

  advanceTo(t: number): void {
    for (;;) {
      let next: Pending | undefined;
      for (const e of this.pending) if (e.at <= t && (!next || e.at < next.at || (e.at === next.at && e.seq < next.seq))) next = e;
      if (!next) break;
      const e = next;
      this.pending = this.pending.filter((x) => x !== e);
      this.now = Math.max(this.now, e.at);
      this.apply(e);
      this.refreshReadiness();
      this.syncController();
    }
    this.now = Math.max(this.now, t);
    this.refreshReadiness();
  }

  /** A rollback of a failed update: the DaemonSet's template and the target go back to `old`. */
  startRollback(): void {
    this.target = 'old';
    this.template = 'old';
    this.templateGeneration += 1;
    this.say('rollback: template and target back to old');
    this.syncController();
  }

  describe(): string {
    return [...this.nodes.values()].map((n) => {
      const here = this.pods.filter((p) => p.node === n.name).map((p) => `${p.template}${p.terminatingSince !== undefined ? '-terminating' : this.isAvailable(p) ? '' : p.ready ? '-ready' : '-unready'}`);
      return `${n.name}${n.ready ? '' : '(NotReady)'}${n.desired ? '' : '(not desired)'}[${here.join(',') || '-'}]`;
    }).join(' ') + (this.paused ? ' paused' : '');
  }

  say(line: string): void {
    this.log.push(`t=${secs(this.now).padStart(7)} ${line}`);
  }

  // ---- the cluster's own controllers -------------------------------------------------

  private apply(e: Pending): void {
    switch (e.kind) {
      case 'remove-pod': {
        const p = this.pods.find((x) => x.uid === e.uid);
        if (!p) return;
        this.pods = this.pods.filter((x) => x !== p);
        const node = this.nodes.get(p.node);
        this.say(`pod ${p.name} (${p.template}) on ${p.node} is gone`);
        if (node && node.brokenBy === p.uid) {
          node.brokenBy = undefined;
          if (!node.outage) {
            node.ready = true;
            this.say(`node ${node.name} is Ready again (the pod that broke it is gone)`);
          }
        }
        return;
      }
      case 'create-pod': {
        const node = this.nodes.get(e.node);
        if (!node || !node.desired || this.pods.some((p) => p.node === e.node)) return;
        const p = this.newPod(e.node, this.template);
        this.received[p.template].add(e.node);
        this.lastCreatedAt[p.template] = this.now;
        const behaviour = this.spec.behaviours[p.template];
        this.say(`controller created ${p.name} (${p.template}) on ${e.node}`);
        if (behaviour === 'good') this.schedule({ at: this.now + this.delay('startS'), kind: 'container-ready', uid: p.uid });
        if (behaviour === 'breaks-node') {
          node.brokenBy = p.uid;
          if (node.ready) {
            node.ready = false;
            this.say(`node ${node.name} went NotReady as ${p.name} landed`);
          }
        }
        return;
      }
      case 'container-ready': {
        const p = this.pods.find((x) => x.uid === e.uid);
        if (p && p.terminatingSince === undefined) p.containerReady = true;
        return;
      }
      case 'world':
        this.change(e.change);
    }
  }

  private change(c: WorldChange): void {
    const node = 'node' in c ? this.nodes.get(c.node) : undefined;
    // A node that leaves the desired set (or the cluster) leaves the budget's nodes for good: what it runs later is the world's doing.
    if (node && (c.kind === 'unlabel' || c.kind === 'taint' || c.kind === 'delete-node')) this.budgeted.delete(node.name);
    const applied = (what: string) => {
      this.applied[c.kind] = (this.applied[c.kind] ?? 0) + 1;
      this.say(what);
    };
    switch (c.kind) {
      case 'node-not-ready': {
        // Unrelated to the update, on any Ready desired node (one the update reached too), at most k NotReady at a time.
        const notReady = this.desiredNodes().filter((n) => !this.nodes.get(n)?.ready).length;
        if (notReady + 1 > this.k()) return;
        const names = [...this.nodes.keys()].sort();
        const from = Math.max(0, names.indexOf(c.node));
        const pick = [...names.slice(from), ...names.slice(0, from)].map((n) => this.nodes.get(n))
          .find((n) => n !== undefined && n.ready && n.desired);
        if (!pick) return;
        pick.ready = false;
        pick.outage = true;
        this.budgeted.delete(pick.name);
        // ... or would reach them without a deletion (no old pod left to delete there).
        if (this.deletedOn.has(pick.name) || !this.pods.some((p) => p.node === pick.name && p.template !== this.target && p.terminatingSince === undefined)) this.outageAfterUpdate.add(pick.name);
        this.outages.set(c.outage, pick.name);
        applied(`node ${pick.name} went NotReady (unrelated to the update)`);
        return;
      }
      case 'node-ready': {
        const back = this.nodes.get(this.outages.get(c.outage) ?? '');
        if (!back || !back.outage) return;
        back.outage = false;
        if (!back.brokenBy) back.ready = true;
        applied(`node ${back.name} is Ready again`);
        return;
      }
      case 'unlabel': {
        if (!node || node.labels[POOL_LABEL] === undefined) return;
        delete node.labels[POOL_LABEL];
        node.desired = false;
        for (const p of this.pods.filter((x) => x.node === node.name && x.terminatingSince === undefined)) this.terminate(p, 'controller');
        applied(`node ${node.name} lost label ${POOL_LABEL}: no longer desired, the controller deletes its pod`);
        return;
      }
      case 'taint':
        if (!node || node.tainted) return;
        node.tainted = true;
        node.desired = false;
        applied(`node ${node.name} tainted NoSchedule: no longer desired, its pod keeps running`);
        return;
      case 'untaint':
        if (!node || !node.tainted) return;
        node.tainted = false;
        node.desired = node.labels[POOL_LABEL] !== undefined;
        applied(`node ${node.name} untainted${node.desired ? ': desired again' : ''}`);
        return;
      case 'delete-node': {
        if (!node) return;
        this.nodes.delete(node.name);
        for (const p of this.pods.filter((x) => x.node === node.name)) this.schedule({ at: this.now + this.delay('gcS'), kind: 'remove-pod', uid: p.uid });
        applied(`node ${node.name} deleted`);
        return;
      }
      case 'add-node':
        if (this.nodes.has(c.node)) return;
        this.addNode({ name: c.node, ready: true, desired: true, labels: { [POOL_LABEL]: 'agents' }, tainted: false, outage: false });
        applied(`node ${c.node} joined`);
        return;
      case 'pause':
        if (this.paused) return;
        this.paused = true;
        applied('rollout paused');
        return;
      case 'resume':
        if (!this.paused) return;
        this.paused = false;
        applied('rollout resumed');
    }
  }

  /** With OnDelete, the controller only fills desired nodes that have no pod at all. */
  private syncController(): void {
    for (const node of this.nodes.values()) {
      if (!node.desired || this.pods.some((p) => p.node === node.name)) continue;
      if (this.pending.some((e) => e.kind === 'create-pod' && e.node === node.name)) continue;
      this.schedule({ at: this.now + this.delay('createS'), kind: 'create-pod', node: node.name });
    }
  }

  /** The Ready condition: container Ready, not terminating, on a Ready node (or not yet marked). */
  private refreshReadiness(): void {
    for (const p of this.pods) {
      const node = this.nodes.get(p.node);
      let ready: boolean;
      if (p.terminatingSince !== undefined || !p.containerReady) ready = false;
      else if (!node) ready = p.ready;   // a deleted node's pods keep their last status until collected
      else ready = node.ready;
      if (ready && !p.ready) p.readySince = this.now;
      if (!ready) p.readySince = undefined;
      p.ready = ready;
    }
  }

  private terminate(p: PodState, by: 'driver' | 'controller'): void {
    p.terminatingSince = this.now;
    p.deletedBy = by;
    p.ready = false;
    p.readySince = undefined;
    this.schedule({ at: this.now + this.delay('terminateS'), kind: 'remove-pod', uid: p.uid });
  }

  private addNode(n: NodeState): void {
    this.nodes.set(n.name, n);
    this.everNodes.add(n.name);
  }

  private newPod(node: string, template: Template): PodState {
    this.uidCounter += 1;
    const p: PodState = { name: `agent-${node}-${this.uidCounter}`, uid: `uid-${this.uidCounter}`, node, template, generation: this.templateGeneration, containerReady: false, ready: false };
    this.pods.push(p);
    return p;
  }

  private schedule(e: DistributiveOmit<Pending, 'seq'>): void {
    this.seq += 1;
    this.pending.push({ ...e, seq: this.seq });
  }

  private delay(kind: keyof Delays): number {
    const list = this.spec.delays[kind];
    const value = list.length ? list[this.delayIndex[kind] % list.length] : 0;
    this.delayIndex[kind] += 1;
    return value * SECOND;
  }
}

function view(p: PodState, ready: boolean, readySince: number | undefined, terminating: boolean, target: Template, templateGeneration: number): WavePod {
  const updated = p.template === target;
  return {
    ...(updated ? { sinceApply: p.generation === templateGeneration } : {}),
    name: p.name,
    uid: p.uid,
    node: p.node,
    updated: p.template === target,
    ready,
    ...(ready && readySince !== undefined ? { readySince: iso(readySince) } : {}),
    terminating,
  };
}

// ---- the driver, and the checks every decision must pass ----------------------------------

/** The oracle's view of the cluster at the moment of a decision, before its deletions. */
export interface OracleView {
  desired: string[];
  k: number;
  /** desired nodes NotReady for any reason */
  notReady: string[];
  /** desired nodes NotReady for a reason of their own (an outage), not broken by a template */
  outage: string[];
  /** desired nodes a template broke */
  broken: string[];
  unavailable: string[];
  complete: boolean;
  readyNodesDone: boolean;
}

export function oracleView(c: Cluster): OracleView {
  return {
    desired: c.desiredNodes(),
    k: c.k(),
    notReady: c.notReadyNodes(),
    outage: c.outageNodes(),
    broken: c.brokenNodes(),
    unavailable: c.unavailableNodes(),
    complete: c.isComplete(),
    readyNodesDone: c.readyNodesDone(),
  };
}

export interface Step {
  at: number;
  decision: WaveDecision;
  before: OracleView;
  /** unavailable (desired, no available pod) right after the deletions */
  unavailableAfter: number;
  /** pods shown as they were before the driver deleted them */
  lagged: number;
  paused: boolean;
  /** nothing in the world changed since the previous decision: a look the driver's own wake-up (LOOK_AGAIN) asked for, not an event */
  idle: boolean;
}

export interface DriveOptions {
  policy: Omit<WavePolicy, 'paused'>;
  checkpoint?: WaveCheckpoint;
  /** per decision, cycled: whether the observation lags the driver's last deletions */
  lag: boolean[];
  /** stop after the step for which this is true */
  until: (step: Step, c: Cluster) => boolean;
  maxDecisions: number;
}

export interface DriveResult {
  steps: Step[];
  problems: string[];
  ended: boolean;
  checkpoint?: WaveCheckpoint;
}

const list = (xs: readonly string[]): string => `[${[...xs].sort().join(', ')}]`;

/**
 * What must hold of every decision, from the definitions (never from the code under test):
 * the pods it may name, the budget, the cap on skipped nodes, and the truth of what it reports.
 */
export function checkDecision(c: Cluster, obs: WaveObservation, policy: WavePolicy, failedBefore: boolean, before: OracleView, d: WaveDecision): string[] {
  const problems: string[] = [];
  const pods = new Map(obs.pods.map((p) => [p.uid, p]));
  const nodes = new Map(obs.nodes.map((n) => [n.name, n]));
  const onNodes = new Set<string>();
  for (const ref of d.podsToDelete) {
    const p = pods.get(ref.uid);
    if (!p || p.name !== ref.name || p.node !== ref.node) {
      problems.push(`deletes ${ref.name} (${ref.uid}) on ${ref.node}, which is not a pod it was shown`);
      continue;
    }
    const n = nodes.get(p.node);
    if (p.updated) problems.push(`deletes ${p.name} on ${p.node}, which already runs the target template`);
    if (p.terminating) problems.push(`deletes ${p.name} on ${p.node}, which is already terminating`);
    if (!n) problems.push(`deletes ${p.name} on ${p.node}, a node that is not in the node list (deleted)`);
    else {
      if (!n.desired) problems.push(`deletes ${p.name} on ${p.node}, where the DaemonSet is not desired any more (the controller will not replace it)`);
      if (!n.ready && !before.broken.includes(p.node)) problems.push(`deletes ${p.name} on ${p.node}, which is NotReady for a reason of its own (not broken by a template: nothing to repair)`);
    }
    if (onNodes.has(p.node)) problems.push(`deletes two pods on ${p.node} in one decision`);
    onNodes.add(p.node);
  }
  if (policy.paused && d.podsToDelete.length) problems.push(`deletes ${d.podsToDelete.length} pod(s) while paused`);
  if (failedBefore && d.podsToDelete.length) problems.push(`deletes ${d.podsToDelete.length} pod(s) after the rollout failed`);
  if (failedBefore && !d.checkpoint.failed) problems.push('drops checkpoint.failed, which must be sticky');

  // More desired nodes NotReady on their own than the budget: the rollout waits, and says why.
  if (before.outage.length > before.k) {
    const failed = failedBefore || d.checkpoint.failed !== undefined;
    const costly = d.podsToDelete.filter((r) => c.podIsAvailable(r.uid));
    if (costly.length) problems.push(`deletes available pods on ${list(costly.map((r) => r.node))} although ${before.outage.length} desired nodes are NotReady ${list(before.outage)}, more than maxUnavailable ${before.k}`);
    const allowed = ['waiting', ...(policy.paused ? ['paused'] : []), ...(failed ? ['stalled'] : []), ...(before.complete ? ['complete'] : []), ...(before.readyNodesDone ? ['progressing'] : [])];
    if (!allowed.includes(d.phase)) problems.push(`phase ${d.phase} although ${before.outage.length} NotReady nodes exceed maxUnavailable ${before.k} (want waiting): "${d.reason}"`);
    else if (d.phase === 'waiting' && !/not ?ready/i.test(d.reason)) problems.push(`waits on ${before.outage.length} NotReady nodes without saying so: "${d.reason}"`);
  }

  const notDone = (readyOnly: boolean) => before.desired.filter((n) => !(readyOnly && before.notReady.includes(n)) && !c.isDone(n));
  if (d.phase === 'complete' && !before.complete) problems.push(`says complete, but ${list(notDone(false))} do not run only an updated, available pod`);
  if (d.readyNodesDone && !before.readyNodesDone) problems.push(`says readyNodesDone, but the Ready nodes ${list(notDone(true))} are not done`);

  if (d.counts.desired !== before.desired.length) problems.push(`counts.desired ${d.counts.desired}, but ${before.desired.length} nodes are desired`);
  if (d.counts.maxUnavailable !== before.k) problems.push(`counts.maxUnavailable ${d.counts.maxUnavailable}, but ${JSON.stringify(policy.maxUnavailable)} of ${before.desired.length} desired resolves to ${before.k}`);
  const notNotReady = [...d.notReadyNodes, ...d.brokenNodes].filter((n) => !before.notReady.includes(n));
  if (notNotReady.length) problems.push(`reports ${list(notNotReady)} as NotReady or broken, but they are Ready desired nodes (or not desired)`);
  const unreported = before.notReady.filter((n) => !d.notReadyNodes.includes(n) && !d.brokenNodes.includes(n));
  if (unreported.length) problems.push(`reports neither as skipped nor as broken the NotReady desired nodes ${list(unreported)}`);
  return problems;
}

/**
 * The budget, from the world, after a decision that deleted an available pod: of the desired
 * nodes that were available when the rollout began (and neither hit by an outage nor gone from
 * the desired set since), at most k are without an available pod; and at most max(k, u + 1)
 * desired nodes are unavailable, u being
 * the unavailable ones outside that set (NotReady, podless, crash-looping nodes count, as the
 * DaemonSet controller counts them; one node may be in flight so that a rollout never deadlocks).
 */
export function checkBudget(c: Cluster, k: number, tookAvailable: boolean): string[] {
  const down = c.unavailableNodes();
  const inBudget = down.filter((n) => c.budgeted.has(n));
  const outside = down.filter((n) => !c.budgeted.has(n));
  const problems: string[] = [];
  // Judged where a decision took an available pod: between decisions the world alone (nodes
  // leaving, which also shrinks k) changes these counts, and no decision can undo that.
  if (!tookAvailable) return problems;
  if (inBudget.length > k) problems.push(`over budget: ${inBudget.length} of the nodes available when the rollout began are unavailable ${list(inBudget)}, maxUnavailable ${k}`);
  else if (down.length > Math.max(k, outside.length + 1)) {
    problems.push(`over budget: after deleting available pods, ${down.length} desired nodes are unavailable ${list(down)}, ${outside.length} of them for reasons outside the rollout ${list(outside)}; at most max(k ${k}, ${outside.length} + 1)`);
  }
  return problems;
}

/** Drives one rollout the way the reconciler's driver does, checking every decision. */
export function drive(c: Cluster, decide: Decide, opts: DriveOptions): DriveResult {
  const steps: Step[] = [];
  let checkpoint = opts.checkpoint;
  let failed = checkpoint?.failed !== undefined;
  let worldAtLastLook: string | undefined;
  for (let i = 0; i < opts.maxDecisions; i += 1) {
    const world = c.describe();
    const idle = world === worldAtLastLook;
    worldAtLastLook = world;
    const lagging = opts.lag.length > 0 && opts.lag[i % opts.lag.length];
    const { obs, lagged } = c.observe(lagging);
    const policy: WavePolicy = { ...opts.policy, paused: c.paused };
    // The driver keeps the checkpoint in S3 as JSON: the decision gets it back the same way.
    const input = checkpoint === undefined ? undefined : (JSON.parse(JSON.stringify(checkpoint)) as WaveCheckpoint);
    const before = oracleView(c);
    let d: WaveDecision;
    try {
      d = decide(obs, policy, input, new Date(T0 + c.now));
    } catch (err) {
      return { steps, problems: [`decision ${i + 1} at t=${secs(c.now)} threw: ${String(err)}`], ended: false, checkpoint };
    }
    c.say(`decide${lagged ? ` (sees ${lagged} deleted pod(s) as not yet terminating)` : ''}: ${d.phase}${d.podsToDelete.length ? `, delete ${list(d.podsToDelete.map((p) => p.node))}` : ''}: ${d.reason}`);
    const problems = checkDecision(c, obs, policy, failed, before, d);
    const tookAvailable = d.podsToDelete.some((r) => c.podIsAvailable(r.uid));
    c.deletePods(d.podsToDelete);
    problems.push(...checkBudget(c, before.k, tookAvailable));
    const unavailableAfter = c.unavailableNodes().length;
    const step: Step = { at: c.now, decision: d, before, unavailableAfter, lagged, paused: policy.paused, idle };
    steps.push(step);
    if (problems.length) return { steps, problems: problems.map((p) => `decision ${i + 1} at t=${secs(c.now)}: ${p}`), ended: false, checkpoint };
    failed ||= d.checkpoint.failed !== undefined;
    checkpoint = d.checkpoint;
    if (opts.until(step, c)) return { steps, problems: [], ended: true, checkpoint };
    const wake = d.wakeAt === undefined ? undefined : Date.parse(d.wakeAt) - T0;
    const next = [c.nextEventAt(), wake !== undefined && wake > c.now ? wake : undefined].filter((t): t is number => t !== undefined);
    c.advanceTo(next.length ? Math.min(...next) : c.now + POLL_MS);
    c.say(`  ${c.describe()}`);
  }
  return { steps, problems: [], ended: false, checkpoint };
}

/** A failure a person can read: what went wrong, then the end of the story. */
export function explain(c: Cluster, problems: string[], lines = 80): string {
  const trace = c.log.length > lines ? [...c.log.slice(0, lines / 2), '...', ...c.log.slice(-lines / 2)] : c.log;
  return [...problems, '', 'trace (t = simulated time):', ...trace].join('\n');
}
