/**
 * Benchmark: the cost of a steady-state reconcile pass (nothing to change) as the number of
 * DaemonSets grows. Prints wall time, Kubernetes API requests (from the API server's audit
 * log), and the process's resident memory.
 *
 *   npm run bench:steady              # 3, 30 and 100 DaemonSets
 *   npm run bench:steady -- 10 200    # other sizes
 */
import { reconcile } from '../lib/reconcile';
import { stackUp } from '../stack/up';
import { adminClients, uniqueName } from '../test/support/cluster';
import { TestRepo } from '../test/support/git';
import { dsYaml } from '../test/support/manifests';
import { countApiRequests, stackConfig, stackDeps } from '../test/support/reconciler';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
  await stackUp();
  const { core } = adminClients();
  const rows: string[][] = [];
  for (const n of sizes.length ? sizes : [3, 30, 100]) {
    const ns = uniqueName(`bench${n}`);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const git = new TestRepo();
    try {
      for (let i = 0; i < n; i++) git.write(`ds/agent-${i}.yaml`, dsYaml({ name: `agent-${i}`, namespace: ns }));
      git.commit(`${n} agents`);
      const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
      const t0 = Date.now();
      const first = await reconcile(stackDeps(config));
      const createSeconds = (Date.now() - t0) / 1000;
      if (first.result !== 'succeeded') throw new Error(`the first pass failed: ${JSON.stringify(first.error ?? first.summary)}`);
      const times: number[] = [];
      let requests = 0;
      for (let round = 0; round < 3; round++) {
        const t = Date.now();
        const { result, requests: r } = await countApiRequests(() => reconcile(stackDeps(config)));
        times.push(Date.now() - t);
        requests = r;
        if (result.summary.unchanged !== n) throw new Error(`expected ${n} unchanged, got ${JSON.stringify(result.summary)}`);
      }
      times.sort((a, b) => a - b);
      rows.push([String(n), `${createSeconds.toFixed(1)}s`, `${times[1]}ms`, String(requests), `${Math.round(process.memoryUsage().rss / (1 << 20))}MiB`]);
      process.stderr.write(`  ${n} DaemonSets done\n`);
    } finally {
      git.cleanup();
      await core.deleteNamespace({ name: ns }).catch(() => undefined);
    }
  }
  const header = ['DAEMONSETS', 'FIRST PASS (create + rollout)', 'STEADY PASS (median of 3)', 'K8S REQUESTS', 'RSS'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const r of [header, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i])).join('   '));
}

main().then(() => process.exit(0), (err: Error) => {
  console.error(err.message);
  process.exit(1);
});
