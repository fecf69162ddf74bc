/**
 * The cluster adapter's watches (client-node's Watch) against the local stack's API server,
 * with the reconciler's identity: a watch names this product in its User-Agent, as its REST
 * calls do, and a cache over objects that do not change keeps its one watch open instead of
 * the client cutting it for silence (client-node 2.x cuts a watch after 30 s without data by
 * default; the API server sends a bookmark only about once a minute).
 */
import { KubernetesCluster, USER_AGENT } from '../../lib/cluster/client';
import { adminClients, createNamespace, deleteNamespace, stackEnv } from '../support/cluster';
import { countApiRequests } from '../support/reconciler';

jest.setTimeout(120_000);

const { core } = adminClients();
let ns: string;

beforeAll(async () => {
  ns = await createNamespace(core, 'watch');
});
afterAll(() => deleteNamespace(core, ns));

describe('a watch cache', () => {
  it('names this product in its requests, follows a change, and stays on its one watch through 40 s of silence', async () => {
    const cluster = KubernetesCluster.fromKubeconfig(stackEnv().RECONCILER_KUBECONFIG);
    const { result: cache, verbs, userAgents } = await countApiRequests(async () => {
      const c = await cluster.watchCache('daemonsets', { namespace: ns });
      // Nothing in the namespace changes for longer than client-node's default silence limit.
      await new Promise((resolve) => setTimeout(resolve, 40_000));
      return c;
    });
    try {
      expect(cache.failure).toBeUndefined();
      expect(cache.items()).toEqual([]);
      // The LIST, and the WATCH it opened: no second watch, no relist. (Other tests on the stack
      // use the same identity, in their own namespaces.)
      const mine = verbs.map((verb, i) => ({ verb, userAgent: userAgents[i] })).filter((r) => r.verb.includes(`/namespaces/${ns}/`));
      expect(mine).toEqual([
        { verb: `list /apis/apps/v1/namespaces/${ns}/daemonsets`, userAgent: USER_AGENT },
        { verb: `watch /apis/apps/v1/namespaces/${ns}/daemonsets`, userAgent: USER_AGENT },
      ]);
      expect(cluster.requestCount).toBe(2);

      // The watch still delivers: a DaemonSet created now is in the cache.
      await cluster.apply({
        apiVersion: 'apps/v1',
        kind: 'DaemonSet',
        metadata: { name: 'late', namespace: ns },
        spec: {
          selector: { matchLabels: { app: 'late' } },
          template: { metadata: { labels: { app: 'late' } }, spec: { containers: [{ name: 'c', image: 'registry.local/late:1.0' }] } },
        },
      });
      for (const deadline = Date.now() + 10_000; !cache.items().some((d) => d.metadata.name === 'late'); ) {
        if (Date.now() > deadline) throw new Error('the DaemonSet created did not reach the cache within 10 s');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(cache.failure).toBeUndefined();
    } finally {
      cache.stop();
    }
  });
});
