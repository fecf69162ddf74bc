/**
 * The dependencies one run works with, and the one factory that builds the real ones from
 * configuration. Everything else receives them, so tests can hand in their own clock,
 * logger or time budget while talking to the real cluster and the real S3.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Cluster, KubernetesCluster } from './cluster/client';
import { defaultCredentials, eksEndpoint, EksEndpoint } from './cluster/eks';
import { EksTokenSource } from './cluster/eks-token';
import type { Config } from './config';
import { Logger, jsonLogger } from './log';
import { StoreKeys } from './store/keys';
import { Clock, systemClock } from './clock';
import { Lease } from './store/lease';
import { ObjectStore, S3ObjectStore, s3ObjectStore } from './store/object-store';
import { StateStore } from './store/state-store';

export interface Deps {
  config: Config;
  cluster: Cluster;
  objects: ObjectStore;
  store: StateStore;
  clock: Clock;
  logger: Logger;
  /** Names this run in the lease, in snapshots and in logs. */
  runId: string;
  /** Epoch milliseconds by which the run must have returned (a Lambda's remaining time). */
  deadline: number;
  /** Reports rollout progress as it happens (the CLI prints it live). */
  onProgress?: (line: string) => void;
}

/** This run's handle on the cluster's lease (not taken yet). */
export function clusterLease(deps: Deps): Lease {
  return new Lease(deps.objects, deps.store.keys.lease(), deps.runId, deps.config.leaseSeconds, deps.clock);
}

export function newRunId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** The clients of the outside world: built once per configuration, reusable by the runs of a warm process. */
export interface Clients {
  cluster: Cluster;
  objects: ObjectStore;
}

function clusterOptions(config: Config): { requestTimeoutMs?: number } {
  const seconds = config.cluster.requestTimeoutSeconds;
  return seconds === undefined ? {} : { requestTimeoutMs: seconds * 1000 };
}

/**
 * Builds the clients. With EKS_CLUSTER_NAME the cluster client signs in with the process's
 * IAM identity and needs the cluster's endpoint (`connect` finds it); otherwise it reads
 * KUBECONFIG.
 */
export function createClients(config: Config, eks?: EksEndpoint): Clients {
  let cluster: Cluster;
  if (config.cluster.eks) {
    if (!eks) throw new Error('createClients: an EKS cluster needs its endpoint; build the clients with connect()');
    const { clusterName, region, credentials } = config.cluster.eks;
    cluster = KubernetesCluster.forEks(eks, new EksTokenSource(clusterName, region, credentials ?? defaultCredentials()), clusterOptions(config));
  } else {
    cluster = KubernetesCluster.fromKubeconfig(config.cluster.kubeconfig, clusterOptions(config));
  }
  return { cluster, objects: s3ObjectStore(config.s3) };
}

/**
 * The clients, after finding an EKS cluster's endpoint (from the configuration or
 * eks:DescribeCluster). A caller that never talks to the cluster (history) says so, and
 * neither reads a kubeconfig nor asks EKS, so its role needs no access to either.
 */
export async function connect(config: Config, options: { cluster?: boolean } = {}): Promise<Clients> {
  if (options.cluster === false) {
    return { cluster: unusedCluster(), objects: s3ObjectStore(config.s3) };
  }
  return createClients(config, config.cluster.eks ? await eksEndpoint(config.cluster.eks) : undefined);
}

/** A cluster client for code that does not use one: any call is a programming error, said plainly. */
function unusedCluster(): Cluster {
  const known: Record<string | symbol, unknown> = { server: '(not connected)', requestCount: 0, then: undefined };
  return new Proxy(known, {
    get: (target, prop) => (prop in target ? target[prop] : () => Promise.reject(new Error(`cluster.${String(prop)}: this function was built without a cluster client`))),
  }) as unknown as Cluster;
}

export interface DepsOptions {
  /** Clients an earlier run of this process built for the same configuration. */
  clients?: Clients;
  logger?: Logger;
  clock?: Clock;
  runId?: string;
  /** Milliseconds this run may take in total. */
  budgetMs?: number;
  onProgress?: (line: string) => void;
}

export function createDeps(config: Config, options: DepsOptions = {}): Deps {
  const { cluster, objects: shared } = options.clients ?? createClients(config);
  const runId = options.runId ?? newRunId();
  const clock = options.clock ?? systemClock;
  const deadline = clock.now().getTime() + (options.budgetMs ?? 10 * 60_000);
  // No S3 call of this run outlasts its deadline (the client itself is shared by the runs of a warm process).
  const objects = shared instanceof S3ObjectStore ? shared.forDeadline(deadline) : shared;
  return {
    config,
    cluster,
    objects,
    store: new StateStore(objects, new StoreKeys(config.s3.prefix, config.cluster.name), clock),
    clock,
    logger: options.logger ?? jsonLogger({ runId, cluster: config.cluster.name }),
    runId,
    deadline,
    onProgress: options.onProgress,
  };
}
