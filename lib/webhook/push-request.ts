/**
 * The webhook's records in S3:
 *
 *   <prefix>/<cluster>/webhook/deliveries/<provider>-<id>.json   one per delivery, created pending with If-None-Match: *,
 *                                                                 started once its pass was started
 *   <prefix>/<cluster>/webhook/push.json                         the last push accepted (commit, ref, delivery)
 *
 * Why push.json: a pass started by a push finds the lease held when another pass is at
 * work, and ends without doing anything. The webhook writes push.json before it starts the
 * pass; a pass that held the lease reads it after releasing the lease, and runs again when
 * it names a commit other than the one it applied. Either the started pass takes the lease
 * (it was free), or the holder releases it later than the push.json write and so sees it:
 * the push is applied by one of them, not left for the next scheduled pass.
 */
import { createHash } from 'node:crypto';
import * as z from 'zod/mini';
import '../schema';
import { PreconditionFailedError } from '../errors';
import type { ObjectStore } from '../store/object-store';
import type { StoreKeys } from '../store/keys';
import type { Provider } from './verify';

export const pushRequestSchema = z.object({
  commit: z.string(),
  ref: z.string(),
  provider: z.string(),
  delivery: z.string(),
  receivedAt: z.string(),
});
export type PushRequest = z.infer<typeof pushRequestSchema>;

/** A delivery id as it goes into a key: the provider's own when it is a plain token, else a digest of it (or of the body, when there is none). */
export function deliveryKeyId(provider: Provider, delivery: string | undefined, body: Buffer): string {
  if (delivery && /^[A-Za-z0-9._-]{1,128}$/.test(delivery)) return `${provider}-${delivery}`;
  const digest = createHash('sha256').update(delivery ?? body).digest('hex');
  return `${provider}-${delivery ? 'id' : 'body'}-${digest}`;
}

/**
 * The signed body as it goes into a key, whoever the provider says sent it: the delivery id
 * is not covered by the signature (a replay may carry a fresh one), and the same HMAC passes
 * as GitHub's `sha256=…` and as Gitea's bare hex, so a request is a replay when its body was
 * received before, under any id and any provider's headers.
 */
export function bodyKeyId(body: Buffer): string {
  return `body-${createHash('sha256').update(body).digest('hex')}`;
}

/**
 * What claiming a delivery found: it is ours to start (`claimed`, with the record's etag to
 * mark it started), a pass was started for it before (`started`: a replay or a redelivery),
 * or another request claimed it moments ago and may still be starting it (`pending`).
 */
export type DeliveryClaim = { kind: 'claimed'; etag: string } | { kind: 'started' } | { kind: 'pending'; since: string };

/**
 * Claims a delivery: its record is created `pending` (If-None-Match: *), and says `started`
 * only once the pass was started (markDeliveryStarted). A record still pending after
 * `staleMs` belongs to a request that ended before it started the pass (a timeout, a
 * crash): it is claimed again (If-Match), so the provider's redelivery is not lost.
 */
export async function claimDelivery(objects: ObjectStore, keys: StoreKeys, id: string, record: Record<string, unknown>, now: Date, staleMs: number): Promise<DeliveryClaim> {
  const key = keys.webhookDelivery(id);
  const body = JSON.stringify({ ...record, state: 'pending', claimedAt: now.toISOString() });
  try {
    return { kind: 'claimed', etag: await objects.put(key, body, { ifNoneMatch: '*' }) };
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
  }
  const existing = await objects.get(key);
  if (!existing) return { kind: 'pending', since: now.toISOString() };
  let seen: { state?: unknown; claimedAt?: unknown } = {};
  try {
    seen = JSON.parse(existing.body) as typeof seen;
  } catch {
    // An unreadable record is treated as one of a started pass: never a reason to start twice.
  }
  // Records written before deliveries had a state were written for started passes.
  if (seen.state !== 'pending') return { kind: 'started' };
  const since = typeof seen.claimedAt === 'string' ? seen.claimedAt : '';
  const claimedAt = Date.parse(since);
  if (Number.isFinite(claimedAt) && now.getTime() - claimedAt < staleMs) return { kind: 'pending', since };
  try {
    return { kind: 'claimed', etag: await objects.put(key, body, { ifMatch: existing.etag }) };
  } catch (err) {
    if (err instanceof PreconditionFailedError) return { kind: 'pending', since };
    throw err;
  }
}

/** Marks a claimed delivery as done: its pass was started. */
export async function markDeliveryStarted(objects: ObjectStore, keys: StoreKeys, id: string, etag: string, record: Record<string, unknown>, now: Date): Promise<void> {
  await objects.put(keys.webhookDelivery(id), JSON.stringify({ ...record, state: 'started', startedAt: now.toISOString() }), { ifMatch: etag });
}

export async function readPushRequest(objects: ObjectStore, keys: StoreKeys): Promise<{ value: PushRequest; etag: string } | undefined> {
  const text = await objects.get(keys.pushRequest());
  if (!text) return undefined;
  try {
    const parsed = pushRequestSchema.safeParse(JSON.parse(text.body));
    return parsed.success ? { value: parsed.data, etag: text.etag } : undefined;
  } catch {
    return undefined;
  }
}

/** Writes push.json, conditionally on what was read (a concurrent delivery may write it too: the later write wins, none is lost unseen). */
export async function writePushRequest(objects: ObjectStore, keys: StoreKeys, request: PushRequest): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    const current = await objects.get(keys.pushRequest());
    try {
      await objects.put(keys.pushRequest(), JSON.stringify(request), current ? { ifMatch: current.etag } : { ifNoneMatch: '*' });
      return;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError) || attempt === 3) throw err;
    }
  }
}
