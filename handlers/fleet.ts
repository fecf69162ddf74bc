/**
 * The fleet's promotion by invoke (FLEET_FILE): `{ "action": "status" }`,
 * `{ "action": "hold" | "resume", "by": "alice", "reason": "…" }` (resume starts the promotion
 * at once, PROMOTE_FUNCTION_NAME),
 * `{ "action": "promote", "commit": "<sha>", "to": "prod", "by": "alice", "reason": "…" }`.
 */
import * as z from 'zod/mini';
import '../lib/schema';
import { systemClock } from '../lib/clock';
import { loadConfig } from '../lib/config';
import { InvalidRequestError } from '../lib/errors';
import { fleetStatus, FleetStatusReport, holdPromotion, promoteByHand, resumePromotion } from '../lib/fleet/operate';
import type { Promotion } from '../lib/fleet/decide';
import { executionName, lambdaPromotionStarter } from '../lib/fleet/start';
import { s3ObjectStore } from '../lib/store/object-store';
import { PromotionStore } from '../lib/store/promotion-store';

const actor = { by: z.string().check(z.minLength(1), z.maxLength(200)), reason: z.string().check(z.minLength(1), z.maxLength(1000)) };
const eventSchema = z.discriminatedUnion('action', [
  z.strictObject({ action: z.literal('status') }),
  z.strictObject({ action: z.literal('hold'), ...actor }),
  z.strictObject({ action: z.literal('resume'), ...actor }),
  z.strictObject({ action: z.literal('promote'), commit: z.string().check(z.regex(/^[0-9a-f]{40}$/i, 'must be a full commit id')), to: z.string(), ...actor }),
]);

export async function handler(event: unknown): Promise<FleetStatusReport | Promotion> {
  const parsed = eventSchema.safeParse(event);
  if (!parsed.success) {
    throw new InvalidRequestError(`fleet event: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`).join('; ')}; e.g. {"action": "hold", "by": "alice", "reason": "incident 42"}`);
  }
  const e = parsed.data;
  const config = loadConfig();
  const store = new PromotionStore(s3ObjectStore(config.s3), config.s3.prefix);
  switch (e.action) {
    case 'status': return fleetStatus(config, store, systemClock);
    case 'hold': return holdPromotion(store, systemClock, e);
    case 'resume': {
      const resumed = await resumePromotion(store, systemClock, e);
      // The promotion goes on at once, not at the next push.
      if (config.promoteFunction) await lambdaPromotionStarter(config.promoteFunction, config.s3.region)({ by: e.by, reason: `resumed: ${e.reason}` }, executionName('resume', resumed.id, String(Date.now())));
      return resumed;
    }
    case 'promote': return promoteByHand(config, store, systemClock, e.commit, e.to, e);
  }
}
