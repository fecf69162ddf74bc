/**
 * Benchmark at fleet scale, side by side in one run, everything as a user runs it (the
 * compiled `dsgitops` command, a process per run) with the reconciler's identity
 * (RECONCILER_KUBECONFIG), Kubernetes requests counted from the API server's audit log:
 *
 * - a managed rollout at 50 and 200 nodes (maxUnavailable 10%, pods Ready 2 s after start,
 *   minReadySeconds 1): requests by verb and resource, wall time against the ideal
 *   ceil(N/k) x (ready delay + minReadySeconds);
 * - a no-op pass at 30 and 300 DaemonSets against `kubectl apply --server-side -f` and
 *   `kubectl diff --server-side -f` of the same files (median of 3 each, after one warm-up);
 * - the command's start: `dsgitops --help`, and a command that loads everything and stops at
 *   the configuration check;
 * - peak RSS of every process (GNU time).
 *
 * The rollouts run on their own kwok nodes, tainted so that nothing else on a shared stack
 * schedules there; the no-op DaemonSets select no node (a no-op pass does not look at pods).
 *
 *   npm run stack:up   # if the stack is not running
 *   npm run bench:scale
 *   npm run bench:scale -- --nodes 20 --daemonsets 10,100   # other sizes
 *   npm run bench:scale -- --nodes=                         # no rollouts (an empty list skips a part)
 *
 * Thousands of nodes need a stack started with room for them (stack/node-liveness.ts):
 *
 *   STACK_KWOK_LEASE_SECONDS=120 STACK_KWOK_PARALLELISM=16 STACK_CONTROL_PLANE_QPS=100 npm run stack:up
 *   npm run bench:scale -- --nodes 2000 --daemonsets=
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { resolveMaxUnavailable } from '../lib/rollout/wave';
import { kubectl } from '../stack/kubectl';
import { repoRoot } from '../stack/paths';
import { cliCommand, ensureCliBuilt } from '../test/support/cli-build';
import { adminClients, stackEnv, uniqueName } from '../test/support/cluster';
import { TestRepo } from '../test/support/git';
import { dsObject } from '../test/support/manifests';
import { countApiRequests, stackConfig, stackConfigEnv, stackDeps } from '../test/support/reconciler';
import { benchReport } from './report';

benchReport();

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const BENCH_NODE_LABEL = 'daemonset-gitops.io/bench-node';
const BENCH_TAINT = { key: 'daemonset-gitops.io/bench', value: 'scale', effect: 'NoSchedule' };
const GNU_TIME = '/usr/bin/time';
/**
 * In the bench nodes' names: kwok v0.8.0 does not renew the lease of a node created again
 * under the name of one it managed before (it keeps the deleted node's lease job, and the
 * lease went with the node), so the node goes NotReady when its grace period runs out.
 */
const BENCH_RUN = randomBytes(3).toString('hex');

interface Run { ms: number; rssMiB?: number; code: number | null; stdout: string; stderr: string }

/** Runs a program to its end; wall time from here, peak RSS from GNU time when it is installed. */
async function measure(program: string, args: string[], env: Record<string, string>): Promise<Run> {
  const rssFile = join(mkdtempSync(join(tmpdir(), 'bench-rss-')), 'rss');
  const withTime = existsSync(GNU_TIME);
  const [cmd, argv] = withTime ? [GNU_TIME, ['-f', '%M', '-o', rssFile, program, ...args]] : [program, args];
  const t0 = process.hrtime.bigint();
  const run = await new Promise<Omit<Run, 'ms' | 'rssMiB'>>((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: repoRoot, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const rssMiB = withTime ? Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()) / 1024 : undefined;
  rmSync(rssFile, { force: true });
  return { ...run, ms, rssMiB };
}

function expectCode(run: Run, codes: number[], what: string): Run {
  if (!codes.includes(run.code ?? -1)) throw new Error(`${what} exited ${run.code}:\n${run.stderr.slice(-2000)}`);
  return run;
}

/** "verb resource" counts from the audit log's request URIs, largest first. */
function byVerbAndResource(verbs: string[]): string {
  const counts = new Map<string, number>();
  for (const v of verbs) {
    const [verb, uri] = v.split(' ');
    const parts = uri.split('/').filter(Boolean);
    // /api/v1/namespaces/NS/pods/NAME, /apis/apps/v1/namespaces/NS/daemonsets, /api/v1/nodes
    const rest = parts[0] === 'api' ? parts.slice(2) : parts.slice(3);
    const resource = rest[0] === 'namespaces' && rest.length > 2 ? rest[2] : rest[0] ?? uri;
    const key = `${verb} ${resource}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} ${k}`).join(', ');
}

/**
 * The requests of this run: in its namespace, or cluster-scoped (nodes). Tests running at the
 * same time on a shared stack use the same identity; only their cluster-scoped requests (if
 * any) can still be counted here.
 */
function ofNamespace(verbs: string[], ns: string): string[] {
  return verbs.filter((v) => v.includes(`/namespaces/${ns}/`) || !v.includes('/namespaces/'));
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const fmtMs = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
const fmtRss = (r?: number) => (r === undefined ? 'n/a' : `${Math.round(r)} MiB`);
const peakRss = (runs: Run[]) => (runs.some((r) => r.rssMiB === undefined) ? undefined : Math.max(...runs.map((r) => r.rssMiB!)));

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i])).join('   ').trimEnd()).join('\n');
}

/** Nodes per `kubectl create`: one process and one connection for each chunk, not one per node. */
const NODE_CHUNK = 250;

/**
 * How long kwok may take to report `count` new nodes Ready: 120 s, and 100 ms more per node
 * (kwok initialises them a few at a time; 320 s at 2,000 nodes).
 */
function nodesReadyTimeoutMs(count: number): number {
  return 120_000 + 100 * count;
}

/**
 * Makes exactly `count` tainted bench nodes exist, and waits until kwok reports them Ready.
 * They are created and deleted through kubectl, a chunk per process: a request each from this
 * process would open thousands of connections (TIME_WAIT sockets exhaust the local ports).
 * Their status heartbeat is a kubelet's with a node lease (every 4 – 5 min; the lease kwok
 * renews keeps them Ready): 2,000 nodes heartbeating every 20 s would be 100 node writes a
 * second, sent to every watcher of nodes, the reconciler under test among them.
 */
async function setBenchNodes(count: number): Promise<void> {
  const { core } = adminClients();
  const existing = (await core.listNode({ labelSelector: BENCH_NODE_LABEL })).items.map((n) => n.metadata!.name!);
  const wanted = Array.from({ length: count }, (_, i) => `bench-node-${BENCH_RUN}-${i}`);
  const have = new Set(existing);
  const want = new Set(wanted);
  const create = wanted.filter((n) => !have.has(n));
  const remove = existing.filter((n) => !want.has(n));
  for (let i = 0; i < create.length; i += NODE_CHUNK) {
    const items = create.slice(i, i + NODE_CHUNK).map((name) => ({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        labels: { [BENCH_NODE_LABEL]: 'true', type: 'kwok', 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'topology.kubernetes.io/zone': 'abc'[Number(name.split('-').pop()) % 3] },
        annotations: {
          'kwok.x-k8s.io/node': 'fake',
          'node.alpha.kubernetes.io/ttl': '0',
          'node-heartbeat.stage.kwok.x-k8s.io/delay': '240s',
          'node-heartbeat.stage.kwok.x-k8s.io/jitter-delay': '300s',
        },
      },
      spec: { taints: [BENCH_TAINT] },
    }));
    kubectl(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
  }
  for (let i = 0; i < remove.length; i += NODE_CHUNK) kubectl(['delete', 'node', '--wait=false', '--ignore-not-found', ...remove.slice(i, i + NODE_CHUNK)]);
  const timeoutMs = nodesReadyTimeoutMs(count);
  for (const deadline = Date.now() + timeoutMs; ;) {
    const nodes = (await core.listNode({ labelSelector: BENCH_NODE_LABEL, resourceVersion: '0' })).items;
    const ready = nodes.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    if (nodes.length === count && ready.length === count) return;
    if (Date.now() > deadline) {
      throw new Error(`bench nodes: ${nodes.length} exist, ${ready.length} of ${count} Ready after ${timeoutMs / 1000} s (load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; see .stack/logs/kwok.log)`);
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

interface RolloutCase { nodes: number; maxUnavailable: string; delay: number; minReady: number }

/** Passes one after another, as a schedule runs them, before a pass is given up as endless. */
const MAX_PASSES = 6;

/**
 * Runs `dsgitops reconcile` until the DaemonSet's rollout is no longer progressing: a pass
 * has a time budget (10 min from the command line, as a function invocation has its own),
 * and a rollout longer than that goes on in the next pass, from the recorded checkpoint.
 * Returns each pass's run, the requests of all of them (in the namespace, or cluster-scoped)
 * and the last state.
 */
async function passesUntilSettled(env: Record<string, string>, ns: string, what: string) {
  const runs: Run[] = [];
  const verbs: string[] = [];
  for (;;) {
    const { result: run, verbs: all } = await countApiRequests(() => measure(process.execPath, [cliCommand, 'reconcile', '--json'], env));
    expectCode(run, [0], `${what} (${runs.length + 1})`);
    runs.push(run);
    verbs.push(...ofNamespace(all, ns));
    const state = (await stackDeps(stackConfig({ ...env })).store.getState(ns, 'agent'))!.value;
    process.stderr.write(`  ${what} ${runs.length}: the rollout ${state.rollout?.phase} after ${fmtMs(run.ms)}, peak RSS ${fmtRss(run.rssMiB)}, ${ofNamespace(all, ns).length} requests\n`);
    if (state.rollout?.phase !== 'progressing') return { runs, verbs, state };
    if (runs.length === MAX_PASSES) throw new Error(`${what}: the rollout still progressing after ${MAX_PASSES} passes`);
  }
}

async function managedRollout(c: RolloutCase): Promise<string[]> {
  const { core } = adminClients();
  const ns = uniqueName('benchscale');
  await core.createNamespace({ body: { metadata: { name: ns } } });
  const git = new TestRepo();
  try {
    const manifest = (image: string) => {
      const ds = dsObject({
        name: 'agent', namespace: ns, image, maxUnavailable: c.maxUnavailable, minReadySeconds: c.minReady,
        annotations: { 'daemonset-gitops.io/rollout': 'managed' },
        podAnnotations: { 'pod-ready.stage.kwok.x-k8s.io/delay': `${c.delay}s` },
        nodeSelector: { [BENCH_NODE_LABEL]: 'true' },
      }) as { spec: { template: { spec: Record<string, unknown> } } };
      ds.spec.template.spec.tolerations = [{ key: BENCH_TAINT.key, operator: 'Exists', effect: BENCH_TAINT.effect }];
      return stringify(ds);
    };
    git.write('agent.yaml', manifest('registry.local/agent:1.0')).commit('v1');
    const env = stackConfigEnv({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, PROGRESS_DEADLINE_SECONDS: '300' });
    await passesUntilSettled(env, ns, 'the first pass');
    git.write('agent.yaml', manifest('registry.local/agent:2.0')).commit('v2');
    const { runs, verbs, state } = await passesUntilSettled(env, ns, 'the rollout pass');
    if (state.rollout?.phase !== 'complete') throw new Error(`the rollout ended ${state.rollout?.phase}`);
    const wall = (Date.parse(state.rollout.finishedAt!) - Date.parse(state.rollout.startedAt)) / 1000;
    const k = Math.max(1, resolveMaxUnavailable(c.maxUnavailable, c.nodes));
    const ideal = Math.ceil(c.nodes / k) * (c.delay + c.minReady);
    const waves = (state.rollout.managed as { checkpoint: { waves: number } }).checkpoint.waves;
    return [String(c.nodes), `${c.maxUnavailable} (k=${k})`, String(waves), `${wall.toFixed(1)} s`, `${ideal} s`, `${(wall / ideal).toFixed(2)}x`,
      String(runs.length), fmtMs(runs.reduce((sum, r) => sum + r.ms, 0)), String(verbs.length), fmtRss(peakRss(runs)), byVerbAndResource(verbs)];
  } finally {
    git.cleanup();
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
  }
}

async function noopPass(n: number): Promise<string[][]> {
  const { core } = adminClients();
  const ns = uniqueName(`benchnoop${n}`);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  const git = new TestRepo();
  try {
    // No node matches: a no-op pass reads the DaemonSets, not their pods.
    for (let i = 0; i < n; i++) git.write(`ds/agent-${i}.yaml`, stringify(dsObject({ name: `agent-${i}`, namespace: ns, nodeSelector: { [BENCH_NODE_LABEL]: 'none' } })));
    git.commit(`${n} agents`);
    const env = stackConfigEnv({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
    const reconciler = { KUBECONFIG: stackEnv().RECONCILER_KUBECONFIG };
    const files = join(git.work, 'ds');
    const commands: { label: string; program: string; args: string[]; env: Record<string, string>; codes: number[]; check?: (r: Run) => void }[] = [
      {
        label: 'dsgitops reconcile', program: process.execPath, args: [cliCommand, 'reconcile', '--json'], env, codes: [0],
        check: (r) => {
          const summary = (JSON.parse(r.stdout) as { summary: { unchanged: number } }).summary;
          if (summary.unchanged !== n) throw new Error(`expected ${n} unchanged DaemonSets, got ${JSON.stringify(summary)}`);
        },
      },
      { label: 'kubectl apply --server-side -f', program: stackEnv().KUBECTL, args: ['apply', '--server-side', '-f', files], env: reconciler, codes: [0] },
      { label: 'kubectl diff --server-side -f', program: stackEnv().KUBECTL, args: ['diff', '--server-side', '-f', files], env: reconciler, codes: [0] },
    ];
    // The pass that creates them, then a warm-up of each (kubectl's first apply records its field manager).
    expectCode(await measure(process.execPath, [cliCommand, 'reconcile', '--json'], env), [0], 'the first pass');
    for (const c of commands) expectCode(await measure(c.program, c.args, c.env), c.codes, `${c.label} (warm-up)`);
    const rows: string[][] = [];
    let dsgitopsMs = 0;
    for (const c of commands) {
      const runs: Run[] = [];
      let requests = 0;
      for (let i = 0; i < 3; i++) {
        const { result, verbs } = await countApiRequests(() => measure(c.program, c.args, c.env));
        c.check?.(expectCode(result, c.codes, c.label));
        runs.push(result);
        requests = ofNamespace(verbs, ns).length;
      }
      const ms = median(runs.map((r) => r.ms));
      if (c.label.startsWith('dsgitops')) dsgitopsMs = ms;
      rows.push([String(n), c.label, fmtMs(ms), c.label.startsWith('dsgitops') ? '1.00x' : `${(dsgitopsMs / ms).toFixed(2)}x`, String(requests), fmtRss(peakRss(runs))]);
    }
    return rows;
  } finally {
    git.cleanup();
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
  }
}

async function cliStart(): Promise<string[][]> {
  const rows: string[][] = [];
  const cases: { label: string; program: string; args: string[]; runs: number; code: number }[] = [
    { label: 'dsgitops --help', program: process.execPath, args: [cliCommand, '--help'], runs: 7, code: 0 },
    { label: 'dsgitops status, no configuration (loads every command, stops at the check)', program: process.execPath, args: [cliCommand, 'status'], runs: 7, code: 2 },
    { label: 'tsx bin/dsgitops.ts --help (the same sources through tsx, as without the bundles)', program: join(repoRoot, 'node_modules', '.bin', 'tsx'), args: [join(repoRoot, 'bin', 'dsgitops.ts'), '--help'], runs: 3, code: 0 },
  ];
  for (const c of cases) {
    await measure(c.program, c.args, {});
    const runs: Run[] = [];
    for (let i = 0; i < c.runs; i++) runs.push(expectCode(await measure(c.program, c.args, {}), [c.code], c.label));
    rows.push([c.label, fmtMs(median(runs.map((r) => r.ms))), fmtMs(Math.min(...runs.map((r) => r.ms))), fmtRss(peakRss(runs))]);
  }
  return rows;
}

function sizes(value: string | undefined, defaults: number[]): number[] {
  if (value === undefined) return defaults;
  if (value.trim() === '') return []; // this part of the benchmark is skipped
  const list = value.split(',').map(Number);
  if (list.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error(`expected sizes such as 50,200, not "${value}"`);
  return list;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { nodes: { type: 'string' }, daemonsets: { type: 'string' } } });
  const nodeCounts = sizes(values.nodes, [50, 200]);
  const daemonSetCounts = sizes(values.daemonsets, [30, 300]);
  await adminClients().core.listNode({ limit: 1 }).catch((err: Error) => {
    throw new Error(`the local stack does not answer (${err.message}): start it with npm run stack:up`);
  });
  ensureCliBuilt();
  const started = new Date();
  const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  const progress = (s: string) => process.stderr.write(`  ${s}\n`);

  // Each section prints when it is done, so a run cut short still shows what it measured.
  console.log(`bench:scale at commit ${head}, ${started.toISOString()}; node ${process.version}, ${cpus().length} cores, load average ${load} at start\n`);
  console.log(`Command start (median; min; peak RSS):\n${table(['COMMAND', 'MEDIAN', 'MIN', 'PEAK RSS'], await cliStart())}\n`);
  const noop: string[][] = [];
  for (const n of daemonSetCounts) {
    noop.push(...await noopPass(n));
    progress(`no-op pass, ${n} DaemonSets done`);
  }
  console.log(`No-op pass, the reconciler identity, median of 3 after a warm-up (ratio: dsgitops time / this command's time):
${table(['DAEMONSETS', 'COMMAND', 'WALL', 'DSGITOPS / THIS', 'K8S REQUESTS', 'PEAK RSS'], noop)}
`);
  console.log('Managed rollout, pods Ready 2 s after start, minReadySeconds 1 (ideal = ceil(N/k) x 3 s; wall from the rollout record; the processes from start to exit, passes added; peak RSS of the largest pass):');
  const header = ['NODES', 'MAXUNAVAILABLE', 'WAVES', 'WALL', 'IDEAL', 'RATIO', 'PASSES', 'PROCESSES', 'K8S REQUESTS', 'PEAK RSS', 'REQUESTS BY VERB AND RESOURCE'];
  const rollouts: string[][] = [];
  try {
    for (const nodes of nodeCounts) {
      await setBenchNodes(nodes);
      rollouts.push(await managedRollout({ nodes, maxUnavailable: '10%', delay: 2, minReady: 1 }));
      progress(table(header, rollouts));
    }
  } finally {
    // A failed cleanup must not hide why the rollout failed.
    await setBenchNodes(0).catch((err: Error) => console.error(`removing the bench nodes failed: ${err.message}`));
  }
  console.log(`${table(header, rollouts)}\n\nReproduce: npm ci && npm run stack:up && npm run bench:scale`);
}

main().then(() => process.exit(0), (err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
