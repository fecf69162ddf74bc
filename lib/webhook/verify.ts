/**
 * Who sent a webhook request, and whether it carries the shared secret. Pure, and it reads
 * only headers and the raw bytes of the body: nothing is parsed before the signature holds.
 *
 *   GitHub         X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>   X-GitHub-Event, X-GitHub-Delivery
 *   Gitea/Forgejo  X-Gitea-Signature (X-Forgejo-Signature): <hex HMAC-SHA256>  X-Gitea-Event, X-Gitea-Delivery
 *   GitLab         X-Gitlab-Token: <the secret itself>                         X-Gitlab-Event, Idempotency-Key / X-Gitlab-Event-UUID
 *
 * Gitea also sends GitHub's headers, so its own are looked at first. Every comparison runs
 * in constant time over digests of equal length, so neither the content nor the length of
 * the expected value leaks through timing.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export type Provider = 'github' | 'gitlab' | 'gitea';

export type Headers = Record<string, string | undefined>;

export type Verdict =
  | { ok: true; provider: Provider; event: string; delivery?: string }
  | { ok: false; status: 400 | 401; reason: string };

/** Header names, lower-cased, as a function URL delivers them. */
export function lowerCaseHeaders(headers: Record<string, string | string[] | undefined> | undefined): Headers {
  const out: Headers = {};
  for (const [k, v] of Object.entries(headers ?? {})) out[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
  return out;
}

/** Equal in constant time: both sides are hashed to 32 bytes first. */
export function constantTimeEqual(a: string | Buffer, b: string | Buffer): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

function hmacHex(secret: string, body: Buffer): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

function detect(h: Headers): { provider: Provider; event?: string; delivery?: string } | undefined {
  if (h['x-gitea-event'] !== undefined || h['x-forgejo-event'] !== undefined || h['x-gitea-signature'] !== undefined || h['x-forgejo-signature'] !== undefined) {
    return { provider: 'gitea', event: h['x-gitea-event'] ?? h['x-forgejo-event'], delivery: h['x-gitea-delivery'] ?? h['x-forgejo-delivery'] };
  }
  if (h['x-gitlab-event'] !== undefined || h['x-gitlab-token'] !== undefined) {
    return { provider: 'gitlab', event: h['x-gitlab-event'], delivery: h['idempotency-key'] ?? h['x-gitlab-event-uuid'] ?? h['x-gitlab-webhook-uuid'] };
  }
  if (h['x-github-event'] !== undefined || h['x-hub-signature-256'] !== undefined) {
    return { provider: 'github', event: h['x-github-event'], delivery: h['x-github-delivery'] };
  }
  return undefined;
}

const EXPECTED = 'X-Hub-Signature-256 (GitHub), X-Gitlab-Token (GitLab) or X-Gitea-Signature (Gitea, Forgejo)';

export function verifyRequest(headers: Headers, body: Buffer, secret: string): Verdict {
  const sender = detect(headers);
  if (!sender) {
    const hint = headers['x-hub-signature'] !== undefined ? ' (X-Hub-Signature, SHA-1, is not accepted: GitHub sends X-Hub-Signature-256 as well)' : '';
    return { ok: false, status: 400, reason: `unknown provider: the request has none of the headers of a GitHub, GitLab or Gitea/Forgejo webhook; expected ${EXPECTED}${hint}` };
  }
  const { provider } = sender;
  let valid: boolean;
  if (provider === 'gitlab') {
    const token = headers['x-gitlab-token'];
    if (token === undefined) return { ok: false, status: 401, reason: 'no signature: a GitLab request must carry X-Gitlab-Token (the webhook\'s "Secret token")' };
    valid = constantTimeEqual(token, secret);
  } else if (provider === 'gitea') {
    const signature = headers['x-gitea-signature'] ?? headers['x-forgejo-signature'];
    if (signature === undefined) return { ok: false, status: 401, reason: 'no signature: a Gitea/Forgejo request must carry X-Gitea-Signature (set the webhook\'s "Secret")' };
    valid = constantTimeEqual(signature.trim().toLowerCase(), hmacHex(secret, body));
  } else {
    const signature = headers['x-hub-signature-256'];
    if (signature === undefined) return { ok: false, status: 401, reason: 'no signature: a GitHub request must carry X-Hub-Signature-256 (set the webhook\'s "Secret")' };
    valid = constantTimeEqual(signature.trim().toLowerCase(), `sha256=${hmacHex(secret, body)}`);
  }
  if (!valid) {
    return { ok: false, status: 401, reason: `signature mismatch (${provider}): the request was not signed with WEBHOOK_SECRET, or its body was changed on the way` };
  }
  return { ok: true, provider, event: sender.event ?? '', delivery: sender.delivery };
}
