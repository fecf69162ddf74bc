/** Manual rollback: { namespace, name, toRevision?, reason?, recreate? } -> applies a stored revision and pins it. */
import { parseEvent, rollbackEvent } from '../lib/events';
import { rollback, RollbackReport } from '../lib/rollback';
import { depsFor, LambdaContext } from './invocation';

export async function handler(event: unknown, context?: LambdaContext): Promise<RollbackReport> {
  const request = parseEvent(rollbackEvent, event, 'rollback', '{"namespace": "kube-system", "name": "fluentd", "toRevision": 3, "reason": "bad image"}');
  return rollback(await depsFor(context, { on: { command: 'rollback', cluster: request.cluster } }), request);
}
