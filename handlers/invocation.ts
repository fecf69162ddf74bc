/**
 * What every handler shares: configuration from the environment and dependencies sized to
 * the invocation's remaining time. Errors leave as typed errors with a reason.
 */
import { loadConfig, withStoredSettings } from '../lib/config';
import { configForCluster } from '../lib/fleet/cluster-target';
import { Clients, connect, createDeps, Deps } from '../lib/deps';
import { invocationFields, jsonLogger } from '../lib/log';
import { readSecret } from '../lib/secrets';

export interface LambdaContext {
  getRemainingTimeInMillis(): number;
  awsRequestId?: string;
  functionName?: string;
}

/** Leaves this much of the invocation for recording results and returning. */
const RESERVE_MS = 10_000;

/** The clients of the last invocation: a warm container keeps them (and their open connections) while its configuration stays the same. */
let warm: { config: string; clients: Promise<Clients> } | undefined;

function clientsFor(config: ReturnType<typeof loadConfig>, cluster: boolean): Promise<Clients> {
  const key = JSON.stringify([config.s3, config.cluster, cluster]);
  if (warm?.config !== key) {
    const entry = { config: key, clients: connect(config, { cluster }) };
    warm = entry;
    // Clients that could not be built are not kept: the next invocation tries again.
    entry.clients.catch(() => { if (warm === entry) warm = undefined; });
  }
  return warm.clients;
}

/**
 * `cluster: false` for a function that only reads S3 (history): it connects to no cluster.
 * `on`: the command and the cluster its event names; in a fleet the command acts on that
 * cluster with that cluster's own session (lib/fleet/cluster-target.ts).
 */
export async function depsFor(context: LambdaContext | undefined, options: { cluster?: boolean; on?: { command: string; cluster?: string } } = {}): Promise<Deps> {
  // The CA and trusted keys may be kept in SSM or Secrets Manager (too large for the environment).
  const loaded = loadConfig(await withStoredSettings((source) => readSecret(source)));
  const config = options.on ? await configForCluster(loaded, options.on.cluster, options.on.command) : loaded;
  const remaining = context?.getRemainingTimeInMillis?.() ?? 15 * 60_000;
  const runId = context?.awsRequestId ? `lambda-${context.awsRequestId}` : undefined;
  return createDeps(config, {
    clients: await clientsFor(config, options.cluster ?? true),
    budgetMs: Math.max(5_000, remaining - RESERVE_MS),
    runId,
    logger: jsonLogger({ cluster: config.cluster.name, ...(runId ? { runId } : {}), ...invocationFields(context) }),
  });
}
