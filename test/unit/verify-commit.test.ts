/**
 * The verdict on a signed commit object, with keys made here by openpgp.js: a signature
 * counts only while the key (and the subkey) that made it are valid now, whatever date the
 * signature claims (the signer writes that date). GnuPG-made keys are checked against the real
 * stack in test/integration/verify-commits.test.ts.
 */
import * as openpgp from 'openpgp';
import { commitObjectId, verifyCommitObject } from '../../lib/source/verify-commit';

const DAY = 86_400_000;
const now = new Date();

/** A commit object as git writes one: headers, the signature as a `gpgsig` header with continuation lines, then the message. */
function commitObject(signature: string | undefined, payload: Buffer): Buffer {
  const text = payload.toString('utf8');
  const end = text.indexOf('\n\n');
  const header = signature ? `gpgsig ${signature.trim().split('\n').join('\n ')}\n` : '';
  return Buffer.from(`${text.slice(0, end + 1)}${header}${text.slice(end + 1)}`, 'utf8');
}

const payload = Buffer.from([
  'tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904',
  'author Alice <alice@example.com> 1700000000 +0000',
  'committer Alice <alice@example.com> 1700000000 +0000',
  '',
  'agent 2.0',
  '',
].join('\n'));

async function signed(signingKeys: openpgp.PrivateKey, date: Date): Promise<Buffer> {
  const signature = await openpgp.sign({ message: await openpgp.createMessage({ binary: payload }), signingKeys, detached: true, date, format: 'armored' });
  return commitObject(signature as string, payload);
}

async function key(options: { created: Date; subkeyExpiresSeconds?: number }): Promise<{ privateKey: openpgp.PrivateKey; armoredPublic: string }> {
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'curve25519',
    userIDs: [{ name: 'Alice', email: 'alice@example.com' }],
    date: options.created,
    format: 'armored',
    ...(options.subkeyExpiresSeconds ? { subkeys: [{}, { sign: true, keyExpirationTime: options.subkeyExpiresSeconds, date: options.created }] } : {}),
  });
  return { privateKey: await openpgp.readPrivateKey({ armoredKey: privateKey }), armoredPublic: publicKey };
}

describe('verifyCommitObject (OpenPGP)', () => {
  it('trusts a signature by a trusted key that is valid now', async () => {
    const k = await key({ created: new Date(now.getTime() - DAY) });
    const v = await verifyCommitObject(await signed(k.privateKey, new Date(now.getTime() - 60_000)), { gpg: k.armoredPublic }, now);
    expect(v).toMatchObject({ trusted: true, format: 'openpgp' });
  });

  it('refuses a signature by a signing subkey that has expired, although the signature is dated while it was valid', async () => {
    const created = new Date(now.getTime() - 3 * DAY);
    const k = await key({ created, subkeyExpiresSeconds: 3600 });
    const backdated = new Date(created.getTime() + 10 * 60_000);
    const commit = await signed(k.privateKey, backdated);
    // The signature was made by the subkey, not by the primary key (which does not expire).
    const sig = await openpgp.readSignature({ armoredSignature: /-----BEGIN PGP SIGNATURE-----[\s\S]*-----END PGP SIGNATURE-----/.exec(commit.toString().replace(/\n /g, '\n'))![0] });
    expect(sig.getSigningKeyIDs()[0].equals(k.privateKey.getKeyID())).toBe(false);
    const v = await verifyCommitObject(commit, { gpg: k.armoredPublic }, now);
    expect(v).toMatchObject({ trusted: false, format: 'openpgp' });
    expect(v.problem).toMatch(/^the signing key [0-9A-F]{16} is not valid now \(.*expired.*\)/i);
  });

  it.each([
    ['retired', openpgp.enums.reasonForRevocation.keyRetired],
    ['superseded', openpgp.enums.reasonForRevocation.keySuperseded],
    ['compromised', openpgp.enums.reasonForRevocation.keyCompromised],
    ['revoked for no reason given', openpgp.enums.reasonForRevocation.noReason],
  ])('refuses a key revoked as %s, although the signature is dated before the revocation', async (_what, flag) => {
    const created = new Date(now.getTime() - 10 * DAY);
    const k = await key({ created });
    const commit = await signed(k.privateKey, new Date(created.getTime() + DAY));
    const revoked = await openpgp.revokeKey({ key: k.privateKey, reasonForRevocation: { flag, string: 'left the team' }, date: new Date(now.getTime() - DAY), format: 'armored' });
    const v = await verifyCommitObject(commit, { gpg: revoked.publicKey }, now);
    expect(v).toMatchObject({ trusted: false, format: 'openpgp' });
    expect(v.problem).toMatch(/is not valid now \(.*revoked.*\)/i);
  });

  it('refuses bytes that are not the commit they are said to be', async () => {
    const k = await key({ created: new Date(now.getTime() - DAY) });
    const commit = await signed(k.privateKey, new Date(now.getTime() - 60_000));
    const id = commitObjectId(commit);
    expect(await verifyCommitObject(commit, { gpg: k.armoredPublic }, now, id)).toMatchObject({ trusted: true });
    const other = await verifyCommitObject(commit, { gpg: k.armoredPublic }, now, 'f'.repeat(40));
    expect(other).toMatchObject({ trusted: false, problem: expect.stringMatching(/does not hash to f{40}/) });
  });
});
