/**
 * Rollback, history, pins and status against the real stack.
 */
import * as k8s from '@kubernetes/client-node';
import { LeaseHeldError, NotFoundError, RollbackRefusedError } from '../../lib/errors';
import { history } from '../../lib/history';
import { unpin } from '../../lib/pins';
import { reconcile } from '../../lib/reconcile';
import { rollback } from '../../lib/rollback';
import { status } from '../../lib/status';
import { Lease } from '../../lib/store/lease';
import { StateStore } from '../../lib/store/state-store';
import { adminClients, waitFor } from '../support/cluster';
import { useWorkers } from '../support/managed';
import { dsYaml } from '../support/manifests';
import { stackDeps } from '../support/reconciler';
import { cleanupScenarios, scenario } from '../support/scenario';

jest.setTimeout(300_000);

const { core, apps } = adminClients();
const setup = scenario;
afterAll(cleanupScenarios);
// Five settled workers whatever an earlier file left: the status it expects counts every worker. Declared after the
// cleanup, so that it runs first (hooks run in the order they are declared).
useWorkers(5);

async function image(ns: string, name: string): Promise<string | undefined> {
  const ds = await apps.readNamespacedDaemonSet({ name, namespace: ns });
  return ds.spec!.template.spec!.containers[0].image;
}

describe('history', () => {
  it('lists revisions newest first from S3, and survives the DaemonSet being deleted; rollback then recreates it', async () => {
    const { ns, git, deps } = await setup('hist');
    const sha1 = git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0' })).commit('agent 1.0');
    await reconcile(deps());
    const sha2 = git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0' })).commit('agent 2.0');
    await reconcile(deps());

    await apps.deleteNamespacedDaemonSet({ name: 'agent', namespace: ns });
    await waitFor('the DaemonSet to be gone', async () => {
      try {
        await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns });
        return undefined;
      } catch {
        return true;
      }
    });
    const h = await history(deps(), { namespace: ns, name: 'agent' });
    expect(h.revisions.map((r) => [r.revision, r.cause, r.outcome, r.commit?.sha, r.images])).toEqual([
      [2, 'git-change', 'healthy', sha2, ['registry.local/agent:2.0']],
      [1, 'create', 'healthy', sha1, ['registry.local/agent:1.0']],
    ]);
    expect(h.revisions[0].current).toBe(true);

    const rb = await rollback(deps(), { namespace: ns, name: 'agent', toRevision: 1, reason: 'restore after accidental delete' });
    expect(rb).toMatchObject({ toRevision: 1, revision: 3, fromRevision: 2, pin: { revision: 1, reason: 'restore after accidental delete' } });
    expect(rb.rollout?.phase).toBe('complete');
    expect(await image(ns, 'agent')).toBe('registry.local/agent:1.0');
    const after = await history(deps(), { namespace: ns, name: 'agent', limit: 2 });
    expect(after.revisions.map((r) => [r.revision, r.causeText, r.outcome])).toEqual([
      [3, 'rollback to 1', 'healthy'],
      [2, 'git-change', 'rolled-back'],
    ]);
    expect(after.total).toBe(3);
  });

  it('says clearly when nothing is stored for a DaemonSet', async () => {
    const { ns, deps } = await setup('nohist');
    await expect(history(deps(), { namespace: ns, name: 'ghost' })).rejects.toThrow(NotFoundError);
    await expect(history(deps(), { namespace: ns, name: 'ghost' })).rejects.toThrow(/no revisions of .*\/ghost are stored for cluster/);
  });
});

describe('rollback and pins', () => {
  it('restores v1, holds against scheduled passes, survives unrelated pushes, and releases when Git changes that DaemonSet', async () => {
    const { ns, git, deps } = await setup('pin');
    git.write('fluentd.yaml', dsYaml({ name: 'fluentd', namespace: ns, image: 'registry.local/fluentd:1.0' }));
    git.write('other.yaml', dsYaml({ name: 'other', namespace: ns, image: 'registry.local/other:1.0' }));
    git.commit('v1');
    await reconcile(deps());
    git.write('fluentd.yaml', dsYaml({ name: 'fluentd', namespace: ns, image: 'registry.local/fluentd:2.0' })).commit('fluentd v2');
    await reconcile(deps());
    expect(await image(ns, 'fluentd')).toBe('registry.local/fluentd:2.0');

    const rb = await rollback(deps(), { namespace: ns, name: 'fluentd', reason: 'v2 drops logs' });
    expect(rb).toMatchObject({ fromRevision: 2, toRevision: 1, revision: 3 });
    expect(await image(ns, 'fluentd')).toBe('registry.local/fluentd:1.0');
    const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=fluentd' });
    expect(new Set(pods.items.filter((p) => !p.metadata!.deletionTimestamp).map((p) => p.spec!.containers[0].image))).toEqual(new Set(['registry.local/fluentd:1.0']));
    const live = await apps.readNamespacedDaemonSet({ name: 'fluentd', namespace: ns });
    expect(live.metadata!.annotations!['daemonset-gitops.io/pinned']).toBe('revision 1: v2 drops logs');

    const held = await reconcile(deps());
    const f = held.daemonSets.find((d) => d.name === 'fluentd')!;
    expect(f).toMatchObject({ action: 'pinned', applied: false, revision: 3, pin: { revision: 1, reason: 'v2 drops logs' } });
    expect(f.message).toMatch(/pinned to revision 1 since .*: v2 drops logs/);
    expect(await image(ns, 'fluentd')).toBe('registry.local/fluentd:1.0');

    git.write('other.yaml', dsYaml({ name: 'other', namespace: ns, image: 'registry.local/other:2.0' })).commit('other v2');
    const unrelated = await reconcile(deps());
    expect(unrelated.daemonSets.find((d) => d.name === 'other')).toMatchObject({ action: 'update', applied: true });
    expect(unrelated.daemonSets.find((d) => d.name === 'fluentd')).toMatchObject({ action: 'pinned' });
    expect(await image(ns, 'fluentd')).toBe('registry.local/fluentd:1.0');

    git.write('fluentd.yaml', dsYaml({ name: 'fluentd', namespace: ns, image: 'registry.local/fluentd:3.0' })).commit('fluentd v3: the fix');
    const released = await reconcile(deps());
    expect(released.daemonSets.find((d) => d.name === 'fluentd')).toMatchObject({ action: 'update', applied: true, revision: 4 });
    expect(released.daemonSets.find((d) => d.name === 'fluentd')!.message).toMatch(/releases the pin on revision 1/);
    expect(await image(ns, 'fluentd')).toBe('registry.local/fluentd:3.0');
    const after = await apps.readNamespacedDaemonSet({ name: 'fluentd', namespace: ns });
    expect(after.metadata!.annotations!['daemonset-gitops.io/pinned']).toBeUndefined();
    expect((await deps().store.getState(ns, 'fluentd'))!.value.pin).toBeUndefined();
  });

  /** agent 1.0 then 2.0 applied from Git, then rolled back to revision 1 (revision 3, pinned). */
  async function pinnedToFirst(label: string, reason?: string) {
    const s = await setup(label);
    const { ns, git, deps } = s;
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0' })).commit('v1');
    await reconcile(deps());
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0' })).commit('v2');
    await reconcile(deps());
    await rollback(deps(), { namespace: ns, name: 'agent', toRevision: 1, ...(reason ? { reason } : {}) });
    return s;
  }

  it('unpin makes the next pass re-apply Git\'s version', async () => {
    const { ns, deps } = await pinnedToFirst('unpin');
    expect((await reconcile(deps())).daemonSets[0].action).toBe('pinned');

    const u = await unpin(deps(), { namespace: ns, name: 'agent', reason: 'v2 is fine after all' });
    expect(u.released.revision).toBe(1);
    const next = await reconcile(deps());
    expect(next.daemonSets[0]).toMatchObject({ action: 'update', applied: true, revision: 4 });
    expect(await image(ns, 'agent')).toBe('registry.local/agent:2.0');
    await expect(unpin(deps(), { namespace: ns, name: 'agent' })).rejects.toThrow(/is not pinned/);
  });

  it('restores a pinned revision changed by hand as a drift correction, and keeps the pin', async () => {
    const { ns, deps } = await pinnedToFirst('pin-drift', 'v2 drops logs');
    expect(await image(ns, 'agent')).toBe('registry.local/agent:1.0');

    // kubectl set image, out of band, on the pinned DaemonSet
    await apps.patchNamespacedDaemonSet(
      { name: 'agent', namespace: ns, fieldManager: 'kubectl-set', body: { spec: { template: { spec: { containers: [{ name: 'agent', image: 'registry.local/agent:1.0-by-hand' }] } } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    const restored = await reconcile(deps());
    expect(restored.daemonSets[0]).toMatchObject({ cause: 'drift-correction', applied: true, revision: 4, pin: { revision: 1, reason: 'v2 drops logs' } });
    // The pinned revision's template, not Git's (2.0) and not the hand-made one.
    expect(await image(ns, 'agent')).toBe('registry.local/agent:1.0');
    const live = await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns });
    expect(live.metadata!.annotations!['daemonset-gitops.io/pinned']).toBe('revision 1: v2 drops logs');
    const store = deps().store;
    expect((await store.getState(ns, 'agent'))!.value).toMatchObject({ currentRevision: 4, pin: { revision: 1 } });
    expect((await store.getRevision(ns, 'agent', 4))!.value).toMatchObject({ cause: 'drift-correction' });

    const next = await reconcile(deps());
    expect(next.daemonSets[0]).toMatchObject({ action: 'pinned', applied: false, revision: 4 });
    expect(await image(ns, 'agent')).toBe('registry.local/agent:1.0');
  });

  it('refuses a rollback to a revision whose selector differs, changing nothing, unless recreate is asked for', async () => {
    const { ns, git, deps } = await setup('sel');
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, selectorLabel: 'agent-v1' })).commit('v1');
    await reconcile(deps());
    await apps.deleteNamespacedDaemonSet({ name: 'agent', namespace: ns });
    await waitFor('deletion', async () => apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns }).then(() => undefined, () => true));
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, selectorLabel: 'agent-v2', image: 'registry.local/agent:2.0' })).commit('v2 with a new selector');
    await reconcile(deps());
    const before = await deps().store.listRevisionNumbers(ns, 'agent');

    const refused = rollback(deps(), { namespace: ns, name: 'agent', toRevision: 1 });
    await expect(refused).rejects.toThrow(RollbackRefusedError);
    await expect(rollback(deps(), { namespace: ns, name: 'agent', toRevision: 1 })).rejects.toThrow(/spec.selector is immutable: nothing was changed. Pass "recreate": true/);
    expect(await deps().store.listRevisionNumbers(ns, 'agent')).toEqual(before);
    expect((await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns })).spec!.selector.matchLabels).toEqual({ app: 'agent-v2' });

    const recreated = await rollback(deps(), { namespace: ns, name: 'agent', toRevision: 1, recreate: true });
    expect(recreated.recreated).toBe(true);
    expect((await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns })).spec!.selector.matchLabels).toEqual({ app: 'agent-v1' });
  });

  it('refuses unknown DaemonSets, unknown revisions, and a rollback while another run holds the lease, changing nothing', async () => {
    const { ns, git, deps, config } = await setup('refuse');
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns })).commit('v1');
    await reconcile(deps());
    await expect(rollback(deps(), { namespace: ns, name: 'nobody' })).rejects.toThrow(NotFoundError);
    await expect(rollback(deps(), { namespace: ns, name: 'agent', toRevision: 9 })).rejects.toThrow('revision 9 of ' + `${ns}/agent does not exist; stored revisions: 1`);
    await expect(rollback(deps(), { namespace: ns, name: 'agent' })).rejects.toThrow(/no earlier healthy revision to roll back to/);

    const d = deps();
    const other = new Lease(d.objects, d.store.keys.lease(), 'someone-else', 60);
    await other.acquire('reconcile');
    try {
      const held = rollback(deps(), { namespace: ns, name: 'agent', toRevision: 1 });
      await expect(held).rejects.toThrow(LeaseHeldError);
      await expect(rollback(deps(), { namespace: ns, name: 'agent', toRevision: 1 })).rejects.toThrow(/another run holds the lease: someone-else \(reconcile\)/);
    } finally {
      await other.release();
    }
    expect(await stackDeps(config).store.listRevisionNumbers(ns, 'agent')).toEqual([1]);
  });
});

describe('revision numbering under races', () => {
  it('gives every concurrent writer its own number (If-None-Match: *), with no gaps', async () => {
    const { ns, deps } = await setup('claims');
    const d = deps();
    const writers = Array.from({ length: 6 }, () => new StateStore(d.objects, d.store.keys));
    const base = { schema: 1 as const, cluster: d.config.cluster.name, namespace: ns, name: 'contended', cause: 'git-change' as const, manifest: {}, digest: 'sha256:x', rolloutMode: 'native' as const, replaced: null, runId: 'race', createdAt: new Date().toISOString(), outcome: 'pending' as const, outcomeAt: new Date().toISOString() };
    const claimed = await Promise.all(writers.map((w) => w.claimRevision(base, 0)));
    expect(claimed.map((c) => c.revision).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await d.store.listRevisionNumbers(ns, 'contended')).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('keeps numbers unique when a rollback and a reconcile race: exactly one acts', async () => {
    const { ns, git, deps } = await setup('rbrace');
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0' })).commit('v1');
    await reconcile(deps());
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0' })).commit('v2');
    await reconcile(deps());
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:3.0' })).commit('v3');

    const [rb, rc] = await Promise.allSettled([
      rollback(deps(), { namespace: ns, name: 'agent', toRevision: 1 }),
      reconcile(deps()),
    ]);
    const rollbackActed = rb.status === 'fulfilled';
    const reconcileActed = rc.status === 'fulfilled' && rc.value.result === 'succeeded';
    expect([rollbackActed, reconcileActed].filter(Boolean)).toHaveLength(1);
    if (!rollbackActed) expect((rb as PromiseRejectedResult).reason).toBeInstanceOf(LeaseHeldError);
    if (!reconcileActed) expect(rc).toMatchObject({ status: 'fulfilled', value: { result: 'skipped' } });
    expect(await deps().store.listRevisionNumbers(ns, 'agent')).toEqual([1, 2, 3]);
  });
});

describe('status', () => {
  it('shows each managed DaemonSet with its revision, phase, kubectl columns, pin and commit', async () => {
    const { ns, git, deps } = await setup('status');
    const sha = git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns })).commit('status check');
    await reconcile(deps());
    const s = await status(deps());
    const mine = s.daemonSets.find((d) => d.key === `${ns}/agent`)!;
    const workers = (await core.listNode({ labelSelector: 'daemonset-gitops.io/stack-node=worker' })).items.length;
    expect(mine).toMatchObject({ inCluster: true, revision: 1, phase: 'complete', desired: workers, current: workers, ready: workers, upToDate: workers, available: workers, commit: { sha } });
  });
});
