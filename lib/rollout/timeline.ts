/**
 * PURE: the points of a managed rollout's timeline, for the chart `dsgitops ui` draws
 * (unavailable nodes against the budget, updated nodes, the canary hold and the waves).
 * One point per decision that changed something, kept to a bounded number per revision.
 */
import type { TimelinePoint } from '../store/timeline-store';
import type { WaveDecision } from './wave';

/** At most this many points per revision: about 20 KiB of JSON. */
export const MAX_TIMELINE_POINTS = 240;

/**
 * The point a decision leaves behind: the counts as they stand once its deletions are done
 * (the pods it deletes are unavailable from then on), the budget, the phase and the wave.
 */
export function timelinePoint(decision: WaveDecision, at: Date): TimelinePoint {
  const c = decision.counts;
  return {
    at: at.toISOString(),
    desired: c.desired,
    updated: c.updated,
    updatedAvailable: c.updatedAvailable,
    unavailable: c.unavailable + decision.podsToDelete.length,
    budget: c.maxUnavailable,
    skipped: c.skipped,
    phase: decision.phase,
    wave: decision.checkpoint.waves,
  };
}

function sameShape(a: TimelinePoint, b: TimelinePoint): boolean {
  return a.phase === b.phase && a.wave === b.wave;
}

/**
 * `points` with `point` appended, never longer than `max`. A point equal to the last one
 * but for its time is not added. When full, the oldest point inside a run of points with the
 * same phase and wave goes (the first and last point always stay, and so does every change of
 * phase or wave while there is anything else to drop); failing that, the second point goes.
 */
export function appendTimelinePoint(points: readonly TimelinePoint[], point: TimelinePoint, max = MAX_TIMELINE_POINTS): TimelinePoint[] {
  const last = points[points.length - 1];
  if (last && JSON.stringify({ ...last, at: '' }) === JSON.stringify({ ...point, at: '' })) return [...points];
  const out = [...points, point];
  while (out.length > Math.max(2, max)) {
    let drop = -1;
    for (let i = 1; i < out.length - 1; i++) {
      if (sameShape(out[i - 1], out[i]) && sameShape(out[i], out[i + 1])) {
        drop = i;
        break;
      }
    }
    out.splice(drop > 0 ? drop : 1, 1);
  }
  return out;
}
