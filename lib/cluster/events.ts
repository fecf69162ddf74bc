/**
 * Kubernetes Events on the DaemonSets this tool changes: the story `kubectl describe ds`
 * tells. Failing to write one never fails the run; it is logged instead.
 */
import { errorMessage } from '../errors';
import type { Logger } from '../log';
import type { Cluster, EventType } from './client';

export async function emitEvent(
  deps: { cluster: Cluster; logger: Logger },
  target: { namespace: string; name: string; uid?: string },
  type: EventType,
  reason: string,
  message: string,
): Promise<void> {
  try {
    // kubectl describe finds events by the object's uid, so an event without one would not show.
    const uid = target.uid ?? (await deps.cluster.getDaemonSet(target.namespace, target.name))?.metadata.uid;
    await deps.cluster.createEvent({ ...target, uid }, type, reason, message);
  } catch (err) {
    deps.logger.log('warn', `could not record event ${reason}: ${errorMessage(err)}`, { daemonSet: `${target.namespace}/${target.name}` });
  }
}
