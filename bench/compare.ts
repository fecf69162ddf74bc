/**
 * Benchmark: this checkout against another one (an older commit, another branch), side by side
 * in one run on this machine, each run by its own Node.js. Prints, for each:
 *
 * - the dsgitops command's bundles in dist/ (bytes);
 * - the command's start: `dsgitops --help`, and `dsgitops status` and a no-op
 *   `dsgitops reconcile --json` against the local stack (30 DaemonSets, the reconciler
 *   identity); the two checkouts' runs alternate, after one warm-up each (which writes the V8
 *   code cache), median and minimum wall time, peak RSS;
 * - `npm run bench:bundle` run in each checkout: the Lambda functions' zips and cold init.
 *
 *   npm run bench:compare -- --against DIR [--against-node PATH] [--runs 9] [--daemonsets 30] [--no-bundles]
 *
 * DIR is a checkout with `npm ci` done (its dist/ built); PATH is the Node.js that runs it
 * (default: the `node` on PATH). This checkout runs on the Node.js that runs this script.
 * The local stack must be running (npm run stack:up).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { repoRoot } from '../stack/paths';
import { ensureCliBuilt } from '../test/support/cli-build';
import { adminClients, uniqueName } from '../test/support/cluster';
import { TestRepo } from '../test/support/git';
import { dsObject } from '../test/support/manifests';
import { stackConfigEnv } from '../test/support/reconciler';
import { benchReport } from './report';

benchReport();

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const GNU_TIME = '/usr/bin/time';

interface Side {
  label: string;
  root: string;
  node: string;
  version: string;
  commit: string;
}

interface Run { ms: number; rssMiB?: number; code: number | null; stdout: string; stderr: string }

/** Runs a program to its end; wall time from here, peak RSS from GNU time when it is installed. */
async function measure(program: string, args: string[], env: Record<string, string>, cwd: string): Promise<Run> {
  const rssDir = mkdtempSync(join(tmpdir(), 'bench-rss-'));
  const rssFile = join(rssDir, 'rss');
  const withTime = existsSync(GNU_TIME);
  const [cmd, argv] = withTime ? [GNU_TIME, ['-f', '%M', '-o', rssFile, program, ...args]] : [program, args];
  const t0 = process.hrtime.bigint();
  const run = await new Promise<Omit<Run, 'ms' | 'rssMiB'>>((done, fail) => {
    const child = spawn(cmd, argv, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const rssMiB = withTime ? Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()) / 1024 : undefined;
  rmSync(rssDir, { recursive: true, force: true });
  return { ...run, ms, rssMiB };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i])).join('   ').trimEnd()).join('\n');
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MiB`;

function side(label: string, root: string, node: string): Side {
  if (!existsSync(join(root, 'bin', 'dsgitops.cjs'))) throw new Error(`${root} is not a checkout of this project (no bin/dsgitops.cjs)`);
  for (const f of ['dsgitops.cjs', 'commands.cjs']) {
    if (!existsSync(join(root, 'dist', f))) throw new Error(`${join(root, 'dist', f)} is missing: run npm ci (or npm run build) in ${root}`);
  }
  const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  return { label, root, node, version, commit };
}

/** The environment of one side's processes: its Node.js first on PATH. */
function envOf(s: Side, extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: `${dirname(s.node)}:${process.env.PATH}`, HOME: process.env.HOME ?? '/root', ...extra };
}

interface Case { label: string; args: string[]; env: Record<string, string>; code: number; check?: (r: Run) => void }

async function commandStart(sides: Side[], cases: Case[], runs: number): Promise<string[][]> {
  const rows: string[][] = [];
  for (const c of cases) {
    const results = new Map<Side, Run[]>(sides.map((s) => [s, []]));
    const once = async (s: Side) => {
      const r = await measure(s.node, [join(s.root, 'bin', 'dsgitops.cjs'), ...c.args], envOf(s, c.env), s.root);
      if (r.code !== c.code) throw new Error(`${s.label}: dsgitops ${c.args.join(' ')} exited ${r.code}, expected ${c.code}:\n${r.stderr.slice(-2000)}`);
      c.check?.(r);
      return r;
    };
    for (const s of sides) await once(s); // warm-up: writes the code cache
    // Alternating, and the order swapped each round, so neither side always runs first.
    for (let i = 0; i < runs; i++) for (const s of i % 2 ? [...sides].reverse() : sides) results.get(s)!.push(await once(s));
    for (const s of sides) {
      const rs = results.get(s)!;
      const rss = rs.some((r) => r.rssMiB === undefined) ? 'n/a' : `${Math.round(Math.max(...rs.map((r) => r.rssMiB!)))} MiB`;
      rows.push([c.label, s.label, `${Math.round(median(rs.map((r) => r.ms)))} ms`, `${Math.round(Math.min(...rs.map((r) => r.ms)))} ms`, rss]);
    }
  }
  return rows;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      against: { type: 'string' },
      'against-node': { type: 'string' },
      runs: { type: 'string', default: '9' },
      daemonsets: { type: 'string', default: '30' },
      'no-bundles': { type: 'boolean', default: false },
    },
  });
  if (!values.against) throw new Error('usage: npm run bench:compare -- --against DIR [--against-node PATH] [--runs 9] [--daemonsets 30] [--no-bundles]');
  const runs = Number(values.runs);
  const n = Number(values.daemonsets);
  if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(n) || n < 1) throw new Error('--runs and --daemonsets take positive whole numbers');
  const otherNode = values['against-node'] ?? execFileSync('sh', ['-c', 'command -v node'], { encoding: 'utf8' }).trim();
  ensureCliBuilt();
  const sides = [side('other', resolve(values.against), otherNode), side('this', repoRoot, process.execPath)];
  await adminClients().core.listNode({ limit: 1 }).catch((err: Error) => {
    throw new Error(`the local stack does not answer (${err.message}): start it with npm run stack:up`);
  });

  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`bench:compare, ${new Date().toISOString()}; ${cpus().length} cores, load average ${load} at start`);
  for (const s of sides) console.log(`  ${s.label}: ${s.root} at ${s.commit}, Node.js ${s.version} (${s.node})`);

  console.log('\nThe dsgitops command\'s bundles (dist/):');
  console.log(table(['SIDE', 'dsgitops.cjs', 'commands.cjs', 'TOTAL'], sides.map((s) => {
    const [a, b] = ['dsgitops.cjs', 'commands.cjs'].map((f) => statSync(join(s.root, 'dist', f)).size);
    return [s.label, `${a} B`, `${b} B`, mib(a + b)];
  })));

  const { core } = adminClients();
  const ns = uniqueName('benchcompare');
  await core.createNamespace({ body: { metadata: { name: ns } } });
  const git = new TestRepo();
  try {
    // No node matches: a no-op pass reads the DaemonSets, not their pods.
    for (let i = 0; i < n; i++) git.write(`ds/agent-${i}.yaml`, stringify(dsObject({ name: `agent-${i}`, namespace: ns, nodeSelector: { 'daemonset-gitops.io/bench-node': 'none' } })));
    git.commit(`${n} agents`);
    const env = stackConfigEnv({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
    const first = await measure(process.execPath, [join(repoRoot, 'bin', 'dsgitops.cjs'), 'reconcile', '--json'], envOf(sides[1], env), repoRoot);
    if (first.code !== 0) throw new Error(`the first pass exited ${first.code}:\n${first.stderr.slice(-2000)}`);
    const cases: Case[] = [
      { label: 'dsgitops --help', args: ['--help'], env: {}, code: 0 },
      { label: `dsgitops status (${n} DaemonSets)`, args: ['status'], env, code: 0 },
      {
        label: `dsgitops reconcile --json, no-op (${n} DaemonSets)`, args: ['reconcile', '--json'], env, code: 0,
        check: (r) => {
          const summary = (JSON.parse(r.stdout) as { summary: { unchanged: number } }).summary;
          if (summary.unchanged !== n) throw new Error(`expected ${n} unchanged DaemonSets, got ${JSON.stringify(summary)}`);
        },
      },
    ];
    console.log(`\nCommand start, the two sides alternating, median and minimum of ${runs} after a warm-up each; peak RSS:`);
    console.log(table(['COMMAND', 'SIDE', 'MEDIAN', 'MIN', 'PEAK RSS'], await commandStart(sides, cases, runs)));
  } finally {
    git.cleanup();
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
  }

  if (!values['no-bundles']) {
    for (const s of sides) {
      console.log(`\nnpm run bench:bundle in ${s.label} (${s.root}, ${s.commit}; npm and tsx on Node.js ${s.version}):`);
      process.stdout.write(execFileSync('npm', ['run', '--silent', 'bench:bundle'], { cwd: s.root, env: { ...process.env, ...envOf(s) }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
    }
  }
  console.log(`\nReproduce: npm run stack:up && npm run bench:compare -- --against ${values.against}${values['against-node'] ? ` --against-node ${values['against-node']}` : ''}`);
}

main().then(() => process.exit(0), (err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
