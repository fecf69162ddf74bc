/**
 * Benchmark: the cost of a steady-state reconcile pass (nothing to change) as the number of
 * DaemonSets grows. Prints wall time, Kubernetes API requests (from the API server's audit
 * log), S3 requests, and the process's resident memory.
 *
 *   npm run bench:steady                     # cold passes (new deps each time) at 3, 30 and 100 DaemonSets
 *   npm run bench:steady -- 10 200           # other sizes
 *   npm run bench:steady -- --warm 30 300    # the warm no-op pass: the reconcile handler called
 *                                            # again in one process, as a warm Lambda container does
 *   npm run bench:steady -- --warm --kustomize 30
 *                                            # the warm no-op pass of the same DaemonSets from a
 *                                            # plain-YAML path and from a kustomize path, side by side
 *
 * Uses the stack that is up (.stack/env, or STACK_DIR); it does not start one.
 */
import http from 'node:http';
import { handler } from '../handlers/reconcile';
import { reconcile, ReconcileRequest } from '../lib/reconcile';
import type { ReconcileReport } from '../lib/report';
import { SOURCE_ANNOTATION } from '../lib/labels';
import { adminClients, stackEnv, uniqueName, waitFor } from '../test/support/cluster';
import { TestRepo } from '../test/support/git';
import { workerNames } from '../test/support/managed';
import { dsYaml } from '../test/support/manifests';
import { countApiRequests, stackConfig, stackConfigEnv, stackDeps } from '../test/support/reconciler';
import { benchReport } from './report';

benchReport();

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/**
 * S3 requests as the S3 endpoint sees them: every HTTP request this process sends to it,
 * by method (the SDK takes node:http's request at its first call, so this is in place first).
 */
const s3 = { reads: 0, writes: 0 };
function countS3Requests(endpoint: string): void {
  const { hostname, port } = new URL(endpoint);
  const original = http.request;
  (http as { request: typeof http.request }).request = ((...args: Parameters<typeof http.request>) => {
    const req = original(...args);
    const to = args[0] as http.RequestOptions;
    if ((to?.hostname ?? to?.host) === hostname && String(to.port) === port) {
      if (req.method === 'GET' || req.method === 'HEAD') s3.reads++;
      else s3.writes++;
    }
    return req;
  }) as typeof http.request;
}

function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const r of [header, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i])).join('   '));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * `podless`: DaemonSets whose nodeSelector matches no node. A no-op pass costs the same with
 * or without pods (it LISTs DaemonSets, not pods), and 300 DaemonSets with a pod on every
 * node would fill the local stack's nodes (110 pods each) for everyone sharing it.
 */
async function withFleet<T>(n: number, fn: (ns: string, git: TestRepo) => Promise<T>, podless = false, kustomize = false): Promise<T> {
  const { core } = adminClients();
  const ns = uniqueName(`bench${n}`);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  const git = new TestRepo();
  try {
    const nodeSelector = podless ? { 'bench.daemonset-gitops.io/no-such-node': 'true' } : undefined;
    for (let i = 0; i < n; i++) git.write(`ds/agent-${i}.yaml`, dsYaml({ name: `agent-${i}`, namespace: ns, nodeSelector }));
    // The same files as a kustomization's resources: `kustomize build ds` renders them unchanged.
    if (kustomize) git.write('ds/kustomization.yaml', `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n${Array.from({ length: n }, (_, i) => `  - agent-${i}.yaml\n`).join('')}`);
    git.commit(`${n} agents${kustomize ? ', rendered by kustomize' : ''}`);
    return await fn(ns, git);
  } finally {
    git.cleanup();
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
  }
}

/** Cold passes: new dependencies (clients, checkout handle) for every pass. */
async function coldRow(n: number): Promise<string[]> {
  return withFleet(n, async (ns, git) => {
    const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
    const t0 = Date.now();
    const first = await reconcile(stackDeps(config));
    const createSeconds = (Date.now() - t0) / 1000;
    if (first.result !== 'succeeded') throw new Error(`the first pass ended ${first.result}: ${JSON.stringify(first.error ?? first.summary)}`);
    // A first pass that ran out of time leaves rollouts to the next passes: the steady pass is measured once every one is complete.
    // (The controller manager creates pods at its own QPS: 500 pods take minutes.)
    let report = first;
    await waitFor(`every rollout of the ${n} DaemonSets complete (a Pending pod keeps one open: the stack's nodes take 110 pods each, other namespaces' included; kubectl get pods -A --field-selector=status.phase=Pending)`,
      async () => settled(report, n) || settled((report = await reconcile(stackDeps(config))), n), 600_000, 2_000);
    const times: number[] = [];
    let requests = 0;
    for (let round = 0; round < 3; round++) {
      const t = Date.now();
      const { result, requests: r, verbs } = await countApiRequests(() => reconcile(stackDeps(config)), { thisProcess: true });
      times.push(Date.now() - t);
      requests = r;
      if (result.summary.unchanged !== n) throw new Error(`expected ${n} unchanged, got ${JSON.stringify(result.summary)}`);
      if (r > 1) process.stderr.write(`  ${n} DaemonSets, steady pass ${round + 1}: ${verbs.join(', ')}\n`);
    }
    return [String(n), `${createSeconds.toFixed(1)}s`, `${median(times)}ms`, String(requests), `${Math.round(process.memoryUsage().rss / (1 << 20))}MiB`];
  });
}

/** Every DaemonSet unchanged and rolled out: the next pass has nothing to do. */
function settled(report: ReconcileReport, n: number): boolean {
  return report.summary.unchanged === n && report.daemonSets.every((d) => d.rollout?.phase === 'complete');
}

/** What the warm no-op passes of one fleet measured. */
interface WarmPasses {
  createSeconds: number;
  median: number;
  fastest: number;
  s3: { reads: number; writes: number };
  requests: number;
  rss: number;
}

/**
 * Warm passes: the reconcile handler called again and again in this process, with the
 * environment a Lambda has (`rounds` of them after the fleet settled). With `kustomize`, GIT_PATH
 * holds a kustomization of the same files, so the passes are those of a rendered path.
 */
async function warmPasses(n: number, rounds: number, kustomize = false): Promise<WarmPasses> {
  return withFleet(n, async (ns, git) => {
    // A busy shared cluster can be slow to roll out 300 DaemonSets: no stall while it catches up.
    Object.assign(process.env, stackConfigEnv({ GIT_URL: git.url, GIT_PATH: 'ds', ALLOWED_NAMESPACES: ns, PROGRESS_DEADLINE_SECONDS: '3600' }));
    const invoke = (req: ReconcileRequest = {}) => handler(req) as Promise<ReconcileReport>;
    const t0 = Date.now();
    const first = await invoke();
    const createSeconds = (Date.now() - t0) / 1000;
    if (first.error) throw new Error(`the first pass failed: ${JSON.stringify(first.error)}`);
    // What applied it: the kustomization (rendered) or the DaemonSet's own file.
    const from = (await adminClients().apps.readNamespacedDaemonSet({ namespace: ns, name: 'agent-0' })).metadata?.annotations?.[SOURCE_ANNOTATION];
    const expected = kustomize ? 'ds/kustomization.yaml' : 'ds/agent-0.yaml';
    if (from !== expected) throw new Error(`expected agent-0 applied from ${expected}, got ${from}`);
    // On a busy cluster the controller may be slow: later passes track the rollouts until they finish.
    for (let settle = 0, report = first; !settled(report, n); settle++) {
      if (settle === 10) throw new Error(`the fleet did not settle: ${JSON.stringify(report.summary)}`);
      report = await invoke();
    }
    const times: number[] = [];
    let last = { reads: 0, writes: 0, requests: 0 };
    for (let round = 0; round < rounds; round++) {
      const before = { ...s3 };
      const t = process.hrtime.bigint();
      const { result, requests } = await countApiRequests(invoke);
      times.push(Number(process.hrtime.bigint() - t) / 1e6);
      last = { reads: s3.reads - before.reads, writes: s3.writes - before.writes, requests };
      if (result.result !== 'succeeded' || result.summary.unchanged !== n) throw new Error(`expected ${n} unchanged, got ${result.result} ${JSON.stringify(result.summary)}`);
    }
    return { createSeconds, median: median(times), fastest: Math.min(...times), s3: { reads: last.reads, writes: last.writes }, requests: last.requests, rss: Math.round(process.memoryUsage().rss / (1 << 20)) };
  }, true, kustomize);
}

function warmCells(w: WarmPasses): string[] {
  return [`${w.createSeconds.toFixed(1)}s`, `${w.median.toFixed(0)}ms`, `${w.fastest.toFixed(0)}ms`, String(w.s3.reads), String(w.s3.writes), String(w.requests), `${w.rss}MiB`];
}

async function warmRow(n: number): Promise<string[]> {
  return [String(n), ...warmCells(await warmPasses(n, 7))];
}

const KUSTOMIZE_ROUNDS = 9;

/** The same DaemonSets from a plain-YAML path and from a kustomize path, one after the other in this process. */
async function kustomizeRows(n: number): Promise<string[][]> {
  const plain = await warmPasses(n, KUSTOMIZE_ROUNDS);
  const rendered = await warmPasses(n, KUSTOMIZE_ROUNDS, true);
  const ratio = rendered.median / plain.median;
  return [
    [String(n), 'plain YAML', ...warmCells(plain), ''],
    [String(n), 'kustomize', ...warmCells(rendered), `${ratio.toFixed(2)}x`],
  ];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const warm = args.includes('--warm');
  const sizes = args.map(Number).filter((n) => n > 0);
  countS3Requests(stackEnv().S3_ENDPOINT);
  // Every DaemonSet runs a pod on each worker: the first pass's time grows with them.
  console.log(`worker nodes: ${(await workerNames(adminClients().core)).length} (resize with npm run stack:nodes -- N)`);
  const rows: string[][] = [];
  if (warm && args.includes('--kustomize')) {
    for (const n of sizes.length ? sizes : [30]) {
      rows.push(...(await kustomizeRows(n)));
      process.stderr.write(`  ${n} DaemonSets done\n`);
    }
    table(['DAEMONSETS', 'GIT_PATH', 'FIRST PASS', `WARM NO-OP PASS (median of ${KUSTOMIZE_ROUNDS}, DaemonSets without pods)`, 'FASTEST', 'S3 READS', 'S3 WRITES', 'K8S REQUESTS', 'RSS', 'KUSTOMIZE / PLAIN'], rows);
    console.log(`reproduce: npm run bench:steady -- --warm --kustomize ${(sizes.length ? sizes : [30]).join(' ')}`);
    return;
  }
  for (const n of sizes.length ? sizes : warm ? [30, 300] : [3, 30, 100]) {
    rows.push(warm ? await warmRow(n) : await coldRow(n));
    process.stderr.write(`  ${n} DaemonSets done: ${rows[rows.length - 1].join(' ')}\n`);
  }
  if (warm) table(['DAEMONSETS', 'FIRST PASS', 'WARM NO-OP PASS (median of 7, DaemonSets without pods)', 'FASTEST', 'S3 READS', 'S3 WRITES', 'K8S REQUESTS', 'RSS'], rows);
  else table(['DAEMONSETS', 'FIRST PASS (create + rollout)', 'STEADY PASS (median of 3)', 'K8S REQUESTS', 'RSS'], rows);
}

main().then(() => process.exit(0), (err: Error) => {
  console.error(err.message);
  process.exit(1);
});
