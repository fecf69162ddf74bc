/** Resumes a paused managed rollout: { namespace, name }. */
import { parseEvent, targetEvent } from '../lib/events';
import { resume, PauseReport } from '../lib/pause';
import { depsFor, LambdaContext } from './invocation';

export async function handler(event: unknown, context?: LambdaContext): Promise<PauseReport> {
  const request = parseEvent(targetEvent, event, 'resume', '{"namespace": "kube-system", "name": "fluentd"}');
  return resume(await depsFor(context, { on: { command: 'resume', cluster: request.cluster } }), request);
}
