/**
 * STACK_CLUSTERS: further control planes on the local stack are real, separate clusters —
 * their own API server over the shared etcd (own key prefix), their own controller manager,
 * scheduler and kwok nodes — so a fleet is tested against separate API servers.
 */
import * as k8s from '@kubernetes/client-node';
import { daemonSet, isPodReady, uniqueName, waitFor } from '../support/cluster';
import { ensureStackClusters } from '../support/stack-clusters';
import type { StackClusterFiles } from '../../stack/clusters';

jest.setTimeout(300_000);

function clients(files: StackClusterFiles): { core: k8s.CoreV1Api; apps: k8s.AppsV1Api; server: string } {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(files.kubeconfig);
  return { core: kc.makeApiClient(k8s.CoreV1Api), apps: kc.makeApiClient(k8s.AppsV1Api), server: kc.getCurrentCluster()!.server };
}

let clusters: StackClusterFiles[];

beforeAll(async () => {
  clusters = await ensureStackClusters(3);
});

describe('a stack of three clusters', () => {
  it('gives each cluster its own API server, and an object made in one is in no other', async () => {
    const [one, two, three] = clusters.map(clients);
    expect(new Set([one.server, two.server, three.server]).size).toBe(3);
    const name = uniqueName('only-in-two');
    await two.core.createNamespace({ body: { metadata: { name, labels: { 'daemonset-gitops.io/test': 'true' } } } });
    try {
      expect((await two.core.readNamespace({ name })).metadata!.name).toBe(name);
      for (const other of [one, three]) {
        await expect(other.core.readNamespace({ name })).rejects.toMatchObject({ code: 404 });
      }
    } finally {
      await two.core.deleteNamespace({ name });
    }
  });

  it('runs a DaemonSet in a further cluster on that cluster\'s own nodes, through its own controller manager and scheduler', async () => {
    const three = clients(clusters[2]);
    const workers = (await three.core.listNode({ labelSelector: 'daemonset-gitops.io/stack-node=worker' })).items.map((n) => n.metadata!.name!).sort();
    expect(workers.length).toBeGreaterThan(0);
    const namespace = uniqueName('c3');
    await three.core.createNamespace({ body: { metadata: { name: namespace } } });
    try {
      const name = uniqueName('agent');
      await three.apps.createNamespacedDaemonSet({ namespace, body: daemonSet(name, namespace) });
      const pods = await waitFor('one Ready pod per worker of cluster 3', async () => {
        const p = (await three.core.listNamespacedPod({ namespace, labelSelector: `app=${name}` })).items;
        return p.length === workers.length && p.every(isPodReady) ? p : undefined;
      }, 120_000);
      expect(pods.map((p) => p.spec!.nodeName).sort()).toEqual(workers);
      // Cluster 1 never heard of it.
      const one = clients(clusters[0]);
      await expect(one.apps.readNamespacedDaemonSet({ name, namespace })).rejects.toMatchObject({ code: 404 });
    } finally {
      await three.core.deleteNamespace({ name: namespace });
    }
  });
});
