/**
 * The functions' deployment artifacts as `serverless package` builds them (one zip per
 * function), for the benchmark and the tests that run them as Lambda does.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../stack/paths';

export interface PackagedFunction {
  name: string;
  zip: string;
  bytes: number;
}

/** Runs `serverless package --package outDir` (offline) and lists the function zips it wrote. */
/**
 * The settings `serverless package` checks before it builds (deploy/stack.js): the bundles do not
 * depend on them (they are the functions' environment in the template), so any valid ones do.
 */
const PACKAGE_SETTINGS = { GIT_URL: 'https://git.example.com/platform/node-agents.git', CLUSTER_NAME: 'bundle', EKS_CLUSTER_NAME: 'bundle', ALLOWED_NAMESPACES: 'bundle', ALLOWED_KINDS: 'DaemonSet', VPC_SUBNET_IDS: 'none' };

export function packageFunctions(outDir: string): PackagedFunction[] {
  const run = spawnSync(join(repoRoot, 'node_modules', '.bin', 'serverless'), ['package', '--package', outDir], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...PACKAGE_SETTINGS },
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`serverless package failed (exit ${run.status}):\n${run.stdout}\n${run.stderr}`);
  return readdirSync(outDir)
    .filter((f) => f.endsWith('.zip'))
    .sort()
    .map((f) => ({ name: f.replace(/\.zip$/, ''), zip: join(outDir, f), bytes: statSync(join(outDir, f)).size }));
}

/** Unpacks a function's zip into dir and makes it read-only, as Lambda's /var/task is. */
export function unpackReadOnly(zip: string, dir: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('unzip', ['-q', '-o', zip, '-d', dir]);
  const lock = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) lock(full);
      else chmodSync(full, 0o444);
    }
    chmodSync(d, 0o555);
  };
  lock(dir);
}
