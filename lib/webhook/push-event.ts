/**
 * What a verified webhook body says: a push to a ref, or something this tool ignores. Pure.
 * The three providers' push payloads share the fields used here (ref, before, after).
 */
import * as z from 'zod/mini';
import '../schema';
import type { Provider } from './verify';

export interface Push {
  ref: string;
  /** The commit the ref points to after the push. */
  after: string;
  before?: string;
  /** Clone URL of the repository, when the payload names one (for the logs). */
  repository?: string;
  pusher?: string;
}

export type Parsed =
  | { kind: 'push'; push: Push }
  | { kind: 'ignored'; reason: string }
  | { kind: 'invalid'; reason: string };

const SHA = /^([0-9a-f]{40}|[0-9a-f]{64})$/;

const pushSchema = z.object({
  ref: z.string().check(z.minLength(1), z.maxLength(1024)),
  after: z.string().check(z.regex(SHA, 'must be a commit id')),
  before: z.optional(z.string()),
  repository: z.optional(z.looseObject({ clone_url: z.optional(z.string()), git_http_url: z.optional(z.string()), html_url: z.optional(z.string()) })),
  pusher: z.optional(z.looseObject({ name: z.optional(z.string()), login: z.optional(z.string()), username: z.optional(z.string()) })),
  user_username: z.optional(z.string()),
});

/** The event names each provider gives a branch or tag push. */
function isPush(provider: Provider, event: string): boolean {
  if (provider === 'gitlab') return event === 'Push Hook' || event === 'Tag Push Hook';
  return event === 'push';
}

export function parsePush(provider: Provider, event: string, body: Buffer): Parsed {
  if (!isPush(provider, event)) {
    const what = event ? `"${event}" event` : 'event without a type header';
    return { kind: 'ignored', reason: `${what}: only push events start a pass${event === 'ping' ? ' (ping received: the webhook reaches this endpoint)' : ''}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (err) {
    return { kind: 'invalid', reason: `malformed JSON body: ${(err as Error).message}; set the webhook's content type to application/json` };
  }
  const parsed = pushSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
    return { kind: 'invalid', reason: `not a ${provider} push payload: ${problems}` };
  }
  const p = parsed.data;
  return {
    kind: 'push',
    push: {
      ref: p.ref,
      after: p.after,
      before: p.before,
      repository: p.repository?.clone_url ?? p.repository?.git_http_url ?? p.repository?.html_url,
      pusher: p.pusher?.login ?? p.pusher?.username ?? p.pusher?.name ?? p.user_username,
    },
  };
}

/**
 * Whether a push to `ref` (a full ref name) moves what GIT_REF names: the branch or tag of
 * that short name, or the full ref itself. A commit id in GIT_REF never moves.
 */
export function pushMovesRef(ref: string, gitRef: string): boolean {
  if (gitRef.startsWith('refs/')) return ref === gitRef;
  return ref === `refs/heads/${gitRef}` || ref === `refs/tags/${gitRef}`;
}

/** A push that deletes the ref: its `after` is all zeros. */
export function isDeletion(push: Push): boolean {
  return /^0+$/.test(push.after);
}
