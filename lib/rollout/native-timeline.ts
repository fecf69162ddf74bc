/**
 * PURE: the points of a native rollout's timeline (the cluster's DaemonSet controller rolls it;
 * this product only watches), for the chart `dsgitops ui` draws beside managed ones: unavailable
 * nodes against the budget the controller keeps to, and updated nodes, from the DaemonSet's
 * status as each look of the tracker sees it. Kept in the same bounded timeline records as
 * managed rollouts (store/timeline-store.ts, rollout/timeline.ts).
 */
import type { LiveDaemonSet } from '../cluster/types';
import type { RolloutState } from '../store/records';
import type { TimelinePoint } from '../store/timeline-store';
import { resolveMaxUnavailable } from './wave';

function scaled(value: number | string | undefined, desired: number, fallback: number): number {
  if (value === undefined) return fallback;
  try {
    return resolveMaxUnavailable(value, desired);
  } catch {
    return fallback; // an invalid value is the apply's problem to report
  }
}

/**
 * The number of nodes the DaemonSet controller lets be unavailable at once during a rolling
 * update, as it computes it: maxUnavailable (default 1) scaled against the desired nodes,
 * percentages rounded up; with maxSurge set and maxUnavailable 0 none may be (the new pod
 * starts first); both 0 is taken as 1. Undefined for OnDelete: the controller rolls nothing.
 */
export function nativeBudget(ds: LiveDaemonSet): number | undefined {
  const strategy = ds.spec.updateStrategy;
  if (strategy?.type === 'OnDelete') return undefined;
  const desired = ds.status?.desiredNumberScheduled ?? 0;
  const rolling = strategy?.rollingUpdate;
  const surge = scaled(rolling?.maxSurge, desired, 0);
  const unavailable = scaled(rolling?.maxUnavailable, desired, 1);
  return desired > 0 && unavailable === 0 && surge === 0 ? 1 : unavailable;
}

/**
 * The point one look at a native rollout leaves: the status counts as the controller reports
 * them (`numberUnavailable` is desired less available), the budget, and the rollout's phase.
 * `updatedAvailable` is an upper bound (the status does not say which available pods are
 * updated). Undefined for an OnDelete DaemonSet, or a status the controller has not written for
 * this generation yet.
 */
export function nativeTimelinePoint(ds: LiveDaemonSet, rollout: Pick<RolloutState, 'phase'>, at: Date): TimelinePoint | undefined {
  const budget = nativeBudget(ds);
  const s = ds.status;
  if (budget === undefined || !s || (s.observedGeneration ?? 0) < (ds.metadata.generation ?? 0)) return undefined;
  const desired = s.desiredNumberScheduled ?? 0;
  const available = s.numberAvailable ?? 0;
  const updated = s.updatedNumberScheduled ?? 0;
  return {
    at: at.toISOString(),
    desired,
    updated,
    updatedAvailable: Math.min(updated, available),
    unavailable: s.numberUnavailable ?? Math.max(0, desired - available),
    budget,
    skipped: 0,
    phase: rollout.phase,
    wave: 0,
  };
}
