import { execFileSync } from 'node:child_process';
import { isDeletion, parsePush, pushMovesRef } from '../../lib/webhook/push-event';
import { verifyRequest } from '../../lib/webhook/verify';

/** HMAC-SHA256 in hex as OpenSSL computes it: an implementation independent of the one under test. */
function opensslHmac(secret: string, body: Buffer): string {
  return execFileSync('openssl', ['dgst', '-sha256', '-hmac', secret, '-hex'], { input: body, encoding: 'utf8' }).trim().split('= ').pop()!;
}

const secret = 'a-webhook-secret-of-some-length';
const body = Buffer.from(JSON.stringify({ ref: 'refs/heads/main', after: 'a'.repeat(40) }));

describe('verifyRequest', () => {
  it('accepts the example signature from GitHub\'s documentation', () => {
    // docs.github.com, "Validating webhook deliveries": secret "It's a Secret to Everybody", payload "Hello, World!".
    const verdict = verifyRequest(
      { 'x-github-event': 'push', 'x-hub-signature-256': 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17' },
      Buffer.from('Hello, World!'),
      "It's a Secret to Everybody",
    );
    expect(verdict).toMatchObject({ ok: true, provider: 'github', event: 'push' });
  });

  it('accepts a Gitea signature (bare hex HMAC), and prefers Gitea\'s headers to the GitHub ones Gitea also sends', () => {
    const headers = { 'x-gitea-event': 'push', 'x-gitea-delivery': 'd-1', 'x-gitea-signature': opensslHmac(secret, body), 'x-github-event': 'push', 'x-hub-signature-256': 'sha256=00' };
    expect(verifyRequest(headers, body, secret)).toEqual({ ok: true, provider: 'gitea', event: 'push', delivery: 'd-1' });
  });

  it('accepts Forgejo\'s own signature header', () => {
    expect(verifyRequest({ 'x-forgejo-event': 'push', 'x-forgejo-signature': opensslHmac(secret, body) }, body, secret)).toMatchObject({ ok: true, provider: 'gitea' });
  });

  it('accepts GitLab\'s token and takes its Idempotency-Key as the delivery', () => {
    expect(verifyRequest({ 'x-gitlab-event': 'Push Hook', 'x-gitlab-token': secret, 'idempotency-key': 'k-1' }, body, secret))
      .toEqual({ ok: true, provider: 'gitlab', event: 'Push Hook', delivery: 'k-1' });
  });

  it.each([
    ['GitHub, signed with another secret', { 'x-github-event': 'push', 'x-hub-signature-256': `sha256=${opensslHmac('another-secret-entirely', body)}` }, 401, /signature mismatch \(github\)/],
    ['GitHub, a body changed after signing', { 'x-github-event': 'push', 'x-hub-signature-256': `sha256=${opensslHmac(secret, Buffer.concat([body, Buffer.from(' ')]))}` }, 401, /signature mismatch/],
    ['GitHub, no signature', { 'x-github-event': 'push' }, 401, /no signature: a GitHub request must carry X-Hub-Signature-256/],
    ['GitHub, only the SHA-1 signature', { 'x-hub-signature': 'sha1=00' }, 400, /unknown provider.*SHA-1/],
    ['Gitea, wrong signature', { 'x-gitea-event': 'push', 'x-gitea-signature': opensslHmac('another-secret-entirely', body) }, 401, /signature mismatch \(gitea\)/],
    ['Gitea, no signature', { 'x-gitea-event': 'push' }, 401, /X-Gitea-Signature/],
    ['GitLab, wrong token', { 'x-gitlab-event': 'Push Hook', 'x-gitlab-token': `${secret}x` }, 401, /signature mismatch \(gitlab\)/],
    ['GitLab, no token', { 'x-gitlab-event': 'Push Hook' }, 401, /X-Gitlab-Token/],
    ['no known header', { 'x-event-key': 'repo:push' }, 400, /unknown provider/],
  ])('refuses %s', (_, headers, status, reason) => {
    const verdict = verifyRequest(headers, body, secret);
    expect(verdict).toMatchObject({ ok: false, status });
    expect(verdict.ok ? '' : verdict.reason).toMatch(reason);
  });
});

describe('parsePush', () => {
  const push = (o: object) => Buffer.from(JSON.stringify(o));
  const sha = '0123456789abcdef0123456789abcdef01234567';

  it('reads a GitHub push: ref, commit and pusher', () => {
    expect(parsePush('github', 'push', push({ ref: 'refs/heads/main', before: '0'.repeat(40), after: sha, pusher: { name: 'alice' }, repository: { clone_url: 'https://github.com/o/r.git' } })))
      .toEqual({ kind: 'push', push: { ref: 'refs/heads/main', after: sha, before: '0'.repeat(40), pusher: 'alice', repository: 'https://github.com/o/r.git' } });
  });

  it('reads a GitLab push hook', () => {
    expect(parsePush('gitlab', 'Push Hook', push({ object_kind: 'push', ref: 'refs/heads/main', after: sha, user_username: 'bob', repository: { git_http_url: 'https://gitlab.com/o/r.git' } })))
      .toMatchObject({ kind: 'push', push: { after: sha, pusher: 'bob', repository: 'https://gitlab.com/o/r.git' } });
  });

  it.each([
    ['github', 'ping', /"ping" event: only push events start a pass \(ping received/],
    ['github', 'pull_request', /"pull_request" event/],
    ['gitlab', 'Merge Request Hook', /"Merge Request Hook" event/],
    ['gitea', 'create', /"create" event/],
  ] as const)('ignores a %s %s event with a reason', (provider, event, reason) => {
    const parsed = parsePush(provider, event, push({}));
    expect(parsed.kind).toBe('ignored');
    expect(parsed.kind === 'ignored' && parsed.reason).toMatch(reason);
  });

  it('refuses malformed JSON and a push without a commit id, saying what is wrong', () => {
    expect(parsePush('github', 'push', Buffer.from('{"ref": '))).toMatchObject({ kind: 'invalid', reason: expect.stringMatching(/^malformed JSON body/) });
    expect(parsePush('github', 'push', push({ ref: 'refs/heads/main', after: 'HEAD' }))).toMatchObject({ kind: 'invalid', reason: expect.stringMatching(/after: must be a commit id/) });
  });

  it('tells a deletion', () => {
    const parsed = parsePush('github', 'push', push({ ref: 'refs/heads/main', after: '0'.repeat(40) }));
    expect(parsed.kind === 'push' && isDeletion(parsed.push)).toBe(true);
  });
});

describe('pushMovesRef', () => {
  it.each([
    ['refs/heads/main', 'main', true],
    ['refs/tags/main', 'main', true],
    ['refs/heads/feature', 'main', false],
    ['refs/heads/release/1.0', 'release/1.0', true],
    ['refs/heads/main', 'refs/heads/main', true],
    ['refs/tags/main', 'refs/heads/main', false],
    ['refs/heads/main', '0123456789abcdef0123456789abcdef01234567', false],
  ])('%s against GIT_REF=%s: %s', (ref, gitRef, expected) => {
    expect(pushMovesRef(ref, gitRef)).toBe(expected);
  });
});
