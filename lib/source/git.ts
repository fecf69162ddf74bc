/**
 * Git checkout: a shallow fetch of one ref into a cache directory that a warm Lambda (or a
 * second CLI run) reuses. HTTPS remotes authenticate with GIT_TOKEN, sent as an HTTP header
 * and never written to the remote URL, a log, an error or a report.
 *
 * Two implementations behind this one function, with the same inputs, tree, commit and
 * errors: the git binary (simple-git) where one is installed, and isomorphic-git where none
 * is (the Lambda Node.js runtime).
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { GitConfig } from '../config';
import type { Checkout } from './git-cache';

export type { Checkout, GitCommit } from './git-cache';
export { normaliseUrl, redact } from './git-cache';

export type GitImplementation = 'git-binary' | 'isomorphic-git';

/** The git binary on PATH, if there is one. */
export function findGitBinary(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, 'git'), constants.X_OK);
      return join(dir, 'git');
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

let chosen: { path: string; implementation: GitImplementation } | undefined;

/** Which implementation fetches here: the git binary when PATH has one. */
export function gitImplementation(): GitImplementation {
  const path = process.env.PATH ?? '';
  if (chosen?.path !== path) chosen = { path, implementation: findGitBinary(path) ? 'git-binary' : 'isomorphic-git' };
  return chosen.implementation;
}

/**
 * Fetches `config.ref` at depth 1 and checks it out, detached and clean. Only the
 * implementation in use is loaded: a Lambda function does not start up the other.
 */
export async function checkout(config: GitConfig, implementation = gitImplementation()): Promise<Checkout> {
  if (implementation === 'git-binary') return (await import('./git-cli')).checkoutWithGitBinary(config);
  return (await import('./git-js')).checkoutWithIsomorphicGit(config);
}
