/**
 * The cluster lease against the stack's MinIO: conditional writes and the store's clock are
 * what this module relies on, and only the real store shows them.
 */
import { LeaseHeldError } from '../../lib/errors';
import { Clock, Lease } from '../../lib/store/lease';
import { createS3Client, S3ObjectStore, StoredText } from '../../lib/store/object-store';
import { leaseSchema } from '../../lib/store/records';
import { stackEnv, uniqueName } from '../support/cluster';

jest.setTimeout(60_000);

const HOUR = 3_600_000;

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
    await s3.put(key, '{}');
    const fresh = await s3.get(key);
    await sleep(2_100);
    const later = await s3.get(key);

    const age = (t?: StoredText) => t!.serverTime!.getTime() - t!.lastModified!.getTime();
    expect(age(fresh)).toBeGreaterThanOrEqual(0);
    expect(age(fresh)).toBeLessThanOrEqual(1_000);
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
    const holder = new Lease(s3, key, 'holder', 2);
    await holder.acquire('reconcile');
    const slow = new Lease(s3, key, 'slow-laptop', 2, new SkewedClock(-HOUR));
    await expect(slow.acquire('reconcile')).rejects.toThrow(/another run holds the lease: holder \(reconcile\)/);

    await outlive(2);
    await slow.acquire('reconcile');

    expect(await stored(key)).toMatchObject({ holder: 'slow-laptop', released: false });
  });
});
