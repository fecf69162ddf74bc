/**
 * VERIFY_COMMITS: the verdict on the commit a pass would apply, given before anything of its
 * tree is read, and the one place the trusted keys are read (asynchronous, so a secret store
 * can stand behind it).
 */
import type { Config } from '../config';
import type { CommitJudge, GitCommit } from './git';
import { TrustedKeys, Verification, verifyCommitObject } from './verify-commit';

export async function trustedKeys(config: Config): Promise<TrustedKeys> {
  return { gpg: config.verify?.gpgKeys, ssh: config.verify?.sshKeys };
}

/** Verdicts by commit and keys: a warm process checks a commit again only after a while (a key may expire or be revoked meanwhile). */
const verdicts = new Map<string, { verdict: Verification; at: number }>();
const VERDICT_TTL_MS = 10 * 60_000;

/**
 * The judge a fetch asks about the head's raw commit object (read through the git
 * implementation that fetched it) before it checks the tree out; undefined when
 * VERIFY_COMMITS is off.
 */
export function commitJudge(config: Config, now: () => Date = () => new Date()): CommitJudge | undefined {
  if (!config.verify?.commits) return undefined;
  return async (commit, raw) => {
    const keys = await trustedKeys(config);
    const cacheKey = JSON.stringify([commit.sha, keys.gpg, keys.ssh]);
    const at = now().getTime();
    const known = verdicts.get(cacheKey);
    if (known && at - known.at < VERDICT_TTL_MS) return known.verdict;
    const verdict = await verifyCommitObject(raw, keys, now(), commit.sha);
    verdicts.set(cacheKey, { verdict, at });
    return verdict;
  };
}

/** What the report, the logs and the Events say about a commit that is not trusted, with the fix. */
export function untrustedMessage(commit: GitCommit, v: Verification): string {
  const who = v.signer ? `signed by ${v.signer}` : 'not signed';
  const fix = v.signer && /not in TRUSTED_/.test(v.problem ?? '')
    ? `if ${v.signer} may change the cluster, add that public key to ${v.format === 'ssh' ? 'TRUSTED_SSH_KEYS' : 'TRUSTED_GPG_KEYS'}; otherwise push a commit signed by a trusted key`
    : 'push a commit signed by a trusted key (git commit -S, or git commit --amend -S and push)';
  return `commit ${commit.sha.slice(0, 7)} "${commit.subject}" by ${commit.author} is ${who}: ${v.problem ?? 'not trusted'}. VERIFY_COMMITS=true: nothing from it is applied. Fix: ${fix}`;
}
