/**
 * A run killed at any point leaves a state the next run completes or repairs. The kill is
 * real: the dsgitops process sends itself SIGKILL at the injected point, leaving its lease
 * unreleased and its work half done.
 */
import { StoreError } from '../../lib/errors';
import { reconcile } from '../../lib/reconcile';
import type { ObjectStore } from '../../lib/store/object-store';
import { StateStore } from '../../lib/store/state-store';
import { adminClients, createNamespace, deleteNamespace } from '../support/cluster';
import { TestRepo } from '../support/git';
import { dsYaml } from '../support/manifests';
import { runCliProcess, stackConfig, stackConfigEnv, stackDeps } from '../support/reconciler';
import { reconcileOnceLeaseFree } from '../support/scenario';

jest.setTimeout(300_000);

const { core, apps } = adminClients();
let ns: string;
let git: TestRepo;
let env: Record<string, string>;

beforeAll(async () => {
  ns = await createNamespace(core, 'crash');
  git = new TestRepo();
  git.write('ds.yaml', dsYaml({ name: 'fragile', namespace: ns, image: 'registry.local/fragile:1.0' })).commit('add fragile');
  env = stackConfigEnv({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, LEASE_SECONDS: '5' });
  const first = await runCliProcess(['reconcile', '--json'], env);
  expect(first.code).toBe(0);
});

afterAll(async () => {
  await deleteNamespace(core, ns);
  git.cleanup();
});

async function liveState() {
  const ds = await apps.readNamespacedDaemonSet({ name: 'fragile', namespace: ns });
  return { image: ds.spec!.template.spec!.containers[0].image, revision: ds.metadata!.annotations!['daemonset-gitops.io/revision'] };
}

describe('a pass killed mid-apply', () => {
  it('killed right after the snapshot write and before the apply: the next pass applies that same revision, with no duplicate', async () => {
    git.write('ds.yaml', dsYaml({ name: 'fragile', namespace: ns, image: 'registry.local/fragile:2.0' })).commit('fragile 2.0');
    // The killed run takes a lease of 20 s, not the file's 5: the pass below must reach the lease
    // while it is still held, after this process has read the store and that pass has fetched, loaded
    // and planned, and the lease's expiry counts from S3's LastModified (whole seconds). 5 s left
    // about 3.5 s on an idle machine; a loaded one can spend that.
    const killed = await runCliProcess(['reconcile', '--json'], { ...env, LEASE_SECONDS: '20', DSGITOPS_FAULT: 'kill-after-snapshot' });
    expect(killed.signal).toBe('SIGKILL');

    const deps = stackDeps(stackConfig({ ...env }));
    expect(await deps.store.listRevisionNumbers(ns, 'fragile')).toEqual([1, 2]);
    expect((await deps.store.getRevision(ns, 'fragile', 2))!.value.outcome).toBe('pending');
    expect((await deps.store.getState(ns, 'fragile'))!.value.currentRevision).toBe(1);
    expect(await liveState()).toEqual({ image: 'registry.local/fragile:1.0', revision: '1' });

    // The killed run's lease must expire before another run may act.
    const blocked = await reconcile(stackDeps(stackConfig({ ...env })));
    expect(blocked.result).toBe('skipped');
    const next = await reconcileOnceLeaseFree(stackConfig(env), 60_000);

    expect(next.result).toBe('succeeded');
    expect(next.daemonSets[0]).toMatchObject({ action: 'update', revision: 2, applied: true });
    expect(await deps.store.listRevisionNumbers(ns, 'fragile')).toEqual([1, 2]);
    expect((await deps.store.getRevision(ns, 'fragile', 2))!.value.outcome).toBe('healthy');
    expect(await liveState()).toEqual({ image: 'registry.local/fragile:2.0', revision: '2' });
  });

  it('killed right after the apply and before recording it: the next pass records the applied revision and writes no new one', async () => {
    git.write('ds.yaml', dsYaml({ name: 'fragile', namespace: ns, image: 'registry.local/fragile:3.0' })).commit('fragile 3.0');
    const killed = await runCliProcess(['reconcile', '--json'], { ...env, DSGITOPS_FAULT: 'kill-after-apply' });
    expect(killed.signal).toBe('SIGKILL');

    const deps = stackDeps(stackConfig({ ...env }));
    expect(await liveState()).toEqual({ image: 'registry.local/fragile:3.0', revision: '3' });
    expect((await deps.store.getState(ns, 'fragile'))!.value.currentRevision).toBe(2);

    const next = await reconcileOnceLeaseFree(stackConfig(env));
    expect(next.result).toBe('succeeded');
    expect(next.daemonSets[0]).toMatchObject({ action: 'unchanged', revision: 3, applied: false });
    expect(await deps.store.listRevisionNumbers(ns, 'fragile')).toEqual([1, 2, 3]);
    const state = (await deps.store.getState(ns, 'fragile'))!.value;
    expect(state.currentRevision).toBe(3);
    expect((await deps.store.getRevision(ns, 'fragile', 3))!.value.outcome).toBe('healthy');
  });
});

describe('S3 refusing the snapshot', () => {
  it('applies nothing when the revision snapshot cannot be written, and says so', async () => {
    git.write('ds.yaml', dsYaml({ name: 'fragile', namespace: ns, image: 'registry.local/fragile:4.0' })).commit('fragile 4.0');
    const real = stackDeps(stackConfig(env));
    // MinIO stays real; only writes of revision snapshots fail, as with a full disk or a denied PutObject.
    const failing: ObjectStore = {
      get: (k) => real.objects.get(k),
      list: (p) => real.objects.list(p),
      delete: (k) => real.objects.delete(k),
      put: (k, body, condition) => (k.includes('/revisions/') ? Promise.reject(new StoreError(`writing ${k} failed: XMinioStorageFull: Storage backend has reached its minimum free drive threshold`)) : real.objects.put(k, body, condition)),
    };
    const deps = { ...real, objects: failing, store: new StateStore(failing, real.store.keys) };
    const before = await liveState();
    const report = await reconcile(deps);
    expect(report.result).toBe('failed');
    expect(report.daemonSets[0]).toMatchObject({ action: 'failed', applied: false, error: { reason: 'SnapshotWriteFailed' } });
    expect(report.daemonSets[0].error!.message).toMatch(/could not write revision 4 of .*\/fragile to S3, so nothing was applied: .*StorageFull/);
    expect(await liveState()).toEqual(before);
    expect(await real.store.listRevisionNumbers(ns, 'fragile')).toEqual([1, 2, 3]);

    const healed = await reconcile(stackDeps(stackConfig(env)));
    expect(healed.daemonSets[0]).toMatchObject({ action: 'update', applied: true, revision: 4 });
  });
});
