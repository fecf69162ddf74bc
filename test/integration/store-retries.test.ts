/**
 * A conditional write whose answer is lost is retried by the SDK, and the retry meets the
 * write it repeats. The answer is lost for real: a proxy in front of the stack's MinIO cuts
 * the connection after MinIO carried the write out (test/support/lossy-proxy.ts).
 */
import { createS3Client, S3ObjectStore } from '../../lib/store/object-store';
import { StoreKeys } from '../../lib/store/keys';
import type { RevisionSnapshot } from '../../lib/store/records';
import { StateStore } from '../../lib/store/state-store';
import { stackEnv, uniqueName } from '../support/cluster';
import { LossyProxy, startLossyProxy } from '../support/lossy-proxy';

const env = stackEnv();
process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;

let proxy: LossyProxy;
let store: StateStore;
const cluster = uniqueName('retries');

beforeAll(async () => {
  proxy = await startLossyProxy(env.S3_ENDPOINT);
  const client = createS3Client({ bucket: env.S3_BUCKET, prefix: 'it', endpoint: proxy.url, region: env.AWS_REGION });
  store = new StateStore(new S3ObjectStore(client, env.S3_BUCKET), new StoreKeys('it', cluster));
});

afterAll(async () => {
  for (const key of await store.objects.list(`${store.keys.root}/`)) await store.objects.delete(key);
  await proxy.close();
});

function snapshot(name: string): Omit<RevisionSnapshot, 'revision'> {
  const at = new Date().toISOString();
  return {
    schema: 1, cluster, namespace: 'ns', name, cause: 'git-change', manifest: { kind: 'DaemonSet' }, digest: 'sha256:1', rolloutMode: 'native',
    replaced: null, runId: 'run-1', createdAt: at, outcome: 'pending', outcomeAt: at,
  };
}

describe('a revision claim whose answer is lost', () => {
  it('is the claim of that number, not a reason to claim the next one', async () => {
    proxy.loseNextAnswer((method, path) => method === 'PUT' && path.endsWith('/ns/agent/revisions/1.json'));

    const claimed = await store.claimRevision(snapshot('agent'), 0);

    expect(proxy.lost).toBe(1);
    expect(proxy.seen.filter((r) => r === `PUT /${env.S3_BUCKET}/${store.keys.revision('ns', 'agent', 1)}`)).toHaveLength(2);
    expect(claimed.revision).toBe(1);
    expect(await store.listRevisionNumbers('ns', 'agent')).toEqual([1]);
  });

  it('another writer\'s snapshot under that number still moves the claim on', async () => {
    await store.claimRevision({ ...snapshot('other'), runId: 'run-a' }, 0);
    const second = await store.claimRevision({ ...snapshot('other'), runId: 'run-b' }, 0);
    expect(second.revision).toBe(2);
    expect(await store.listRevisionNumbers('ns', 'other')).toEqual([1, 2]);
  });
});

describe('a state write whose answer is lost', () => {
  it('stands: the write conditional on the ETag read is not refused by its own retry', async () => {
    const at = new Date().toISOString();
    const first = { schema: 1 as const, namespace: 'ns', name: 'agent', currentRevision: 1, appliedDigest: 'sha256:1', updatedAt: at };
    await store.putState(first, undefined);
    const read = (await store.getState('ns', 'agent'))!;
    proxy.loseNextAnswer((method, path) => method === 'PUT' && path.endsWith('/ns/agent/state.json'));

    await store.putState({ ...first, currentRevision: 2, updatedAt: new Date(Date.parse(at) + 1).toISOString() }, read.etag);

    expect(proxy.lost).toBe(2);
    expect((await store.getState('ns', 'agent'))!.value.currentRevision).toBe(2);
  });
});
