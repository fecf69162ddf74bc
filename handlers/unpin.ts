/** Releases a rollback's pin: { namespace, name, reason? }. */
import { parseEvent, targetEvent } from '../lib/events';
import { unpin, UnpinReport } from '../lib/pins';
import { depsFor, LambdaContext } from './invocation';

export async function handler(event: unknown, context?: LambdaContext): Promise<UnpinReport> {
  const request = parseEvent(targetEvent, event, 'unpin', '{"namespace": "kube-system", "name": "fluentd"}');
  return unpin(await depsFor(context, { on: { command: 'unpin', cluster: request.cluster } }), request);
}
