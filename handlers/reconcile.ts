/** Scheduled (or manual) reconcile pass: returns the report. */
import { parseReconcileEvent } from '../lib/events';
import { reconcile } from '../lib/reconcile';
import type { ReconcileReport } from '../lib/report';
import { autoRollback } from '../lib/rollback';
import { depsFor, LambdaContext } from './invocation';

export async function handler(event: unknown, context?: LambdaContext): Promise<ReconcileReport> {
  const request = parseReconcileEvent(event);
  const deps = await depsFor(context);
  return reconcile(deps, request, autoRollback);
}
