/**
 * The contract of lib/source/git.ts, held by both implementations (the git binary and
 * isomorphic-git) against the local stack's HTTP git server with its token. The oracle is
 * git itself on the served bare repository: `git ls-tree` and `git cat-file` say what the
 * checked-out tree must hold, `git log` what the commit is.
 */
import type { SecretSource } from '../../lib/secrets';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { GitConfig } from '../../lib/config';
import { SourceError } from '../../lib/errors';
import { Checkout, checkout, CommitJudge, fetchHead, GitImplementation, isUntrusted } from '../../lib/source/git';
import { verifyCommitObject } from '../../lib/source/verify-commit';
import { loadCheckout } from '../../lib/source/load';
import { stackEnv } from '../support/cluster';
import { git } from '../support/git';
import { dsYaml } from '../support/manifests';

jest.setTimeout(300_000);

const env = stackEnv();

/** A repository served by the stack's git server, with a working clone that commits and pushes to it. */
class ServedRepo {
  readonly name = `contract-${randomBytes(4).toString('hex')}.git`;
  readonly bare = join(env.GIT_HTTP_ROOT, this.name);
  readonly work = mkdtempSync(join(tmpdir(), 'dsgitops-contract-'));
  readonly url = `${env.GIT_HTTP_BASE}/${this.name}`;

  constructor() {
    git(env.GIT_HTTP_ROOT, ['init', '--quiet', '--bare', '--initial-branch=main', this.bare]);
    git(this.work, ['init', '--quiet', '--initial-branch=main']);
    git(this.work, ['remote', 'add', 'origin', this.bare]);
  }

  write(path: string, content: string | Buffer): this {
    const file = join(this.work, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
    return this;
  }

  commit(message: string, options: { force?: boolean; amend?: boolean; date?: string } = {}): string {
    git(this.work, ['add', '-A']);
    git(this.work, ['commit', '--quiet', '--allow-empty', ...(options.amend ? ['--amend'] : []), '-m', message], options.date ? { GIT_COMMITTER_DATE: options.date } : {});
    git(this.work, ['push', '--quiet', ...(options.force ? ['--force'] : []), 'origin', 'HEAD:main']);
    return git(this.work, ['rev-parse', 'HEAD']);
  }

  cleanup(): void {
    rmSync(this.bare, { recursive: true, force: true });
    rmSync(this.work, { recursive: true, force: true });
  }
}

/** What git says the tree of `sha` holds: path -> mode and content (a link's target). */
function treeOf(bare: string, sha: string): Map<string, { mode: string; content: string }> {
  const tree = new Map<string, { mode: string; content: string }>();
  for (const line of git(bare, ['ls-tree', '-r', '--full-tree', sha]).split('\n').filter(Boolean)) {
    const [meta, path] = line.split('\t');
    const [mode, , oid] = meta.split(' ');
    tree.set(path, { mode, content: execFileSync('git', ['cat-file', 'blob', oid], { cwd: bare }).toString('base64') });
  }
  return tree;
}

/** What the checkout directory holds, in the same form (mode as git records it). */
function treeOnDisk(dir: string): Map<string, { mode: string; content: string }> {
  const tree = new Map<string, { mode: string; content: string }>();
  const walk = (d: string): void => {
    for (const entry of readdirSync(d)) {
      if (d === dir && entry === '.git') continue;
      const full = join(d, entry);
      const st = lstatSync(full);
      if (st.isDirectory()) walk(full);
      else if (st.isSymbolicLink()) tree.set(relative(dir, full), { mode: '120000', content: Buffer.from(readlinkSync(full)).toString('base64') });
      else tree.set(relative(dir, full), { mode: st.mode & 0o100 ? '100755' : '100644', content: readFileSync(full).toString('base64') });
    }
  };
  walk(dir);
  return tree;
}

function commitOf(bare: string, sha: string): Checkout['commit'] {
  const [s, author, email, time, subject] = git(bare, ['log', '-1', '--format=%H%x00%an%x00%ae%x00%cI%x00%s', sha]).split('\0');
  return { sha: s, author, email, time, subject };
}

function expectCheckoutOf(tree: Checkout, repo: ServedRepo, sha: string): void {
  expect(tree.commit).toEqual(commitOf(repo.bare, sha));
  expect(Object.fromEntries(treeOnDisk(tree.dir))).toEqual(Object.fromEntries(treeOf(repo.bare, sha)));
}

async function failureOf(p: Promise<unknown>): Promise<SourceError> {
  try {
    await p;
  } catch (err) {
    return err as SourceError;
  }
  throw new Error('expected the checkout to fail');
}

const implementations: GitImplementation[] = ['git-binary', 'isomorphic-git'];
const caches: string[] = [];
const repos: ServedRepo[] = [];

function served(): ServedRepo {
  const r = new ServedRepo();
  repos.push(r);
  return r;
}

afterAll(() => {
  for (const r of repos) r.cleanup();
  for (const c of caches) rmSync(c, { recursive: true, force: true });
});

/** A token given as a plain setting (GIT_TOKEN), as the local stack and the CLI give it. */
function given(value: string): SecretSource {
  return { setting: 'GIT_TOKEN', value };
}

describe.each(implementations)('git checkout with %s', (implementation) => {
  let cacheDir: string;
  const configFor = (repo: ServedRepo, overrides: Partial<GitConfig> = {}): GitConfig => ({ url: repo.url, ref: 'main', path: '.', token: given(env.GIT_HTTP_TOKEN), cacheDir, ...overrides });

  beforeEach(() => {
    cacheDir = mkdtempSync(join(tmpdir(), `dsgitops-cache-${implementation}-`));
    caches.push(cacheDir);
  });

  it('checks out a branch: the commit and the tree as git has them, links and executable bits included', async () => {
    const repo = served();
    repo.write('manifests/a.yaml', dsYaml({ name: 'a', namespace: 'x' })).write('README.md', '# readme\n').write('bin/run.sh', '#!/bin/sh\necho hi\n');
    chmodSync(join(repo.work, 'bin/run.sh'), 0o755);
    symlinkSync('manifests/a.yaml', join(repo.work, 'link.yaml'));
    const sha = repo.commit('first line of the subject\ncontinued\n\nbody text', { date: '2026-03-04T05:06:07-03:30' });
    const tree = await checkout(configFor(repo), implementation);
    expectCheckoutOf(tree, repo, sha);
    expect(tree.commit).toMatchObject({ subject: 'first line of the subject continued', time: '2026-03-04T05:06:07-03:30' });
  });

  it('checks out an annotated tag and a lightweight tag as the commits they name', async () => {
    const repo = served();
    const v1 = repo.write('v.txt', 'one\n').commit('one');
    git(repo.work, ['tag', '-a', 'v1', '-m', 'release one']);
    const v2 = repo.write('v.txt', 'two\n').commit('two');
    git(repo.work, ['tag', 'light']);
    repo.write('v.txt', 'three\n').commit('three');
    git(repo.work, ['push', '--quiet', 'origin', '--tags']);
    expectCheckoutOf(await checkout(configFor(repo, { ref: 'v1' }), implementation), repo, v1);
    expectCheckoutOf(await checkout(configFor(repo, { ref: 'light' }), implementation), repo, v2);
  });

  it('checks out a commit sha that no branch points at', async () => {
    const repo = served();
    const old = repo.write('f.txt', 'old\n').write('gone.txt', 'x\n').commit('old');
    repo.write('f.txt', 'new\n').commit('new');
    rmSync(join(repo.work, 'gone.txt'));
    repo.commit('remove gone.txt');
    expectCheckoutOf(await checkout(configFor(repo, { ref: old }), implementation), repo, old);
  });

  it('loads only the manifests under GIT_PATH', async () => {
    const repo = served();
    repo.write('clusters/prod/a.yaml', dsYaml({ name: 'a', namespace: 'x' })).write('clusters/dev/b.yaml', dsYaml({ name: 'b', namespace: 'x' }));
    repo.commit('two clusters');
    const tree = await checkout(configFor(repo, { path: 'clusters/prod' }), implementation);
    const loaded = await loadCheckout(tree, 'clusters/prod', { allowedNamespaces: '*' }, 1 << 20);
    expect(loaded.files).toEqual(['clusters/prod/a.yaml']);
    expect(loaded.problems).toEqual([]);
    expect(loaded.desired.map((d) => d.name)).toEqual(['a']);
  });

  it('follows a force-pushed branch to its new history, leaving no file of the old one', async () => {
    const repo = served();
    repo.write('old.txt', 'old\n').commit('before the force push');
    const config = configFor(repo);
    await checkout(config, implementation);
    rmSync(join(repo.work, 'old.txt'));
    const rewritten = repo.write('new.txt', 'new\n').commit('rewritten', { amend: true, force: true });
    const tree = await checkout(config, implementation);
    expect(tree.reused).toBeFalsy();
    expectCheckoutOf(tree, repo, rewritten);
  });

  it('follows HEAD, the default branch of the remote, from one commit to the next in the same cache', async () => {
    const repo = served();
    const first = repo.write('f.txt', 'one\n').write('keep.txt', 'kept\n').commit('one');
    const config = configFor(repo, { ref: 'HEAD' });
    expectCheckoutOf(await checkout(config, implementation), repo, first);
    const second = repo.write('f.txt', 'two\n').commit('two');
    expectCheckoutOf(await checkout(config, implementation), repo, second);
    const third = repo.write('f.txt', 'three\n').commit('three');
    expectCheckoutOf(await checkout(config, implementation), repo, third);
  });

  it('fails with a wrong token, naming GIT_TOKEN and showing no form of the token', async () => {
    const repo = served();
    repo.write('f.txt', 'x\n').commit('x');
    const wrong = 'wrong-token-5d1c2e';
    const err = await failureOf(checkout(configFor(repo, { token: given(wrong) }), implementation));
    expect(err).toBeInstanceOf(SourceError);
    expect(err.reason).toBe('SourceUnavailable');
    expect(err.message).toMatch(/^git fetch of http:\/\/127\.0\.0\.1:\d+\/contract-[0-9a-f]+\.git at main failed: /);
    expect(err.message).toMatch(/hint: check GIT_TOKEN/);
    const text = `${err.message} ${err.stack} ${JSON.stringify(err)}`;
    for (const form of [wrong, Buffer.from(`x-access-token:${wrong}`).toString('base64'), env.GIT_HTTP_TOKEN]) expect(text).not.toContain(form);
  });

  it('fails on a ref the remote does not have, and on an empty repository, naming GIT_REF', async () => {
    const repo = served();
    repo.write('f.txt', 'x\n').commit('x');
    const unknown = await failureOf(checkout(configFor(repo, { ref: 'no-such-branch' }), implementation));
    expect(unknown).toBeInstanceOf(SourceError);
    expect(unknown.message).toMatch(/at no-such-branch failed: .*couldn't find remote ref no-such-branch/s);
    expect(unknown.message).toMatch(/hint: GIT_REF names a branch, tag or commit that the remote does not have/);
    const empty = served();
    const none = await failureOf(checkout(configFor(empty), implementation));
    expect(none).toBeInstanceOf(SourceError);
    expect(none.message).toMatch(/couldn't find remote ref main[\s\S]*hint: GIT_REF/);
  });

  it('judges the head from its commit object as git stores it, and checks out nothing of a head it does not trust', async () => {
    const keys = mkdtempSync(join(tmpdir(), 'dsgitops-contract-keys-'));
    caches.push(keys);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'alice@example.com', '-f', join(keys, 'alice')]);
    const trusted = { ssh: readFileSync(join(keys, 'alice.pub'), 'utf8') };
    const judged: { sha: string; raw: Buffer }[] = [];
    const verify: CommitJudge = async (commit, raw) => {
      judged.push({ sha: commit.sha, raw });
      return verifyCommitObject(raw, trusted, new Date(), commit.sha);
    };
    const repo = served();
    repo.write('a.yaml', dsYaml({ name: 'a', namespace: 'x' }));
    git(repo.work, ['add', '-A']);
    // A message beyond ASCII: the signature covers bytes, not text.
    git(repo.work, ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${join(keys, 'alice.pub')}`, 'commit', '--quiet', '-S', '-m', 'agent été ✓']);
    git(repo.work, ['push', '--quiet', 'origin', 'HEAD:main']);
    const signed = git(repo.work, ['rev-parse', 'HEAD']);
    const config = configFor(repo);

    const first = await fetchHead(config, implementation, { verify });
    expect(isUntrusted(first)).toBe(false);
    expect((first as Checkout).verdict).toMatchObject({ trusted: true, format: 'ssh' });
    expectCheckoutOf(first as Checkout, repo, signed);
    // What the judge got is the object git stores, byte for byte.
    expect(judged.map((j) => j.sha)).toEqual([signed]);
    expect(judged[0].raw.equals(execFileSync('git', ['cat-file', 'commit', signed], { cwd: repo.bare }))).toBe(true);

    const unsigned = repo.write('b.yaml', dsYaml({ name: 'b', namespace: 'x' })).commit('unsigned');
    const refused = await fetchHead(config, implementation, { verify });
    expect(refused).toEqual({ untrusted: true, commit: commitOf(repo.bare, unsigned), verdict: { trusted: false, problem: 'the commit is not signed' } });
    // The trusted tree stays checked out; nothing of the untrusted one reached the disk.
    expectCheckoutOf({ dir: (first as Checkout).dir, commit: commitOf(repo.bare, signed) }, repo, signed);
    expect(await fetchHead(config, implementation, { verify })).toMatchObject({ untrusted: true });

    // Trusted again (the head signed on top): checked out, from what the cache still holds.
    git(repo.work, ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${join(keys, 'alice.pub')}`, 'commit', '--quiet', '--allow-empty', '-S', '-m', 'sign off b']);
    git(repo.work, ['push', '--quiet', 'origin', 'HEAD:main']);
    const signedOff = git(repo.work, ['rev-parse', 'HEAD']);
    const again = await fetchHead(config, implementation, { verify });
    expectCheckoutOf(again as Checkout, repo, signedOff);
  });

  it('reuses the warm checkout while the head stays, and fetches again once it moves', async () => {
    const repo = served();
    const first = repo.write('f.txt', 'one\n').commit('one');
    const config = configFor(repo);
    const cold = await checkout(config, implementation);
    expect(cold.reused).toBeFalsy();
    const warm = await checkout(config, implementation);
    expect(warm).toMatchObject({ dir: cold.dir, reused: true, commit: cold.commit });
    expectCheckoutOf(warm, repo, first);
    const second = repo.write('f.txt', 'two\n').commit('two');
    const moved = await checkout(config, implementation);
    expect(moved.reused).toBeFalsy();
    expectCheckoutOf(moved, repo, second);
    // A cache directory the other implementation checked out is reused as well.
    const other = implementations.find((i) => i !== implementation)!;
    const otherCache = mkdtempSync(join(tmpdir(), `dsgitops-cache-${other}-`));
    caches.push(otherCache);
    await checkout({ ...config, cacheDir: otherCache }, other);
    const adopted = await checkout({ ...config, cacheDir: otherCache }, implementation);
    expect(adopted.reused).toBe(true);
    expectCheckoutOf(adopted, repo, second);
  });
});

describe('a 50 MB repository', () => {
  it('is checked out by both implementations with the same tree (time and memory printed)', async () => {
    const repo = served();
    for (let i = 0; i < 50; i++) repo.write(`blobs/${String(i).padStart(2, '0')}.bin`, randomBytes(1 << 20));
    repo.write('manifests/a.yaml', dsYaml({ name: 'a', namespace: 'x' }));
    const sha = repo.commit('fifty megabytes');
    const lines: string[] = [];
    for (const implementation of implementations) {
      const cacheDir = mkdtempSync(join(tmpdir(), `dsgitops-cache-50mb-${implementation}-`));
      caches.push(cacheDir);
      const rssBefore = process.memoryUsage().rss;
      let peak = rssBefore;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
      const started = process.hrtime.bigint();
      const tree = await checkout({ url: repo.url, ref: 'main', path: '.', token: given(env.GIT_HTTP_TOKEN), cacheDir }, implementation);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      clearInterval(sampler);
      peak = Math.max(peak, process.memoryUsage().rss);
      expect(tree.commit.sha).toBe(sha);
      expect(treeOnDisk(tree.dir).size).toBe(51);
      expect(readFileSync(join(tree.dir, 'blobs/49.bin'))).toEqual(readFileSync(join(repo.work, 'blobs/49.bin')));
      lines.push(`${implementation}: ${(ms / 1000).toFixed(2)} s, Node RSS +${((peak - rssBefore) / 2 ** 20).toFixed(0)} MiB (peak ${(peak / 2 ** 20).toFixed(0)} MiB)`);
    }
    process.stderr.write(`50 MB repository checkout:\n  ${lines.join('\n  ')}\n  (the git binary's own memory is in its child processes, not counted)\n`);
  });
});
