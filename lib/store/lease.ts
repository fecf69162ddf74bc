/**
 * The cluster lease: at most one run acts on a cluster at a time.
 *
 * Taking a free lease is a create with If-None-Match: *; every other write (renew, mark
 * preemptible, release, take over an expired, released or preemptible lease) carries
 * If-Match on the ETag that was read. Two runs that race for the lease therefore cannot
 * both win: S3 accepts exactly one of the conditional writes and refuses the other.
 *
 * Assumptions / Invariants
 * - Expiry is judged by the store's clock alone. A lease is expired when the store's time
 *   at the read (the GET's Date header) is more than the holder's lease duration (its
 *   LEASE_SECONDS, recorded in the lease) after the object's Last-Modified. Both are whole
 *   seconds, truncated, from the same clock, so the measured age can exceed the true age
 *   by up to a second: it must reach duration + 1 s. Local clocks play no part, so a fast
 *   one cannot take over a live lease and a slow one cannot keep an expired one alive.
 * - The holder times its own lease with the local clock, as the time elapsed since it sent
 *   its last successful write. The store wrote after that, so the holder never thinks its
 *   lease younger than the store does; a clock's offset cancels out.
 * - One Lease makes one request at a time, in call order: its writes never race each
 *   other's If-Match, so a refused condition always means another run wrote the lease.
 * - A holder that learns it lost the lease stays lost: every later call throws the same
 *   LeaseLostError, and release() leaves the new holder's lease alone.
 * - A lease is preemptible only while no step of its holder is acting: from the confirm()
 *   of a step run through whileActing() to the end of that step (a managed driver's
 *   deletions), markPreemptible() of any other part of the run (another DaemonSet's driver
 *   that finished its wave) is held back, and applied when the last acting step ends. The
 *   check is made when the mark would be sent, after the step's confirm() was queued, so a
 *   mark can never land between a step's confirmation and its end.
 */
import { Clock, systemClock } from '../clock';
import { LeaseHeldError, LeaseHolder, LeaseLostError, PreconditionFailedError, StoreError } from '../errors';
import type { ObjectStore, StoredText, WriteCondition } from './object-store';
import { LeaseRecord, leaseSchema } from './records';

export interface AcquireOptions {
  /** Also take over a live lease whose holder marked it preemptible (an operator's rollback). */
  preempt?: boolean;
}

interface Read {
  text: StoredText;
  /** Undefined when the object is not a lease record (it is then treated as free). */
  record?: LeaseRecord;
}

export class Lease {
  private etag?: string;
  private record?: LeaseRecord;
  /** Local clock, epoch ms: when our last successful write was sent. */
  private sentAt = 0;
  private lost?: LeaseLostError;
  /** Every request of this Lease, one after the other. */
  private queue: Promise<unknown> = Promise.resolve();
  /** A renewal queued and not sent yet: callers that arrive now share it. */
  private nextRenewal?: { done: Promise<void>; endsPreemptible: boolean };
  /** The renewal being sent now. */
  private renewing?: Promise<void>;
  /** Steps between their confirm() and their end (whileActing): the lease is not marked preemptible while there are any. */
  private acting = 0;
  /** A preemptible mark asked for while steps were acting: applied when the last one ends. */
  private heldBackMark?: { reason?: string };

  constructor(
    private readonly objects: ObjectStore,
    private readonly key: string,
    readonly holder: string,
    private readonly seconds: number,
    private readonly clock: Clock = systemClock,
  ) {}

  private get held(): boolean {
    return this.etag !== undefined;
  }

  /**
   * Takes the lease, or throws LeaseHeldError naming the holder and when its lease expires
   * by the store's clock. Free: absent, released, unreadable, expired, already ours, or,
   * with `preempt`, held by a run that is only watching.
   */
  acquire(operation: string, options: AcquireOptions = {}): Promise<void> {
    return this.serially(async () => {
      this.lost = undefined;
      let current = await this.read();
      for (let attempt = 1; ; attempt += 1) {
        if (current && !this.isFree(current, options)) throw new LeaseHeldError(holderOf(current, this.seconds));
        const now = this.clock.now().toISOString();
        const record = this.body({ holder: this.holder, operation, acquiredAt: now, preemptible: false });
        const refused = await this.write(record, current ? { ifMatch: current.text.etag } : { ifNoneMatch: '*' });
        if (refused === undefined) return;
        // Another run wrote the lease between our read and our write. What it wrote may be
        // free for us as well (a preemptible holder renewed): decide again, a few times.
        if (attempt === 3) throw new LeaseHeldError(refused ? holderOf(refused, this.seconds) : unknownHolder(now));
        current = refused ?? undefined;
      }
    });
  }

  /**
   * Proof of holding, for just before a destructive step: resolves once a renewal that was
   * sent after this call succeeded, and throws LeaseLostError if another run took the lease.
   * Concurrent callers share one renewal. A holder about to act is no longer only
   * watching, so this renewal also ends preemptibility (markPreemptible() sets it again).
   */
  confirm(): Promise<void> {
    return this.renewal({ endsPreemptible: true });
  }

  /** Extends the lease (a preemptible lease stays preemptible); throws LeaseLostError if another run took it. */
  renew(): Promise<void> {
    return this.renewal({ endsPreemptible: false });
  }

  /**
   * Renews when half the lease time has passed since our last write, by the local clock.
   * Without a write it learns of a takeover only from an earlier check(), confirm() or renewal.
   */
  async renewIfDue(): Promise<void> {
    if (this.lost) throw this.lost;
    if (!this.held) return;
    const pending = this.renewing ?? this.nextRenewal?.done;
    if (pending) return pending;
    if (this.clock.now().getTime() - this.sentAt >= (this.seconds * 1000) / 2) return this.renew();
  }

  /**
   * Declares that this run is only watching: an operator's rollback may take the lease
   * over (acquire with `preempt`). Renewals keep the mark; confirm() ends it. While a step
   * of this run is acting (whileActing), the mark is held back until the last one ends.
   */
  markPreemptible(reason?: string): Promise<void> {
    this.nextRenewal = undefined; // a confirm() after this call must not share a renewal sent before it
    return this.serially(async () => {
      const record = this.holding();
      if (this.acting > 0) {
        this.heldBackMark = { reason };
        return;
      }
      this.heldBackMark = undefined;
      if (record.preemptible && record.preemptibleReason === reason) return;
      await this.replace(this.body({ ...record, preemptible: true, preemptibleReason: reason }));
    });
  }

  /**
   * Runs a destructive step under proof of holding: confirm() first (which ends
   * preemptibility), then `step`. Until every step run this way has ended, the lease is not
   * marked preemptible; a mark asked for meanwhile is applied when the last one ends.
   */
  async whileActing<T>(step: () => Promise<T>): Promise<T> {
    this.acting += 1;
    try {
      await this.confirm();
      return await step();
    } finally {
      this.acting -= 1;
      const held = this.acting === 0 ? this.heldBackMark : undefined;
      if (held) await this.markPreemptible(held.reason).catch(() => undefined); // a lost lease is reported by the run's next call
    }
  }

  /** One read, no write: throws LeaseLostError, naming who took the lease and for what, when it is no longer ours. */
  check(): Promise<void> {
    return this.serially(async () => {
      this.holding();
      const current = await this.read();
      if (current?.text.etag !== this.etag) this.lose(current);
    });
  }

  /** Marks the lease released, conditionally: a lease another run took over is left alone. */
  release(): Promise<void> {
    this.heldBackMark = undefined;
    return this.serially(async () => {
      if (!this.etag || !this.record) return;
      const released: LeaseRecord = { ...this.record, released: true, preemptible: false, preemptibleReason: undefined, expiresAt: this.clock.now().toISOString() };
      try {
        await this.write(released, { ifMatch: this.etag });
      } finally {
        this.etag = undefined;
      }
    });
  }

  /** The next renewal to be sent: queued now unless one is already waiting, which is then shared. */
  private renewal(wants: { endsPreemptible: boolean }): Promise<void> {
    const next = this.nextRenewal ?? this.queueRenewal();
    next.endsPreemptible ||= wants.endsPreemptible;
    return next.done;
  }

  private queueRenewal(): { done: Promise<void>; endsPreemptible: boolean } {
    const next = { endsPreemptible: false, done: Promise.resolve() };
    next.done = this.serially(async () => {
      if (this.nextRenewal === next) this.nextRenewal = undefined;
      this.renewing = next.done;
      try {
        const record = this.holding();
        await this.replace(this.body(next.endsPreemptible ? { ...record, preemptible: false } : record));
      } finally {
        this.renewing = undefined;
      }
    });
    this.nextRenewal = next;
    return next;
  }

  private serially<T>(step: () => Promise<T>): Promise<T> {
    const run = this.queue.then(step);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Our record, or LeaseLostError when we do not hold the lease. */
  private holding(): LeaseRecord {
    if (this.lost) throw this.lost;
    if (!this.etag || !this.record) throw new LeaseLostError('this run does not hold the lease (it was never taken, or was released)');
    return this.record;
  }

  /** A fresh record: renewed now, for this run's lease duration. */
  private body(from: Pick<LeaseRecord, 'holder' | 'operation' | 'acquiredAt' | 'preemptible' | 'preemptibleReason'>): LeaseRecord {
    const now = this.clock.now();
    return {
      holder: from.holder,
      operation: from.operation,
      acquiredAt: from.acquiredAt,
      renewedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + this.seconds * 1000).toISOString(),
      released: false,
      seconds: this.seconds,
      preemptible: from.preemptible,
      preemptibleReason: from.preemptible ? from.preemptibleReason : undefined,
    };
  }

  private isFree(current: Read, options: AcquireOptions): boolean {
    const c = current.record;
    if (!c || c.released || c.holder === this.holder) return true;
    if (options.preempt && c.preemptible) return true;
    return isExpired(current.text, c.seconds ?? this.seconds);
  }

  private async read(): Promise<Read | undefined> {
    const text = await this.objects.get(this.key);
    if (!text) return undefined;
    const parsed = leaseSchema.safeParse(safeJson(text.body));
    return { text, record: parsed.success ? parsed.data : undefined };
  }

  /**
   * Writes the record under the condition. Returns undefined when it was written; when the
   * condition was refused, what the lease holds instead (null: nothing).
   */
  private async write(record: LeaseRecord, condition: WriteCondition): Promise<Read | null | undefined> {
    const body = JSON.stringify(record);
    const sentAt = this.clock.now().getTime();
    try {
      this.etag = await this.objects.put(this.key, body, condition);
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      const current = await this.read();
      // The SDK retries a write whose answer was lost; the retry then meets our own write.
      if (current?.text.body !== body) return current ?? null;
      this.etag = current.text.etag;
    }
    this.record = record;
    this.sentAt = sentAt;
    return undefined;
  }

  /** A write that requires the lease to be ours; LeaseLostError when another run wrote it. */
  private async replace(record: LeaseRecord): Promise<void> {
    const refused = await this.write(record, { ifMatch: this.etag });
    if (refused !== undefined) this.lose(refused ?? undefined);
  }

  private lose(current: Read | undefined): never {
    this.etag = undefined;
    const c = current?.record;
    const who = c ? `${c.holder} (${c.operation})` : undefined;
    const what = !current
      ? 'the lease was deleted from the store'
      : !c
        ? 'the lease was overwritten with something that is not a lease'
        : c.released
          ? `the lease was taken over by ${who} and released since`
          : `the lease was taken over by ${who} at ${c.acquiredAt}`;
    this.lost = new LeaseLostError(`${what}; this run stops without further changes`, current && c ? holderOf(current, this.seconds) : undefined);
    throw this.lost;
  }
}

/** Expired by the store's clock: its last write is more than `seconds` old (see the module comment). */
function isExpired(text: StoredText, seconds: number): boolean {
  if (!text.lastModified || !text.serverTime) {
    throw new StoreError('the store did not say when the lease was written or what time it is (Last-Modified, Date); cannot judge its expiry');
  }
  return text.serverTime.getTime() - text.lastModified.getTime() >= (seconds + 1) * 1000;
}

/** Who holds the lease, with its expiry by the store's clock. */
function holderOf(current: Read, seconds: number): LeaseHolder {
  const c = current.record;
  if (!c) return unknownHolder(current.text.lastModified?.toISOString() ?? 'unknown');
  const written = current.text.lastModified;
  const expiresAt = written ? new Date(written.getTime() + (c.seconds ?? seconds) * 1000).toISOString() : c.expiresAt;
  return { holder: c.holder, operation: c.operation, acquiredAt: c.acquiredAt, expiresAt, preemptible: c.preemptible };
}

function unknownHolder(at: string): LeaseHolder {
  return { holder: 'unknown', operation: 'unknown', acquiredAt: at, expiresAt: at };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
