/**
 * The cluster lease against the stack's MinIO: conditional writes and the store's clock are
 * what this module relies on, and only the real store shows them.
 */
import { LeaseHeldError, LeaseLostError } from '../../lib/errors';
import type { Clock } from '../../lib/clock';
import { Lease } from '../../lib/store/lease';
import { createS3Client, ObjectStore, S3ObjectStore, StoredText, WriteCondition } from '../../lib/store/object-store';
import { leaseSchema } from '../../lib/store/records';
import { stackEnv, uniqueName } from '../support/cluster';

jest.setTimeout(60_000);

const HOUR = 3_600_000;

/** The real store, counting requests and telling when each write is sent and answered. */
class ObservedStore implements ObjectStore {
  gets = 0;
  puts = 0;
  /** Runs just before write number n is sent, which waits for it. */
  beforePut?: (n: number) => Promise<void> | void;
  readonly putsAnsweredAt: number[] = [];

  constructor(private readonly store: ObjectStore) {}

  get(key: string): Promise<StoredText | undefined> {
    this.gets += 1;
    return this.store.get(key);
  }

  async put(key: string, body: string, condition?: WriteCondition): Promise<string> {
    const n = ++this.puts;
    await this.beforePut?.(n);
    try {
      return await this.store.put(key, body, condition);
    } finally {
      this.putsAnsweredAt.push(performance.now());
    }
  }

  list(prefix: string): Promise<string[]> {
    return this.store.list(prefix);
  }

  delete(key: string): Promise<void> {
    return this.store.delete(key);
  }
}

/** A local clock that is off by `offsetMs` and can be moved forward. */
class SkewedClock implements Clock {
  constructor(public offsetMs = 0) {}
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}

const env = stackEnv();
process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
const s3 = new S3ObjectStore(createS3Client({ bucket: env.S3_BUCKET, prefix: 'it', endpoint: env.S3_ENDPOINT, region: env.AWS_REGION }), env.S3_BUCKET);
const keys: string[] = [];

function leaseKey(): string {
  const key = `it/${uniqueName('lease')}/lease.json`;
  keys.push(key);
  return key;
}

async function stored(key: string) {
  const got = await s3.get(key);
  return got && leaseSchema.parse(JSON.parse(got.body));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Long enough for a lease of `seconds` to be expired by the store's clock: its Date and
 * Last-Modified are whole seconds, so the measured age may be a second short of the true one.
 */
const outlive = (seconds: number) => sleep((seconds + 2) * 1000 + 200);

afterAll(async () => {
  for (const key of keys) await s3.delete(key);
});

describe('S3ObjectStore.get', () => {
  it('tells when the object was written and what time it is, both by the store\'s clock', async () => {
    const key = leaseKey();
    const putAt = performance.now();
    await s3.put(key, '{}');
    const fresh = await s3.get(key);
    // The true age at the read is at most this; both clocks are whole seconds, so the measured one
    // is less than a second more: at most 1 s while put and get take under a second, as they do
    // on a quiet machine, and more only when they took longer.
    const freshAtMost = (Math.floor((performance.now() - putAt) / 1000) + 1) * 1000;
    await sleep(2_100);
    const later = await s3.get(key);

    const age = (t?: StoredText) => t!.serverTime!.getTime() - t!.lastModified!.getTime();
    expect(age(fresh)).toBeGreaterThanOrEqual(0);
    expect(age(fresh)).toBeLessThanOrEqual(freshAtMost);
    expect(age(later)).toBeGreaterThanOrEqual(2_000);
    expect(later!.lastModified).toEqual(fresh!.lastModified);
  });
});

describe('Lease expiry, judged by the store\'s clock', () => {
  it('does not let a run whose clock is an hour fast take over a live lease', async () => {
    const key = leaseKey();
    const holder = new Lease(s3, key, 'holder', 60);
    await holder.acquire('reconcile');

    const fast = new Lease(s3, key, 'fast-laptop', 60, new SkewedClock(+HOUR));
    await expect(fast.acquire('rollback')).rejects.toThrow(LeaseHeldError);

    await expect(holder.renew()).resolves.toBeUndefined();
    expect(await stored(key)).toMatchObject({ holder: 'holder', operation: 'reconcile' });
  });

  it('lets a run whose clock is an hour slow take over a lease whose holder stopped renewing', async () => {
    const key = leaseKey();
    // 6 s: the refusal below must come while the lease is live, and the store's whole-second
    // clock can make it look a second older; 2 s left a loaded machine little over a second.
    const holder = new Lease(s3, key, 'holder', 6);
    await holder.acquire('reconcile');
    const slow = new Lease(s3, key, 'slow-laptop', 6, new SkewedClock(-HOUR));
    await expect(slow.acquire('reconcile')).rejects.toThrow(/another run holds the lease: holder \(reconcile\)/);

    await outlive(6);
    await slow.acquire('reconcile');

    expect(await stored(key)).toMatchObject({ holder: 'slow-laptop', released: false });
  });
});

describe('Lease.confirm', () => {
  it('gives every one of many concurrent callers a fresh renewal, with fewer writes than callers', async () => {
    const key = leaseKey();
    const store = new ObservedStore(s3);
    const lease = new Lease(store, key, 'pass', 60);
    await lease.acquire('reconcile');
    const before = store.puts;

    // A pass applying 8 DaemonSets at once, plus its tracker renewing.
    await Promise.all([...Array.from({ length: 8 }, () => lease.confirm()), lease.renew(), lease.renew()]);

    expect(store.puts - before).toBeGreaterThanOrEqual(1);
    expect(store.puts - before).toBeLessThan(10);
    expect(await stored(key)).toMatchObject({ holder: 'pass', released: false });
  });

  it('is answered by a renewal sent after the call, not by one already on its way', async () => {
    const key = leaseKey();
    const store = new ObservedStore(s3);
    const lease = new Lease(store, key, 'pass', 60);
    await lease.acquire('reconcile');
    const first = store.puts + 1;

    let late: Promise<number> | undefined;
    store.beforePut = (n) => {
      if (n === first) late = lease.confirm().then(() => performance.now());
    };
    await lease.confirm();
    const lateResolvedAt = await late!;

    expect(store.puts).toBe(first + 1);
    expect(lateResolvedAt).toBeGreaterThanOrEqual(store.putsAnsweredAt[store.putsAnsweredAt.length - 1]);
  });

  it('throws LeaseLostError naming the run that took over the expired lease', async () => {
    const key = leaseKey();
    const holder = new Lease(s3, key, 'stuck-pass', 2);
    await holder.acquire('reconcile');
    await outlive(2);
    await new Lease(s3, key, 'next-pass', 60).acquire('reconcile');

    await expect(holder.confirm()).rejects.toThrow(LeaseLostError);
    await expect(holder.confirm()).rejects.toThrow(/the lease was taken over by next-pass \(reconcile\)/);
    expect(await stored(key)).toMatchObject({ holder: 'next-pass', released: false });
  });
});

describe('Lease preemption', () => {
  it('lets an acquire with preempt take a preemptible lease, and no one take a lease that is not', async () => {
    const key = leaseKey();
    const watcher = new Lease(s3, key, 'watching-pass', 60);
    await watcher.acquire('reconcile');

    await expect(new Lease(s3, key, 'operator', 60).acquire('rollback', { preempt: true })).rejects.toThrow(LeaseHeldError);
    await watcher.markPreemptible('watching 3 rollouts');
    await watcher.renew(); // renewals keep the mark
    await expect(new Lease(s3, key, 'scheduled-pass', 60).acquire('reconcile')).rejects.toThrow(/watching-pass \(reconcile\).*only watching rollouts/);

    await new Lease(s3, key, 'operator', 60).acquire('rollback', { preempt: true });
    expect(await stored(key)).toMatchObject({ holder: 'operator', operation: 'rollback', preemptible: false });
  });

  it('takes a preemptible lease even when the holder renews between the read and the takeover', async () => {
    const key = leaseKey();
    const watcher = new Lease(s3, key, 'watching-pass', 60);
    await watcher.acquire('reconcile');
    await watcher.markPreemptible();
    const store = new ObservedStore(s3);
    store.beforePut = async (n) => {
      if (n === 1) await watcher.renew();
    };

    await new Lease(store, key, 'operator', 60).acquire('rollback', { preempt: true });

    expect(store.puts).toBe(2);
    expect(await stored(key)).toMatchObject({ holder: 'operator', operation: 'rollback' });
    await expect(watcher.check()).rejects.toThrow(/taken over by operator \(rollback\)/);
  });

  it('ends preemptibility at confirm(): a holder about to act cannot be preempted', async () => {
    const key = leaseKey();
    const pass = new Lease(s3, key, 'pass', 60);
    await pass.acquire('reconcile');
    await pass.markPreemptible('watching');
    await pass.confirm();

    await expect(new Lease(s3, key, 'operator', 60).acquire('rollback', { preempt: true })).rejects.toThrow(LeaseHeldError);
    expect(await stored(key)).toMatchObject({ holder: 'pass', preemptible: false });
  });

  it('check() reads once and writes nothing while the lease is ours', async () => {
    const key = leaseKey();
    const store = new ObservedStore(s3);
    const watcher = new Lease(store, key, 'watching-pass', 60);
    await watcher.acquire('reconcile');
    await watcher.markPreemptible();
    const [gets, puts] = [store.gets, store.puts];

    await watcher.check();

    expect([store.gets - gets, store.puts - puts]).toEqual([1, 0]);
  });

  it.each(['check', 'confirm', 'renewIfDue'] as const)(
    'after a rollback preempted it, the old holder\'s %s() throws LeaseLostError naming the rollback, and so does every later call',
    async (first) => {
      const key = leaseKey();
      const clock = new SkewedClock();
      const watcher = new Lease(s3, key, 'watching-pass', 60, clock);
      await watcher.acquire('reconcile');
      await watcher.markPreemptible('watching rollouts');
      await new Lease(s3, key, 'operator', 60).acquire('rollback', { preempt: true });
      clock.offsetMs += 31_000; // half the lease has passed: renewIfDue() writes

      const named = /the lease was taken over by operator \(rollback\)/;
      await expect(watcher[first]()).rejects.toThrow(LeaseLostError);
      for (const call of ['check', 'confirm', 'renewIfDue', 'renew', 'markPreemptible'] as const) {
        await expect(watcher[call]()).rejects.toThrow(named);
      }
      expect(await stored(key)).toMatchObject({ holder: 'operator', operation: 'rollback', released: false });
    },
  );

  it('release() of a preempted holder leaves the new holder\'s lease alone', async () => {
    const key = leaseKey();
    const watcher = new Lease(s3, key, 'watching-pass', 60);
    await watcher.acquire('reconcile');
    await watcher.markPreemptible();
    const operator = new Lease(s3, key, 'operator', 60);
    await operator.acquire('rollback', { preempt: true });

    await watcher.release();

    expect(await stored(key)).toMatchObject({ holder: 'operator', released: false });
    await expect(operator.confirm()).resolves.toBeUndefined();
    await expect(new Lease(s3, key, 'scheduled-pass', 60).acquire('reconcile')).rejects.toThrow(/operator \(rollback\)/);
  });
});
