/**
 * Checkout with the git binary (simple-git), where one is installed: the CLI, the local
 * stack, a container-image deployment. A shallow fetch of one ref into the cache directory;
 * the token travels as an HTTP header (http.extraHeader), never in the remote URL.
 *
 * The remote's head is asked first (`git ls-remote`, no objects transferred): when it is
 * the commit already checked out, nothing is fetched, and a process that checked it out
 * itself reuses the tree as it left it. With a judge (VERIFY_COMMITS), the head's commit object
 * (`git cat-file commit`) is judged after the fetch and before the checkout: an untrusted head
 * is never checked out.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { simpleGit, SimpleGit } from 'simple-git';
import type { GitConfig } from '../config';
import type { CheckoutOptions } from './git';
import { authorization, cacheDirFor, checkedOutSha, fetchBound, fetchFailed, fetchTimedOut, GitAccess, GitCommit, Head, keptCommit, remember, remembered, remoteIs, resolveAdvertised, withDirLock } from './git-cache';

/**
 * The environment git runs with: what it needs to find itself and its libraries (a layer or
 * image may install it outside the system paths), its home and a proxy, and nothing else. It
 * never prompts and never runs a password helper the host may have set.
 */
const GIT_ENV_ALLOWED = /^(PATH|HOME|USER|LANG|LC_ALL|TMPDIR|TZ|HTTPS?_PROXY|https?_proxy|NO_PROXY|no_proxy|SSL_CERT_FILE|SSL_CERT_DIR|LD_LIBRARY_PATH|GIT_EXEC_PATH|GIT_TEMPLATE_DIR)$/;

function gitEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && GIT_ENV_ALLOWED.test(k)) env[k] = v;
  env.GIT_TERMINAL_PROMPT = '0';
  return env;
}

export async function checkoutWithGitBinary(config: GitConfig, access: GitAccess, options: CheckoutOptions = {}): Promise<Head> {
  const { url, dir } = cacheDirFor(config);
  return withDirLock(dir, async () => {
    // Every git process of this fetch is killed when the bound passes (simple-git's abort).
    const bound = fetchBound(config);
    try {
      if (!existsSync(join(dir, '.git'))) {
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        await simpleGit(dir).init().addRemote('origin', url);
      }
      const header = authorization(url, access);
      const git: SimpleGit = simpleGit({
        baseDir: dir,
        config: header ? [`http.extraHeader=Authorization: ${header}`] : [],
        timeout: { block: bound.ms },
        abort: bound.signal,
        allowEnvironment: ['GIT_TERMINAL_PROMPT'],
      }).env(gitEnv());
      if (!remembered(dir) && !remoteIs(dir, url)) await git.remote(['set-url', 'origin', url]);
      const head = await remoteHead(git, config.ref);
      if (head && head === checkedOutSha(dir)) {
        const known = remembered(dir);
        const kept = known?.commit.sha === head ? known.commit : keptCommit(dir, head);
        const commit = kept ?? await commitOf(git, head);
        const verdict = options.verify && await options.verify(commit, await commitObject(git, head));
        if (verdict && !verdict.trusted) return { untrusted: true, commit, verdict };
        if (known?.commit.sha === head) return { ...known, reused: true, verdict };
        // Checked out by another process (an earlier CLI run): make sure the tree is as Git has it, unless the caller does not read it.
        if (kept && options.treeNotNeeded?.({ dir, commit: kept, reused: true })) return { dir, commit: kept, reused: true, verdict };
        await git.raw(['checkout', '--quiet', '--force', '--detach', head]);
        await git.raw(['clean', '-ffdxq']);
        return { ...remember(dir, { dir, commit, reused: true }), verdict };
      }
      await git.fetch(['--depth', '1', '--no-tags', '--force', 'origin', config.ref]);
      const fetched = (await git.raw(['rev-parse', '--verify', 'FETCH_HEAD^{commit}'])).trim();
      const commit = await commitOf(git, fetched);
      const verdict = options.verify && await options.verify(commit, await commitObject(git, fetched));
      if (verdict && !verdict.trusted) return { untrusted: true, commit, verdict };
      await git.raw(['checkout', '--quiet', '--force', '--detach', fetched]);
      await git.raw(['clean', '-ffdxq']);
      return { ...remember(dir, { dir, commit }), verdict };
    } catch (err) {
      if (bound.signal.aborted) throw fetchTimedOut(config, access, bound.ms);
      throw fetchFailed(config, access, err);
    }
  });
}

async function commitOf(git: SimpleGit, rev: string): Promise<GitCommit> {
  const raw = await git.raw(['log', '-1', '--format=%H%x00%an%x00%ae%x00%cI%x00%s', rev, '--']);
  const [sha, author, email, time, subject] = raw.trim().split('\0');
  return { sha, author, email, time, subject };
}

/** The commit object as git stores it, byte for byte (what its signature covers). */
async function commitObject(git: SimpleGit, sha: string): Promise<Buffer> {
  return Buffer.from(await git.binaryCatFile(['commit', sha]) as Uint8Array);
}

/** The commit `ref` names on the remote; undefined when it does not advertise it (the fetch then decides). */
async function remoteHead(git: SimpleGit, ref: string): Promise<string | undefined> {
  const advertised = new Map<string, string>();
  if (!/^[0-9a-f]{40}$/i.test(ref)) {
    for (const line of (await git.raw(['ls-remote', 'origin', ref])).split('\n')) {
      const [sha, name] = line.trim().split('\t');
      if (sha && name) advertised.set(name, sha);
    }
  }
  return resolveAdvertised(ref, advertised)?.sha;
}
