/**
 * Revision snapshots and per-DaemonSet state in S3. Nothing is overwritten blindly:
 * revision numbers are claimed with If-None-Match: *, and every update of an existing
 * object is conditional on the ETag that was read. Every state write also goes through the
 * state index (state-index.ts), so a pass reads all the states it needs in one GET.
 */
import type * as z from 'zod/mini';
import { PreconditionFailedError, RecordUnreadableError, SnapshotWriteError, StoreError } from '../errors';
import { mapLimit } from '../util';
import { StoreKeys } from './keys';
import { Clock, systemClock } from '../clock';
import type { ObjectStore, WriteCondition } from './object-store';
import { staleTokens, StateIndex, StateIndexRecord } from './state-index';
import { DaemonSetState, GateRecord, Outcome, RevisionSnapshot, revisionSchema, stateSchema } from './records';

export interface Versioned<T> {
  value: T;
  etag: string;
}

/** How many times a read-modify-write retries after losing a race. */
const UPDATE_ATTEMPTS = 5;
/** state.json objects read at once when the index cannot vouch for them. */
const STATE_READ_CONCURRENCY = 16;

export interface StatesRead {
  states: Map<string, Versioned<DaemonSetState> | undefined>;
  /** Keys whose state.json is there but cannot be read as a state: absent from `states`, and never repaired or written. */
  unreadable: Map<string, RecordUnreadableError>;
  /** Keys read from their state.json because the index could not vouch for them. */
  unvouched: string[];
}

/** A record's text parsed and checked against its schema, or what is wrong with it. */
export function parseRecord<T>(body: string, schema: z.ZodMiniType<T>): { ok: true; value: T } | { ok: false; problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (err) {
    return { ok: false, problem: `not valid JSON: ${(err as Error).message}` };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, problem: `not the expected shape: ${issue?.path.join('.') || '(top level)'}: ${issue?.message}` };
  }
  return { ok: true, value: parsed.data };
}

export class StateStore {
  readonly index: StateIndex;

  constructor(
    readonly objects: ObjectStore,
    readonly keys: StoreKeys,
    clock: Clock = systemClock,
  ) {
    this.index = new StateIndex(objects, keys.index(), () => clock.now().getTime());
  }

  private async read<T>(key: string, schema: z.ZodMiniType<T>): Promise<Versioned<T> | undefined> {
    const got = await this.objects.get(key);
    if (!got) return undefined;
    const parsed = parseRecord(got.body, schema);
    if (!parsed.ok) throw new RecordUnreadableError(key, parsed.problem, this.keys.daemonSetOf(key));
    return { value: parsed.value, etag: got.etag };
  }

  // ---- per-DaemonSet state ------------------------------------------------------------

  getState(namespace: string, name: string): Promise<Versioned<DaemonSetState> | undefined> {
    return this.read(this.keys.state(namespace, name), stateSchema);
  }

  /**
   * Creates the state (etag undefined) or replaces the version that was read; the index is
   * marked before and settled after (state-index.ts), whatever became of the write.
   */
  async putState(state: DaemonSetState, etag: string | undefined): Promise<string> {
    const key = this.keys.state(state.namespace, state.name);
    const ds = `${state.namespace}/${state.name}`;
    const token = StateIndex.token();
    await this.index.mark(ds, token);
    let written: string;
    try {
      written = await this.putConditional(key, `${JSON.stringify(state, null, 2)}\n`, etag ? { ifMatch: etag } : { ifNoneMatch: '*' });
    } finally {
      // A settle that fails leaves the token: the entry is then read from state.json until a pass repairs it.
      await this.settleIndex(state.namespace, state.name, token).catch(() => undefined);
    }
    return written;
  }

  /**
   * A conditional write that tells a refusal from its own retry: the SDK retries a write whose
   * answer was lost (a connection reset), and the retry then meets the write it repeats and is
   * refused. When what the key holds is exactly this body, the write was ours and it stands;
   * a revision is never claimed twice for one snapshot. (Each body names its run and time, so
   * another writer's body is never equal.)
   */
  private async putConditional(key: string, body: string, condition: WriteCondition): Promise<string> {
    try {
      return await this.objects.put(key, body, condition);
    } catch (err) {
      // Only a write the SDK sent more than once can have been refused by itself: a refusal at the
      // first attempt is another writer's, even when it wrote the same bytes.
      if (!(err instanceof PreconditionFailedError) || !sentMoreThanOnce(err)) throw err;
      const there = await this.objects.get(key);
      if (there?.body === body) return there.etag;
      throw err;
    }
  }

  /** Copies state.json as it is when the index is written into the index, removing `token` and the tokens of writers long dead. */
  private async settleIndex(namespace: string, name: string, token?: string, stale: string[] = []): Promise<void> {
    await this.index.settle(`${namespace}/${name}`, async () => {
      const read = await this.getState(namespace, name);
      return { value: read?.value, etag: read?.etag };
    }, token, stale);
  }

  /**
   * The state of each namespace/name key: one GET of the index (or `index`, a read of it
   * started earlier), plus a GET of state.json for
   * each key the index cannot vouch for (no entry, a writer's token on it) and each key in
   * `fresh`. With `repair`, entries that no live writer holds are brought up to date.
   */
  async readStates(
    keys: string[],
    options: { fresh?: Set<string>; repair?: boolean; index?: Promise<StateIndexRecord | undefined> } = {},
  ): Promise<StatesRead> {
    const index = await (options.index ?? this.index.read());
    // Tokens are judged by the store's clock: the Date of this read of the index.
    const storeNow = this.index.readAt();
    const states = new Map<string, Versioned<DaemonSetState> | undefined>();
    const unvouched: string[] = [];
    const unreadable = new Map<string, RecordUnreadableError>();
    const repairs: { key: string; stale: string[] }[] = [];
    await mapLimit(keys, STATE_READ_CONCURRENCY, async (key) => {
      const entry = index?.entries[key];
      if (entry && !entry.pending && !options.fresh?.has(key)) {
        states.set(key, entry.state ? { value: entry.state, etag: entry.etag ?? '' } : undefined);
        return;
      }
      const [namespace, name] = key.split('/');
      let read: Versioned<DaemonSetState> | undefined;
      try {
        read = await this.getState(namespace, name);
      } catch (err) {
        if (!(err instanceof RecordUnreadableError)) throw err;
        unreadable.set(key, err);
        return;
      }
      states.set(key, read);
      if (!entry || entry.pending) unvouched.push(key);
      const tokens = Object.keys(entry?.pending ?? {});
      const stale = staleTokens(entry?.pending, storeNow);
      if (stale.length === tokens.length && (!entry || stale.length > 0 || entry.etag !== read?.etag)) repairs.push({ key, stale });
    });
    if (options.repair) {
      await Promise.all(repairs.map((r) => {
        const [namespace, name] = r.key.split('/');
        return this.settleIndex(namespace, name, undefined, r.stale);
      }));
    }
    return { states, unreadable, unvouched: unvouched.sort() };
  }

  /**
   * Read-modify-write of one DaemonSet's state. `change` gets the current state (or
   * undefined) and returns the new one; on a lost race it runs again on fresh data.
   */
  async updateState(
    namespace: string,
    name: string,
    change: (current: DaemonSetState | undefined) => DaemonSetState | undefined,
  ): Promise<DaemonSetState | undefined> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.getState(namespace, name);
      const next = change(current?.value);
      if (!next) return current?.value;
      try {
        await this.putState(next, current?.etag);
        return next;
      } catch (err) {
        if (err instanceof PreconditionFailedError && attempt < UPDATE_ATTEMPTS) continue;
        throw err;
      }
    }
  }

  /** Every DaemonSet that has state in this cluster's prefix, as namespace/name. */
  async listTracked(): Promise<{ namespace: string; name: string }[]> {
    const prefix = this.keys.daemonSets();
    const out: { namespace: string; name: string }[] = [];
    for (const key of await this.objects.list(prefix)) {
      const m = /^([^/]+)\/([^/]+)\/state\.json$/.exec(key.slice(prefix.length));
      if (m) out.push({ namespace: m[1], name: m[2] });
    }
    return out;
  }

  // ---- revisions ----------------------------------------------------------------------

  async listRevisionNumbers(namespace: string, name: string): Promise<number[]> {
    const keys = await this.objects.list(this.keys.revisions(namespace, name));
    return keys.map(StoreKeys.revisionNumber).filter((n): n is number => n !== undefined).sort((a, b) => a - b);
  }

  getRevision(namespace: string, name: string, n: number): Promise<Versioned<RevisionSnapshot> | undefined> {
    return this.read(this.keys.revision(namespace, name, n), revisionSchema);
  }

  /**
   * Writes a new snapshot under the next free revision number. The number is claimed with
   * If-None-Match: *, so when two writers race for the same number exactly one wins and the
   * other moves on to the next number. Returns the snapshot as written.
   */
  async claimRevision(snapshot: Omit<RevisionSnapshot, 'revision'>, after: number): Promise<RevisionSnapshot> {
    let n = after + 1;
    for (let attempt = 0; attempt < 50; attempt++, n++) {
      const full: RevisionSnapshot = { ...snapshot, revision: n };
      try {
        if (await this.claimRevisionAt(full)) return full;
      } catch (err) {
        throw new SnapshotWriteError(
          `could not write revision ${n} of ${snapshot.namespace}/${snapshot.name} to S3, so nothing was applied: ${(err as Error).message}`,
          err,
        );
      }
    }
    throw new SnapshotWriteError(`could not claim a revision number for ${snapshot.namespace}/${snapshot.name} after 50 attempts`);
  }

  /**
   * Writes a snapshot under its own revision number, if that number is free
   * (If-None-Match: *). False when another writer holds the number.
   */
  async claimRevisionAt(snapshot: RevisionSnapshot): Promise<boolean> {
    const key = this.keys.revision(snapshot.namespace, snapshot.name, snapshot.revision);
    try {
      await this.putConditional(key, `${JSON.stringify(snapshot, null, 2)}\n`, { ifNoneMatch: '*' });
      return true;
    } catch (err) {
      if (err instanceof PreconditionFailedError) return false;
      throw err;
    }
  }

  /**
   * Records what became of a revision. Only the outcome fields change, and `gates` (what a
   * managed rollout's gates measured, kept when not given); the rest stays as written.
   */
  async setOutcome(namespace: string, name: string, n: number, outcome: Outcome, at: string, reason?: string, appliedAt?: string, gates?: GateRecord): Promise<void> {
    const key = this.keys.revision(namespace, name, n);
    for (let attempt = 1; ; attempt++) {
      const current = await this.getRevision(namespace, name, n);
      if (!current) throw new StoreError(`revision ${n} of ${namespace}/${name} is missing from S3 (${key})`);
      const next: RevisionSnapshot = {
        ...current.value,
        outcome,
        outcomeAt: at,
        outcomeReason: reason,
        appliedAt: appliedAt ?? current.value.appliedAt,
        ...(gates ? { gates } : {}),
      };
      try {
        await this.putConditional(key, `${JSON.stringify(next, null, 2)}\n`, { ifMatch: current.etag });
        return;
      } catch (err) {
        if (err instanceof PreconditionFailedError && attempt < UPDATE_ATTEMPTS) continue;
        throw err;
      }
    }
  }
}

/** Whether the SDK sent the refused request more than once (its metadata counts the attempts). */
function sentMoreThanOnce(err: PreconditionFailedError): boolean {
  const attempts = (err.cause as { $metadata?: { attempts?: number } } | undefined)?.$metadata?.attempts;
  return attempts !== undefined && attempts > 1;
}
