/**
 * Commit verification, in process (the Lambda runtime has no gpg): the commit a pass would
 * apply must carry a valid signature by a trusted key.
 *
 * A signed commit object holds its signature in a `gpgsig` header (continuation lines start
 * with a space); what was signed is the object with that header removed, byte for byte.
 *
 *   OpenPGP (git's default, gpg)          -----BEGIN PGP SIGNATURE-----   checked with openpgp.js
 *   SSH (gpg.format=ssh, ssh-keygen -Y)   -----BEGIN SSH SIGNATURE-----   the SSHSIG format, checked with node:crypto
 *
 * An OpenPGP signature counts only while the key that made it (the primary key, or the signing
 * subkey it names) is valid now: an expired key or subkey, or one revoked for any reason
 * (compromised, retired, superseded), is refused whatever date the signature claims: the
 * signer writes that date (`gpg --faked-system-time`), so it proves nothing.
 *
 * The raw commit object comes from the git implementation that fetched it (git-cli.ts reads
 * it with `git cat-file`, git-js.ts with isomorphic-git, where there is no git binary); it is
 * checked to hash to the commit id before its signature is looked at.
 */
import { createHash, createPublicKey, KeyObject, verify as verifySignature } from 'node:crypto';
import type * as OpenPgp from 'openpgp';

/** openpgp.js is loaded on first use: commands that verify nothing do not pay for loading it. */
let loaded: Promise<typeof OpenPgp> | undefined;
const openpgpModule = () => (loaded ??= import('openpgp'));

export interface TrustedKeys {
  /** ASCII-armored OpenPGP public keys (TRUSTED_GPG_KEYS). */
  gpg?: string;
  /** SSH public keys, one per line: `ssh-ed25519 AAAA… comment` (TRUSTED_SSH_KEYS). */
  ssh?: string;
}

export interface Verification {
  trusted: boolean;
  format?: 'openpgp' | 'ssh';
  /** Who signed: the key's user id or comment, and its key id or fingerprint; undefined for an unsigned commit. */
  signer?: string;
  /** Why it is not trusted. */
  problem?: string;
}

/** The id git gives a commit object: SHA-1 (or SHA-256, for a 64-digit id) of `commit <size>\0<content>`. */
export function commitObjectId(commit: Buffer, algorithm: 'sha1' | 'sha256' = 'sha1'): string {
  return createHash(algorithm).update(Buffer.concat([Buffer.from(`commit ${commit.length}\0`), commit])).digest('hex');
}

/** The signature header of a commit object and the bytes it signs (the object without it). */
export function splitSignature(commit: Buffer): { signature?: string; payload: Buffer } {
  const text = commit.toString('latin1'); // one byte per char, so offsets are byte offsets
  const headerEnd = text.indexOf('\n\n');
  const headers = headerEnd < 0 ? text : text.slice(0, headerEnd + 1);
  const m = /(^|\n)(gpgsig(?:-sha256)? )([^\n]*\n(?: [^\n]*\n)*)/.exec(headers);
  if (!m) return { payload: commit };
  const start = m.index + m[1].length;
  const end = start + m[2].length + m[3].length;
  const signature = m[3].split('\n').map((l, i) => (i === 0 ? l : l.slice(1))).join('\n').trim();
  return { signature: Buffer.from(signature, 'latin1').toString('utf8'), payload: Buffer.concat([commit.subarray(0, start), commit.subarray(end)]) };
}

async function verifyOpenPgp(signature: string, payload: Buffer, armoredKeys: string | undefined, now: Date): Promise<Verification> {
  const openpgp = await openpgpModule();
  const sig = await openpgp.readSignature({ armoredSignature: signature });
  const keyIds = sig.getSigningKeyIDs().map((k) => k.toHex().toUpperCase());
  const keys = armoredKeys ? await openpgp.readKeys({ armoredKeys }) : [];
  const key = keys.find((k) => k.getKeyIDs().some((id) => keyIds.includes(id.toHex().toUpperCase())));
  if (!key) return { trusted: false, format: 'openpgp', signer: `OpenPGP key ${keyIds.join(', ')}`, problem: 'signed by a key that is not in TRUSTED_GPG_KEYS' };
  const userId = key.getUserIDs()[0] ?? '(no user id)';
  const signer = `${userId} (OpenPGP key ${key.getFingerprint().toUpperCase()})`;
  // openpgp.js judges the key at the signature's own date, which the signer chooses; this tool
  // trusts a signature only while the key, and the subkey that made it, are valid now.
  const expires = await key.getExpirationTime().catch(() => null);
  if (expires instanceof Date && expires.getTime() <= now.getTime()) {
    return { trusted: false, format: 'openpgp', signer, problem: `the key expired at ${expires.toISOString()}: extend its expiry (gpg --quick-set-expire) and export it again into TRUSTED_GPG_KEYS, or sign with a valid key` };
  }
  const signingId = sig.getSigningKeyIDs().find((id) => key.getKeyIDs().some((k) => k.equals(id)))!;
  try {
    await key.getSigningKey(signingId, now);
  } catch (err) {
    const reason = (err as Error).message.replace(/^Could not find valid signing key packet in key [0-9a-f]+: /i, '');
    return { trusted: false, format: 'openpgp', signer, problem: `the signing key ${signingId.toHex().toUpperCase()} is not valid now (${reason}): a revoked or expired key is refused whatever date its signature claims; sign with a valid key` };
  }
  try {
    const result = await openpgp.verify({ message: await openpgp.createMessage({ binary: payload }), signature: sig, verificationKeys: key, date: now });
    await result.signatures[0].verified;
    return { trusted: true, format: 'openpgp', signer };
  } catch (err) {
    const reason = (err as Error).message.replace(/^Error verifying signature: /, '');
    return { trusted: false, format: 'openpgp', signer, problem: `the signature does not verify: ${reason}` };
  }
}

/** SSH wire format: uint32 length + bytes. */
class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  bytes(n: number): Buffer {
    if (this.at + n > this.buf.length) throw new Error('truncated SSH signature');
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  uint32(): number {
    return this.bytes(4).readUInt32BE(0);
  }
  string(): Buffer {
    return this.bytes(this.uint32());
  }
}

function sshString(b: Buffer | string): Buffer {
  const data = Buffer.isBuffer(b) ? b : Buffer.from(b);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}

/** An SSH public key blob as a node KeyObject (Ed25519 and RSA). */
function sshPublicKey(blob: Buffer): KeyObject {
  const r = new Reader(blob);
  const type = r.string().toString();
  const b64url = (b: Buffer) => b.toString('base64url');
  if (type === 'ssh-ed25519') return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(r.string()) }, format: 'jwk' });
  if (type === 'ssh-rsa') {
    const e = r.string();
    const n = r.string();
    const strip = (b: Buffer) => (b[0] === 0 ? b.subarray(1) : b);
    return createPublicKey({ key: { kty: 'RSA', e: b64url(strip(e)), n: b64url(strip(n)) }, format: 'jwk' });
  }
  throw new Error(`SSH key type ${type} is not supported for commit signatures (use ssh-ed25519 or ssh-rsa)`);
}

interface SshTrusted {
  blob: Buffer;
  comment: string;
}

function parseSshKeys(text: string | undefined): SshTrusted[] {
  return (text ?? '').split(/\n|,/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((line) => {
    const [, b64, ...comment] = line.split(/\s+/);
    return { blob: Buffer.from(b64 ?? '', 'base64'), comment: comment.join(' ') };
  });
}

function sshFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

function verifySsh(signature: string, payload: Buffer, keys: string | undefined): Verification {
  const body = Buffer.from(signature.replace(/-----(BEGIN|END) SSH SIGNATURE-----/g, '').replace(/\s+/g, ''), 'base64');
  const r = new Reader(body);
  if (r.bytes(6).toString() !== 'SSHSIG') return { trusted: false, format: 'ssh', problem: 'not an SSH signature (SSHSIG magic missing)' };
  if (r.uint32() !== 1) return { trusted: false, format: 'ssh', problem: 'unsupported SSH signature version' };
  const publicKey = r.string();
  const namespace = r.string().toString();
  r.string(); // reserved
  const hashAlgorithm = r.string().toString();
  const sigBlob = new Reader(r.string());
  const sigType = sigBlob.string().toString();
  const sig = sigBlob.string();
  const trusted = parseSshKeys(keys).find((k) => k.blob.equals(publicKey));
  const signer = `${trusted?.comment ? `${trusted.comment} ` : ''}(SSH key ${sshFingerprint(publicKey)})`;
  if (!trusted) return { trusted: false, format: 'ssh', signer, problem: 'signed by a key that is not in TRUSTED_SSH_KEYS' };
  if (namespace !== 'git') return { trusted: false, format: 'ssh', signer, problem: `signed for namespace "${namespace}", not "git"` };
  if (hashAlgorithm !== 'sha512' && hashAlgorithm !== 'sha256') return { trusted: false, format: 'ssh', signer, problem: `unsupported hash ${hashAlgorithm}` };
  const digest = createHash(hashAlgorithm).update(payload).digest();
  const signed = Buffer.concat([Buffer.from('SSHSIG'), sshString('git'), sshString(''), sshString(hashAlgorithm), sshString(digest)]);
  try {
    const key = sshPublicKey(publicKey);
    const algorithm = sigType === 'ssh-ed25519' ? null : sigType === 'rsa-sha2-512' ? 'sha512' : sigType === 'rsa-sha2-256' ? 'sha256' : undefined;
    if (algorithm === undefined) return { trusted: false, format: 'ssh', signer, problem: `unsupported signature type ${sigType}` };
    const ok = verifySignature(algorithm, signed, key, sig);
    return ok ? { trusted: true, format: 'ssh', signer } : { trusted: false, format: 'ssh', signer, problem: 'the signature does not verify: the commit was changed after it was signed' };
  } catch (err) {
    return { trusted: false, format: 'ssh', signer, problem: (err as Error).message };
  }
}

/**
 * Verdict on one commit object against the trusted keys. With `sha`, the object must be that
 * commit: bytes that hash to another id are refused before anything else is read from them.
 */
export async function verifyCommitObject(commit: Buffer, keys: TrustedKeys, now: Date = new Date(), sha?: string): Promise<Verification> {
  if (sha !== undefined && commitObjectId(commit, sha.length === 64 ? 'sha256' : 'sha1') !== sha.toLowerCase()) {
    return { trusted: false, problem: `the commit object read from the checkout does not hash to ${sha}: the git cache is damaged; delete GIT_CACHE_DIR` };
  }
  const { signature, payload } = splitSignature(commit);
  if (!signature) return { trusted: false, problem: 'the commit is not signed' };
  try {
    if (signature.startsWith('-----BEGIN PGP SIGNATURE-----')) return await verifyOpenPgp(signature, payload, keys.gpg, now);
    if (signature.startsWith('-----BEGIN SSH SIGNATURE-----')) return verifySsh(signature, payload, keys.ssh);
  } catch (err) {
    return { trusted: false, problem: `the signature cannot be read: ${(err as Error).message}` };
  }
  return { trusted: false, problem: 'the commit carries a signature of a kind this tool does not check (X.509?)' };
}
