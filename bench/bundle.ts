/**
 * Benchmark: what each Lambda function ships and how long it takes to start. Packages the
 * functions (`serverless package`, offline), then prints per function the zip's bytes and the
 * cold-init time: a fresh Node.js 24 process (the nodejs24.x runtime's Node, from the npm
 * registry) loads the handler from the unpacked zip; median of 10 runs. Then, for the reconcile
 * function, what source maps would cost: their zipped bytes and the init time with
 * NODE_OPTIONS=--enable-source-maps.
 *
 *   npm run bench:bundle
 *
 * `init` is the time from the process's start to the handler loaded (Node's own start
 * included, as in Lambda's Init Duration without the sandbox); `require` is loading the
 * handler alone; `CPU` is the processor time the process used until then, which depends less
 * than the wall times on what else the machine is running.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { repoRoot } from '../stack/paths';
import { ensureLambdaNode } from '../scripts/lambda-runtime';
import { packageFunctions, unpackReadOnly } from '../scripts/lambda-package';
import { benchReport } from './report';

benchReport();

const RUNS = 10;

const PROBE = `const t0 = performance.now();
const m = require(process.argv[1]);
const t1 = performance.now();
if (typeof m.handler !== 'function') { console.error(process.argv[1] + ' exports no handler'); process.exit(1); }
const cpu = process.cpuUsage();
console.log(JSON.stringify({ init: t1, require: t1 - t0, cpu: (cpu.user + cpu.system) / 1000 }));`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

interface Init {
  init: number;
  require: number;
  cpu: number;
}

function coldInit(node: string, file: string, nodeOptions = ''): Init {
  const inits: number[] = [];
  const requires: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const out = execFileSync(node, ['-e', PROBE, file], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: '/usr/bin:/bin', NODE_OPTIONS: nodeOptions, AWS_REGION: 'us-east-1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      encoding: 'utf8',
    });
    const r = JSON.parse(out.trim().split('\n').pop()!) as Init;
    inits.push(r.init);
    requires.push(r.require);
    cpus.push(r.cpu);
  }
  return { init: median(inits), require: median(requires), cpu: median(cpus) };
}

const kib = (n: number): string => `${(n / 1024).toFixed(0)} KiB`;

async function main(): Promise<void> {
  const node = ensureLambdaNode();
  const nodeVersion = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  const work = mkdtempSync(join(tmpdir(), 'dsgitops-bench-bundle-'));
  try {
    const functions = packageFunctions(join(work, 'package'));
    console.log(`per-function bundles, Node.js ${nodeVersion}, median of ${RUNS} cold starts (load average ${loadavg()[0].toFixed(1)} on ${cpus().length} CPUs)\n`);
    console.log(`${'function'.padEnd(10)} ${'zip bytes'.padStart(10)} ${'unzipped'.padStart(10)} ${'init ms'.padStart(8)} ${'require ms'.padStart(10)} ${'CPU ms'.padStart(7)}`);
    for (const f of functions) {
      const dir = join(work, 'task', f.name);
      unpackReadOnly(f.zip, dir);
      const file = join(dir, 'handlers', `${f.name}.js`);
      const t = coldInit(node, file);
      console.log(`${f.name.padEnd(10)} ${String(f.bytes).padStart(10)} ${kib(statSync(file).size).padStart(10)} ${t.init.toFixed(0).padStart(8)} ${t.require.toFixed(0).padStart(10)} ${t.cpu.toFixed(0).padStart(7)}`);
    }

    // Source maps: the same build as serverless.yml's, with a linked map beside the bundle.
    const maps = join(work, 'maps');
    await build({ entryPoints: [join(repoRoot, 'handlers', 'reconcile.ts')], outfile: join(maps, 'reconcile.js'), bundle: true, minify: true, keepNames: true, sourcemap: 'linked', target: 'node24', platform: 'node', format: 'cjs', logLevel: 'error' });
    execFileSync('zip', ['-q', '-9', join(maps, 'maps.zip'), 'reconcile.js.map'], { cwd: maps });
    const without = coldInit(node, join(maps, 'reconcile.js'));
    const withMaps = coldInit(node, join(maps, 'reconcile.js'), '--enable-source-maps');
    console.log(`\nsource maps (reconcile): the map adds ${statSync(join(maps, 'maps.zip')).size} bytes zipped (${kib(statSync(join(maps, 'reconcile.js.map')).size)} unzipped);`);
    console.log(`init ${without.init.toFixed(0)} ms (CPU ${without.cpu.toFixed(0)} ms) without --enable-source-maps, ${withMaps.init.toFixed(0)} ms (CPU ${withMaps.cpu.toFixed(0)} ms) with it`);
  } finally {
    const unlock = (d: string): void => {
      try {
        execFileSync('chmod', ['-R', 'u+w', d]);
      } catch {
        // nothing left to unlock
      }
    };
    unlock(work);
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
