/**
 * Scheduled, manual or push-started reconcile pass: returns the report. A failed pass logs its
 * report and fails the invocation (PassFailedError), so Lambda's Errors metric and alarms
 * count it; its metrics (lib/metrics.ts) count failed and successful passes. The schedule does
 * not retry it (serverless.yml): the next scheduled pass is the retry.
 */
import { reconcileCatchingUp } from '../lib/catch-up';
import { PassFailedError } from '../lib/errors';
import { parseReconcileEvent } from '../lib/events';
import { passMetrics } from '../lib/metrics';
import { failureSummary, ReconcileReport } from '../lib/report';
import { autoRollback } from '../lib/rollback';
import { depsFor, LambdaContext } from './invocation';

export async function handler(event: unknown, context?: LambdaContext): Promise<ReconcileReport> {
  const request = parseReconcileEvent(event);
  const deps = await depsFor(context);
  if (request.push) deps.logger.log('info', `pass started by a push of ${request.push.commit.slice(0, 7)} to ${request.push.ref}`, { action: 'push-pass', ...request.push });
  // A push that arrived while this pass held the lease is applied before it returns.
  const report = await reconcileCatchingUp(deps, request, autoRollback);
  // CloudWatch takes the pass's metrics from this line (the alarms of deploy/stack.js).
  deps.logger.log('info', `pass metrics: ${report.result}`, { action: 'pass-metrics', ...passMetrics(report) });
  if (report.result !== 'failed') return report;
  deps.logger.log('error', 'pass report', { action: 'report', report });
  throw new PassFailedError(failureSummary(report));
}
