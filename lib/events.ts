/**
 * Schemas of the handlers' events. Payloads are untrusted: each is validated here and a
 * malformed one is refused with a message that says what is expected.
 */
import * as z from 'zod/mini';
import './schema';
import { InvalidRequestError } from './errors';

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const KEY = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** In a fleet (FLEET_FILE), the cluster of the fleet file a per-DaemonSet command acts on (lib/fleet/cluster-target.ts). */
const onCluster = { cluster: z.optional(z.string().check(z.regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a cluster name of the fleet file'))) };

const target = {
  ...onCluster,
  namespace: z.string().check(z.regex(NAME, 'must be a namespace name')),
  name: z.string().check(z.regex(NAME, 'must be a DaemonSet name')),
};

export const reconcileEvent = z.strictObject({
  dryRun: z.optional(z.boolean()),
  only: z.optional(z.array(z.string().check(z.regex(KEY, 'must be namespace/name')))),
  wait: z.optional(z.boolean()),
  /** Set by the webhook: the push that started this pass (for the logs). */
  push: z.optional(z.object({ commit: z.string(), ref: z.string(), provider: z.string(), delivery: z.string(), receivedAt: z.string() })),
});
export type ReconcileEvent = z.infer<typeof reconcileEvent>;

export const rollbackEvent = z.strictObject({
  ...target,
  toRevision: z.optional(z.int().check(z.positive())),
  reason: z.optional(z.string().check(z.maxLength(500))),
  recreate: z.optional(z.boolean()),
  wait: z.optional(z.boolean()),
});
export type RollbackEvent = z.infer<typeof rollbackEvent>;

export const historyEvent = z.strictObject({ ...target, limit: z.optional(z.int().check(z.positive(), z.lte(1000))) });
export type HistoryEvent = z.infer<typeof historyEvent>;

export const targetEvent = z.strictObject({ ...target, reason: z.optional(z.string().check(z.maxLength(500))) });
export type TargetEvent = z.infer<typeof targetEvent>;

export const statusEvent = z.strictObject({ ...onCluster });

/** EventBridge schedule events carry these; a scheduled reconcile takes no options. */
function isScheduleEvent(e: unknown): boolean {
  return Boolean(e && typeof e === 'object' && ((e as Record<string, unknown>).source === 'aws.events' || 'detail-type' in (e as object)));
}

export function parseEvent<T>(schema: z.ZodMiniType<T>, event: unknown, what: string, example: string): T {
  const input = event === undefined || event === null || event === '' ? {} : event;
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'event'}: ${i.message}`).join('; ');
    throw new InvalidRequestError(`invalid ${what} event: ${problems}. Expected for example ${example}`);
  }
  return parsed.data;
}

export function parseReconcileEvent(event: unknown): ReconcileEvent {
  if (isScheduleEvent(event)) return {};
  return parseEvent(reconcileEvent, event, 'reconcile', '{"dryRun": true, "only": ["kube-system/fluentd"]}');
}
