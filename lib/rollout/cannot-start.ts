/**
 * PURE: why a rollout cannot start. When the DaemonSet controller cannot create pods (a missing
 * ServiceAccount, a quota, an admission webhook), it says so in FailedCreate Events on the
 * DaemonSet and retries with a back-off; the counts just stay where they are. A rollout that
 * sees such an Event says so at once, naming it, and one whose pods are still refused at a later
 * look (the controller retried and was refused again) is stalled with that reason, instead of a
 * bare "no progress" when the deadline expires minutes later.
 */
import type { RolloutState } from '../store/records';

/** A FailedCreate Event of the DaemonSet, as the controller wrote it. */
export interface FailedCreateEvent {
  message: string;
  /** How many times the controller was refused (the Event's count or series). */
  count: number;
  /** When it was last refused. */
  lastAt: string;
}

/** The newest refusal since the rollout started, if any. */
export function refusalSince(events: FailedCreateEvent[], startedAt: string | undefined): FailedCreateEvent | undefined {
  const since = startedAt ? Date.parse(startedAt) - 1_000 : -Infinity; // Event times have one-second resolution
  return events.filter((e) => Date.parse(e.lastAt) >= since).sort((a, b) => Date.parse(b.lastAt) - Date.parse(a.lastAt))[0];
}

/**
 * The rollout state with the refusal in it: `progressing` with the reason the first time it is
 * seen, `stalled` once the controller has been refused again since (two attempts, or a later
 * look that still finds it). A rollout that has made every pod it needs is left as it is.
 */
export function withRefusal(state: RolloutState, refusal: FailedCreateEvent | undefined, seenBefore: FailedCreateEvent | undefined): RolloutState {
  if (!refusal || state.phase === 'complete') return state;
  const reason = `the DaemonSet controller cannot create pods (FailedCreate, ${refusal.count} time${refusal.count === 1 ? '' : 's'}, last at ${refusal.lastAt}): ${refusal.message}`;
  const again = refusal.count >= 2 || (seenBefore !== undefined && Date.parse(refusal.lastAt) > Date.parse(seenBefore.lastAt));
  return again ? { ...state, phase: 'stalled', message: `stalled: ${reason}` } : { ...state, message: `progressing: ${reason}` };
}
