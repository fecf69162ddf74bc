/**
 * Pause and resume of managed rollouts. A pause is a conditional write to the DaemonSet's
 * state, not a lease: it must work while a run is in the middle of a rollout, and that run
 * reads the flag before each wave, so it stops deleting pods at its next decision.
 */
import { emitEvent } from './apply';
import type { Deps } from './deps';
import { InvalidRequestError, NotFoundError } from './errors';
import type { DaemonSetState } from './store/records';

export interface PauseReport {
  kind: 'PauseReport';
  namespace: string;
  name: string;
  paused: boolean;
  revision: number;
  message: string;
}

async function setPaused(deps: Deps, req: { namespace: string; name: string; reason?: string; by?: string }, paused: boolean): Promise<PauseReport> {
  const key = `${req.namespace}/${req.name}`;
  const now = deps.clock.now().toISOString();
  let seen: DaemonSetState | undefined;
  const state = await deps.store.updateState(req.namespace, req.name, (cur) => {
    seen = cur;
    if (!cur) return undefined;
    if (cur.rollout?.mode !== 'managed') return undefined;
    if (Boolean(cur.paused) === paused) return undefined;
    return { ...cur, paused: paused ? { at: now, by: req.by, reason: req.reason } : undefined, updatedAt: now };
  });
  if (!seen) throw new NotFoundError(`${key} has no state in cluster ${deps.config.cluster.name}: it is not managed by daemonset-gitops here`);
  if (seen.rollout?.mode !== 'managed') {
    throw new InvalidRequestError(`${key} uses native rollouts, which the cluster's DaemonSet controller runs and which cannot be paused: add the annotation daemonset-gitops.io/rollout: managed to its manifest`);
  }
  const message = paused
    ? `paused${req.reason ? `: ${req.reason}` : ''}; no pod is deleted until it is resumed`
    : `resumed; the rollout of revision ${state!.currentRevision} continues with the running pass, or the next one`;
  await emitEvent(deps, { namespace: req.namespace, name: req.name }, 'Normal', paused ? 'Paused' : 'Resumed', message);
  deps.logger.log('info', message, { daemonSet: key, action: paused ? 'pause' : 'resume' });
  return { kind: 'PauseReport', namespace: req.namespace, name: req.name, paused, revision: state!.currentRevision, message: `${key} ${message}` };
}

export function pause(deps: Deps, req: { namespace: string; name: string; reason?: string; by?: string }): Promise<PauseReport> {
  return setPaused(deps, req, true);
}

export function resume(deps: Deps, req: { namespace: string; name: string; reason?: string; by?: string }): Promise<PauseReport> {
  return setPaused(deps, req, false);
}
