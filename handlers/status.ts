/** Per-DaemonSet rollout status: {}. */
import { parseEvent, statusEvent } from '../lib/events';
import { status, StatusReport } from '../lib/status';
import { depsFor, LambdaContext } from './invocation';

export async function handler(event: unknown, context?: LambdaContext): Promise<StatusReport> {
  parseEvent(statusEvent, event, 'status', '{}');
  return status(await depsFor(context));
}
