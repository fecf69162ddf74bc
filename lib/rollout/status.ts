/**
 * PURE rollout decisions for native mode (the cluster's DaemonSet controller rolls out):
 * the `kubectl get ds` columns, whether the rollout is complete, and whether it stalled.
 */
import type { LiveDaemonSet } from '../cluster/types';
import type { RolloutCounts, RolloutPhase, RolloutState } from '../store/records';

/** DESIRED, CURRENT, READY, UP-TO-DATE, AVAILABLE, as kubectl prints them. */
export function countsOf(ds: LiveDaemonSet): RolloutCounts {
  const s = ds.status ?? {};
  return {
    desired: s.desiredNumberScheduled ?? 0,
    current: s.currentNumberScheduled ?? 0,
    ready: s.numberReady ?? 0,
    upToDate: s.updatedNumberScheduled ?? 0,
    available: s.numberAvailable ?? 0,
  };
}

export function controllerCaughtUp(ds: LiveDaemonSet): boolean {
  return (ds.status?.observedGeneration ?? 0) >= (ds.metadata.generation ?? 0);
}

/** The same test `kubectl rollout status ds/...` applies. */
export function isRolloutComplete(ds: LiveDaemonSet): boolean {
  const c = countsOf(ds);
  return controllerCaughtUp(ds) && c.upToDate >= c.desired && c.available >= c.desired;
}

export function isOnDelete(ds: LiveDaemonSet): boolean {
  return ds.spec.updateStrategy?.type === 'OnDelete';
}

/** Progress is more pods updated or more pods available than at the previous look. */
export function progressed(before: RolloutCounts | undefined, now: RolloutCounts): boolean {
  if (!before) return true;
  return now.upToDate > before.upToDate || now.available > before.available;
}

/**
 * What a row shows for a rollout whose phase was recorded earlier and whose counts were read
 * now: never `complete` with fewer pods up to date or available than desired (a phase recorded
 * before the pods came up, or a pod that went away since). Such a row is `progressing`, and
 * says what the counts show. Rows without counts are shown as recorded.
 */
export function consistentRow<T extends { phase?: RolloutPhase; desired?: number; upToDate?: number; available?: number; message?: string }>(row: T): T {
  if (row.phase !== 'complete' || row.desired === undefined) return row;
  const available = row.available ?? 0;
  const upToDate = row.upToDate ?? 0;
  if (available >= row.desired && upToDate >= row.desired) return row;
  return { ...row, phase: 'progressing', message: `${upToDate}/${row.desired} up to date, ${available} available now${row.message ? ` (recorded: ${row.message})` : ''}` };
}

export function describeCounts(c: RolloutCounts): string {
  return `${c.upToDate}/${c.desired} updated, ${c.available} available, ${c.ready} ready`;
}

/**
 * Folds one observation of the DaemonSet into the rollout's state.
 *
 * Assumptions / invariants:
 * - `previous` is the state the last observation left for the same revision, or undefined
 *   when this revision has just been applied (the clock then starts now).
 * - Status is judged only once the controller has observed the generation this revision
 *   applied (`observedGeneration`), as `kubectl rollout status` waits for it: before that,
 *   the counts describe the previous template and say nothing about this rollout.
 * - A rollout is stalled when neither UP-TO-DATE nor AVAILABLE grew for `deadlineSeconds`;
 *   it leaves the stalled phase again when progress resumes, and becomes complete when it
 *   completes, however late.
 * - OnDelete DaemonSets are never rolled by the controller, so they are never stalled: they
 *   wait for someone to delete their pods.
 * - The message of a state that does not change stays the same, so recording it again is a no-op.
 */
export function evaluateNative(
  previous: RolloutState | undefined,
  ds: LiveDaemonSet,
  revision: number,
  now: Date,
  deadlineSeconds: number,
): RolloutState {
  const at = now.toISOString();
  const same = previous && previous.revision === revision && previous.mode === 'native';
  const generation = Math.max(ds.metadata.generation ?? 0, same ? previous.generation ?? 0 : 0);
  const observed = (ds.status?.observedGeneration ?? 0) >= generation;
  const counts = observed ? countsOf(ds) : same ? previous.counts : undefined;
  const startedAt = same ? previous.startedAt : at;
  const moved = !same || (observed && progressed(previous.counts, countsOf(ds)));
  const lastProgressAt = moved ? at : previous.lastProgressAt;
  const onDelete = isOnDelete(ds);
  const base: RolloutState = { revision, mode: 'native', phase: 'progressing', generation, startedAt, lastProgressAt, counts, onDelete };
  if (observed && isRolloutComplete(ds)) {
    return { ...base, phase: 'complete', finishedAt: same && previous.finishedAt ? previous.finishedAt : at, message: `complete: ${describeCounts(countsOf(ds))}` };
  }
  if (onDelete) {
    return { ...base, message: `updateStrategy OnDelete: pods take the new template only when they are deleted${counts ? ` (${describeCounts(counts)})` : ''}` };
  }
  const waitingText = `waiting for the DaemonSet controller to observe generation ${generation}`;
  const idleMs = now.getTime() - Date.parse(lastProgressAt);
  if (idleMs > deadlineSeconds * 1000) {
    return { ...base, phase: 'stalled', message: `stalled: no progress since ${lastProgressAt} (deadline ${deadlineSeconds}s): ${counts && observed ? describeCounts(counts) : waitingText}` };
  }
  return { ...base, message: observed && counts ? `progressing: ${describeCounts(counts)}` : `progressing: ${waitingText}` };
}
