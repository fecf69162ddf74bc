/**
 * One fleet cluster's pass (FLEET_FILE): `{ "cluster": "prod-a" }` reconciles the commit
 * promoted to that cluster and records the outcome. The promotion invokes it durably; a
 * schedule per cluster keeps correcting drift against the promoted commit.
 */
import { loadConfig } from '../lib/config';
import { InvalidRequestError } from '../lib/errors';
import { ClusterPassResult, fleetClusterPass } from '../lib/fleet/cluster-pass';
import { jsonLogger } from '../lib/log';
import type { LambdaContext } from './invocation';

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export async function handler(event: unknown, context?: LambdaContext): Promise<ClusterPassResult> {
  const cluster = (event as { cluster?: unknown } | undefined)?.cluster;
  if (typeof cluster !== 'string' || !NAME.test(cluster)) throw new InvalidRequestError('fleet-pass takes { "cluster": "NAME" }, NAME a cluster of the fleet file');
  const config = loadConfig();
  const remaining = context?.getRemainingTimeInMillis?.() ?? 15 * 60_000;
  return fleetClusterPass(config, cluster, { logger: jsonLogger({ cluster }), budgetMs: Math.max(5_000, remaining - 10_000) });
}
