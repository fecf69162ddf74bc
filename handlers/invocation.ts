/**
 * What every handler shares: configuration from the environment and dependencies sized to
 * the invocation's remaining time. Errors leave as typed errors with a reason.
 */
import { loadConfig } from '../lib/config';
import { createDeps, Deps } from '../lib/deps';
import { jsonLogger } from '../lib/log';

export interface LambdaContext {
  getRemainingTimeInMillis(): number;
  awsRequestId?: string;
}

/** Leaves this much of the invocation for recording results and returning. */
const RESERVE_MS = 10_000;

export function depsFor(context: LambdaContext | undefined): Deps {
  const config = loadConfig();
  const remaining = context?.getRemainingTimeInMillis?.() ?? 15 * 60_000;
  const runId = context?.awsRequestId ? `lambda-${context.awsRequestId}` : undefined;
  return createDeps(config, {
    budgetMs: Math.max(5_000, remaining - RESERVE_MS),
    runId,
    logger: jsonLogger({ cluster: config.cluster.name, ...(runId ? { runId } : {}) }),
  });
}
