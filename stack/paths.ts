import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** The repository root (this file lives in <root>/stack). */
export const repoRoot = resolve(__dirname, '..');

/** Runtime state of the stack: pids, logs, data, certificates, the env file. Never committed. */
export const stackDir = process.env.STACK_DIR ? resolve(process.env.STACK_DIR) : join(repoRoot, '.stack');

/** Built binaries live outside the repository so fresh clones on this machine reuse them. */
export const cacheDir = join(
  process.env.XDG_CACHE_HOME ? resolve(process.env.XDG_CACHE_HOME) : join(homedir(), '.cache'),
  'daemonset-gitops',
);

export const paths = {
  pids: join(stackDir, 'pids'),
  logs: join(stackDir, 'logs'),
  data: join(stackDir, 'data'),
  pki: join(stackDir, 'pki'),
  config: join(stackDir, 'config'),
  env: join(stackDir, 'env'),
  gitRoot: join(stackDir, 'git'),
};
