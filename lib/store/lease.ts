/**
 * The cluster lease: at most one run acts on a cluster at a time.
 *
 * Taking a free lease is a create with If-None-Match: *; renewing, releasing, and taking
 * over an expired or released lease are writes with If-Match on the ETag that was read.
 * Two runs that race for the lease therefore cannot both win: S3 accepts exactly one of
 * the conditional writes and refuses the other with 412.
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
 */
import { LeaseHeldError, LeaseHolder, LeaseLostError, PreconditionFailedError, StoreError } from '../errors';
import type { ObjectStore, StoredText } from './object-store';
import { LeaseRecord, leaseSchema } from './records';

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

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

  constructor(
    private readonly objects: ObjectStore,
    private readonly key: string,
    readonly holder: string,
    private readonly seconds: number,
    private readonly clock: Clock = systemClock,
  ) {}

  get held(): boolean {
    return this.etag !== undefined;
  }

  private body(operation: string, acquiredAt: string): LeaseRecord {
    const now = this.clock.now();
    return {
      holder: this.holder,
      operation,
      acquiredAt,
      renewedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + this.seconds * 1000).toISOString(),
      released: false,
      seconds: this.seconds,
    };
  }

  private async readCurrent(): Promise<Read | undefined> {
    const text = await this.objects.get(this.key);
    if (!text) return undefined;
    const parsed = leaseSchema.safeParse(safeJson(text.body));
    // An unreadable lease is treated as expired rather than blocking every run forever.
    return { text, record: parsed.success ? parsed.data : undefined };
  }

  /**
   * Takes the lease, or throws LeaseHeldError naming the holder and when its lease expires
   * by the store's clock. Free: absent, released, unreadable, expired, or already ours.
   */
  async acquire(operation: string): Promise<void> {
    const now = this.clock.now();
    const current = await this.readCurrent();
    const record = this.body(operation, now.toISOString());
    const sentAt = this.clock.now().getTime();
    try {
      if (!current) {
        this.etag = await this.objects.put(this.key, JSON.stringify(record), { ifNoneMatch: '*' });
      } else {
        const c = current.record;
        const free = !c || c.released || c.holder === this.holder || isExpired(current.text, c.seconds ?? this.seconds);
        if (!free) throw new LeaseHeldError(holderOf(current, this.seconds));
        this.etag = await this.objects.put(this.key, JSON.stringify(record), { ifMatch: current.text.etag });
      }
      this.record = record;
      this.sentAt = sentAt;
    } catch (err) {
      if (err instanceof PreconditionFailedError) {
        // Someone else wrote the lease between our read and our write: they hold it now.
        const winner = await this.readCurrent();
        if (winner?.record) throw new LeaseHeldError(holderOf(winner, this.seconds));
        throw new LeaseHeldError({ holder: 'unknown', operation: 'unknown', acquiredAt: now.toISOString(), expiresAt: now.toISOString() });
      }
      throw err;
    }
  }

  /** Extends the lease; throws LeaseLostError if another run took it over meanwhile. */
  async renew(): Promise<void> {
    if (!this.etag || !this.record) throw new LeaseLostError('renew called without holding the lease');
    const next = this.body(this.record.operation, this.record.acquiredAt);
    const sentAt = this.clock.now().getTime();
    try {
      this.etag = await this.objects.put(this.key, JSON.stringify(next), { ifMatch: this.etag });
      this.record = next;
      this.sentAt = sentAt;
    } catch (err) {
      if (err instanceof PreconditionFailedError) {
        this.etag = undefined;
        throw new LeaseLostError(`the lease was taken over by another run (it expired at ${this.record.expiresAt}); stopping without further changes`);
      }
      throw err;
    }
  }

  /** Renews when half the lease time has passed since our last write, by the local clock. */
  async renewIfDue(): Promise<void> {
    if (!this.record) return;
    if (this.clock.now().getTime() - this.sentAt >= (this.seconds * 1000) / 2) await this.renew();
  }

  /** Marks the lease released, conditionally: a lease someone else took over is left alone. */
  async release(): Promise<void> {
    if (!this.etag || !this.record) return;
    const released: LeaseRecord = { ...this.record, released: true, expiresAt: this.clock.now().toISOString() };
    try {
      await this.objects.put(this.key, JSON.stringify(released), { ifMatch: this.etag });
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
    } finally {
      this.etag = undefined;
    }
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
  if (!c) return { holder: 'unknown', operation: 'unknown', acquiredAt: 'unknown', expiresAt: 'unknown' };
  const written = current.text.lastModified;
  const expiresAt = written ? new Date(written.getTime() + (c.seconds ?? seconds) * 1000).toISOString() : c.expiresAt;
  return { holder: c.holder, operation: c.operation, acquiredAt: c.acquiredAt, expiresAt };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
