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
import { readOptionalSecret } from '../secrets';
import { Checkout, CommitJudge, GitAccess, Head, isUntrusted, normaliseUrl } from './git-cache';

export type { Checkout, CommitJudge, GitCommit, Head, UntrustedHead } from './git-cache';
export { isUntrusted, normaliseUrl, redact } from './git-cache';

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

export interface CheckoutOptions {
  /**
   * Asked when the remote head is the commit another process checked out here: true when the
   * caller has what it needs from that commit without its tree (a load result kept on disk),
   * so the tree is not restored to what Git has.
   */
  treeNotNeeded?: (tree: Checkout) => boolean;
  /**
   * Judges the head's commit object (read through the implementation that fetched it) before
   * anything of its tree is checked out or read: an untrusted head comes back as its commit only.
   */
  verify?: CommitJudge;
}

/**
 * Fetches `config.ref` at depth 1 and checks it out, detached and clean. Only the
 * implementation in use is loaded: a Lambda function does not start up the other. The token
 * is read (from its secret store, once per process) only for a remote that uses it, so a local
 * or file:// source needs no access to the secret store.
 */
export async function fetchHead(config: GitConfig, implementation = gitImplementation(), options: CheckoutOptions = {}): Promise<Head> {
  const token = /^https?:\/\//i.test(normaliseUrl(config.url)) ? await readOptionalSecret(config.token) : undefined;
  const access: GitAccess = { token, tokenSetting: config.token?.setting ?? 'GIT_TOKEN' };
  if (implementation === 'git-binary') return (await import('./git-cli')).checkoutWithGitBinary(config, access, options);
  return (await import('./git-js')).checkoutWithIsomorphicGit(config, access, options);
}

/** `fetchHead` without a verdict: the tree at the head, whoever signed it. */
export async function checkout(config: GitConfig, implementation = gitImplementation(), options: Omit<CheckoutOptions, 'verify'> = {}): Promise<Checkout> {
  const head = await fetchHead(config, implementation, options);
  if (isUntrusted(head)) throw new Error('unreachable: a checkout without a verdict is never untrusted');
  return head;
}
