/**
 * What `dsgitops ui` shows, gathered: the cluster's managed DaemonSets and nodes from
 * LIST+WATCH caches (cluster/watch-cache.ts, as the managed driver reads them), a DaemonSet's
 * pods and Events from caches opened while someone looks at it, and the records from S3. The
 * view models (view-models.ts) turn these into what the page draws.
 *
 * Assumptions:
 * - The cluster is never polled: every look at it is a read of a cache. ControllerRevisions
 *   are listed once per template generation of the DaemonSet, as the driver does.
 * - S3 has no watch: what was read of it is kept and reused until `invalidate()` says it may
 *   have changed (the server calls it when a watch cache changes, after an action, and at a
 *   slow interval for what changes in S3 alone: see server.ts). Reads are then one GET of the
 *   state index and one of the last pass's record for the cluster; the open DaemonSet's state,
 *   its revision numbers, new snapshots and its timeline.
 */
import type { Cache } from '../cluster/watch-cache';
import type { LiveDaemonSet, LiveEvent, LiveNode, LivePod } from '../cluster/types';
import type { Deps } from '../deps';
import { errorMessage, NotFoundError, RecordUnreadableError } from '../errors';
import { MANAGED_SELECTOR, REVISION_ANNOTATION } from '../labels';
import { selectorQuery } from '../k8s-values';
import type { DaemonSetState, RevisionSnapshot } from '../store/records';
import { TimelineStore } from '../store/timeline-store';
import { PassRecordStore, StoredPass } from '../store/pass-record';
import type { StateIndexRecord } from '../store/state-index';
import type { ObjectStore, WriteCondition } from '../store/object-store';
import { StateStore } from '../store/state-store';
import { mapLimit } from '../util';
import {
  budgetOf, ClusterRow, clusterView, EventRow, eventRows, LastPassView, lastPassView, NodeGroup, PassLine, passLine, nodeGrid, revisionDiff, RevisionRow, revisionRows, RolloutChart, rolloutChart, TILE_LEGEND, tileCounts,
} from './view-models';
import type { Timeline } from '../store/timeline-store';

export interface ClusterPage {
  cluster: string;
  at: string;
  daemonSets: ClusterRow[];
  /** The last pass that changed something or found something new (store/pass-record.ts). */
  lastPass?: LastPassView;
}

/** What was read of S3 for the cluster's view, and for which generation of `invalidate()`. */
interface ClusterRecords {
  generation: number;
  index?: StateIndexRecord;
  pass: StoredPass;
  states: Map<string, DaemonSetState>;
  unreadable: Map<string, string>;
  /** The live DaemonSets this read looked for: one without a record (managed under another cluster name, or not yet by a pass) is not looked for again until an `invalidate()`. */
  asked: Set<string>;
}

/** What was read of S3 for one DaemonSet's view. */
interface DaemonSetRecords {
  generation: number;
  state?: DaemonSetState;
  unreadable?: string;
  numbers: number[];
  timeline?: Timeline;
}

export interface DaemonSetPage {
  key: string;
  at: string;
  row: ClusterRow;
  groups: NodeGroup[];
  counts: ReturnType<typeof tileCounts>;
  legend: typeof TILE_LEGEND;
  /** The current revision's timeline (managed: one point per decision; native: the controller's counts as the tracker saw them); empty when none was kept. */
  chart: RolloutChart;
  /** The budget now, for a rollout with no timeline. */
  budget: number;
  stallReason?: string;
  revisions: RevisionRow[];
  /** What the last recorded pass said of this DaemonSet, when it had something to say. */
  pass?: PassLine;
  events: EventRow[];
  eventsProblem?: string;
}

/** The newest revisions shown (and read) per DaemonSet. */
const REVISIONS_SHOWN = 20;

interface Watched {
  pods: Cache<LivePod>;
  events?: Cache<LiveEvent>;
  eventsProblem?: string;
  uid: string;
  selector: string;
  revisions?: { generationKey: string; currentHash?: string; byHash: Record<string, number> };
  lastUsed: number;
}

interface ReadTally {
  count: number;
  lastAt: number;
}

/** The page's S3 adapter, counting its requests. */
class TalliedObjects implements ObjectStore {
  readonly tally: ReadTally = { count: 0, lastAt: 0 };

  constructor(private readonly real: ObjectStore) {}

  private note(): void {
    this.tally.count++;
    this.tally.lastAt = Date.now();
  }

  get(key: string) {
    this.note();
    return this.real.get(key);
  }

  getIfNoneMatch(key: string, etag: string) {
    this.note();
    return this.real.getIfNoneMatch ? this.real.getIfNoneMatch(key, etag) : this.real.get(key);
  }

  list(prefix: string) {
    this.note();
    return this.real.list(prefix);
  }

  put(key: string, body: string, condition?: WriteCondition) {
    return this.real.put(key, body, condition);
  }

  delete(key: string) {
    return this.real.delete(key);
  }
}

export class UiData {
  private readonly watched = new Map<string, Watched>();
  private readonly opening = new Map<string, Promise<Watched>>();
  private stopped = false;
  private readonly snapshots = new Map<string, RevisionSnapshot>();
  private readonly snapshotRead = new Map<string, number>();
  /** Bumped by `invalidate()`: records read under an older generation are read again. */
  private generation = 0;
  private clusterRecords?: Promise<ClusterRecords>;
  private readonly daemonSetRecords = new Map<string, Promise<DaemonSetRecords>>();

  private constructor(
    private readonly deps: Deps,
    readonly daemonSets: Cache<LiveDaemonSet>,
    readonly nodes: Cache<LiveNode>,
  ) {}

  /** S3 requests made for the page: reads, and when the last was made (ms since the epoch). */
  get s3(): { reads: number; lastAt: number } {
    return { reads: this.reads.count, lastAt: this.reads.lastAt };
  }

  /** The page's S3 adapter (its requests counted in `s3`), for the fleet's records too. */
  get objects(): ObjectStore {
    return this.deps.objects;
  }

  private get reads(): ReadTally {
    return (this.deps.objects as TalliedObjects).tally;
  }

  static async start(given: Deps): Promise<UiData> {
    // Every S3 request of the page goes through one tally (what docs/ui.md says about reads is measured with it).
    const objects = new TalliedObjects(given.objects);
    const deps: Deps = { ...given, objects, store: new StateStore(objects, given.store.keys, given.clock) };
    const [daemonSets, nodes] = await Promise.all([
      deps.cluster.watchCache('daemonsets', { labelSelector: MANAGED_SELECTOR }),
      deps.cluster.watchCache('nodes', {}),
    ]);
    return new UiData(deps, daemonSets, nodes);
  }

  /** Every cache open now (the page's live updates follow these). */
  caches(): Cache<unknown>[] {
    return [this.daemonSets, this.nodes, ...[...this.watched.values()].flatMap((w) => (w.events ? [w.pods, w.events] : [w.pods]))];
  }

  /**
   * The caches whose changes say that S3 may hold something new: the managed DaemonSets (every
   * apply, rollback, pause and wave of this product changes one of them, or their status moves
   * as the pods it replaces come and go) and the Events of the DaemonSets looked at (every
   * action of this product becomes an Event). Pods and nodes change only what is drawn from
   * the caches themselves.
   */
  s3Signals(): Cache<unknown>[] {
    return [this.daemonSets, ...[...this.watched.values()].flatMap((w) => (w.events ? [w.events] : []))];
  }

  stop(): void {
    this.stopped = true;
    this.daemonSets.stop();
    this.nodes.stop();
    for (const w of this.watched.values()) {
      w.pods.stop();
      w.events?.stop();
    }
    this.watched.clear();
  }

  private live(key: string): LiveDaemonSet | undefined {
    return this.daemonSets.items().find((d) => `${d.metadata.namespace}/${d.metadata.name}` === key);
  }

  /** What S3 holds may have changed: the next look reads it again. */
  invalidate(): void {
    this.generation++;
  }

  /** Changes with every `invalidate()`: a view built under the same generation and cache versions is the same view. */
  get recordsGeneration(): number {
    return this.generation;
  }

  /** The cluster's records in S3, read again only after an `invalidate()` or for a live DaemonSet the last read neither knew nor looked for. */
  private async readClusterRecords(keysLive: string[]): Promise<ClusterRecords> {
    const had = this.clusterRecords ? await this.clusterRecords.catch(() => undefined) : undefined;
    if (had && had.generation === this.generation && keysLive.every((k) => had.asked.has(k) || had.states.has(k) || had.unreadable.has(k) || had.index?.entries[k] !== undefined || had.pass.record?.daemonSets.some((d) => d.key === k))) return had;
    const generation = this.generation;
    const p = (async (): Promise<ClusterRecords> => {
      const { store } = this.deps;
      const [index, pass] = await Promise.all([store.index.read(), new PassRecordStore(this.deps.objects, store.keys).get().catch((err: unknown) => ({ problem: `the last pass's record cannot be read: ${errorMessage(err)}` }) as StoredPass)]);
      const keys = [...new Set([...keysLive, ...Object.keys(index?.entries ?? {})])];
      const read = await store.readStates(keys, { index: Promise.resolve(index) });
      return {
        generation, index, pass,
        states: new Map([...read.states].flatMap(([k, v]) => (v ? [[k, v.value] as const] : []))),
        unreadable: new Map([...read.unreadable].map(([k, e]) => [k, e.message])),
        asked: new Set(keysLive),
      };
    })();
    this.clusterRecords = p;
    p.catch(() => {
      if (this.clusterRecords === p) this.clusterRecords = undefined;
    });
    return p;
  }

  async cluster(): Promise<ClusterPage> {
    const { clock, config } = this.deps;
    const liveKeys = this.daemonSets.items().map((d) => `${d.metadata.namespace}/${d.metadata.name}`);
    const records = await this.readClusterRecords(liveKeys);
    const passEntries = new Map((records.pass.record?.daemonSets ?? []).map((d) => [d.key, d]));
    const keys = [...new Set([...liveKeys, ...records.states.keys(), ...records.unreadable.keys(), ...passEntries.keys()])];
    const inputs = keys
      .filter((key) => records.states.get(key) || this.live(key) || records.unreadable.has(key) || passEntries.has(key))
      .map((key) => ({ key, state: records.states.get(key), live: this.live(key), unreadable: records.unreadable.get(key), pass: passEntries.get(key) }));
    const now = clock.now();
    const lastPass = lastPassView(records.pass.record, records.pass.problem);
    return { cluster: config.cluster.name, at: now.toISOString(), daemonSets: clusterView(inputs, now, config.policy.progressDeadlineSeconds), ...(lastPass ? { lastPass } : {}) };
  }

  /**
   * The caches of one DaemonSet's pods and Events, opened at its first look and kept for the
   * next. Looks that come while they open wait for the same caches (none is opened twice).
   */
  private watch(ds: LiveDaemonSet): Promise<Watched> {
    const key = `${ds.metadata.namespace}/${ds.metadata.name}`;
    const opening = this.opening.get(key);
    if (opening) return opening;
    const p = this.openWatch(ds).finally(() => this.opening.delete(key));
    this.opening.set(key, p);
    return p;
  }

  private async openWatch(ds: LiveDaemonSet): Promise<Watched> {
    const key = `${ds.metadata.namespace}/${ds.metadata.name}`;
    const namespace = ds.metadata.namespace!;
    const selector = selectorQuery(ds.spec.selector);
    const had = this.watched.get(key);
    if (had && had.uid === ds.metadata.uid && had.selector === selector) {
      had.lastUsed = Date.now();
      return had;
    }
    if (had) {
      had.pods.stop();
      had.events?.stop();
    }
    const [pods, events] = await Promise.all([
      this.deps.cluster.watchCache('pods', { namespace, labelSelector: selector }),
      // Events are shown when the identity may read them (the reconciler's own RBAC only creates them).
      this.deps.cluster.watchCache('events', { namespace, fieldSelector: `involvedObject.kind=DaemonSet,involvedObject.name=${ds.metadata.name}` })
        .then((c) => ({ cache: c, problem: undefined }), (err: unknown) => ({ cache: undefined, problem: `Events cannot be read: ${errorMessage(err)} (the identity needs list and watch on events)` })),
    ]);
    if (this.stopped) {
      pods.stop();
      events.cache?.stop();
      throw new Error('dsgitops ui is stopping');
    }
    const w: Watched = { pods, events: events.cache, eventsProblem: events.problem, uid: ds.metadata.uid ?? '', selector, lastUsed: Date.now() };
    this.watched.set(key, w);
    // A few DaemonSets looked at recently stay watched; the oldest are closed.
    const open = [...this.watched.entries()].sort((a, b) => b[1].lastUsed - a[1].lastUsed);
    for (const [k, old] of open.slice(4)) {
      old.pods.stop();
      old.events?.stop();
      this.watched.delete(k);
    }
    return w;
  }

  private async controllerRevisions(ds: LiveDaemonSet, w: Watched): Promise<NonNullable<Watched['revisions']>> {
    const generationKey = `${ds.metadata.uid}/${ds.metadata.generation}/${ds.status?.observedGeneration}`;
    if (w.revisions?.generationKey === generationKey) return w.revisions;
    const owned = (await this.deps.cluster.listControllerRevisions(ds.metadata.namespace!, w.selector)).filter((r) => r.ownerUid === ds.metadata.uid).sort((x, y) => y.revision - x.revision);
    const byHash: Record<string, number> = {};
    for (const r of owned) {
      const n = Number(r.annotations?.[REVISION_ANNOTATION]);
      if (r.hash && Number.isInteger(n) && n > 0) byHash[r.hash] = n;
    }
    w.revisions = { generationKey, currentHash: owned[0]?.hash, byHash };
    return w.revisions;
  }

  private async snapshot(namespace: string, name: string, n: number, state: DaemonSetState | undefined): Promise<RevisionSnapshot | undefined> {
    const key = `${namespace}/${name}/${n}`;
    const had = this.snapshots.get(key);
    // A snapshot's manifest never changes; its outcome does, until a newer revision is current.
    if (had && state && n < state.currentRevision && !['pending', 'progressing'].includes(had.outcome)) return had;
    const seen = this.snapshotRead.get(key);
    if (had && seen === this.generation) return had;
    this.snapshotRead.set(key, this.generation);
    const got = await this.deps.store.getRevision(namespace, name, n).catch((err) => {
      if (err instanceof RecordUnreadableError) return undefined;
      throw err;
    });
    if (got) this.snapshots.set(key, got.value);
    return got?.value;
  }

  async daemonSet(namespace: string, name: string): Promise<DaemonSetPage> {
    const key = `${namespace}/${name}`;
    const { clock, config } = this.deps;
    const ds = this.live(key);
    const records = await this.readDaemonSetRecords(namespace, name);
    const { state, unreadable, numbers, timeline } = records;
    const cluster = await this.readClusterRecords(this.daemonSets.items().map((d) => `${d.metadata.namespace}/${d.metadata.name}`)).catch(() => undefined);
    const pass = cluster?.pass.record?.daemonSets.find((d) => d.key === key);
    if (!ds && !state && !unreadable && !pass) throw new NotFoundError(`${key} is neither a managed DaemonSet in the cluster nor recorded in S3`);
    const now = clock.now();
    const row = clusterView([{ key, state, live: ds, unreadable, pass }], now, config.policy.progressDeadlineSeconds)[0];
    const [snapshots, watched] = await Promise.all([
      mapLimit(numbers, 8, (n) => this.snapshot(namespace, name, n, state)),
      ds ? this.watch(ds) : Promise.resolve(undefined),
    ]);
    let groups: NodeGroup[] = [];
    let events: EventRow[] = [];
    let eventsProblem: string | undefined;
    if (ds && watched) {
      const revisions = await this.controllerRevisions(ds, watched);
      groups = nodeGrid({ ds, pods: watched.pods.items(), nodes: this.nodes.items(), currentHash: revisions.currentHash, revisionByHash: revisions.byHash, state }, now);
      events = eventRows((watched.events?.items() ?? []).filter((e) => !e.involvedObject?.uid || e.involvedObject.uid === ds.metadata.uid));
      eventsProblem = watched.eventsProblem;
    }
    const desired = ds?.status?.desiredNumberScheduled ?? 0;
    let declared: number | string = 1;
    try {
      declared = (JSON.parse(ds?.metadata.annotations?.['daemonset-gitops.io/declared-strategy'] ?? '{}') as { maxUnavailable?: number | string }).maxUnavailable
        ?? ds?.spec.updateStrategy?.rollingUpdate?.maxUnavailable ?? 1;
    } catch {
      // a hand-edited annotation: the default budget
    }
    let budget = 1;
    try {
      budget = budgetOf(declared, desired);
    } catch {
      // an invalid maxUnavailable is the apply's problem to report
    }
    const managed = state?.rollout?.revision === state?.currentRevision ? state?.rollout?.managed : undefined;
    const stallReason = row.phase === 'stalled' ? (managed?.checkpoint?.failed?.reason ?? state?.rollout?.message ?? row.message) : undefined;
    return {
      key, at: now.toISOString(), row, groups, counts: tileCounts(groups), legend: TILE_LEGEND,
      chart: rolloutChart(timeline?.points ?? [], now), budget, stallReason,
      revisions: revisionRows(snapshots.filter((s): s is RevisionSnapshot => Boolean(s)), state),
      ...(pass ? { pass: passLine(pass) } : {}),
      events,
      eventsProblem,
    };
  }

  /** One DaemonSet's records in S3, read again only after an `invalidate()`. */
  private readDaemonSetRecords(namespace: string, name: string): Promise<DaemonSetRecords> {
    const key = `${namespace}/${name}`;
    const had = this.daemonSetRecords.get(key);
    const generation = this.generation;
    const p = (async (): Promise<DaemonSetRecords> => {
      const before = had ? await had.catch(() => undefined) : undefined;
      if (before && before.generation === generation) return before;
      const { store } = this.deps;
      let state: DaemonSetState | undefined;
      let unreadable: string | undefined;
      try {
        state = (await store.getState(namespace, name))?.value;
      } catch (err) {
        if (!(err instanceof RecordUnreadableError)) throw err;
        unreadable = err.message;
      }
      const [numbers, timeline] = await Promise.all([
        store.listRevisionNumbers(namespace, name),
        state ? new TimelineStore(this.deps.objects, store.keys).get(namespace, name, state.currentRevision) : Promise.resolve(undefined),
      ]);
      return { generation, state, unreadable, numbers: numbers.sort((a, b) => b - a).slice(0, REVISIONS_SHOWN), timeline };
    })();
    this.daemonSetRecords.set(key, p);
    p.catch(() => {
      if (this.daemonSetRecords.get(key) === p) this.daemonSetRecords.delete(key);
    });
    // Only a few DaemonSets' records are kept.
    if (this.daemonSetRecords.size > 16) this.daemonSetRecords.delete(this.daemonSetRecords.keys().next().value!);
    return p;
  }

  async diff(namespace: string, name: string, a: number, b: number): Promise<string> {
    const [x, y] = await Promise.all([this.deps.store.getRevision(namespace, name, a), this.deps.store.getRevision(namespace, name, b)]);
    if (!x) throw new NotFoundError(`revision ${a} of ${namespace}/${name} is not in S3`);
    if (!y) throw new NotFoundError(`revision ${b} of ${namespace}/${name} is not in S3`);
    return revisionDiff(x.value, y.value);
  }
}
