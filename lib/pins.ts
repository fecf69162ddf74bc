/**
 * Releasing a pin by hand. The next pass then treats the DaemonSet like any other: if Git's
 * version differs from what runs, it is applied (and the pinned annotation goes with it).
 */
import { emitEvent } from './cluster/events';
import { clusterLease, Deps } from './deps';
import { InvalidRequestError, NotFoundError } from './errors';
import type { Pin } from './store/records';

export interface UnpinReport {
  kind: 'UnpinReport';
  namespace: string;
  name: string;
  released: Pin;
  message: string;
}

export async function unpin(deps: Deps, req: { namespace: string; name: string; reason?: string }): Promise<UnpinReport> {
  const key = `${req.namespace}/${req.name}`;
  const lease = clusterLease(deps);
  await lease.acquire('unpin');
  try {
    const current = await deps.store.getState(req.namespace, req.name);
    if (!current) throw new NotFoundError(`${key} has no state in cluster ${deps.config.cluster.name}: nothing to unpin`);
    const pin = current.value.pin;
    if (!pin) throw new InvalidRequestError(`${key} is not pinned: nothing to unpin`);
    const now = deps.clock.now().toISOString();
    // A recreate rollback still pending goes with its pin: the next pass applies Git's version instead.
    await deps.store.updateState(req.namespace, req.name, (cur) => (cur ? { ...cur, pin: undefined, recreate: undefined, updatedAt: now } : undefined));
    const live = await deps.cluster.getDaemonSet(req.namespace, req.name);
    const message = `unpinned from revision ${pin.revision}${req.reason ? `: ${req.reason}` : ''}; the next pass applies Git's version if it differs`;
    if (live) await emitEvent(deps, { namespace: req.namespace, name: req.name, uid: live.metadata.uid }, 'Normal', 'Unpinned', message);
    deps.logger.log('info', message, { daemonSet: key, action: 'unpin' });
    return { kind: 'UnpinReport', namespace: req.namespace, name: req.name, released: pin, message: `${key} ${message}` };
  } finally {
    await lease.release();
  }
}
