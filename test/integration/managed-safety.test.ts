/**
 * Managed rollouts when the new version is what breaks: an update that takes down every
 * node it reaches, a canary that fails, a canary that selects nothing, and a node that
 * stops being eligible in the middle of a rollout. Each runs on 12 kwok nodes with a pod
 * and node watcher that measures unavailability the Kubernetes way (a desired node without
 * an available pod, a pod on a NotReady node included).
 */
import * as k8s from '@kubernetes/client-node';
import { reconcile } from '../../lib/reconcile';
import { autoRollback } from '../../lib/rollback';
import { adminClients, AvailabilityWatcher, NodeBreaker, waitFor, workerNodes } from '../support/cluster';
import type { DsOptions } from '../support/manifests';
import { imagesByNode as managedImagesByNode, managedYaml, useWorkers, workerNames as managedWorkerNames } from '../support/managed';
import { cleanupScenarios, onCleanup, scenario } from '../support/scenario';

jest.setTimeout(600_000);

const NODES = 12;
const READY_DELAY_SECONDS = 2;
const { kc, core, apps } = adminClients();

// Scenarios are cleaned up first (hooks run in the order they are declared), then the fleet is resized back.
afterAll(cleanupScenarios);
useWorkers(NODES);

const managed = (o: DsOptions & { managedAnnotations?: Record<string, string> }) => managedYaml(o, READY_DELAY_SECONDS);
const workerNames = () => managedWorkerNames(core);
const imagesByNode = (ns: string, app: string) => managedImagesByNode(core, ns, app);

async function readyNodeCount(names: string[]): Promise<number> {
  const nodes = await workerNodes(core);
  return nodes.filter((n) => names.includes(n.metadata!.name!) && n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True').length;
}

const GOOD = 'registry.local/agent:1.0';
const BROKEN = 'registry.local/agent:2.0-breaks-nodes';

describe('an update that takes down every node it reaches', () => {
  it.each([1, 2])('maxUnavailable %i: stops within the budget, is never recorded healthy, and the automatic rollback brings the broken nodes back', async (k) => {
    const { ns, git, deps } = await scenario('breaks');
    const nodes = await workerNames();
    const annotations = { 'daemonset-gitops.io/auto-rollback': 'true', 'daemonset-gitops.io/progress-deadline': '60' };
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: GOOD, maxUnavailable: k, managedAnnotations: annotations })).commit('v1');
    expect((await reconcile(deps(), {}, autoRollback)).daemonSets[0].rollout).toMatchObject({ phase: 'complete' });

    const breaker = new NodeBreaker(kc, ns, 'app=agent', BROKEN);
    await breaker.start();
    onCleanup(() => breaker.stop());
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: BROKEN, maxUnavailable: k, managedAnnotations: annotations })).commit('v2: a plugin that takes its node down');
    const r = await reconcile(deps(), {}, autoRollback);
    await waitFor('the broken nodes to be Ready again', async () => (await readyNodeCount(nodes)) === NODES, 60_000);
    watcher.stop();

    const entry = r.daemonSets[0];
    expect(entry.rollout).toMatchObject({ revision: 2, phase: 'stalled' });
    expect(entry.rollout!.message).toMatch(/the update broke/);
    expect(entry.message).toMatch(/rolled back from revision 2 to revision 1 \(recorded as revision 3\)/);
    // The bad version reached at most maxUnavailable nodes, and never more were unavailable at once.
    expect(breaker.broken.length).toBeGreaterThanOrEqual(1);
    expect(breaker.broken.length).toBeLessThanOrEqual(k);
    expect(watcher.nodesByImage.get(BROKEN)?.size).toBeLessThanOrEqual(k);
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(k);
    // The rollback replaced the bad pods on the nodes the bad version broke, and they recovered.
    expect(Object.values(await imagesByNode(ns, 'agent'))).toEqual(nodes.map(() => GOOD));
    const store = deps().store;
    const state = (await store.getState(ns, 'agent'))!.value;
    expect(state).toMatchObject({ currentRevision: 3, lastHealthyRevision: 3, pin: { revision: 1 } });
    expect((await store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('rolled-back');
    expect((await store.getRevision(ns, 'agent', 3))!.value).toMatchObject({ cause: 'rollback', rollbackTo: 1, outcome: 'healthy' });
  });
});

describe('a new revision after an update broke a node', () => {
  it('with only an annotation changed in Git continues the stopped rollout: no other node is touched, and the rollback repairs the canary node', async () => {
    const { ns, git, deps } = await scenario('meta-revision');
    const nodes = await workerNames();
    const annotations = { 'daemonset-gitops.io/canary': '1', 'daemonset-gitops.io/canary-hold': '30s', 'daemonset-gitops.io/progress-deadline': '300' };
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: GOOD, maxUnavailable: 1, managedAnnotations: annotations })).commit('v1');
    await reconcile(deps(), {}, autoRollback);
    const breaker = new NodeBreaker(kc, ns, 'app=agent', BROKEN);
    await breaker.start();
    onCleanup(() => breaker.stop());
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: BROKEN, maxUnavailable: 1, managedAnnotations: annotations })).commit('v2: breaks its node');
    const stopped = await reconcile(deps(), {}, autoRollback);
    expect(stopped.daemonSets[0].rollout).toMatchObject({ revision: 2, phase: 'stalled' });

    // act: the operator turns automatic rollback on in Git; the template is the same
    const withRollback = { ...annotations, 'daemonset-gitops.io/auto-rollback': 'true' };
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: BROKEN, maxUnavailable: 1, managedAnnotations: withRollback })).commit('v3: auto-rollback');
    const r = await reconcile(deps(), {}, autoRollback);
    await waitFor('the canary node to be Ready again', async () => (await readyNodeCount(nodes)) === NODES, 60_000);
    watcher.stop();

    // assert: revision 3 went on from where revision 2 stopped, and the rollback repaired the node revision 2 broke
    expect(r.daemonSets[0].rollout).toMatchObject({ revision: 3, phase: 'stalled' });
    expect(r.daemonSets[0].rollout!.message).toMatch(/the update broke 1 node/);
    expect(r.daemonSets[0].message).toMatch(/rolled back from revision 3 to revision 1/);
    expect(breaker.broken).toEqual([nodes[0]]);
    expect(new Set(watcher.deletions.map((d) => d.node))).toEqual(new Set([nodes[0]]));
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(1);
    expect(Object.values(await imagesByNode(ns, 'agent'))).toEqual(nodes.map(() => GOOD));
  });
});

describe('NotReady nodes before the rollout', () => {
  it('count against maxUnavailable: 4 of 12 NotReady with 50% keeps at most 6 unavailable, and the Ready nodes are updated', async () => {
    const { ns, git, deps } = await scenario('notready-budget');
    const nodes = await workerNames();
    const sick = nodes.slice(0, 4);
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: GOOD, maxUnavailable: '50%' })).commit('v1');
    await reconcile(deps());
    const setNotReady = (names: string[], notReady: boolean) => Promise.all(names.map((name) => core.patchNode({ name, body: { metadata: { labels: { 'node-not-ready.stage.kwok.x-k8s.io': notReady ? 'true' : null } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch))));
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    let r: Awaited<ReturnType<typeof reconcile>>;
    try {
      await setNotReady(sick, true);
      await waitFor('four nodes NotReady', async () => (await readyNodeCount(nodes)) === NODES - 4, 60_000);
      await watcher.start();
      // act
      git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: '50%' })).commit('v2');
      r = await reconcile(deps());
    } finally {
      watcher.stop();
      // The later tests of this file need the whole fleet Ready.
      await setNotReady(sick, false);
      await waitFor('the NotReady nodes to be Ready again', async () => (await readyNodeCount(nodes)) === NODES, 60_000);
    }

    // assert: 6 = ceil(50% of 12); the four NotReady nodes used four of them
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(6);
    expect(r.daemonSets[0].rollout!.message).toMatch(/waiting for NotReady nodes/);
    const images = await imagesByNode(ns, 'agent');
    expect(nodes.slice(4).map((n) => images[n])).toEqual(nodes.slice(4).map(() => 'registry.local/agent:2.0'));
    expect(sick.map((n) => images[n])).toEqual(sick.map(() => GOOD));
  });
});

describe('a canary', () => {
  it('whose pod takes down its own node fails at once: rolled back, and no other node is touched', async () => {
    const { ns, git, deps } = await scenario('canary-breaks');
    const nodes = await workerNames();
    const annotations = { 'daemonset-gitops.io/canary': '1', 'daemonset-gitops.io/canary-hold': '30s', 'daemonset-gitops.io/auto-rollback': 'true', 'daemonset-gitops.io/progress-deadline': '300' };
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: GOOD, maxUnavailable: 4, managedAnnotations: annotations })).commit('v1');
    await reconcile(deps(), {}, autoRollback);
    const breaker = new NodeBreaker(kc, ns, 'app=agent', BROKEN);
    await breaker.start();
    onCleanup(() => breaker.stop());
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: BROKEN, maxUnavailable: 4, managedAnnotations: annotations })).commit('v2');
    const started = Date.now();
    const r = await reconcile(deps(), {}, autoRollback);
    await waitFor('the canary node to be Ready again', async () => (await readyNodeCount(nodes)) === NODES, 60_000);
    watcher.stop();

    // The deadline (300 s) is not what ended it: the broken canary node is evidence enough.
    expect(Date.now() - started).toBeLessThan(120_000);
    expect(r.daemonSets[0].rollout).toMatchObject({ revision: 2, phase: 'stalled' });
    expect(r.daemonSets[0].message).toMatch(/rolled back from revision 2 to revision 1/);
    expect(breaker.broken).toEqual([nodes[0]]);
    expect(new Set(watcher.deletions.map((d) => d.node))).toEqual(new Set([nodes[0]]));
    expect(Object.values(await imagesByNode(ns, 'agent'))).toEqual(nodes.map(() => GOOD));
  });

  it('that never becomes available stalls at its deadline and is rolled back; no node outside it ran the update', async () => {
    const { ns, git, deps } = await scenario('canary-crash');
    const nodes = await workerNames();
    const annotations = { 'daemonset-gitops.io/canary': '2', 'daemonset-gitops.io/auto-rollback': 'true', 'daemonset-gitops.io/progress-deadline': '15' };
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: GOOD, maxUnavailable: 3, managedAnnotations: annotations })).commit('v1');
    await reconcile(deps(), {}, autoRollback);
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    git.write('a.yaml', managed({
      name: 'agent', namespace: ns, image: 'registry.local/agent:2.0-crashes', maxUnavailable: 3, managedAnnotations: annotations,
      podLabels: { 'pod-container-running-failed.stage.kwok.x-k8s.io': 'true' },
    })).commit('v2: crashes');
    const r = await reconcile(deps(), {}, autoRollback);
    watcher.stop();

    expect(r.daemonSets[0].rollout).toMatchObject({ revision: 2, phase: 'stalled' });
    expect(r.daemonSets[0].message).toMatch(/rolled back from revision 2 to revision 1/);
    expect([...(watcher.nodesByImage.get('registry.local/agent:2.0-crashes') ?? [])].sort()).toEqual(nodes.slice(0, 2));
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(2);
    expect(Object.values(await imagesByNode(ns, 'agent'))).toEqual(nodes.map(() => GOOD));
  });

  it('whose selector matches no node is refused as an invalid manifest naming the annotation, and nothing is applied or deleted', async () => {
    const { ns, git, deps } = await scenario('canary-typo');
    const nodes = await workerNames();
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: GOOD, maxUnavailable: 2 })).commit('v1');
    await reconcile(deps());
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    const typo = { 'daemonset-gitops.io/canary': 'topology.kubernetes.io/zone=eu-west-1a' };
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: 2, managedAnnotations: typo })).commit('v2 with a canary');
    const r = await reconcile(deps());
    await new Promise((res) => setTimeout(res, 2000));
    watcher.stop();

    expect(r.daemonSets[0]).toMatchObject({ action: 'invalid', applied: false });
    expect(r.daemonSets[0].message).toContain('a.yaml');
    expect(r.daemonSets[0].message).toContain('daemonset-gitops.io/canary: "topology.kubernetes.io/zone=eu-west-1a" selects none of the 12 Ready nodes');
    expect(r.result).toBe('failed');
    const live = await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns });
    expect(live.spec!.template.spec!.containers[0].image).toBe(GOOD);
    expect(watcher.deletions).toEqual([]);
  });
});

describe('a node that stops being eligible mid-rollout', () => {
  it('keeps its pod, neither blocks the rollout nor breaks the budget, and the rollout completes', async () => {
    const { ns, git, deps } = await scenario('tainted');
    const nodes = await workerNames();
    const last = nodes[nodes.length - 1];
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: GOOD, maxUnavailable: 1 })).commit('v1');
    await reconcile(deps());
    const oldPodOnLast = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=agent', fieldSelector: `spec.nodeName=${last}` })).items[0];
    const taint = { key: 'daemonset-gitops.io/test-drain', value: ns, effect: 'NoSchedule' };
    // The fleet may already be back to its size before this file, and this node gone with it.
    const untaint = async () => {
      const n = await core.readNode({ name: last }).catch(() => undefined);
      if (!n) return;
      const taints = (n.spec?.taints ?? []).filter((t) => t.key !== taint.key);
      await core.patchNode({ name: last, body: { spec: { taints } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch));
    };
    onCleanup(untaint);
    const eligible = nodes.filter((n) => n !== last);
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', eligible);
    await watcher.start();
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: 1 })).commit('v2');
    const running = reconcile(deps());
    await waitFor('the first wave', async () => watcher.deletions.length >= 1, 60_000);
    const n = await core.readNode({ name: last });
    await core.patchNode({ name: last, body: { spec: { taints: [...(n.spec?.taints ?? []), taint] } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch));
    const r = await running;
    watcher.stop();

    expect(r.daemonSets[0].rollout).toMatchObject({ revision: 2, phase: 'complete', desired: NODES - 1 });
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(1);
    expect(watcher.deletions.map((d) => d.node)).not.toContain(last);
    const images = await imagesByNode(ns, 'agent');
    expect(eligible.map((e) => images[e])).toEqual(eligible.map(() => 'registry.local/agent:2.0'));
    // The tainted node keeps the pod it had: NoSchedule does not evict, and this rollout leaves it alone.
    const onLast = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=agent', fieldSelector: `spec.nodeName=${last}` })).items;
    expect(onLast.map((p) => p.metadata!.uid)).toEqual([oldPodOnLast.metadata!.uid]);
    expect((await deps().store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('healthy');
  });
});

describe('kubectl set image during a managed rollout', () => {
  it('is never recorded healthy for the revision: the driver stops, and the next pass restores the revision\'s template and completes it on its own pods', async () => {
    const { ns, git, deps } = await scenario('set-image');
    const V2 = 'registry.local/agent:2.0';
    const HOTFIX = 'registry.local/agent:2.0-by-hand';
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: GOOD, maxUnavailable: 1 })).commit('v1');
    expect((await reconcile(deps())).daemonSets[0].rollout).toMatchObject({ phase: 'complete' });

    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: V2, maxUnavailable: 1 })).commit('v2');
    const running = reconcile(deps());
    await waitFor('a node to run revision 2\'s image', async () => Object.values(await imagesByNode(ns, 'agent')).includes(V2), 120_000);
    // kubectl set image, out of band, while the pass drives revision 2
    await apps.patchNamespacedDaemonSet(
      { name: 'agent', namespace: ns, fieldManager: 'kubectl-set', body: { spec: { template: { spec: { containers: [{ name: 'agent', image: HOTFIX }] } } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    const first = await running;
    // The pods the controller now calls updated run someone else's template: revision 2 is not judged on them.
    expect(first.daemonSets[0]).toMatchObject({ revision: 2 });
    expect(first.daemonSets[0].rollout?.phase).toBe('progressing');
    const store = deps().store;
    expect((await store.getState(ns, 'agent'))!.value.lastHealthyRevision).toBe(1);
    expect((await store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('progressing');

    const second = await reconcile(deps());
    expect(second.daemonSets[0]).toMatchObject({ action: 'drifted', cause: 'drift-correction', applied: true, revision: 3 });
    expect(second.daemonSets[0].rollout).toMatchObject({ phase: 'complete' });
    // Every node the DaemonSet should run on (a node an earlier case tainted is not one) runs the revision's own image, the ones the hand-made template reached included.
    const images = await imagesByNode(ns, 'agent');
    expect(Object.keys(images)).toHaveLength((await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns })).status!.desiredNumberScheduled);
    expect(new Set(Object.values(images))).toEqual(new Set([V2]));
    expect((await store.getState(ns, 'agent'))!.value).toMatchObject({ currentRevision: 3, lastHealthyRevision: 3 });
    expect((await store.getRevision(ns, 'agent', 3))!.value).toMatchObject({ cause: 'drift-correction', outcome: 'healthy' });
    expect((await store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('superseded');
  });
});
