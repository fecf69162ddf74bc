/**
 * Checkout without a git binary (the Lambda Node.js runtime has none), with isomorphic-git,
 * a pure JavaScript implementation, as Flux's source controller uses a library rather than
 * the git CLI. Same inputs, tree, commit and errors as the git binary (git-cli.ts): the
 * remote's refs are listed first (nothing fetched when the checked-out commit is still the
 * head), then one ref is fetched at depth 1 over HTTP(S), with GIT_TOKEN as an Authorization
 * header. isomorphic-git speaks only HTTP(S); file:// and SSH remotes need the git binary.
 * With a judge (VERIFY_COMMITS), the head's raw commit object is read from what was fetched
 * (isomorphic-git's readObject) and judged before its tree is written: an untrusted head is
 * never checked out, and what its fetch brought is removed again.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import * as git from 'isomorphic-git';
import type { HttpClient } from 'isomorphic-git';
// The client built on the fetch API, which Node.js has: the Node.js client uses url.parse(),
// which Node.js 24 reports as deprecated at every cold start.
import http from 'isomorphic-git/http/web';
import type { GitConfig } from '../config';
import type { CheckoutOptions } from './git';
import { SourceError } from '../errors';
import { authorization, cacheDirFor, checkedOutSha, fetchBound, fetchFailed, fetchTimedOut, GitAccess, GitCommit, Head, isCommitSha, remember, remembered, resolveAdvertised, withDirLock } from './git-cache';

const NO_LOCAL_REF = 'refs/dsgitops/none';

export async function checkoutWithIsomorphicGit(config: GitConfig, access: GitAccess, options: CheckoutOptions = {}): Promise<Head> {
  const { url, dir } = cacheDirFor(config);
  if (!/^https?:\/\//i.test(url)) {
    throw new SourceError(`GIT_URL ${url} cannot be fetched: no git binary is installed here, and without one only https:// (or http://) remotes are supported; serve the repository over HTTPS or deploy the container image, which has git`, { retryable: false });
  }
  const header = authorization(url, access);
  const headers: Record<string, string> = header ? { Authorization: header } : {};
  return withDirLock(dir, async () => {
    // Every HTTP request of this fetch (refs, pack) is aborted when the bound passes.
    const bound = fetchBound(config);
    const bounded: HttpClient = { request: (request) => http.request({ ...request, signal: bound.signal }) };
    try {
      if (!fs.existsSync(join(dir, '.git'))) {
        fs.rmSync(dir, { recursive: true, force: true });
        fs.mkdirSync(dir, { recursive: true });
        await git.init({ fs, dir });
        await git.addRemote({ fs, dir, remote: 'origin', url });
      } else if (!remembered(dir)) {
        await git.setConfig({ fs, dir, path: 'remote.origin.url', value: url });
      }
      const target = isCommitSha(config.ref) ? resolveAdvertised(config.ref, new Map()) : await remoteRef(bounded, url, headers, config.ref);
      if (!target) throw new Error(`couldn't find remote ref ${config.ref}`);
      if (target.sha === checkedOutSha(dir)) {
        const known = remembered(dir);
        const commit = known?.commit.sha === target.sha ? known.commit : await commitOf(dir, target.sha);
        const verdict = options.verify && await options.verify(commit, await commitObject(dir, target.sha));
        if (verdict && !verdict.trusted) return { untrusted: true, commit, verdict };
        if (known?.commit.sha === target.sha) return { ...known, reused: true, verdict };
        // Checked out by another process: make sure the tree is as Git has it.
        await writeTree(dir, target.sha);
        return { ...remember(dir, { dir, commit, reused: true }), verdict };
      }
      const packsBefore = packs(dir);
      // `ref` names no local ref, so the fetch sends no `have` lines (isomorphic-git offers the
      // local `ref` as one) and its pack holds the whole commit: earlier packs are then only dead
      // weight in a Lambda's small /tmp, and are removed.
      await git.fetch({ fs, http: bounded, dir, url, ref: NO_LOCAL_REF, remoteRef: target.name, singleBranch: true, depth: 1, tags: false, headers });
      const commit = await commitOf(dir, target.sha);
      const verdict = options.verify && await options.verify(commit, await commitObject(dir, target.sha));
      if (verdict && !verdict.trusted) {
        // The tree checked out before stays, with the packs it needs; what this fetch brought goes.
        for (const p of packs(dir)) if (!packsBefore.includes(p)) fs.rmSync(join(dir, '.git', 'objects', 'pack', p), { force: true });
        return { untrusted: true, commit, verdict };
      }
      await writeTree(dir, target.sha);
      for (const p of packsBefore) fs.rmSync(join(dir, '.git', 'objects', 'pack', p), { force: true });
      return { ...remember(dir, { dir, commit }), verdict };
    } catch (err) {
      if (bound.signal.aborted) throw fetchTimedOut(config, access, bound.ms);
      throw fetchFailed(config, access, err);
    }
  });
}

/** The advertised refs, as `git ls-remote` prints them (a tag's peeled commit as `name^{}`), resolved as git resolves a short name. */
async function remoteRef(http: HttpClient, url: string, headers: Record<string, string>, ref: string): Promise<{ name: string; sha: string } | undefined> {
  const advertised = new Map<string, string>();
  for (const r of await git.listServerRefs({ http, url, headers, protocolVersion: 1, peelTags: true })) {
    advertised.set(r.ref, r.oid);
    if (r.peeled) advertised.set(`${r.ref}^{}`, r.peeled);
  }
  return resolveAdvertised(ref, advertised);
}

function packs(dir: string): string[] {
  try {
    return fs.readdirSync(join(dir, '.git', 'objects', 'pack'));
  } catch {
    return [];
  }
}

/** Checks `sha` out detached into a clean tree: what `git checkout --force --detach` then `git clean -ffdx` leave. */
async function writeTree(dir: string, sha: string): Promise<void> {
  for (const entry of fs.readdirSync(dir)) if (entry !== '.git') fs.rmSync(join(dir, entry), { recursive: true, force: true });
  fs.rmSync(join(dir, '.git', 'index'), { force: true });
  await git.checkout({ fs, dir, ref: sha, force: true, noUpdateHead: true });
  fs.writeFileSync(join(dir, '.git', 'HEAD'), `${sha}\n`);
}

/** The commit object as git stores it, byte for byte (what its signature covers): `git cat-file commit`. */
async function commitObject(dir: string, sha: string): Promise<Buffer> {
  const read = await git.readObject({ fs, dir, oid: sha, format: 'content' });
  if (read.type !== 'commit') throw new SourceError(`${sha} is a ${read.type}, not a commit`, { retryable: false });
  return Buffer.from(read.object as Uint8Array);
}

/** The commit as `git log -1 --format=%H%x00%an%x00%ae%x00%cI%x00%s` prints it. */
async function commitOf(dir: string, sha: string): Promise<GitCommit> {
  const { commit } = await git.readCommit({ fs, dir, oid: sha });
  return {
    sha,
    author: commit.author.name,
    email: commit.author.email,
    time: isoWithOffset(commit.committer.timestamp, commit.committer.timezoneOffset),
    subject: subjectOf(commit.message),
  };
}

/** git's %cI: the committer's local time with its offset. isomorphic-git's timezoneOffset is in minutes, sign inverted (as Date's). */
export function isoWithOffset(seconds: number, timezoneOffset: number): string {
  const offset = -timezoneOffset;
  const local = new Date((seconds + offset * 60) * 1000).toISOString().slice(0, 19);
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** git's %s: the message's first paragraph, its lines joined by spaces. */
export function subjectOf(message: string): string {
  const lines = message.replace(/^\s*\n/, '').split('\n');
  const end = lines.findIndex((l) => l.trim() === '');
  return (end < 0 ? lines : lines.slice(0, end)).map((l) => l.trim()).join(' ').trim();
}
