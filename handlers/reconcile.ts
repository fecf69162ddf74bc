/** Scheduled, manual or push-started reconcile pass: returns the report. */
import { parseReconcileEvent } from '../lib/events';
import { reconcileCatchingUp } from '../lib/catch-up';
import type { ReconcileReport } from '../lib/report';
import { autoRollback } from '../lib/rollback';
import { depsFor, LambdaContext } from './invocation';

export async function handler(event: unknown, context?: LambdaContext): Promise<ReconcileReport> {
  const request = parseReconcileEvent(event);
  const deps = depsFor(context);
  if (request.push) deps.logger.log('info', `pass started by a push of ${request.push.commit.slice(0, 7)} to ${request.push.ref}`, { action: 'push-pass', ...request.push });
  // A push that arrived while this pass held the lease is applied before it returns.
  return reconcileCatchingUp(deps, request, autoRollback);
}
