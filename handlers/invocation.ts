/**
 * What every handler shares: configuration from the environment and dependencies sized to
 * the invocation's remaining time. Errors leave as typed errors with a reason.
 */
import { loadConfig } from '../lib/config';
import { Clients, createClients, createDeps, Deps } from '../lib/deps';
import { jsonLogger } from '../lib/log';

export interface LambdaContext {
  getRemainingTimeInMillis(): number;
  awsRequestId?: string;
}

/** Leaves this much of the invocation for recording results and returning. */
const RESERVE_MS = 10_000;

/** The clients of the last invocation: a warm container keeps them (and their open connections) while its configuration stays the same. */
let warm: { config: string; clients: Clients } | undefined;

function clientsFor(config: ReturnType<typeof loadConfig>): Clients {
  const key = JSON.stringify([config.s3, config.cluster]);
  if (warm?.config !== key) warm = { config: key, clients: createClients(config) };
  return warm.clients;
}

export function depsFor(context: LambdaContext | undefined): Deps {
  const config = loadConfig();
  const remaining = context?.getRemainingTimeInMillis?.() ?? 15 * 60_000;
  const runId = context?.awsRequestId ? `lambda-${context.awsRequestId}` : undefined;
  return createDeps(config, {
    clients: clientsFor(config),
    budgetMs: Math.max(5_000, remaining - RESERVE_MS),
    runId,
    logger: jsonLogger({ cluster: config.cluster.name, ...(runId ? { runId } : {}) }),
  });
}
