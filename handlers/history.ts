/** Stored revisions, newest first: { namespace, name, limit? }. Reads S3 only. */
import { historyEvent, parseEvent } from '../lib/events';
import { history, HistoryReport } from '../lib/history';
import { depsFor, LambdaContext } from './invocation';

export async function handler(event: unknown, context?: LambdaContext): Promise<HistoryReport> {
  const request = parseEvent(historyEvent, event, 'history', '{"namespace": "kube-system", "name": "fluentd", "limit": 10}');
  return history(await depsFor(context, { cluster: false, on: { command: 'history', cluster: request.cluster } }), request);
}
