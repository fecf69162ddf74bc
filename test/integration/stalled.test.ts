/**
 * A stalled rollout is not the end of the story: a slow native rollout that recovers
 * becomes healthy on a later pass, and `resume` restarts a managed rollout that stopped
 * because the nodes it reached went NotReady, once an operator judged that unrelated.
 */
import { resume } from '../../lib/pause';
import { reconcile } from '../../lib/reconcile';
import { adminClients, NodeBreaker, waitFor, workerNodes } from '../support/cluster';
import { useWorkers } from '../support/managed';
import { dsYaml } from '../support/manifests';
import { cleanupScenarios, onCleanup, scenario } from '../support/scenario';

jest.setTimeout(300_000);

const { kc, core, apps } = adminClients();

afterAll(cleanupScenarios);
// Five settled workers whatever an earlier file left: its rollouts wait for every worker's pod, and it waits for every worker to be Ready again. Declared after the
// cleanup, so that it runs first (hooks run in the order they are declared).
useWorkers(5);

async function allNodesReady(): Promise<boolean> {
  return (await workerNodes(core)).every((n) => n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True');
}

describe('a stalled native rollout', () => {
  it('is looked at again by later passes and becomes healthy when it completes', async () => {
    const { ns, git, deps } = await scenario('slow', { PROGRESS_DEADLINE_SECONDS: '10' });
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: '100%' })).commit('v1');
    await reconcile(deps());
    // Every pod of v2 takes 20 s to become Ready: longer than the 10 s deadline.
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: '100%', podAnnotations: { 'pod-ready.stage.kwok.x-k8s.io/delay': '20s' } })).commit('v2: slow');
    const first = await reconcile(deps());
    expect(first.daemonSets[0].rollout).toMatchObject({ revision: 2, phase: 'stalled' });
    expect((await deps().store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('stalled');

    // Complete as `kubectl rollout status` sees it: the controller's status for this generation says every pod is updated and available.
    await waitFor('the DaemonSet controller to report the rollout complete', async () => {
      const ds = await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns });
      const s = ds.status!;
      return (s.observedGeneration ?? 0) >= (ds.metadata!.generation ?? 0) && s.desiredNumberScheduled > 0 &&
        s.updatedNumberScheduled === s.desiredNumberScheduled && s.numberAvailable === s.desiredNumberScheduled;
    }, 90_000);
    const later = await reconcile(deps());

    expect(later.daemonSets[0]).toMatchObject({ action: 'unchanged', rollout: { revision: 2, phase: 'complete' } });
    const state = (await deps().store.getState(ns, 'agent'))!.value;
    expect(state).toMatchObject({ lastHealthyRevision: 2, rollout: { phase: 'complete' } });
    expect((await deps().store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('healthy');
  });
});

describe('resume of a managed rollout that stopped on broken nodes', () => {
  it('says what it restarts, and the rollout completes once the nodes are back', async () => {
    const { ns, git, deps } = await scenario('resume-stalled');
    const managed = (image: string) => dsYaml({ name: 'agent', namespace: ns, image, maxUnavailable: 1, annotations: { 'daemonset-gitops.io/rollout': 'managed' }, podAnnotations: { 'pod-ready.stage.kwok.x-k8s.io/delay': '1s' } });
    git.write('a.yaml', managed('registry.local/agent:1.0')).commit('v1');
    await reconcile(deps());
    const breaker = new NodeBreaker(kc, ns, 'app=agent', 'registry.local/agent:2.0');
    await breaker.start();
    onCleanup(() => breaker.stop());
    git.write('a.yaml', managed('registry.local/agent:2.0')).commit('v2');
    const stopped = await reconcile(deps());
    expect(stopped.daemonSets[0].rollout).toMatchObject({ revision: 2, phase: 'stalled' });
    expect(breaker.broken).toHaveLength(1);

    // The operator finds the node failure unrelated, brings the node back, and resumes.
    await breaker.stop();
    await waitFor('the node to be Ready again', allNodesReady, 60_000);
    const stillStopped = await reconcile(deps());
    expect(stillStopped.daemonSets[0].rollout).toMatchObject({ phase: 'stalled' });
    const resumed = await resume(deps(), { namespace: ns, name: 'agent', by: 'oncall' });
    expect(resumed.message).toMatch(/resumed the stalled rollout of revision 2 \(it was stopped: the update broke 1 node/);
    expect(resumed.message).toContain('its progress deadline starts again now');
    expect((await deps().store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('progressing');

    const done = await reconcile(deps());
    expect(done.daemonSets[0].rollout).toMatchObject({ revision: 2, phase: 'complete' });
    expect((await deps().store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('healthy');
  });
});
