/** Pauses a managed rollout: { namespace, name, reason? }. No pod is deleted until resume. */
import { parseEvent, targetEvent } from '../lib/events';
import { pause, PauseReport } from '../lib/pause';
import { depsFor, LambdaContext } from './invocation';

export async function handler(event: unknown, context?: LambdaContext): Promise<PauseReport> {
  const request = parseEvent(targetEvent, event, 'pause', '{"namespace": "kube-system", "name": "fluentd", "reason": "investigating"}');
  return pause(await depsFor(context, { on: { command: 'pause', cluster: request.cluster } }), request);
}
