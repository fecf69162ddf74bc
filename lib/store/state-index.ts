/**
 * The state index: one object per cluster (<root>/index.json) holding a copy of every
 * DaemonSet's state.json with its ETag, so a pass reads the whole fleet's recorded state
 * with one GET. Each state.json stays the source of truth; the index is a cache of them that
 * says which of its entries it cannot vouch for.
 *
 * Assumptions / Invariants
 * - Every writer of a state.json first adds a token of its own to that DaemonSet's entry
 *   (`mark`), then writes the state, then `settle`s: it reads state.json, and writes the
 *   entry as read with its token removed, conditional on the index it read (If-Match).
 *   state.json is read after the index it is written over, at every attempt: a settle that
 *   loses the race reads both again, never writes a copy read before (another writer may
 *   have settled a newer state in between).
 * - Hence: whenever an entry differs from its state.json, the entry holds a token. The last
 *   write that made them differ was by a writer whose token was in the index at that moment;
 *   it removes the token only in a settle whose reads both follow that write, and a settle's
 *   write lands only if the index did not change after it was read. A writer that arrives in
 *   between adds its own token first, which either is in what the settle read (and is kept)
 *   or makes the settle's If-Match fail (and it reads again).
 * - So an entry without tokens is the state (or, with no state, its absence); an entry with
 *   tokens, or no entry, is read from state.json. A writer killed between its state write
 *   and its settle leaves its token: the DaemonSet costs one more GET per pass until a pass
 *   repairs the entry, which it does for tokens older than any writer lives (WRITER_MAX_MS).
 * - A token's age is judged by the store's clock alone, as the lease's is: a token carries
 *   the store's time when it was marked (the writer's estimate from the Date of its last
 *   index read, rounded up so that it is never earlier than the store's time), and a reader
 *   judges it against the Date of its own read of the index. A writer whose clock is slow
 *   therefore never has its token taken for a dead writer's.
 * - Writes of one process are queued and coalesced: one index write carries the marks and
 *   settles of every state write waiting for it.
 */
import { randomBytes } from 'node:crypto';
import * as z from 'zod/mini';
import '../schema';
import { PreconditionFailedError } from '../errors';
import type { ObjectStore } from './object-store';
import { DaemonSetState, stateSchema } from './records';

/** No writer is alive this long after it marked an entry: a Lambda runs at most 15 minutes. */
export const WRITER_MAX_MS = 20 * 60_000;
const WRITE_ATTEMPTS = 20;

const entrySchema = z.object({
  /** The ETag of state.json as copied; absent with `state`: there was no state.json. */
  etag: z.optional(z.string()),
  state: z.optional(stateSchema),
  /** Writers between their mark and their settle: token -> when it marked (ISO, by the store's clock; see the module comment). */
  pending: z.optional(z.record(z.string(), z.string())),
});
export type IndexEntry = z.infer<typeof entrySchema>;

const indexSchema = z.object({
  schema: z.literal(1),
  entries: z.record(z.string(), entrySchema),
});
export type StateIndexRecord = z.infer<typeof indexSchema>;

/** What a settle copies into the entry: state.json as read after the writer's last write. */
export interface StateRead {
  value?: DaemonSetState;
  etag?: string;
}

/**
 * One change of the index, prepared for each attempt of a write (after the index it applies
 * to was read): what it reads (a settle's state.json) is read again at every attempt.
 */
type Change = (storeNow: () => string) => Promise<(index: StateIndexRecord) => void>;

/** Rounds a store time estimate up: Date headers are whole seconds, truncated, and an answer takes time to arrive. */
const STORE_CLOCK_MARGIN_MS = 2_000;

/**
 * The tokens of `pending` whose writers are dead by the store's clock: marked more than
 * WRITER_MAX_MS before `storeNow` (the Date of the read of the index that holds them). A
 * token whose time cannot be read is judged dead too (no writer writes one).
 */
export function staleTokens(pending: Record<string, string> | undefined, storeNow: Date): string[] {
  return Object.entries(pending ?? {}).filter(([, at]) => !(storeNow.getTime() - Date.parse(at) < WRITER_MAX_MS)).map(([t]) => t);
}

export class StateIndex {
  /** The index as this process last wrote or read it: a write is conditional on its ETag. */
  private known?: { index: StateIndexRecord; etag: string };
  /** The store's clock less the local one, from the Date of the last read of the index (undefined: none seen yet). */
  private storeOffsetMs?: number;
  /** The store's time (its Date header) when the index was last read, for judging tokens. */
  private lastReadAt?: Date;
  private waiting: { change: Change; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private writing = false;

  constructor(
    private readonly objects: ObjectStore,
    private readonly key: string,
    private readonly localNow: () => number = Date.now,
  ) {}

  static token(): string {
    return randomBytes(6).toString('hex');
  }

  /** The index as stored now, or undefined when there is none or it cannot be read (then every entry comes from state.json). */
  async read(): Promise<StateIndexRecord | undefined> {
    const got = await this.objects.get(this.key);
    this.noteStoreTime(got?.serverTime);
    if (!got) return undefined;
    const parsed = indexSchema.safeParse(safeJson(got.body));
    // An index that is not one (edited by hand, truncated) vouches for nothing; the next write replaces it.
    this.known = { index: parsed.success ? parsed.data : { schema: 1, entries: {} }, etag: got.etag };
    return parsed.success ? structuredClone(parsed.data) : undefined;
  }

  /**
   * The store's time when the index was last read by this process (its Date header), or the
   * local time when the store did not say: what a reader judges tokens against.
   */
  readAt(): Date {
    return this.lastReadAt ?? new Date(this.localNow());
  }

  /**
   * Before a write of `key`'s state.json: the entry is no longer vouched for until this token
   * is settled. `at`: the store's time of the mark when the caller knows it (a test that
   * leaves a dead writer's token); by default, the store's time estimated when it is written.
   */
  mark(key: string, token: string, at?: string): Promise<void> {
    return this.change(async (storeNow) => {
      at ??= storeNow();
      return (index) => {
        const entry = (index.entries[key] ??= {});
        entry.pending = { ...entry.pending, [token]: at! };
      };
    });
  }

  /**
   * After the write of `key`'s state.json (or after it failed): copies state.json, as `read`
   * reads it after the index this write replaces was read, into the entry and removes the
   * token. `stale` tokens (writers long dead) go too.
   */
  settle(key: string, read: () => Promise<StateRead>, token?: string, stale: string[] = []): Promise<void> {
    return this.change(async () => {
      const state = await read();
      return (index) => {
        const pending = { ...index.entries[key]?.pending };
        if (token) delete pending[token];
        for (const t of stale) delete pending[t];
        index.entries[key] = { etag: state.value ? state.etag : undefined, state: state.value, ...(Object.keys(pending).length ? { pending } : {}) };
      };
    });
  }

  private noteStoreTime(serverTime: Date | undefined): void {
    if (!serverTime) return;
    this.lastReadAt = serverTime;
    this.storeOffsetMs = serverTime.getTime() - this.localNow();
  }

  /** The store's time now, as estimated from the last read of the index, never earlier than it (ISO). */
  private storeNow(): string {
    const now = this.localNow();
    return new Date(now + (this.storeOffsetMs ?? 0) + STORE_CLOCK_MARGIN_MS).toISOString();
  }

  /** Queues a change; changes waiting together are written in one conditional write. */
  private change(change: Change): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ change, resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0);
        try {
          await this.write(batch.map((b) => b.change));
          for (const b of batch) b.resolve();
        } catch (err) {
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private async write(changes: Change[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (!this.known) await this.read();
      const base = this.known;
      // Prepared after the index was read, at every attempt: what a settle copies is read now.
      const applies = await Promise.all(changes.map((c) => c(() => this.storeNow())));
      const next: StateIndexRecord = base ? structuredClone(base.index) : { schema: 1, entries: {} };
      for (const apply of applies) apply(next);
      try {
        const etag = await this.objects.put(this.key, JSON.stringify(next), base ? { ifMatch: base.etag } : { ifNoneMatch: '*' });
        this.known = { index: next, etag };
        return;
      } catch (err) {
        this.known = undefined; // another process wrote it: read it again
        if (err instanceof PreconditionFailedError && attempt < WRITE_ATTEMPTS) continue;
        throw err;
      }
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
