/**
 * A managed rollout's timeline in S3, one small object per revision beside its snapshot:
 * `<prefix>/<cluster>/daemonsets/<ns>/<name>/timelines/<n>.json`. Written by the driver
 * after each decision that changed something, read by `dsgitops ui` for its chart. Bounded
 * (rollout/timeline.ts), and written conditionally like every other record.
 */
import * as z from 'zod/mini';
import '../schema';
import { PreconditionFailedError } from '../errors';
import type { StoreKeys } from './keys';
import type { ObjectStore } from './object-store';
import { parseRecord } from './state-store';

export const timelinePointSchema = z.object({
  at: z.string(),
  desired: z.int(),
  updated: z.int(),
  updatedAvailable: z.int(),
  /** Desired nodes (not skipped) without an available pod, once the decision's deletions are done. */
  unavailable: z.int(),
  /** maxUnavailable as the decision resolved it. */
  budget: z.int(),
  skipped: z.int(),
  /** The wave decision's phase: progressing, canary-hold, paused, waiting, stalled, complete. */
  phase: z.string(),
  /** Waves so far (decisions that deleted pods). */
  wave: z.int(),
});
export type TimelinePoint = z.infer<typeof timelinePointSchema>;

export const timelineSchema = z.object({
  schema: z.literal(1),
  namespace: z.string(),
  name: z.string(),
  revision: z.int(),
  points: z.array(timelinePointSchema),
});
export type Timeline = z.infer<typeof timelineSchema>;

export function timelineKey(keys: StoreKeys, namespace: string, name: string, revision: number): string {
  return `${keys.daemonSet(namespace, name)}timelines/${revision}.json`;
}

const ATTEMPTS = 3;

export class TimelineStore {
  constructor(private readonly objects: ObjectStore, private readonly keys: StoreKeys) {}

  /** The timeline of a revision; undefined when none was kept (a native rollout) or it cannot be read. */
  async get(namespace: string, name: string, revision: number): Promise<Timeline | undefined> {
    const got = await this.objects.get(timelineKey(this.keys, namespace, name, revision));
    if (!got) return undefined;
    const parsed = parseRecord(got.body, timelineSchema);
    return parsed.ok ? parsed.value : undefined;
  }

  /**
   * Reads, changes and writes back the revision's timeline, conditionally on what was read
   * (If-None-Match: * for a new one, If-Match otherwise); retries a lost race a few times.
   */
  async update(namespace: string, name: string, revision: number, change: (points: TimelinePoint[]) => TimelinePoint[]): Promise<void> {
    const key = timelineKey(this.keys, namespace, name, revision);
    for (let attempt = 1; ; attempt++) {
      const got = await this.objects.get(key);
      const parsed = got ? parseRecord(got.body, timelineSchema) : undefined;
      // An unreadable timeline is only a chart: it is started again rather than blocking the rollout.
      const points = parsed?.ok ? parsed.value.points : [];
      const next: Timeline = { schema: 1, namespace, name, revision, points: change(points) };
      // Nothing new (a look that saw what the last point says): nothing written.
      if (parsed?.ok && JSON.stringify(next.points) === JSON.stringify(points)) return;
      try {
        await this.objects.put(key, JSON.stringify(next), got ? { ifMatch: got.etag } : { ifNoneMatch: '*' });
        return;
      } catch (err) {
        if (!(err instanceof PreconditionFailedError) || attempt >= ATTEMPTS) throw err;
      }
    }
  }
}
