/**
 * What a managed rollout costs the API server: one LIST+WATCH per kind it follows (the
 * DaemonSet, its pods, the nodes), the pod deletions, and a few requests around them. The
 * count comes from the API server's audit log and must not grow with the fleet: the same
 * bound holds on 12 and on 30 nodes.
 */
import { reconcile } from '../../lib/reconcile';
import { listStackNodes } from '../../stack/nodes';
import { adminClients, AvailabilityWatcher, workerNodes } from '../support/cluster';
import { resizeWorkers } from '../support/managed';
import { dsYaml } from '../support/manifests';
import { USER_AGENT } from '../../lib/cluster/client';
import { countApiRequests } from '../support/reconciler';
import { cleanupScenarios, scenario } from '../support/scenario';

jest.setTimeout(600_000);

const READY_DELAY_SECONDS = 2;
const MIN_READY_SECONDS = 1;
const { kc, core } = adminClients();
let workersBefore = 0;

beforeAll(() => {
  workersBefore = listStackNodes().workers.length;
});

afterAll(async () => {
  await cleanupScenarios();
  // Back to the size before, settled (Ready, without the not-ready taint): the next file counts on its workers.
  if (workersBefore > 0) await resizeWorkers(workersBefore);
}, 240_000);

function managed(ns: string, image: string): string {
  return dsYaml({
    name: 'agent', namespace: ns, image, maxUnavailable: '25%', minReadySeconds: MIN_READY_SECONDS,
    annotations: { 'daemonset-gitops.io/rollout': 'managed' },
    podAnnotations: { 'pod-ready.stage.kwok.x-k8s.io/delay': `${READY_DELAY_SECONDS}s` },
  });
}

describe('the cost of a managed rollout', () => {
  it.each([12, 30])('on %i nodes: at most pods deleted + 2 x waves + 20 requests, within maxUnavailable', async (n) => {
    await resizeWorkers(n);
    const { ns, git, deps } = await scenario('cost');
    const nodes = (await workerNodes(core)).map((x) => x.metadata!.name!).sort();
    expect(nodes).toHaveLength(n);
    const k = Math.ceil(n / 4);
    git.write('a.yaml', managed(ns, 'registry.local/agent:1.0')).commit('v1');
    expect((await reconcile(deps())).daemonSets[0].rollout).toMatchObject({ phase: 'complete' });

    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes, MIN_READY_SECONDS);
    await watcher.start();
    git.write('a.yaml', managed(ns, 'registry.local/agent:2.0')).commit('v2');
    const { result, verbs, userAgents } = await countApiRequests(() => reconcile(deps()));
    watcher.stop();

    // Other tests run at the same time under the same identity: only this namespace's requests, and the nodes'
    // asked for by this process (its User-Agent names it).
    const mine = verbs.filter((v, i) => v.includes(`/namespaces/${ns}/`) || (/^\w+ \/api\/v1\/nodes(\/|$)/.test(v) && userAgents[i] === USER_AGENT));
    const deleted = mine.filter((v) => v.startsWith(`delete /api/v1/namespaces/${ns}/pods/`)).length;
    const state = (await deps().store.getState(ns, 'agent'))!.value;
    const waves = (state.rollout!.managed as { checkpoint?: { waves: number } } | undefined)?.checkpoint?.waves ?? 0;
    const byKind = new Map<string, number>();
    for (const v of mine) {
      const [verb, uri] = v.split(' ');
      const kind = `${verb} ${uri.replace(`/namespaces/${ns}`, '').replace(/\/(pods|daemonsets)\/[^/]+$/, '/$1/NAME').replace(/^\/apis?\/(apps\/)?v1\//, '')}`;
      byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
    }
    const wall = (Date.parse(state.rollout!.finishedAt ?? state.updatedAt) - Date.parse(state.rollout!.startedAt)) / 1000;
    const ideal = Math.ceil(n / k) * (READY_DELAY_SECONDS + MIN_READY_SECONDS);
    // eslint-disable-next-line no-console
    console.log(`managed rollout, ${n} nodes, k=${k}: ${mine.length} requests (${deleted} pod deletes, ${waves} waves; bound ${deleted + 2 * waves + 20}); wall ${wall.toFixed(1)}s, ideal ${ideal}s\n  ${[...byKind].sort((a, b) => b[1] - a[1]).map(([kind, c]) => `${c} ${kind}`).join('\n  ')}`);

    expect(result.daemonSets[0].rollout).toMatchObject({ mode: 'managed', phase: 'complete', upToDate: n, available: n });
    expect(watcher.maxUnavailableSeen).toBeGreaterThanOrEqual(1);
    if (watcher.maxUnavailableSeen > k) console.log(watcher.worst);
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(k);
    expect(deleted).toBe(n);
    expect(waves).toBeGreaterThanOrEqual(Math.ceil(n / k));
    expect(mine.length).toBeLessThanOrEqual(deleted + 2 * waves + 20);
  });
});
