/**
 * A fleet on the local stack: clusters 1…n of the stack named staging, prod-a, prod-b, a Git
 * repository with a fleet file and clusters/<name>/ manifests, a throwaway namespace in
 * every cluster, and the configuration a fleet deployment runs with.
 */
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { Config } from '../../lib/config';
import { PromotionStore } from '../../lib/store/promotion-store';
import { uniqueName } from './cluster';
import { TestRepo } from './git';
import { dsYaml } from './manifests';
import { stackConfig, stackDeps } from './reconciler';
import { ensureStackClusters } from './stack-clusters';

export const FLEET_CLUSTERS = ['staging', 'prod-a', 'prod-b'];

export interface FleetWorld {
  repo: TestRepo;
  ns: string;
  config: Config;
  store: PromotionStore;
  clients: Record<string, { kc: k8s.KubeConfig; core: k8s.CoreV1Api; apps: k8s.AppsV1Api }>;
  /** Writes the DaemonSet `agent` into every cluster's manifests path and the fleet file, and commits. */
  commitAgent(image: string, message: string, manifest?: (image: string) => string): string;
  liveImage(cluster: string): Promise<string | undefined>;
  cleanup(): Promise<void>;
}

export function fleetYaml(waves: { name: string; clusters: string[]; soak?: string; maxConcurrent?: number }[]): string {
  return stringify({ clusters: FLEET_CLUSTERS.map((name) => ({ name })), waves });
}

export async function fleetWorld(options: { waves: { name: string; clusters: string[]; soak?: string; maxConcurrent?: number }[]; env?: Record<string, string> }): Promise<FleetWorld> {
  const files = await ensureStackClusters(FLEET_CLUSTERS.length);
  const repo = new TestRepo('dsgitops-fleet-');
  const ns = uniqueName('fleet');
  const clients: FleetWorld['clients'] = {};
  FLEET_CLUSTERS.forEach((name, i) => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(files[i].kubeconfig);
    clients[name] = { kc, core: kc.makeApiClient(k8s.CoreV1Api), apps: kc.makeApiClient(k8s.AppsV1Api) };
  });
  for (const c of Object.values(clients)) await c.core.createNamespace({ body: { metadata: { name: ns, labels: { 'daemonset-gitops.io/test': 'true' } } } });
  const config = stackConfig({
    GIT_URL: repo.url,
    FLEET_FILE: 'fleet.yaml',
    FLEET_KUBECONFIGS: FLEET_CLUSTERS.map((name, i) => `${name}=${files[i].reconcilerKubeconfig}`).join(','),
    S3_PREFIX: `it-${ns}`,
    CLUSTER_NAME: 'staging',
    ALLOWED_NAMESPACES: ns,
    PROGRESS_DEADLINE_SECONDS: '30',
    AUTO_ROLLBACK: 'true',
    ...options.env,
  });
  const deps = stackDeps(config);
  const store = new PromotionStore(deps.objects, config.s3.prefix);
  const fleet = fleetYaml(options.waves);
  return {
    repo, ns, config, store, clients,
    commitAgent(image, message, manifest = (i) => dsYaml({ name: 'agent', namespace: ns, image: i })) {
      repo.write('fleet.yaml', fleet);
      for (const name of FLEET_CLUSTERS) repo.write(`clusters/${name}/agent.yaml`, manifest(image));
      return repo.commit(message);
    },
    async liveImage(cluster) {
      try {
        const ds = await clients[cluster].apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns });
        return ds.spec!.template.spec!.containers[0].image;
      } catch {
        return undefined;
      }
    },
    async cleanup() {
      for (const c of Object.values(clients)) await c.core.deleteNamespace({ name: ns }).catch(() => undefined);
      for (const key of await deps.objects.list(`${config.s3.prefix}/`)) await deps.objects.delete(key);
      repo.cleanup();
    },
  };
}
