/**
 * The push webhook, one request top to bottom:
 *
 *   size -> signature (headers and raw bytes only) -> parse -> push? -> our ref? -> replay? -> record -> start a pass
 *
 * A replay is a body received before (whatever delivery id or provider headers it carries
 * now), or a delivery id received before.
 *
 * Nothing is parsed before the signature holds, and nothing is started for a request that
 * fails any step. The pass is started, not awaited: the answer goes back within a second and
 * the pass runs on (in AWS an asynchronous invoke of the reconcile function). The body is
 * never logged.
 */
import { errorMessage } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../clock';
import type { ObjectStore } from '../store/object-store';
import type { StoreKeys } from '../store/keys';
import { isDeletion, parsePush, Push, pushMovesRef } from './push-event';
import { bodyKeyId, deliveryKeyId, PushRequest, recordDelivery, writePushRequest } from './push-request';
import { Headers, Provider, verifyRequest } from './verify';

/** Starts a reconcile pass for a push and returns once it is under way (not finished). */
export type PassStarter = (request: PushRequest) => Promise<void>;

export interface WebhookContext {
  secret: string;
  /** GIT_REF: the branch, tag or ref whose pushes start a pass. */
  gitRef: string;
  maxBodyBytes: number;
  objects: ObjectStore;
  keys: StoreKeys;
  start: PassStarter;
  logger: Logger;
  clock: Clock;
}

export type WebhookResult = 'started' | 'ignored' | 'duplicate' | 'refused' | 'failed';

export interface WebhookResponse {
  status: number;
  body: {
    result: WebhookResult;
    reason: string;
    provider?: Provider;
    delivery?: string;
    commit?: string;
  };
}

export async function handleWebhook(ctx: WebhookContext, headers: Headers, body: Buffer): Promise<WebhookResponse> {
  const answer = (status: number, result: WebhookResult, reason: string, extra: Partial<WebhookResponse['body']> = {}): WebhookResponse => {
    ctx.logger.log(status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info', `webhook ${result}: ${reason}`, { action: 'webhook', status, result, bytes: body.length, ...extra });
    return { status, body: { result, reason, ...extra } };
  };

  if (body.length > ctx.maxBodyBytes) {
    return answer(413, 'refused', `body of ${body.length} bytes is over the limit of ${ctx.maxBodyBytes} (WEBHOOK_MAX_BODY_BYTES); send push events only, or raise the limit`);
  }
  const verdict = verifyRequest(headers, body, ctx.secret);
  if (!verdict.ok) return answer(verdict.status, 'refused', verdict.reason);
  const { provider, event } = verdict;
  const seen = { provider, delivery: verdict.delivery };

  const parsed = parsePush(provider, event, body);
  if (parsed.kind === 'invalid') return answer(400, 'refused', parsed.reason, seen);
  if (parsed.kind === 'ignored') return answer(200, 'ignored', parsed.reason, seen);
  const push: Push = parsed.push;
  const commit = push.after;
  if (!pushMovesRef(push.ref, ctx.gitRef)) {
    return answer(200, 'ignored', `push to ${push.ref}: this reconciler follows GIT_REF=${ctx.gitRef}`, { ...seen, commit });
  }
  if (isDeletion(push)) {
    return answer(200, 'ignored', `push deletes ${push.ref}: nothing to apply (the next scheduled pass reports the missing ref)`, seen);
  }

  const receivedAt = ctx.clock.now().toISOString();
  const id = deliveryKeyId(provider, verdict.delivery, body);
  const ids = [...new Set([bodyKeyId(body), id])];
  const recorded: string[] = [];
  try {
    for (const key of ids) {
      const first = await recordDelivery(ctx.objects, ctx.keys, key, { provider, delivery: verdict.delivery ?? null, ref: push.ref, commit, receivedAt });
      if (!first) {
        const what = key === id ? `delivery ${verdict.delivery ?? '(identified by its body)'}` : `this signed body (delivery ${verdict.delivery ?? 'without an id'} now)`;
        return answer(200, 'duplicate', `${what} was received before: a replay or a redelivery, ignored`, { ...seen, commit });
      }
      recorded.push(key);
    }
    const request: PushRequest = { commit, ref: push.ref, provider, delivery: verdict.delivery ?? id, receivedAt };
    await writePushRequest(ctx.objects, ctx.keys, request);
    await ctx.start(request);
  } catch (err) {
    // The provider retries a 5xx; the delivery record is removed so that the retry is not taken for a replay.
    for (const key of recorded) await ctx.objects.delete(ctx.keys.webhookDelivery(key)).catch(() => undefined);
    return answer(503, 'failed', `could not record the delivery or start a pass: ${errorMessage(err)}`, { ...seen, commit });
  }
  return answer(202, 'started', `push of ${commit.slice(0, 7)} to ${push.ref}${push.pusher ? ` by ${push.pusher}` : ''}: a reconcile pass was started`, { ...seen, commit });
}
