/**
 * Benchmark: rendering. For examples/kustomize (a base with a configMapGenerator, a chart in the
 * repository, an overlay with images and a patch) in a git checkout:
 *
 *   cold   a new commit: kustomize build, with the Helm it runs for the chart (median of 5)
 *   warm   the same commit again with the warm checkout: the kept render is reused (median of 20)
 *
 * then the Lambda side: the renderers layer's zipped and unpacked bytes, the reconcile function's
 * zip (from `serverless package`), the time to unpack the layer (work Lambda adds to a cold start
 * of a function that has it), and the reconcile handler's cold init with and without the layer's
 * bin/ on its PATH (the handler does not load the programs: they start only when a pass renders).
 *
 *   npm run bench:render            (add --no-package to skip `serverless package`)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckout } from '../lib/source/load';
import type { Checkout } from '../lib/source/git';
import { binaryPath } from '../stack/build';
import { repoRoot } from '../stack/paths';
import { ensureRenderersLayer } from '../scripts/renderers-layer';
import { ensureLambdaNode } from '../scripts/lambda-runtime';
import { packageFunctions, unpackReadOnly } from '../scripts/lambda-package';
import { benchReport } from './report';

benchReport();

const GIT_PATH = 'kustomize/clusters/local-demo-rendered';
const policy = { allowedNamespaces: ['node-health'] };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function tree(dir: string, sha: string, reused: boolean): Checkout {
  return { dir, reused, commit: { sha, author: 'bench', email: 'bench@example.com', time: new Date(0).toISOString(), subject: 'bench' } } as Checkout;
}

const kib = (n: number): string => `${(n / 1024).toFixed(0)} KiB`;
const ms = (n: number): string => `${n.toFixed(1)} ms`;

async function main(): Promise<void> {
  const render = { allowRemote: false, timeoutSeconds: 60, maxOutputBytes: 16 << 20, kustomize: binaryPath('kustomize'), helm: binaryPath('helm') };
  const work = mkdtempSync(join(tmpdir(), 'dsgitops-bench-render-'));
  try {
    const dir = join(work, 'checkout');
    cpSync(join(repoRoot, 'examples', 'kustomize'), join(dir, 'kustomize'), { recursive: true });
    console.log(`rendering ${GIT_PATH} (examples/kustomize), load average ${loadavg()[0].toFixed(1)} on ${cpus().length} CPUs\n`);

    const cold: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const r = await loadCheckout(tree(dir, `cold${i}`.padEnd(40, '0'), false), GIT_PATH, policy, 1 << 20, render);
      cold.push(performance.now() - t0);
      if (r.desired.length !== 2 || r.problems.length) throw new Error(`unexpected render: ${JSON.stringify(r.problems)}`);
    }
    const warm: number[] = [];
    const sha = 'cold4'.padEnd(40, '0');
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      await loadCheckout(tree(dir, sha, true), GIT_PATH, policy, 1 << 20, render);
      warm.push(performance.now() - t0);
    }
    console.log(`${'cold: a new commit, kustomize build + helm template'.padEnd(58)} ${ms(median(cold))} (median of 5; min ${ms(Math.min(...cold))})`);
    console.log(`${'warm: the same commit, render reused with the checkout'.padEnd(58)} ${ms(median(warm))} (median of 20)`);

    const layer = await ensureRenderersLayer();
    const unpacked = join(work, 'opt');
    const u0 = performance.now();
    execFileSync('unzip', ['-q', layer, '-d', unpacked]);
    const unzipMs = performance.now() - u0;
    const du = Number(execFileSync('du', ['-sb', unpacked], { encoding: 'utf8' }).split('\t')[0]);
    console.log(`\nrenderers layer: ${kib(statSync(layer).size)} zipped, ${kib(du)} unpacked (kustomize ${kib(statSync(join(unpacked, 'bin', 'kustomize')).size)}, helm ${kib(statSync(join(unpacked, 'bin', 'helm')).size)}); unzip ${ms(unzipMs)}`);

    if (!process.argv.includes('--no-package')) {
      const functions = packageFunctions(join(work, 'package'));
      const reconcile = functions.find((f) => f.name === 'reconcile')!;
      console.log(`reconcile function zip: ${kib(reconcile.bytes)} (with the layer attached: ${kib(reconcile.bytes + statSync(layer).size)} to fetch at a cold start)`);
      const task = join(work, 'task');
      unpackReadOnly(reconcile.zip, task);
      const node = ensureLambdaNode();
      const probe = `const t0=performance.now();require(process.argv[1]);console.log(JSON.stringify({init:performance.now()}))`;
      const init = (path: string) => median(Array.from({ length: 10 }, () => {
        const out = spawnSync(node, ['-e', probe, join(task, 'handlers', 'reconcile.js')], { env: { PATH: path, AWS_REGION: 'us-east-1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' }, encoding: 'utf8' });
        return (JSON.parse(out.stdout.trim().split('\n').pop()!) as { init: number }).init;
      }));
      console.log(`reconcile cold init (median of 10): without the layer ${ms(init('/usr/bin:/bin'))}, with its bin/ on PATH ${ms(init(`/usr/bin:/bin:${join(unpacked, 'bin')}`))}`);
    }
  } finally {
    execFileSync('chmod', ['-R', 'u+w', work]);
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(`bench:render: ${err.message}`);
  process.exit(1);
});
