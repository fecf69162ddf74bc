/**
 * An incident rollback is never refused because a pass is busy watching a rollout: the
 * watching pass holds the lease but marks it preemptible; the rollback takes it over, and
 * the watcher stops at its next look without touching anything.
 */
import { reconcile } from '../../lib/reconcile';
import { rollback } from '../../lib/rollback';
import { adminClients, waitFor } from '../support/cluster';
import { dsYaml } from '../support/manifests';
import { cleanupScenarios, scenario } from '../support/scenario';

jest.setTimeout(300_000);

const { core, apps } = adminClients();

afterAll(cleanupScenarios);

describe('a manual rollback while a pass watches a slow native rollout', () => {
  it('is applied within seconds, and the watching pass stops without acting further', async () => {
    const { ns, git, deps } = await scenario('preempt');
    const slow = { 'pod-ready.stage.kwok.x-k8s.io/delay': '15s' };
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: 1 })).commit('v1');
    expect((await reconcile(deps())).daemonSets[0].rollout).toMatchObject({ phase: 'complete' });

    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: 1, podAnnotations: slow })).commit('v2: slow to start');
    const pass = reconcile(deps());
    let passDone = 0;
    void pass.then(() => (passDone = Date.now()));
    // The pass has applied revision 2 and is watching its rollout, one node at a time.
    await waitFor('the rollout of revision 2 to start', async () => {
      const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=agent' })).items;
      return pods.some((p) => p.spec!.containers[0].image === 'registry.local/agent:2.0');
    }, 60_000);
    expect(passDone).toBe(0);

    const asked = Date.now();
    const rolled = await rollback(deps(), { namespace: ns, name: 'agent', toRevision: 1, reason: 'v2 is slow', wait: false });
    const tookMs = Date.now() - asked;
    const live = await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns });

    expect(rolled).toMatchObject({ toRevision: 1, revision: 3 });
    expect(tookMs).toBeLessThan(10_000);
    expect(live.spec!.template.spec!.containers[0].image).toBe('registry.local/agent:1.0');

    const report = await pass;
    // The watcher noticed within one look (its watch slices are 10 s) and did not wait for the slow rollout.
    expect(passDone - asked).toBeLessThan(20_000);
    expect(report.result).toBe('succeeded');
    expect(report.preempted).toMatch(/rollback/);
    expect(report.daemonSets[0]).toMatchObject({ action: 'update', revision: 2 });
    const state = (await deps().store.getState(ns, 'agent'))!.value;
    expect(state).toMatchObject({ currentRevision: 3, pin: { revision: 1, reason: 'v2 is slow' } });
    expect((await deps().store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('rolled-back');
  });
});
