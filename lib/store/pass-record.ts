/**
 * The last pass's report, per cluster, bounded in size: `<prefix>/<cluster>/last-pass.json`.
 * `dsgitops ui` shows it (what the pass did, and the problems by file, including DaemonSets that
 * never applied). Written by a pass (not a dry run, not one limited to some DaemonSets) that
 * wrote anyway (it took the lease), or that found other problems than the stored record names
 * (its `digest`): a pass with nothing to change and nothing new to say writes nothing, and the
 * record stays the last pass that changed something or found something new. Always written
 * conditionally on what was read (If-Match, or If-None-Match: * for the first), never over a
 * newer pass's record.
 */
import * as z from 'zod/mini';
import '../schema';
import { PreconditionFailedError } from '../errors';
import type { StoreKeys } from './keys';
import type { ObjectStore } from './object-store';
import { parseRecord } from './state-store';

const locationSchema = z.object({ file: z.string(), document: z.optional(z.int()) });

export const passProblemSchema = z.object({
  file: z.string(),
  document: z.optional(z.int()),
  key: z.optional(z.string()),
  code: z.string(),
  severity: z.string(),
  message: z.string(),
});
export type PassProblem = z.infer<typeof passProblemSchema>;

export const passDaemonSetSchema = z.object({
  key: z.string(),
  action: z.string(),
  applied: z.boolean(),
  revision: z.optional(z.int()),
  previousRevision: z.optional(z.int()),
  cause: z.optional(z.string()),
  source: z.optional(locationSchema),
  message: z.string(),
  problems: z.optional(z.array(passProblemSchema)),
  rollout: z.optional(z.object({
    phase: z.string(),
    mode: z.string(),
    revision: z.int(),
    desired: z.optional(z.int()),
    upToDate: z.optional(z.int()),
    available: z.optional(z.int()),
  })),
  pin: z.optional(z.object({ revision: z.int(), reason: z.string() })),
  error: z.optional(z.object({ reason: z.string(), message: z.string() })),
  /** Why the pass held this DaemonSet back (a companion that failed to apply, nodes without a pod). */
  held: z.optional(z.string()),
});
export type PassDaemonSet = z.infer<typeof passDaemonSetSchema>;

export const passObjectSchema = z.object({
  id: z.string(),
  kind: z.string(),
  action: z.string(),
  applied: z.boolean(),
  source: locationSchema,
  message: z.string(),
  error: z.optional(z.object({ reason: z.string(), message: z.string() })),
});
export type PassObject = z.infer<typeof passObjectSchema>;

export const passRecordSchema = z.object({
  schema: z.literal(1),
  cluster: z.string(),
  runId: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  result: z.string(),
  /** Of what is wrong (errors, problems, failed, invalid, held and stalled entries): equal digests, nothing new to say. */
  digest: z.string(),
  source: z.optional(z.object({
    url: z.string(),
    ref: z.string(),
    path: z.string(),
    commit: z.optional(z.object({ sha: z.string(), subject: z.string(), author: z.string() })),
  })),
  summary: z.record(z.string(), z.int()),
  error: z.optional(z.object({ reason: z.string(), message: z.string() })),
  stopped: z.optional(z.string()),
  preempted: z.optional(z.string()),
  deferred: z.optional(z.array(z.string())),
  /** The DaemonSets with something to say (not unchanged, or with a problem), most serious first. */
  daemonSets: z.array(passDaemonSetSchema),
  /** DaemonSets unchanged and without a problem: counted, not listed. */
  quiet: z.int(),
  /** Objects other than DaemonSets with something to say (failed first). */
  objects: z.array(passObjectSchema),
  /** Problems that belong to no single DaemonSet (unreadable files, refused documents). */
  problems: z.array(passProblemSchema),
  /** What was left out to keep the record within its size bound. */
  omitted: z.optional(z.object({ daemonSets: z.int(), objects: z.int(), problems: z.int() })),
});
export type PassRecord = z.infer<typeof passRecordSchema>;

export function passRecordKey(keys: StoreKeys): string {
  return `${keys.root}/last-pass.json`;
}

export interface StoredPass {
  record?: PassRecord;
  /** The ETag of what is stored (also of a record that cannot be read, so that it can be replaced). */
  etag?: string;
  /** The record is there but cannot be read (edited by hand, truncated): why. */
  problem?: string;
}

const ATTEMPTS = 3;

export class PassRecordStore {
  constructor(private readonly objects: ObjectStore, private readonly keys: StoreKeys) {}

  async get(): Promise<StoredPass> {
    const got = await this.objects.get(passRecordKey(this.keys));
    if (!got) return {};
    const parsed = parseRecord(got.body, passRecordSchema);
    return parsed.ok ? { record: parsed.value, etag: got.etag } : { etag: got.etag, problem: `${passRecordKey(this.keys)} is ${parsed.problem}` };
  }

  /**
   * Stores `record` unless a pass that started later stored its own, or (without `always`: the
   * pass wrote nothing else) the stored record names the same problems (same digest). `read`
   * is what the pass read at its start. Returns whether it wrote.
   */
  async put(record: PassRecord, read: StoredPass, always: boolean): Promise<boolean> {
    let stored = read;
    for (let attempt = 1; ; attempt++) {
      if (stored.record && ((!always && stored.record.digest === record.digest) || stored.record.startedAt > record.startedAt)) return false;
      try {
        await this.objects.put(passRecordKey(this.keys), JSON.stringify(record), stored.etag ? { ifMatch: stored.etag } : { ifNoneMatch: '*' });
        return true;
      } catch (err) {
        if (!(err instanceof PreconditionFailedError) || attempt >= ATTEMPTS) throw err;
        stored = await this.get();
      }
    }
  }
}
