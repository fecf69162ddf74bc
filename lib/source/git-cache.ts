/**
 * What both git implementations share: the cache directory a warm Lambda (or a second CLI
 * run) reuses, its lock, the token's hygiene and the errors a failed fetch becomes. Whichever
 * implementation fetches, the same inputs give the same tree, commit and errors.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { GitConfig } from '../config';
import { SourceError } from '../errors';
import type { Verification } from './verify-commit';

export interface GitCommit {
  sha: string;
  author: string;
  email: string;
  /** ISO 8601 commit time. */
  time: string;
  subject: string;
}

export interface Checkout {
  /** Directory of the checked-out tree. */
  dir: string;
  commit: GitCommit;
  /** The remote head had not moved: the tree checked out before was used, nothing was fetched. */
  reused?: boolean;
  /** The verdict on the commit (VERIFY_COMMITS), given before its tree was read. */
  verdict?: Verification;
}

/** A head whose commit is not trusted: fetched, its commit object judged, its tree never checked out. */
export interface UntrustedHead {
  untrusted: true;
  commit: GitCommit;
  verdict: Verification;
}

/** What a fetch comes to: the trusted (or unverified) tree, or only the untrusted commit. */
export type Head = Checkout | UntrustedHead;

export function isUntrusted(head: Head): head is UntrustedHead {
  return 'untrusted' in head;
}

/** Asked with the raw commit object of the head before its tree is read (VERIFY_COMMITS). */
export type CommitJudge = (commit: GitCommit, raw: Buffer) => Promise<Verification>;

/** The last tree this process checked out in each cache directory (a warm Lambda's, a long-lived CLI's). */
const checkedOut = new Map<string, Checkout>();

export function remembered(dir: string): Checkout | undefined {
  return checkedOut.get(dir);
}

export function remember(dir: string, tree: Checkout): Checkout {
  checkedOut.set(dir, { dir: tree.dir, commit: tree.commit });
  if (keptCommit(dir, tree.commit.sha) === undefined) {
    try {
      writeFileSync(`${dir}.commit.json`, JSON.stringify(tree.commit));
    } catch {
      // Not kept: the next process asks git.
    }
  }
  return tree;
}

/** The commit as an earlier process recorded it next to the cache directory, if it is `sha`. */
export function keptCommit(dir: string, sha: string): GitCommit | undefined {
  try {
    const c = JSON.parse(readFileSync(`${dir}.commit.json`, 'utf8')) as GitCommit;
    return c.sha === sha && typeof c.subject === 'string' ? c : undefined;
  } catch {
    return undefined;
  }
}

/** The cache directory's origin is already `url` (its .git/config says so; read without running git). */
export function remoteIs(dir: string, url: string): boolean {
  try {
    const config = readFileSync(join(dir, '.git', 'config'), 'utf8');
    return /\[remote "origin"\]/.test(config) && config.split('\n').some((l) => l.trim() === `url = ${url}`);
  } catch {
    return false;
  }
}

/** The token for this fetch (already read from its secret store) and the setting it came from, for hints. */
export interface GitAccess {
  token?: string;
  tokenSetting: string;
}

/** A bare path becomes a file:// URL: git ignores --depth for plain local paths. */
export function normaliseUrl(url: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) || /^[^/]+@[^:]+:/.test(url)) return url;
  return `file://${isAbsolute(url) ? url : resolve(url)}`;
}

/** Removes every form in which the token could appear in text coming back from git. */
export function redact(text: string, token?: string): string {
  if (!token) return text;
  const forms = [token, Buffer.from(`x-access-token:${token}`).toString('base64'), encodeURIComponent(token)];
  let out = text;
  for (const f of forms) out = out.split(f).join('***');
  return out;
}

/** The Authorization header that carries the token to an HTTPS remote (never part of the URL). */
export function authorization(url: string, access: GitAccess): string | undefined {
  if (!access.token || !/^https?:\/\//.test(url)) return undefined;
  return `Basic ${Buffer.from(`x-access-token:${access.token}`).toString('base64')}`;
}

/** The cache directory of one repository: keyed by its URL, so one machine can follow several. */
export function cacheDirFor(config: GitConfig): { url: string; dir: string } {
  const url = normaliseUrl(config.url);
  const dir = join(config.cacheDir, createHash('sha256').update(url).digest('hex').slice(0, 16));
  mkdirSync(config.cacheDir, { recursive: true });
  return { url, dir };
}

const LOCK_STALE_MS = 10 * 60_000;

/** Serialises checkouts of one cache directory across processes on this machine. */
export async function withDirLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${dir}.lock`;
  const deadline = Date.now() + 5 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'owner'), String(process.pid));
      break;
    } catch {
      const st = statSync(lock, { throwIfNoEntry: false });
      if (st && Date.now() - st.mtimeMs > LOCK_STALE_MS) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new SourceError(`git cache ${dir} stayed locked by another run for 5 minutes (${lock})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** The commit the cache directory has checked out (detached, so .git/HEAD holds its sha), read without running git. */
export function checkedOutSha(dir: string): string | undefined {
  try {
    const head = readFileSync(join(dir, '.git', 'HEAD'), 'utf8').trim();
    return /^[0-9a-f]{40}$/.test(head) ? head : undefined;
  } catch {
    return undefined;
  }
}

export function isCommitSha(ref: string): boolean {
  return /^[0-9a-f]{40}$/i.test(ref);
}

/**
 * The commit `ref` names among the refs a remote advertises (name -> sha, with `name^{}` for a
 * tag's peeled commit), by git's own order of precedence for a short name: refs/<ref>, then
 * tags, then branches. A full commit sha names itself. Undefined when the remote does not
 * advertise it.
 */
export function resolveAdvertised(ref: string, advertised: Map<string, string>): { name: string; sha: string } | undefined {
  if (isCommitSha(ref)) return { name: ref.toLowerCase(), sha: ref.toLowerCase() };
  const candidates = ref === 'HEAD' ? ['HEAD'] : [ref.startsWith('refs/') ? ref : `refs/${ref}`, `refs/tags/${ref}`, `refs/heads/${ref}`];
  for (const name of candidates) {
    const sha = advertised.get(`${name}^{}`) ?? advertised.get(name);
    if (sha) return { name, sha };
  }
  return undefined;
}

function explain(message: string, tokenSetting: string): string {
  if (/Authentication failed|could not read Username|401|403/.test(message)) {
    return `${message}\n(hint: check ${tokenSetting}; the token must allow read access to the repository)`;
  }
  if (/couldn't find remote ref|not our ref|no such remote ref/i.test(message)) {
    return `${message}\n(hint: GIT_REF names a branch, tag or commit that the remote does not have)`;
  }
  return message;
}

/** A failed fetch as the one error both implementations raise: the token redacted, a hint for the usual causes. */
/** GIT_TIMEOUT_SECONDS when a configuration does not say. */
export const DEFAULT_GIT_TIMEOUT_SECONDS = 120;

/** A signal that aborts this fetch when GIT_TIMEOUT_SECONDS have passed, and that bound. */
export function fetchBound(config: GitConfig): { signal: AbortSignal; ms: number } {
  const ms = (config.timeoutSeconds ?? DEFAULT_GIT_TIMEOUT_SECONDS) * 1000;
  return { signal: AbortSignal.timeout(ms), ms };
}

/** The fetch was abandoned at its bound (the git process stopped, the HTTP request aborted). */
export function fetchTimedOut(config: GitConfig, access: GitAccess, ms: number): SourceError {
  return new SourceError(`git fetch of ${redact(config.url, access.token)} at ${config.ref}: no answer within ${ms / 1000}s (GIT_TIMEOUT_SECONDS), so it was abandoned; is the git server up and reachable from here?`);
}

export function fetchFailed(config: GitConfig, access: GitAccess, err: unknown): SourceError {
  if (err instanceof SourceError) return err;
  const message = redact((err as Error)?.message ?? String(err), access.token).trim();
  return new SourceError(`git fetch of ${redact(config.url, access.token)} at ${config.ref} failed: ${explain(message, access.tokenSetting)}`);
}
