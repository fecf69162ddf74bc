/**
 * Schemas of the handlers' events. Payloads are untrusted: each is validated here and a
 * malformed one is refused with a message that says what is expected.
 */
import { z } from 'zod';
import { InvalidRequestError } from './errors';

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const KEY = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

const target = {
  namespace: z.string().regex(NAME, 'must be a namespace name'),
  name: z.string().regex(NAME, 'must be a DaemonSet name'),
};

export const reconcileEvent = z.object({
  dryRun: z.boolean().optional(),
  only: z.array(z.string().regex(KEY, 'must be namespace/name')).optional(),
  wait: z.boolean().optional(),
  /** Set by the webhook: the push that started this pass (for the logs). */
  push: z.object({ commit: z.string(), ref: z.string(), provider: z.string(), delivery: z.string(), receivedAt: z.string() }).optional(),
}).strict();
export type ReconcileEvent = z.infer<typeof reconcileEvent>;

export const rollbackEvent = z.object({
  ...target,
  toRevision: z.number().int().positive().optional(),
  reason: z.string().max(500).optional(),
  recreate: z.boolean().optional(),
  wait: z.boolean().optional(),
}).strict();
export type RollbackEvent = z.infer<typeof rollbackEvent>;

export const historyEvent = z.object({ ...target, limit: z.number().int().positive().max(1000).optional() }).strict();
export type HistoryEvent = z.infer<typeof historyEvent>;

export const targetEvent = z.object({ ...target, reason: z.string().max(500).optional() }).strict();
export type TargetEvent = z.infer<typeof targetEvent>;

export const statusEvent = z.object({}).strict();

/** EventBridge schedule events carry these; a scheduled reconcile takes no options. */
function isScheduleEvent(e: unknown): boolean {
  return Boolean(e && typeof e === 'object' && ((e as Record<string, unknown>).source === 'aws.events' || 'detail-type' in (e as object)));
}

export function parseEvent<T>(schema: z.ZodType<T>, event: unknown, what: string, example: string): T {
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
