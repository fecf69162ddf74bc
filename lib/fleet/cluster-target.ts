/**
 * The cluster a per-DaemonSet command (rollback, history, status, unpin, pause, resume) acts on.
 * Without a fleet file, the deployment's own cluster, as always. In a fleet (FLEET_FILE), the
 * cluster the operator names (`--cluster NAME`, the event's `cluster`), which must be a cluster of
 * the fleet file at the branch head; the command then works as that cluster's pass works: with the
 * cluster's own session (lib/fleet/credentials.ts), so it reads and writes `<prefix>/<cluster>/`
 * only, the cluster's access from the fleet file, and Git at the commit promoted to the cluster
 * and the cluster's manifests path (a rollback's pin holds against what that cluster runs).
 */
import { join } from 'node:path';
import type { Clock } from '../clock';
import { systemClock } from '../clock';
import type { Config } from '../config';
import { InvalidRequestError } from '../errors';
import { s3ObjectStore } from '../store/object-store';
import { PromotionStore } from '../store/promotion-store';
import { clusterAccess } from './cluster-access';
import { readFleetHead } from './fleet-source';
import { clusterScope } from './credentials';

/** The configuration `command` runs with on `cluster` (undefined: none named). */
export async function configForCluster(base: Config, cluster: string | undefined, command: string, clock: Clock = systemClock): Promise<Config> {
  if (!base.fleetFile) {
    if (cluster !== undefined && cluster !== base.cluster.name) {
      throw new InvalidRequestError(`${command}: cluster ${cluster}: this deployment serves ${base.cluster.name} only (CLUSTER_NAME; FLEET_FILE is not set); leave the cluster out, or name ${base.cluster.name}`);
    }
    return base;
  }
  const read = await readFleetHead(base, clock);
  if (!('fleet' in read)) throw new InvalidRequestError(`${command}: the fleet file cannot be read from the branch head: ${read.untrusted}`);
  const where = `${base.fleetFile} at ${read.head.slice(0, 7)}`;
  const known = read.fleet.clusters.map((c) => c.name);
  if (cluster === undefined) {
    throw new InvalidRequestError(`${command} in a fleet (FLEET_FILE=${base.fleetFile}) acts on one cluster: name it with --cluster NAME (an event's "cluster": "NAME"), one of ${where}: ${known.join(', ')}`);
  }
  const entry = read.fleet.clusters.find((c) => c.name === cluster);
  if (!entry) throw new InvalidRequestError(`${command}: cluster ${cluster} is not a cluster of ${where} (clusters: ${known.join(', ')})`);
  const { s3, eks } = clusterScope(base, cluster);
  // Git as the cluster's passes read it: the commit promoted to it, the cluster's path.
  const promoted = (await new PromotionStore(s3ObjectStore(s3), base.s3.prefix).readCluster(cluster)).promoted?.commit;
  const git = { ...base.git, path: entry.path, cacheDir: join(base.git.cacheDir, 'clusters', cluster), ...(promoted ? { ref: promoted } : {}) };
  return { ...base, s3, git, cluster: clusterAccess(base, entry, eks) };
}
