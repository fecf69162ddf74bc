/**
 * Benchmark: wall time of a managed rollout against the ideal ceil(N/k) x (ready delay +
 * minReadySeconds), on N fake nodes whose pods take `delay` seconds to become Ready.
 *
 *   npm run bench:managed                      # N=12, k in {3 (25%), 2}, delay 3s, minReadySeconds 1
 *   npm run bench:managed -- 24 "25%" 5 2      # N, maxUnavailable, ready delay, minReadySeconds
 */
import { reconcile } from '../lib/reconcile';
import { resolveMaxUnavailable } from '../lib/rollout/wave';
import { listStackNodes, setWorkerCount, waitNodesReady } from '../stack/nodes';
import { stackUp } from '../stack/up';
import { adminClients, uniqueName } from '../test/support/cluster';
import { TestRepo } from '../test/support/git';
import { dsYaml } from '../test/support/manifests';
import { stackConfig, stackDeps } from '../test/support/reconciler';
import { benchReport } from './report';

benchReport();

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

interface Case { nodes: number; maxUnavailable: number | string; delay: number; minReady: number }

async function run(c: Case): Promise<string[]> {
  const { core } = adminClients();
  const ns = uniqueName('benchwave');
  await core.createNamespace({ body: { metadata: { name: ns } } });
  const git = new TestRepo();
  try {
    const manifest = (image: string) => dsYaml({
      name: 'agent', namespace: ns, image, maxUnavailable: c.maxUnavailable, minReadySeconds: c.minReady,
      annotations: { 'daemonset-gitops.io/rollout': 'managed' },
      podAnnotations: { 'pod-ready.stage.kwok.x-k8s.io/delay': `${c.delay}s` },
    });
    git.write('a.yaml', manifest('registry.local/agent:1.0')).commit('v1');
    const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
    await reconcile(stackDeps(config));
    git.write('a.yaml', manifest('registry.local/agent:2.0')).commit('v2');
    const report = await reconcile(stackDeps(config));
    const state = (await stackDeps(config).store.getState(ns, 'agent'))!.value;
    if (report.daemonSets[0].rollout?.phase !== 'complete') throw new Error(`rollout ended ${report.daemonSets[0].rollout?.phase}`);
    const wall = (Date.parse(state.rollout!.finishedAt!) - Date.parse(state.rollout!.startedAt)) / 1000;
    const k = Math.max(1, resolveMaxUnavailable(c.maxUnavailable, c.nodes));
    const ideal = Math.ceil(c.nodes / k) * (c.delay + c.minReady);
    const waves = (state.rollout!.managed as { checkpoint: { waves: number } }).checkpoint.waves;
    return [String(c.nodes), String(c.maxUnavailable), String(k), `${c.delay}s + ${c.minReady}s`, String(waves), `${wall.toFixed(1)}s`, `${ideal}s`, `${((wall / ideal - 1) * 100).toFixed(0)}%`];
  } finally {
    git.cleanup();
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const [n, mu, delay, minReady] = process.argv.slice(2);
  const cases: Case[] = n
    ? [{ nodes: Number(n), maxUnavailable: /%$/.test(mu ?? '') ? mu : Number(mu ?? 1), delay: Number(delay ?? 3), minReady: Number(minReady ?? 1) }]
    : [{ nodes: 12, maxUnavailable: '25%', delay: 3, minReady: 1 }, { nodes: 12, maxUnavailable: 2, delay: 3, minReady: 1 }];
  await stackUp();
  const before = listStackNodes().workers.length;
  const rows: string[][] = [];
  try {
    for (const c of cases) {
      setWorkerCount(c.nodes);
      await waitNodesReady();
      rows.push(await run(c));
      process.stderr.write(`  N=${c.nodes} maxUnavailable=${c.maxUnavailable} done\n`);
    }
  } finally {
    setWorkerCount(before);
  }
  const header = ['NODES', 'MAXUNAVAILABLE', 'K', 'READY DELAY + MINREADY', 'WAVES', 'WALL', 'IDEAL', 'OVERHEAD'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const r of [header, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i])).join('   '));
}

main().then(() => process.exit(0), (err: Error) => {
  console.error(err.message);
  process.exit(1);
});
