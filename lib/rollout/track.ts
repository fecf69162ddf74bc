/**
 * The driver half of native rollouts: watch the DaemonSets being rolled out, fold each
 * observation into their rollout state with the pure `evaluateNative`, report progress as
 * it happens, and record what each rollout came to. It waits on a watch, not a sleep loop,
 * and hands over to the next run through S3 when the invocation's time runs out.
 */
import { emitEvent } from '../cluster/events';
import type { LiveDaemonSet } from '../cluster/types';
import { Cache, changedSince, versionsOf, waitUntil } from '../cluster/watch-cache';
import type { Deps } from '../deps';
import { errorMessage, LeaseLostError, RecordUnreadableError } from '../errors';
import { MANAGED_SELECTOR, REVISION_ANNOTATION } from '../labels';
import type { Lease } from '../store/lease';
import { canonicalJson } from '../k8s-values';
import type { RolloutState } from '../store/records';
import { driveManaged } from './managed';
import { describeCounts, evaluateNative } from './status';
import { FailedCreateEvent, refusalSince, withRefusal } from './cannot-start';
import { nativeTimelinePoint } from './native-timeline';
import { appendTimelinePoint } from './timeline';
import { TimelineStore, type TimelinePoint } from '../store/timeline-store';

export interface TrackTarget {
  namespace: string;
  name: string;
  revision: number;
  /** The rollout state S3 holds for this revision, if any. */
  previous?: RolloutState;
  /** The latest observation already at hand (from the pass's LIST), if any. */
  live?: LiveDaemonSet;
  /** This DaemonSet's own progress deadline (its annotation), instead of PROGRESS_DEADLINE_SECONDS. */
  progressDeadlineSeconds?: number;
}

export interface TrackOptions {
  /** Keep watching until every rollout ends or the time budget is spent; false: one look. */
  wait: boolean;
  lease?: Lease;
  /** While it only watches, the run lets a rollback take its lease over (the reason, for the lease record). */
  preemptible?: string;
  /** How long before the deadline to stop watching, to leave time for recording. */
  marginMs?: number;
}

const WATCH_SLICE_MS = 10_000;
/** A rollout whose pods have not all been made, with no progress for this long, is asked why (its FailedCreate Events). */
const WHY_NO_PODS_AFTER_MS = 2_000;
/** How long a burst of DaemonSet updates may go on before it is looked at, as one. */
const SETTLE_MS = 100;
/** A native rollout's new timeline points are written at most this often (and once at the end). */
const TIMELINE_WRITE_MS = 5_000;

function revisionOf(ds: LiveDaemonSet): number | undefined {
  const n = Number(ds.metadata.annotations?.[REVISION_ANNOTATION]);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

function keyOf(t: { namespace: string; name: string }): string {
  return `${t.namespace}/${t.name}`;
}

/** Nothing more will happen without someone acting: ended, or an OnDelete DaemonSet whose new generation the controller has seen. */
function terminal(r: RolloutState, ds: LiveDaemonSet): boolean {
  const observed = (ds.status?.observedGeneration ?? 0) >= (r.generation ?? 0);
  return r.phase !== 'progressing' || (Boolean(r.onDelete) && observed);
}

export interface TrackResult {
  /** The final rollout states, by namespace/name. */
  rollouts: Map<string, RolloutState>;
  /** Set when another run (a rollback) took the lease over: tracking stopped there, having recorded what it saw. */
  preemptedBy?: string;
}

/**
 * Tracks the targets and returns their final rollout states. Records each state in S3; on
 * completion marks the revision healthy, on a stall marks it stalled, with an Event either
 * way. A run whose lease is taken over stops at its next look and says by whom.
 */
export async function trackRollouts(deps: Deps, targets: TrackTarget[], options: TrackOptions): Promise<TrackResult> {
  if (options.lease && options.preemptible) await options.lease.markPreemptible(options.preemptible);
  const managed = targets.filter((t) => t.previous?.mode === 'managed');
  const native = targets.filter((t) => t.previous?.mode !== 'managed');
  const [nativeOutcome, ...managedOutcomes] = await Promise.allSettled([
    native.length ? trackNative(deps, native, options) : Promise.resolve({ rollouts: new Map<string, RolloutState>() } as TrackResult),
    ...managed.map((t) => driveManaged(deps, t, t.previous, options)),
  ]);
  const lost = [nativeOutcome, ...managedOutcomes].find((o) => o.status === 'rejected' && !(o.reason instanceof LeaseLostError));
  if (lost) throw (lost as PromiseRejectedResult).reason;
  const preempted = [nativeOutcome, ...managedOutcomes].find((o): o is PromiseRejectedResult => o.status === 'rejected');
  const result: TrackResult = nativeOutcome.status === 'fulfilled' ? nativeOutcome.value : { rollouts: new Map() };
  if (preempted) result.preemptedBy ??= errorMessage(preempted.reason);
  for (const [i, outcome] of managedOutcomes.entries()) {
    if (outcome.status !== 'fulfilled' || !outcome.value) continue;
    const t = managed[i];
    result.rollouts.set(keyOf(t), outcome.value);
    // The driver has stored every decision already; only the outcome and the Event remain.
    await record(deps, t, outcome.value, undefined, true);
  }
  if (result.preemptedBy) deps.logger.log('warn', `stopped watching rollouts: ${result.preemptedBy}`, { action: 'preempted' });
  return result;
}

async function trackNative(deps: Deps, targets: TrackTarget[], options: TrackOptions): Promise<TrackResult> {
  const { clock, config } = deps;
  const deadlineSeconds = config.policy.progressDeadlineSeconds;
  const results = new Map<string, RolloutState>();
  const byKey = new Map(targets.map((t) => [keyOf(t), t]));
  const lastSeen = new Map<string, LiveDaemonSet>();
  const pending = new Set(byKey.keys());
  // Why pods are not being created, from the controller's FailedCreate Events: asked only of a
  // rollout that has not made every pod it needs, and at most once per look.
  const refusals = new Map<string, FailedCreateEvent>();
  const refusedBefore = new Map<string, FailedCreateEvent>();
  const timelines = new NativeTimelines(deps);

  const observe = (t: TrackTarget, ds: LiveDaemonSet) => {
    const key = keyOf(t);
    // The DaemonSet now carries another revision (a rollback applied it): this rollout is over, and not judged on it.
    if (revisionOf(ds) !== t.revision) {
      pending.delete(key);
      return;
    }
    const before = results.get(key) ?? t.previous;
    const evaluated = evaluateNative(before, ds, t.revision, clock.now(), t.progressDeadlineSeconds ?? deadlineSeconds);
    const next = withRefusal(evaluated, refusals.get(key), refusedBefore.get(key));
    lastSeen.set(key, ds);
    results.set(key, next);
    const point = nativeTimelinePoint(ds, next, clock.now());
    if (point) timelines.add(t, point);
    const c = next.counts;
    const changed = !before || before.phase !== next.phase || before.message !== next.message;
    if (changed) deps.onProgress?.(`${key}: revision ${t.revision} ${next.phase}${next.onDelete ? ' (OnDelete)' : ''}: ${c && next.generation !== undefined && (ds.status?.observedGeneration ?? 0) >= next.generation ? describeCounts(c) : next.message}`);
    if (terminal(next, ds)) pending.delete(key);
  };

  for (const t of targets) if (t.live) observe(t, t.live);

  const observeCache = (items: LiveDaemonSet[]) => {
    const seen = new Set<string>();
    for (const ds of items) {
      const key = keyOf({ namespace: ds.metadata.namespace ?? '', name: ds.metadata.name });
      seen.add(key);
      if (pending.has(key)) observe(byKey.get(key)!, ds);
    }
    // A target the cache no longer holds was deleted: nothing more to track.
    for (const key of [...pending]) if (!seen.has(key)) pending.delete(key);
  };

  const askWhyNoPods = async () => {
    for (const key of pending) {
      const ds = lastSeen.get(key);
      const r = results.get(key);
      const s = ds?.status;
      const made = (s?.currentNumberScheduled ?? 0) >= (s?.desiredNumberScheduled ?? 0) && (s?.updatedNumberScheduled ?? 0) >= (s?.desiredNumberScheduled ?? 0);
      const quietMs = clock.now().getTime() - Date.parse(r?.lastProgressAt ?? r?.startedAt ?? '');
      if (!ds || !r || r.phase !== 'progressing' || made || !(quietMs >= WHY_NO_PODS_AFTER_MS)) continue;
      try {
        const found = refusalSince(await deps.cluster.listFailedCreate(ds.metadata.namespace ?? '', ds.metadata.name), r.startedAt);
        if (!found) continue;
        const had = refusals.get(key);
        if (had) refusedBefore.set(key, had);
        refusals.set(key, found);
        observe(byKey.get(key)!, ds);
      } catch (err) {
        deps.logger.log('warn', `could not read the Events of ${key}: ${errorMessage(err)}`, { daemonSet: key });
      }
    }
  };

  const preemptedBy = await followRollouts(deps, options, pending, observeCache, async () => {
    await askWhyNoPods();
    await timelines.write(false);
  });

  // What was seen is recorded even by a preempted run: each write is conditional on the revision it tracked.
  await timelines.write(true);
  await recordAll(deps, results, byKey, lastSeen);
  return preemptedBy ? { rollouts: results, preemptedBy } : { rollouts: results };
}

/**
 * The timeline points of native rollouts seen by this run, kept in memory and added to each
 * revision's timeline in S3 at most every TIMELINE_WRITE_MS per rollout (a conditional
 * read-change-write, bounded like a managed rollout's), and once at the end. A point equal to
 * the last but for its time is not kept. A failure to write costs only the chart.
 */
class NativeTimelines {
  private readonly waiting = new Map<string, { t: TrackTarget; points: TimelinePoint[]; writtenAt: number }>();

  constructor(private readonly deps: Deps) {}

  add(t: TrackTarget, point: TimelinePoint): void {
    const key = `${keyOf(t)}/${t.revision}`;
    const had = this.waiting.get(key) ?? { t, points: [], writtenAt: 0 };
    had.points = appendTimelinePoint(had.points, point);
    this.waiting.set(key, had);
  }

  async write(all: boolean): Promise<void> {
    const now = Date.now();
    for (const w of this.waiting.values()) {
      if (w.points.length === 0 || (!all && now - w.writtenAt < TIMELINE_WRITE_MS)) continue;
      const points = w.points;
      w.points = [];
      w.writtenAt = now;
      try {
        await new TimelineStore(this.deps.objects, this.deps.store.keys).update(w.t.namespace, w.t.name, w.t.revision, (stored) => points.reduce((acc, p) => appendTimelinePoint(acc, p), stored));
      } catch (err) {
        this.deps.logger.log('warn', `could not keep the rollout's timeline: ${errorMessage(err)}`, { daemonSet: keyOf(w.t) });
      }
    }
  }
}

/**
 * Looks at the managed DaemonSets through one LIST+WATCH cache until nothing is `pending`, the
 * time is up or the lease is taken over (returns by whom); `look` gets every DaemonSet at each
 * change, and at least every WATCH_SLICE_MS (a rollout with no progress must still stall).
 */
async function followRollouts(deps: Deps, options: TrackOptions, pending: Set<string>, look: (items: LiveDaemonSet[]) => void, afterLook?: () => Promise<void>): Promise<string | undefined> {
  const margin = options.marginMs ?? 15_000;
  let cache: Cache<LiveDaemonSet> | undefined;
  try {
    while (pending.size > 0) {
      if (!cache) {
        try {
          cache = await deps.cluster.watchCache('daemonsets', { labelSelector: MANAGED_SELECTOR });
        } catch (err) {
          deps.logger.log('warn', `watching rollouts failed, will look again: ${errorMessage(err)}`);
        }
      }
      if (cache && !cache.failure) look(cache.items());
      if (afterLook && pending.size > 0) await afterLook();
      if (!options.wait || pending.size === 0) return undefined;
      const left = deps.deadline - deps.clock.now().getTime() - margin;
      if (left <= 0) return undefined;
      const slice = Math.max(1_000, Math.min(WATCH_SLICE_MS, left));
      if (cache && !cache.failure) {
        const seen = versionsOf([cache]);
        await waitUntil([cache], () => changedSince([cache!], seen), slice, SETTLE_MS);
      } else {
        await new Promise((r) => setTimeout(r, Math.min(1_000, slice)));
      }
      if (cache?.failure) {
        deps.logger.log('warn', `watching rollouts failed, will look again: ${errorMessage(cache.failure)}`);
        cache.stop();
        cache = undefined;
      }
      if (options.lease) {
        try {
          await options.lease.check();
          await options.lease.renewIfDue();
        } catch (err) {
          if (!(err instanceof LeaseLostError)) throw err;
          return err.message;
        }
      }
    }
    return undefined;
  } finally {
    cache?.stop();
  }
}

async function recordAll(deps: Deps, results: Map<string, RolloutState>, byKey: Map<string, TrackTarget>, lastSeen: Map<string, LiveDaemonSet>): Promise<void> {
  for (const [key, rollout] of results) {
    try {
      await record(deps, byKey.get(key)!, rollout, lastSeen.get(key));
    } catch (err) {
      // One DaemonSet's unreadable record blocks no other's: it is reported, and written over by no one.
      if (!(err instanceof RecordUnreadableError)) throw err;
      deps.logger.log('error', err.message, { daemonSet: key, action: 'record-unreadable', reason: err.reason, key: err.key });
    }
  }
}

async function record(deps: Deps, t: TrackTarget, rollout: RolloutState, live: LiveDaemonSet | undefined, stored = false): Promise<void> {
  const { store, clock } = deps;
  const key = keyOf(t);
  const wasPhase = t.previous?.revision === t.revision ? t.previous.phase : undefined;
  const now = clock.now().toISOString();
  // A rollout that looks as it did (an OnDelete DaemonSet waiting for deletions, say) is not
  // written again; a managed rollout's driver has written its state, all but lastHealthyRevision.
  const unchanged = t.previous?.revision === t.revision && canonicalJson(t.previous) === canonicalJson(rollout);
  let replaced = false;
  const after = await store.updateState(t.namespace, t.name, (cur) => {
    replaced = !cur || cur.currentRevision !== t.revision;
    if (replaced || unchanged || (stored && rollout.phase !== 'complete')) return undefined;
    return {
      ...cur!,
      rollout,
      lastHealthyRevision: rollout.phase === 'complete' ? t.revision : cur!.lastHealthyRevision,
      updatedAt: now,
    };
  });
  // A newer revision (a rollback, say) took over meanwhile: what became of this one is that revision's business.
  if (replaced || !after || rollout.phase === wasPhase) return;
  const target = { namespace: t.namespace, name: t.name, uid: live?.metadata.uid };
  if (rollout.phase === 'complete') {
    await store.setOutcome(t.namespace, t.name, t.revision, 'healthy', now, undefined, undefined, rollout.managed?.gates);
    await emitEvent(deps, target, 'Normal', 'RolloutComplete', `revision ${t.revision} rolled out${wasPhase === 'stalled' ? ' after it had stalled' : ''}: ${rollout.counts ? describeCounts(rollout.counts) : rollout.message}`);
    deps.logger.log('info', `revision ${t.revision} rolled out`, { daemonSet: key, action: 'rollout-complete', revision: t.revision, ...rollout.counts });
  } else if (rollout.phase === 'stalled') {
    await store.setOutcome(t.namespace, t.name, t.revision, 'stalled', now, rollout.message, undefined, rollout.managed?.gates);
    await emitEvent(deps, target, 'Warning', 'RolloutStalled', `revision ${t.revision}: ${rollout.message}`);
    deps.logger.log('warn', `revision ${t.revision} ${rollout.message}`, { daemonSet: key, action: 'rollout-stalled', revision: t.revision });
  } else if (wasPhase === 'stalled') {
    await store.setOutcome(t.namespace, t.name, t.revision, 'progressing', now, 'progress resumed after a stall');
    await emitEvent(deps, target, 'Normal', 'RolloutResumed', `revision ${t.revision} is progressing again: ${rollout.message}`);
    deps.logger.log('info', `revision ${t.revision} is progressing again`, { daemonSet: key, action: 'rollout-progressing', revision: t.revision });
  }
}
