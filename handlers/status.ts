/** Per-DaemonSet rollout status: {}, in a fleet { cluster }. */
import { parseEvent, statusEvent } from '../lib/events';
import { status, StatusReport } from '../lib/status';
import { depsFor, LambdaContext } from './invocation';

export async function handler(event: unknown, context?: LambdaContext): Promise<StatusReport> {
  const request = parseEvent(statusEvent, event, 'status', '{} (in a fleet: {"cluster": "prod-a"})');
  return status(await depsFor(context, { on: { command: 'status', cluster: request.cluster } }));
}
