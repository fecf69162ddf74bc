/**
 * VERIFY_COMMITS against the real stack, with commits signed by real keys: GnuPG (OpenPGP)
 * and ssh-keygen (SSH signatures, through git's gpg.format=ssh). A trusted signature is
 * applied; an unsigned commit, an unknown key, a tampered commit, a revoked and an expired
 * key, a key revoked as superseded and an expired signing subkey (signatures dated while they
 * were valid) are refused with the commit, the signer and the fix in the report and in an
 * Event, and nothing of the refused commit's tree is checked out or read; a rollback by
 * invoke still works, and says it was not checked.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheDirFor } from '../../lib/source/git-cache';
import { reconcile } from '../../lib/reconcile';
import { rollback } from '../../lib/rollback';
import { adminClients, createNamespace, deleteNamespace, waitFor } from '../support/cluster';
import { git, TestRepo } from '../support/git';
import { dsYaml } from '../support/manifests';
import { deleteStorePrefix, stackConfig, stackDeps } from '../support/reconciler';

jest.setTimeout(300_000);

const { core, apps } = adminClients();
const home = mkdtempSync(join(tmpdir(), 'dsgitops-keys-'));
const GNUPGHOME = join(home, 'gnupg');
mkdirSync(GNUPGHOME, { mode: 0o700 });

function gpg(args: string[], input?: string): string {
  return execFileSync('gpg', ['--batch', '--yes', '--passphrase', '', '--pinentry-mode', 'loopback', ...args], { env: { ...process.env, GNUPGHOME }, input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** A new OpenPGP signing key; returns its fingerprint. */
function gpgKey(uid: string, expire = '1y'): string {
  gpg(['--quick-gen-key', uid, 'ed25519', 'sign', expire]);
  return gpg(['--list-keys', '--with-colons', uid]).split('\n').find((l) => l.startsWith('fpr:'))!.split(':')[9];
}

function sshKey(name: string): string {
  const file = join(home, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@example.com`, '-f', file]);
  return `${file}.pub`;
}

let ns: string;
let repo: TestRepo;

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

function writeAgent(image: string): void {
  repo.write('agent.yaml', dsYaml({ name: 'agent', namespace: ns, image }));
}

/** GnuPG as git runs it, with the clock set back to `time` (a signer backdating a signature). */
function gpgAt(time: string): string {
  const program = join(home, `gpg-at-${time}`);
  writeFileSync(program, `#!/bin/sh\nexec gpg --faked-system-time ${time} "$@"\n`);
  chmodSync(program, 0o755);
  return program;
}

/** Commits the work tree, signed as `sign` says, and pushes it to main (forced: a test may move main anywhere). */
function commit(message: string, sign: { gpg?: string; ssh?: string; gpgProgram?: string } = {}): string {
  const program = sign.gpgProgram ? ['-c', `gpg.program=${sign.gpgProgram}`] : [];
  const signing = sign.gpg ? [...program, '-c', `user.signingkey=${sign.gpg}`, 'commit', '-S'] : sign.ssh ? ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${sign.ssh}`, 'commit', '-S'] : ['commit'];
  git(repo.work, ['add', '-A']);
  git(repo.work, [...signing, '--quiet', '--allow-empty', '-m', message], { GNUPGHOME });
  git(repo.work, ['push', '--quiet', '--force', 'origin', 'HEAD:main']);
  return git(repo.work, ['rev-parse', 'HEAD']);
}

async function imageOf(): Promise<string | undefined> {
  return (await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns })).spec?.template.spec?.containers[0].image;
}

let alice: string;
let mallory: string;
let dave: string;
let carol: string;
let bobSsh: string;
let eveSsh: string;
let carolCommit: string;
let daveCommit: string;
let carolExpires: number;
let rita: string;
let ritaCommit: string;
let sam: string;
let samCommit: string;

beforeAll(async () => {
  ns = await createNamespace(core, 'trust');
  repo = new TestRepo();
  alice = gpgKey('Alice <alice@example.com>');
  mallory = gpgKey('Mallory <mallory@example.com>');
  dave = gpgKey('Dave <dave@example.com>');
  carol = gpgKey('Carol <carol@example.com>', 'seconds=20');
  // When GnuPG says the key expires (field 7 of the pub record, seconds since the epoch).
  carolExpires = Number(gpg(['--list-keys', '--with-colons', carol]).split('\n').find((l) => l.startsWith('pub:'))!.split(':')[6]) * 1000;
  // Rita's key was made in 2024; her signature is dated then too, long before the revocation below.
  gpg(['--faked-system-time', '20240101T000000', '--quick-gen-key', 'Rita <rita@example.com>', 'ed25519', 'sign', 'never']);
  rita = gpg(['--list-keys', '--with-colons', 'rita@example.com']).split('\n').find((l) => l.startsWith('fpr:'))!.split(':')[9];
  // Sam's primary key only certifies and never expires; his signing subkey was made, and expired, in 2024.
  gpg(['--faked-system-time', '20240101T000000', '--quick-gen-key', 'Sam <sam@example.com>', 'ed25519', 'cert', 'never']);
  sam = gpg(['--list-keys', '--with-colons', 'sam@example.com']).split('\n').find((l) => l.startsWith('fpr:'))!.split(':')[9];
  gpg(['--faked-system-time', '20240101T000100', '--quick-add-key', sam, 'ed25519', 'sign', '1d']);
  bobSsh = sshKey('bob');
  eveSsh = sshKey('eve');
  writeAgent('registry.local/agent:0.1');
  commit('base');
  // Signed now, while the keys are good; pushed later, after Dave's key is revoked and Carol's expired.
  writeAgent('registry.local/agent:6.0');
  daveCommit = commit('agent 6.0, by a key revoked since', { gpg: dave });
  writeAgent('registry.local/agent:7.0');
  carolCommit = commit('agent 7.0, by a key that expired since', { gpg: carol });
  writeAgent('registry.local/agent:8.0');
  ritaCommit = commit('agent 8.0, by a key revoked as superseded since', { gpg: rita, gpgProgram: gpgAt('20240101T000500') });
  writeAgent('registry.local/agent:9.0');
  samCommit = commit('agent 9.0, by a signing subkey that expired, signature dated while it was valid', { gpg: sam, gpgProgram: gpgAt('20240101T000500') });
  // git itself found Sam's signature good when it was made (its clock set back as well).
  git(repo.work, ['-c', `gpg.program=${gpgAt('20240101T000600')}`, 'verify-commit', samCommit], { GNUPGHOME });
  // Dave's key is revoked with the certificate GnuPG made with it (armor prefixed with ':' against accidental import).
  const rev = readFileSync(join(GNUPGHOME, 'openpgp-revocs.d', readdirSync(join(GNUPGHOME, 'openpgp-revocs.d')).find((f) => f.startsWith(dave))!), 'utf8');
  gpg(['--import'], rev.replace(/^:-----BEGIN/m, '-----BEGIN'));
  // Rita's key is revoked as "superseded" (reason 1), after she signed: a soft revocation in OpenPGP's terms.
  execFileSync('gpg', ['--batch', '--yes', '--command-fd', '0', '--status-fd', '2', '--passphrase', '', '--pinentry-mode', 'loopback', '--edit-key', rita], {
    env: { ...process.env, GNUPGHOME }, input: 'revkey\ny\n2\nreplaced by a new key\n\ny\nsave\n', stdio: ['pipe', 'pipe', 'pipe'],
  });
  expect(gpg(['--list-packets'], gpg(['--armor', '--export', rita]))).toMatch(/revocation reason 0x01/);
});

afterAll(async () => {
  await deleteStorePrefix(config());
  await deleteNamespace(core, ns);
  repo?.cleanup();
  rmSync(home, { recursive: true, force: true });
});

function config() {
  return stackConfig({
    GIT_URL: repo.url,
    ALLOWED_NAMESPACES: ns,
    VERIFY_COMMITS: 'true',
    TRUSTED_GPG_KEYS: gpg(['--armor', '--export', alice, dave, carol, rita, sam]),
    TRUSTED_SSH_KEYS: readFileSync(bobSsh, 'utf8'),
    CLUSTER_NAME: `trust-${ns}`,
  });
}

async function refusedEvents(): Promise<string[]> {
  const list = await core.listNamespacedEvent({ namespace: ns });
  return list.items.filter((e) => e.reason === 'UntrustedCommit').map((e) => e.message ?? '');
}

describe('VERIFY_COMMITS', () => {
  it('applies commits signed by trusted OpenPGP and SSH keys, and refuses the rest without changing anything', async () => {
    const cfg = config();
    const fingerprint = (pub: string) => execFileSync('ssh-keygen', ['-l', '-f', pub], { encoding: 'utf8' }).split(' ')[1];

    const checkoutDir = cacheDirFor(cfg.git).dir;
    writeAgent('registry.local/agent:1.0');
    commit('agent 1.0', { gpg: alice });
    const first = await reconcile(stackDeps(cfg));
    expect(first.result).toBe('succeeded');
    expect(first.source?.verification).toEqual({ trusted: true, format: 'openpgp', signer: `Alice <alice@example.com> (OpenPGP key ${alice})` });
    expect(await imageOf()).toBe('registry.local/agent:1.0');

    writeAgent('registry.local/agent:2.0');
    commit('agent 2.0', { ssh: bobSsh });
    const second = await reconcile(stackDeps(cfg));
    expect(second.source?.verification).toEqual({ trusted: true, format: 'ssh', signer: `bob@example.com (SSH key ${fingerprint(bobSsh)})` });
    expect(second.daemonSets[0]).toMatchObject({ action: 'update', applied: true, revision: 2 });

    const refusals: [string, () => string, RegExp][] = [
      ['unsigned', () => { writeAgent('registry.local/agent:3.0'); repo.write('garbage.yaml', 'kind: [unclosed\n'); return commit('agent 3.0, unsigned'); }, /is not signed: the commit is not signed\. VERIFY_COMMITS=true: nothing from it is applied\. Fix: push a commit signed by a trusted key/],
      ['an unknown OpenPGP key', () => { writeAgent('registry.local/agent:4.0'); return commit('agent 4.0, by mallory', { gpg: mallory }); }, new RegExp(`signed by OpenPGP key ${mallory.slice(-16)}: signed by a key that is not in TRUSTED_GPG_KEYS.*add that public key to TRUSTED_GPG_KEYS`)],
      ['an unknown SSH key', () => { writeAgent('registry.local/agent:4.1'); return commit('agent 4.1, by eve', { ssh: eveSsh }); }, new RegExp(`signed by \\(SSH key ${escapeRegExp(fingerprint(eveSsh))}\\): signed by a key that is not in TRUSTED_SSH_KEYS`)],
      ['a tampered commit', () => {
        writeAgent('registry.local/agent:5.0');
        const signed = commit('agent 5.0', { gpg: alice });
        // Alice's signature kept, the message changed: what was signed is not what is there.
        const object = git(repo.work, ['cat-file', 'commit', signed]).replace('agent 5.0', 'agent 5.0 (changed after signing)');
        const forged = execFileSync('git', ['hash-object', '-t', 'commit', '-w', '--stdin'], { cwd: repo.work, input: `${object}\n`, encoding: 'utf8' }).trim();
        git(repo.work, ['push', '--quiet', '--force', 'origin', `${forged}:refs/heads/main`]);
        // git itself, as an independent check, refuses it too.
        expect(() => git(repo.work, ['verify-commit', forged], { GNUPGHOME })).toThrow();
        return forged;
      }, new RegExp(`signed by Alice <alice@example.com> \\(OpenPGP key ${alice}\\): the signature does not verify`)],
      ['a revoked key', () => { git(repo.work, ['push', '--quiet', '--force', 'origin', `${daveCommit}:refs/heads/main`]); return daveCommit; }, /signed by Dave <dave@example.com>.*: the signing key [0-9A-F]{16} is not valid now \(.*revoked/i],
      ['a key revoked as superseded', () => { git(repo.work, ['push', '--quiet', '--force', 'origin', `${ritaCommit}:refs/heads/main`]); return ritaCommit; }, /signed by Rita <rita@example.com>.*: the signing key [0-9A-F]{16} is not valid now \(.*revoked/i],
      ['an expired signing subkey, signature backdated', () => { git(repo.work, ['push', '--quiet', '--force', 'origin', `${samCommit}:refs/heads/main`]); return samCommit; }, /signed by Sam <sam@example.com>.*: the signing key [0-9A-F]{16} is not valid now \(.*expired/i],
      ['an expired key', () => { git(repo.work, ['push', '--quiet', '--force', 'origin', `${carolCommit}:refs/heads/main`]); return carolCommit; }, /signed by Carol <carol@example.com>.*: the key expired at .*: extend its expiry/],
    ];
    for (const [what, make, reason] of refusals) {
      if (what === 'an expired key') await new Promise((r) => setTimeout(r, Math.max(0, carolExpires + 1500 - Date.now())));
      const sha = make();
      const report = await reconcile(stackDeps(cfg));
      expect({ what, result: report.result, reason: report.error?.reason }).toEqual({ what, result: 'failed', reason: 'CommitUntrusted' });
      expect(report.error?.message).toMatch(new RegExp(`^commit ${sha.slice(0, 7)} "`));
      expect(report.error?.message).toMatch(reason);
      expect(report.source?.verification?.trusted).toBe(false);
      // Nothing of the untrusted commit was read: no DaemonSet or file of it in the report, its tree not checked out.
      expect(report.source?.commit?.sha).toBe(sha);
      expect(report.daemonSets).toEqual([]);
      expect(report.problems).toEqual([]);
      expect(existsSync(join(checkoutDir, 'garbage.yaml'))).toBe(false);
      expect(git(checkoutDir, ['rev-parse', 'HEAD'])).not.toBe(sha);
      expect(report.leaseTaken).toBeUndefined();
      expect(await imageOf()).toBe('registry.local/agent:2.0');
      const events = await waitFor(`an UntrustedCommit Event for ${sha.slice(0, 7)}`, async () => (await refusedEvents()).filter((m) => m.includes(sha.slice(0, 7))).length > 0 && refusedEvents());
      expect(events.some((m) => reason.test(m))).toBe(true);
    }

    // A rollback by invoke restores a stored revision: not blocked, and it says so.
    const rb = await rollback(stackDeps(cfg), { namespace: ns, name: 'agent', toRevision: 1, reason: 'back to 1.0', wait: false });
    expect(rb.verification).toMatch(/^not checked against VERIFY_COMMITS: a rollback restores revision 1 as stored in S3 \(commit [0-9a-f]{7}\), whose commit was checked when it was applied$/);
    expect(await imageOf()).toBe('registry.local/agent:1.0');
  });

  it('refuses to start without trusted keys, naming the settings', () => {
    expect(() => stackConfig({ GIT_URL: 'file:///x', VERIFY_COMMITS: 'true' })).toThrow(/VERIFY_COMMITS=true needs trusted keys: put ASCII-armored OpenPGP public keys in TRUSTED_GPG_KEYS/);
    expect(() => stackConfig({ GIT_URL: 'file:///x', VERIFY_COMMITS: 'true', TRUSTED_GPG_KEYS: 'ABCDEF' })).toThrow(/TRUSTED_GPG_KEYS holds no ASCII-armored public key/);
  });
});
