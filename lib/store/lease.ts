/**
 * The cluster lease: at most one run acts on a cluster at a time.
 *
 * Taking a free lease is a create with If-None-Match: *; renewing, releasing, and taking
 * over an expired or released lease are writes with If-Match on the ETag that was read.
 * Two runs that race for the lease therefore cannot both win: S3 accepts exactly one of
 * the conditional writes and refuses the other with 412.
 */
import { LeaseHeldError, LeaseLostError, PreconditionFailedError } from '../errors';
import type { ObjectStore } from './object-store';
import { LeaseRecord, leaseSchema } from './records';

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export class Lease {
  private etag?: string;
  private record?: LeaseRecord;

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

  get expiresAt(): string | undefined {
    return this.record?.expiresAt;
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
    };
  }

  private async readCurrent(): Promise<{ record?: LeaseRecord; etag: string } | undefined> {
    const got = await this.objects.get(this.key);
    if (!got) return undefined;
    const parsed = leaseSchema.safeParse(safeJson(got.body));
    // An unreadable lease is treated as expired rather than blocking every run forever.
    return { record: parsed.success ? parsed.data : undefined, etag: got.etag };
  }

  /** Takes the lease or throws LeaseHeldError naming the holder and its expiry. */
  async acquire(operation: string): Promise<void> {
    const now = this.clock.now();
    const current = await this.readCurrent();
    const record = this.body(operation, now.toISOString());
    try {
      if (!current) {
        this.etag = await this.objects.put(this.key, JSON.stringify(record), { ifNoneMatch: '*' });
      } else {
        const c = current.record;
        const free = !c || c.released || Date.parse(c.expiresAt) <= now.getTime() || c.holder === this.holder;
        if (!free) throw new LeaseHeldError(c);
        this.etag = await this.objects.put(this.key, JSON.stringify(record), { ifMatch: current.etag });
      }
      this.record = record;
    } catch (err) {
      if (err instanceof PreconditionFailedError) {
        // Someone else wrote the lease between our read and our write: they hold it now.
        const winner = await this.readCurrent();
        if (winner?.record) throw new LeaseHeldError(winner.record);
        throw new LeaseHeldError({ holder: 'unknown', operation: 'unknown', acquiredAt: now.toISOString(), expiresAt: now.toISOString() });
      }
      throw err;
    }
  }

  /** Extends the lease; throws LeaseLostError if another run took it over meanwhile. */
  async renew(): Promise<void> {
    if (!this.etag || !this.record) throw new LeaseLostError('renew called without holding the lease');
    const next = this.body(this.record.operation, this.record.acquiredAt);
    try {
      this.etag = await this.objects.put(this.key, JSON.stringify(next), { ifMatch: this.etag });
      this.record = next;
    } catch (err) {
      if (err instanceof PreconditionFailedError) {
        this.etag = undefined;
        throw new LeaseLostError(`the lease was taken over by another run (it expired at ${this.record.expiresAt}); stopping without further changes`);
      }
      throw err;
    }
  }

  /** Renews when less than half the lease time is left. */
  async renewIfDue(): Promise<void> {
    if (!this.record) return;
    const left = Date.parse(this.record.expiresAt) - this.clock.now().getTime();
    if (left < (this.seconds * 1000) / 2) await this.renew();
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

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
