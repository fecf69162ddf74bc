/**
 * The push webhook, one request top to bottom:
 *
 *   size -> signature (headers and raw bytes only) -> parse -> push? -> our ref? -> replay? -> claim -> start a pass -> mark started
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
import { bodyKeyId, claimDelivery, deliveryKeyId, markDeliveryStarted, PushRequest, writePushRequest } from './push-request';
import { Headers, Provider, verifyRequest } from './verify';

/**
 * A delivery record still pending after this long was left by a request that ended before it
 * started the pass (the webhook's timeout is 10 s): a redelivery claims it again.
 */
export const PENDING_DELIVERY_STALE_MS = 60_000;

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

/** Removes the delivery records this request claimed, so that the provider's retry is not taken for a replay. */
async function release(ctx: WebhookContext, claimed: { key: string }[]): Promise<void> {
  for (const { key } of claimed) await ctx.objects.delete(ctx.keys.webhookDelivery(key)).catch(() => undefined);
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

  const now = ctx.clock.now();
  const receivedAt = now.toISOString();
  const id = deliveryKeyId(provider, verdict.delivery, body);
  const ids = [...new Set([bodyKeyId(body), id])];
  const record = { provider, delivery: verdict.delivery ?? null, ref: push.ref, commit, receivedAt };
  const claimed: { key: string; etag: string }[] = [];
  try {
    for (const key of ids) {
      const claim = await claimDelivery(ctx.objects, ctx.keys, key, record, now, PENDING_DELIVERY_STALE_MS);
      const what = key === id ? `delivery ${verdict.delivery ?? '(identified by its body)'}` : `this signed body (delivery ${verdict.delivery ?? 'without an id'} now)`;
      if (claim.kind === 'started') {
        await release(ctx, claimed);
        return answer(200, 'duplicate', `${what} was received before: a replay or a redelivery, ignored`, { ...seen, commit });
      }
      if (claim.kind === 'pending') {
        await release(ctx, claimed);
        // Not a 2xx: should that request never start its pass, the provider shows this delivery as failed, to be redelivered.
        return answer(409, 'duplicate', `${what} is being started by a request received at ${claim.since}; redeliver it if no pass follows`, { ...seen, commit });
      }
      claimed.push({ key, etag: claim.etag });
    }
    const request: PushRequest = { commit, ref: push.ref, provider, delivery: verdict.delivery ?? id, receivedAt };
    await writePushRequest(ctx.objects, ctx.keys, request);
    await ctx.start(request);
  } catch (err) {
    // The provider retries a 5xx; the delivery record is removed so that the retry is not taken for a replay.
    await release(ctx, claimed);
    return answer(503, 'failed', `could not record the delivery or start a pass: ${errorMessage(err)}`, { ...seen, commit });
  }
  // Only now is the delivery done: a request cut off before this point leaves it pending, and a redelivery starts the pass.
  for (const { key, etag } of claimed) {
    await markDeliveryStarted(ctx.objects, ctx.keys, key, etag, record, ctx.clock.now()).catch((err: unknown) => {
      ctx.logger.log('warn', `the pass was started but delivery ${key} could not be marked so: a redelivery of it would start another pass (${errorMessage(err)})`, { action: 'webhook' });
    });
  }
  return answer(202, 'started', `push of ${commit.slice(0, 7)} to ${push.ref}${push.pusher ? ` by ${push.pusher}` : ''}: a reconcile pass was started`, { ...seen, commit });
}
