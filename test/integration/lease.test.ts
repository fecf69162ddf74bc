/**
 * The cluster lease against the stack's MinIO: conditional writes and the store's clock are
 * what this module relies on, and only the real store shows them.
 */
import { createS3Client, S3ObjectStore, StoredText } from '../../lib/store/object-store';
import { stackEnv, uniqueName } from '../support/cluster';

jest.setTimeout(60_000);

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
