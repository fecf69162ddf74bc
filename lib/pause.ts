/**
 * Pause and resume of managed rollouts. A pause is a conditional write to the DaemonSet's
 * state, not a lease: it must work while a run is in the middle of a rollout, and that run
 * reads the flag before each wave, so it stops deleting pods at its next decision.
 */
import { emitEvent } from './cluster/events';
import type { Deps } from './deps';
import { InvalidRequestError, NotFoundError } from './errors';
import type { ManagedRecord } from './store/records';
import type { WaveCheckpoint } from './rollout/wave';
import type { DaemonSetState, RolloutState } from './store/records';

export interface PauseReport {
  kind: 'PauseReport';
  namespace: string;
  name: string;
  paused: boolean;
  revision: number;
  message: string;
}

/**
 * A stalled managed rollout, made to continue: the deadline starts again now, and the nodes
 * a failed update broke are no longer held against it (they stay NotReady and are skipped,
 * within the cap on skipped nodes). Undefined when the rollout is not stalled.
 */
function restartStalled(rollout: RolloutState | undefined, now: string): RolloutState | undefined {
  if (rollout?.mode !== 'managed' || rollout.phase !== 'stalled') return undefined;
  const managed: ManagedRecord = rollout.managed ?? {};
  const cp = managed.checkpoint;
  if (!cp) return { ...rollout, phase: 'progressing', lastProgressAt: now };
  const accepted = new Set(cp.failed?.nodes ?? []);
  // The deadline starts again now, and the time until a run drives it counts (the schedule drives it from here).
  const checkpoint: WaveCheckpoint = {
    ...cp,
    lastProgressAt: now,
    decidedAt: now,
    handedOffAt: now,
    touched: cp.touched?.map((t) => (accepted.has(t.node) ? { ...t, readyAtDelete: false } : t)),
  };
  delete checkpoint.failed;
  delete checkpoint.undrivenMs;
  return { ...rollout, phase: 'progressing', lastProgressAt: now, message: `resumed after: ${rollout.message ?? 'a stall'}`, managed: { ...managed, checkpoint, wavePhase: 'progressing' } };
}

/**
 * A managed rollout paused by an inconclusive gate, made to continue: its inconclusive
 * measurements are acknowledged (they no longer count against inconclusiveLimit), so the gate
 * measures again. Undefined when no gate measurement is left to acknowledge.
 */
function acknowledgeGates(rollout: RolloutState | undefined): RolloutState | undefined {
  const gates = rollout?.managed?.gates;
  if (!rollout || !gates?.measurements.some((m) => m.outcome === 'inconclusive' && !m.acknowledged)) return undefined;
  const measurements = gates.measurements.map((m) => (m.outcome === 'inconclusive' && !m.acknowledged ? { ...m, acknowledged: true } : m));
  return { ...rollout, managed: { ...rollout.managed, gates: { ...gates, measurements } } };
}

async function setPaused(deps: Deps, req: { namespace: string; name: string; reason?: string; by?: string }, paused: boolean): Promise<PauseReport> {
  const key = `${req.namespace}/${req.name}`;
  const now = deps.clock.now().toISOString();
  let seen: DaemonSetState | undefined;
  let restarted: RolloutState | undefined;
  const state = await deps.store.updateState(req.namespace, req.name, (cur) => {
    seen = cur;
    restarted = undefined;
    if (!cur) return undefined;
    if (cur.rollout?.mode !== 'managed') return undefined;
    restarted = paused ? undefined : restartStalled(cur.rollout, now);
    const acknowledged = paused ? undefined : acknowledgeGates(restarted ?? cur.rollout);
    if (acknowledged && !restarted) {
      // Not stalled, paused by a gate: only its inconclusive measurements change.
      return { ...cur, paused: undefined, rollout: acknowledged, updatedAt: now };
    }
    if (acknowledged) restarted = acknowledged;
    if (Boolean(cur.paused) === paused && !restarted) return undefined;
    return { ...cur, paused: paused ? { at: now, by: req.by, reason: req.reason } : undefined, rollout: restarted ?? cur.rollout, updatedAt: now };
  });
  if (!seen) throw new NotFoundError(`${key} has no state in cluster ${deps.config.cluster.name}: it is not managed by daemonset-gitops here`);
  if (seen.rollout?.mode !== 'managed') {
    throw new InvalidRequestError(`${key} uses native rollouts, which the cluster's DaemonSet controller runs and which cannot be paused: add the annotation daemonset-gitops.io/rollout: managed to its manifest`);
  }
  if (restarted) {
    await deps.store.setOutcome(req.namespace, req.name, state!.currentRevision, 'progressing', now, `resumed by ${req.by ?? 'an operator'} after it had stalled`);
  }
  const revision = state!.currentRevision;
  const brokeNodes = Boolean(seen.rollout.managed?.checkpoint?.failed);
  const message = paused
    ? `paused${req.reason ? `: ${req.reason}` : ''}; no pod is deleted until it is resumed`
    : restarted
      ? `resumed the stalled rollout of revision ${revision} (it was ${seen.rollout.message ?? 'stalled'}); its progress deadline starts again now${brokeNodes ? ' and the nodes it broke stay NotReady and are skipped' : ''}; it continues with the running pass, or the next one`
      : `resumed; the rollout of revision ${revision} continues with the running pass, or the next one`;
  await emitEvent(deps, { namespace: req.namespace, name: req.name }, 'Normal', paused ? 'Paused' : 'Resumed', message);
  deps.logger.log('info', message, { daemonSet: key, action: paused ? 'pause' : 'resume' });
  return { kind: 'PauseReport', namespace: req.namespace, name: req.name, paused, revision, message: `${key} ${message}` };
}

export function pause(deps: Deps, req: { namespace: string; name: string; reason?: string; by?: string }): Promise<PauseReport> {
  return setPaused(deps, req, true);
}

export function resume(deps: Deps, req: { namespace: string; name: string; reason?: string; by?: string }): Promise<PauseReport> {
  return setPaused(deps, req, false);
}
