/**
 * The rest of a DaemonSet's life under reconcile: metadata-only changes, OnDelete, leaving
 * Git (orphaned, pruned), and a stalled rollout rolled back automatically.
 */
import { reconcile } from '../../lib/reconcile';
import { clusterLease } from '../../lib/deps';
import { autoRollback, rollback } from '../../lib/rollback';
import { adminClients } from '../support/cluster';
import { useWorkers } from '../support/managed';
import { dsYaml } from '../support/manifests';
import { cleanupScenarios, scenario } from '../support/scenario';

jest.setTimeout(300_000);

const { core, apps } = adminClients();
const setup = scenario;
afterAll(cleanupScenarios);
// Five settled workers whatever an earlier file left: its expected pod counts are the number of workers. Declared after the
// cleanup, so that it runs first (hooks run in the order they are declared).
useWorkers(5);

async function podsByImage(ns: string, app: string): Promise<Record<string, number>> {
  const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` });
  const out: Record<string, number> = {};
  for (const p of pods.items.filter((x) => !x.metadata!.deletionTimestamp)) {
    const img = p.spec!.containers[0].image!;
    out[img] = (out[img] ?? 0) + 1;
  }
  return out;
}

describe('metadata-only changes', () => {
  it('updates labels and annotations as update-metadata, without a rollout of pods', async () => {
    const { ns, git, deps } = await setup('meta');
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns })).commit('v1');
    await reconcile(deps());
    const before = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=agent' })).items.map((p) => p.metadata!.uid).sort();
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, annotations: { 'team.example.com/owner': 'platform' } })).commit('add owner annotation');
    const r = await reconcile(deps());
    expect(r.daemonSets[0]).toMatchObject({ action: 'update-metadata', cause: 'git-change', applied: true, revision: 2 });
    expect(r.daemonSets[0].diff).toMatch(/\+\s+team.example.com\/owner: platform/);
    const live = await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns });
    expect(live.metadata!.annotations!['team.example.com/owner']).toBe('platform');
    const after = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=agent' })).items.map((p) => p.metadata!.uid).sort();
    expect(after).toEqual(before);
  });
});

describe('OnDelete DaemonSets in native mode', () => {
  it('applies the new template, replaces no pod, and says so in the report', async () => {
    const { ns, git, deps } = await setup('ondel');
    git.write('a.yaml', dsYaml({ name: 'csi', namespace: ns, updateStrategy: 'OnDelete', image: 'registry.local/csi:1.0' })).commit('v1');
    await reconcile(deps());
    git.write('a.yaml', dsYaml({ name: 'csi', namespace: ns, updateStrategy: 'OnDelete', image: 'registry.local/csi:2.0' })).commit('v2');
    const r = await reconcile(deps());
    const workers = (await core.listNode({ labelSelector: 'daemonset-gitops.io/stack-node=worker' })).items.length;
    expect(r.daemonSets[0]).toMatchObject({ action: 'update', applied: true, revision: 2 });
    expect(r.daemonSets[0].rollout).toMatchObject({ phase: 'progressing', onDelete: true, upToDate: 0, desired: workers });
    expect(r.daemonSets[0].rollout!.message).toMatch(/updateStrategy OnDelete: pods take the new template only when they are deleted/);
    expect(await podsByImage(ns, 'csi')).toEqual({ 'registry.local/csi:1.0': workers });

    // Nothing changes while it waits for deletions, so a later pass writes nothing to S3.
    const before = await deps().store.getState(ns, 'csi');
    const again = await reconcile(deps());
    expect(again.daemonSets[0]).toMatchObject({ action: 'unchanged', rollout: { phase: 'progressing', onDelete: true } });
    expect((await deps().store.getState(ns, 'csi'))!.etag).toBe(before!.etag);
  });
});

describe('DaemonSets removed from Git', () => {
  it('reports them as orphaned and leaves them running by default', async () => {
    const { ns, git, deps } = await setup('orphan');
    git.write('a.yaml', dsYaml({ name: 'keep', namespace: ns })).write('b.yaml', dsYaml({ name: 'gone', namespace: ns })).commit('two');
    await reconcile(deps());
    git.remove('b.yaml').commit('remove gone');
    const r = await reconcile(deps());
    expect(r.daemonSets.find((d) => d.name === 'gone')).toMatchObject({ action: 'orphaned', applied: false });
    expect(r.daemonSets.find((d) => d.name === 'gone')!.message).toMatch(/set PRUNE=true/);
    await expect(apps.readNamespacedDaemonSet({ name: 'gone', namespace: ns })).resolves.toBeDefined();
  });

  it('deletes them with PRUNE=true after recording the live object, but not while some manifest cannot be read', async () => {
    const { ns, git, deps } = await setup('prune', { PRUNE: 'true' });
    git.write('a.yaml', dsYaml({ name: 'keep', namespace: ns })).write('b.yaml', dsYaml({ name: 'gone', namespace: ns })).commit('two');
    await reconcile(deps());

    git.remove('b.yaml').write('broken.yaml', 'kind: [oops\n').commit('remove gone, break a file');
    const careful = await reconcile(deps());
    expect(careful.daemonSets.find((d) => d.name === 'gone')).toMatchObject({ action: 'orphaned', applied: false });
    expect(careful.daemonSets.find((d) => d.name === 'gone')!.message).toMatch(/some manifests could not be read this pass, so nothing is pruned/);
    await expect(apps.readNamespacedDaemonSet({ name: 'gone', namespace: ns })).resolves.toBeDefined();

    git.remove('broken.yaml').commit('fix the file');
    const pruned = await reconcile(deps());
    expect(pruned.daemonSets.find((d) => d.name === 'gone')).toMatchObject({ action: 'pruned', applied: true });
    await expect(apps.readNamespacedDaemonSet({ name: 'gone', namespace: ns })).rejects.toMatchObject({ code: 404 });
    const state = (await deps().store.getState(ns, 'gone'))!.value;
    expect(state.deleted?.live).toMatchObject({ metadata: { name: 'gone', namespace: ns } });
    expect(pruned.daemonSets.find((d) => d.name === 'keep')).toMatchObject({ action: 'unchanged' });
  });
});

describe('AUTO_ROLLBACK', () => {
  it('rolls a stalled native rollout back to the last healthy revision, pinned, and says why', async () => {
    const { ns, git, deps } = await setup('auto', { AUTO_ROLLBACK: 'true', PROGRESS_DEADLINE_SECONDS: '10' });
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0' })).commit('v1');
    await reconcile(deps());
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:broken', podLabels: { 'pod-container-running-failed.stage.kwok.x-k8s.io': 'true' } })).commit('v2 crashes');
    const r = await reconcile(deps(), {}, autoRollback);

    const entry = r.daemonSets[0];
    expect(entry).toMatchObject({ action: 'update', revision: 2 });
    expect(entry.rollout).toMatchObject({ phase: 'stalled' });
    expect(entry.message).toMatch(/rolled back from revision 2 to revision 1 \(recorded as revision 3\) and pinned/);
    const workers = (await core.listNode({ labelSelector: 'daemonset-gitops.io/stack-node=worker' })).items.length;
    expect(await podsByImage(ns, 'agent')).toEqual({ 'registry.local/agent:1.0': workers });
    const store = deps().store;
    expect((await store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('rolled-back');
    const r3 = (await store.getRevision(ns, 'agent', 3))!.value;
    expect(r3).toMatchObject({ cause: 'rollback', rollbackTo: 1, outcome: 'healthy' });
    expect(r3.reason).toMatch(/^automatic rollback: revision 2 stalled/);
    expect((await store.getState(ns, 'agent'))!.value.pin).toMatchObject({ revision: 1 });
    const next = await reconcile(deps(), {}, autoRollback);
    expect(next.daemonSets[0]).toMatchObject({ action: 'pinned' });
  });

  it('leaves a pinned rollback that stalls to the operator: no second rollback, no new revision', async () => {
    const { ns, git, deps } = await setup('auto-pinned', { AUTO_ROLLBACK: 'true', PROGRESS_DEADLINE_SECONDS: '10' });
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0' })).commit('v1');
    await reconcile(deps());
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0' })).commit('v2');
    await reconcile(deps());
    await rollback(deps(), { namespace: ns, name: 'agent', toRevision: 1, reason: 'v2 drops logs', by: 'test' });
    const store = deps().store;
    const state = (await store.getState(ns, 'agent'))!.value;
    expect(state).toMatchObject({ currentRevision: 3, pin: { revision: 1 } });

    // The rollback as a pass sees it once it stalled before it was ever healthy: the last healthy revision is still 2.
    const lease = clusterLease(deps());
    await lease.acquire('reconcile');
    try {
      expect(await autoRollback(deps(), lease, `${ns}/agent`, { ...state, lastHealthyRevision: 2 })).toBeUndefined();
    } finally {
      await lease.release();
    }
    expect(await store.getRevision(ns, 'agent', 4)).toBeUndefined();
    expect((await store.getState(ns, 'agent'))!.value).toMatchObject({ currentRevision: 3, pin: { revision: 1 } });
  });
});
