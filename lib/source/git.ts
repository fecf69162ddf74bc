/**
 * Git checkout with simple-git: a shallow fetch of one ref into a cache directory that a
 * warm Lambda (or a second CLI run) reuses. HTTPS remotes authenticate with GIT_TOKEN,
 * sent as an HTTP header and never written to the remote URL, a log, an error or a report.
 *
 * The remote's head is asked first (`git ls-remote`, no objects transferred): when it is
 * the commit already checked out, nothing is fetched, and a process that checked it out
 * itself reuses the tree as it left it.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { simpleGit, SimpleGit } from 'simple-git';
import type { GitConfig } from '../config';
import { SourceError } from '../errors';
import { readOptionalSecret } from '../secrets';

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
}

/** The last tree this process checked out in each cache directory (a warm Lambda's, a long-lived CLI's). */
const checkedOut = new Map<string, Checkout>();

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

function authConfig(url: string, token: string | undefined): string[] {
  if (!token || !/^https?:\/\//.test(url)) return [];
  const basic = Buffer.from(`x-access-token:${token}`).toString('base64');
  return [`http.extraHeader=Authorization: Basic ${basic}`];
}

/**
 * The environment git runs with: what it needs to find itself, its home and a proxy, and
 * nothing else. It never prompts and never runs a password helper the host may have set.
 */
const GIT_ENV_ALLOWED = /^(PATH|HOME|USER|LANG|LC_ALL|TMPDIR|TZ|HTTPS?_PROXY|https?_proxy|NO_PROXY|no_proxy|SSL_CERT_FILE|SSL_CERT_DIR)$/;

function gitEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && GIT_ENV_ALLOWED.test(k)) env[k] = v;
  env.GIT_TERMINAL_PROMPT = '0';
  return env;
}

const LOCK_STALE_MS = 10 * 60_000;

/** Serialises checkouts of one cache directory across processes on this machine. */
async function withDirLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
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

function describeRef(config: GitConfig, token: string | undefined): string {
  return `${redact(config.url, token)} at ${config.ref}`;
}

/**
 * Fetches `config.ref` at depth 1 and checks it out, detached and clean. The cache
 * directory is keyed by the URL, so one machine can follow several repositories.
 */
export interface CheckoutOptions {
  /**
   * Asked when the remote head is the commit another process checked out here: true when the
   * caller has what it needs from that commit without its tree (a load result kept on disk),
   * so the tree is not restored to what Git has.
   */
  treeNotNeeded?: (tree: Checkout) => boolean;
}

export async function checkout(config: GitConfig, options: CheckoutOptions = {}): Promise<Checkout> {
  const url = normaliseUrl(config.url);
  // Read only for a remote that uses it, so a local or file:// source needs no access to the secret store.
  const token = /^https?:\/\//.test(url) ? await readOptionalSecret(config.token) : undefined;
  const dir = join(config.cacheDir, createHash('sha256').update(url).digest('hex').slice(0, 16));
  mkdirSync(config.cacheDir, { recursive: true });
  return withDirLock(dir, async () => {
    try {
      if (!existsSync(join(dir, '.git'))) {
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        await simpleGit(dir).init().addRemote('origin', url);
      }
      const git: SimpleGit = simpleGit({
        baseDir: dir,
        config: authConfig(url, token),
        timeout: { block: 120_000 },
        allowEnvironment: ['GIT_TERMINAL_PROMPT'],
      }).env(gitEnv());
      if (!checkedOut.has(dir) && !remoteIs(dir, url)) await git.remote(['set-url', 'origin', url]);
      const head = await remoteHead(git, config.ref);
      if (head && head === checkedOutSha(dir)) {
        const known = checkedOut.get(dir);
        if (known?.commit.sha === head) return { ...known, reused: true };
        // Checked out by another process (an earlier CLI run): make sure the tree is as Git has it, unless the caller does not read it.
        const kept = keptCommit(dir, head);
        if (kept && options.treeNotNeeded?.({ dir, commit: kept, reused: true })) return { dir, commit: kept, reused: true };
        await git.raw(['checkout', '--quiet', '--force', '--detach', head]);
        await git.raw(['clean', '-ffdxq']);
        return remember(dir, { dir, commit: kept ?? await headCommit(git), reused: true });
      }
      await git.fetch(['--depth', '1', '--no-tags', '--force', 'origin', config.ref]);
      await git.raw(['checkout', '--quiet', '--force', '--detach', 'FETCH_HEAD']);
      await git.raw(['clean', '-ffdxq']);
      return remember(dir, { dir, commit: await headCommit(git) });
    } catch (err) {
      const message = redact((err as Error).message ?? String(err), token).trim();
      throw new SourceError(`git fetch of ${describeRef(config, token)} failed: ${explain(message, config.token?.setting ?? 'GIT_TOKEN')}`);
    }
  });
}

function remember(dir: string, tree: Checkout): Checkout {
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
function keptCommit(dir: string, sha: string): GitCommit | undefined {
  try {
    const c = JSON.parse(readFileSync(`${dir}.commit.json`, 'utf8')) as GitCommit;
    return c.sha === sha && typeof c.subject === 'string' ? c : undefined;
  } catch {
    return undefined;
  }
}

/** The cache directory's origin is already `url` (its .git/config says so; read without running git). */
function remoteIs(dir: string, url: string): boolean {
  try {
    const config = readFileSync(join(dir, '.git', 'config'), 'utf8');
    return /\[remote "origin"\]/.test(config) && config.split('\n').some((l) => l.trim() === `url = ${url}`);
  } catch {
    return false;
  }
}

async function headCommit(git: SimpleGit): Promise<GitCommit> {
  const raw = await git.raw(['log', '-1', '--format=%H%x00%an%x00%ae%x00%cI%x00%s']);
  const [sha, author, email, time, subject] = raw.trim().split('\0');
  return { sha, author, email, time, subject };
}

/** The commit the cache directory has checked out (detached, so .git/HEAD holds its sha), read without running git. */
function checkedOutSha(dir: string): string | undefined {
  try {
    const head = readFileSync(join(dir, '.git', 'HEAD'), 'utf8').trim();
    return /^[0-9a-f]{40}$/.test(head) ? head : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The commit `ref` names on the remote, by git's own order of precedence for a short name
 * (refs/<ref>, then tags, then branches; a tag's peeled commit). A full commit sha names
 * itself. Undefined when the remote does not advertise it: the fetch then decides.
 */
async function remoteHead(git: SimpleGit, ref: string): Promise<string | undefined> {
  if (/^[0-9a-f]{40}$/i.test(ref)) return ref.toLowerCase();
  const advertised = new Map<string, string>();
  for (const line of (await git.raw(['ls-remote', 'origin', ref])).split('\n')) {
    const [sha, name] = line.trim().split('\t');
    if (sha && name) advertised.set(name, sha);
  }
  const candidates = ref === 'HEAD' ? ['HEAD'] : [ref.startsWith('refs/') ? ref : `refs/${ref}`, `refs/tags/${ref}`, `refs/heads/${ref}`];
  for (const name of candidates) {
    const sha = advertised.get(`${name}^{}`) ?? advertised.get(name);
    if (sha) return sha;
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
