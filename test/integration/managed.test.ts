/**
 * Managed rollouts on 12 nodes: the reconciler replaces pods itself, in waves within
 * maxUnavailable, with canaries, pause/resume, a progress deadline with automatic rollback,
 * NotReady nodes that do not block, and a driver that survives being killed.
 */
import * as k8s from '@kubernetes/client-node';
import { pause, resume } from '../../lib/pause';
import { reconcile } from '../../lib/reconcile';
import { autoRollback } from '../../lib/rollback';
import { adminClients, AvailabilityWatcher, isPodReady, waitFor, workerNodes } from '../support/cluster';
import type { DsOptions } from '../support/manifests';
import { imagesByNode as managedImagesByNode, managedYaml, useWorkers, workerNames as managedWorkerNames } from '../support/managed';
import { runCliProcess, stackConfig, stackConfigEnv, stackDeps } from '../support/reconciler';
import { cleanupScenarios, onCleanup, reconcileOnceLeaseFree, scenario } from '../support/scenario';

jest.setTimeout(600_000);

const NODES = 12;
const READY_DELAY_SECONDS = 3;
const { kc, core, apps } = adminClients();
const setup = scenario;

// Scenarios are cleaned up first (hooks run in the order they are declared), then the fleet is resized back.
afterAll(cleanupScenarios);
useWorkers(NODES);

const managed = (o: DsOptions & { managedAnnotations?: Record<string, string> }) => managedYaml(o, READY_DELAY_SECONDS);
const workerNames = () => managedWorkerNames(core);
const imagesByNode = (ns: string, app: string) => managedImagesByNode(core, ns, app);

async function podsOf(ns: string, app: string): Promise<k8s.V1Pod[]> {
  return (await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` })).items.filter((p) => !p.metadata!.deletionTimestamp);
}

describe('managed rollouts within maxUnavailable', () => {
  it.each([
    ['25%', 3],
    [2, 2],
  ])('maxUnavailable %s on 12 nodes: the watcher never sees more than %i nodes without an available pod', async (maxUnavailable, k) => {
    const { ns, git, deps } = await setup('wave');
    const nodes = await workerNames();
    expect(nodes).toHaveLength(NODES);
    const minReadySeconds = 1;
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable, minReadySeconds })).commit('v1');
    const first = await reconcile(deps());
    expect(first.daemonSets[0]).toMatchObject({ action: 'create', rollout: { mode: 'managed', phase: 'complete' } });
    const live = await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns });
    expect(live.spec!.updateStrategy!.type).toBe('OnDelete');
    expect(JSON.parse(live.metadata!.annotations!['daemonset-gitops.io/declared-strategy'])).toEqual({ type: 'RollingUpdate', maxUnavailable, maxSurge: 0 });

    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes, minReadySeconds);
    await watcher.start();
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable, minReadySeconds })).commit('v2');
    const second = await reconcile(deps());
    watcher.stop();

    const entry = second.daemonSets[0];
    expect(entry).toMatchObject({ action: 'update', revision: 2, rollout: { mode: 'managed', phase: 'complete', upToDate: NODES, available: NODES } });
    expect(Object.values(await imagesByNode(ns, 'agent'))).toEqual(nodes.map(() => 'registry.local/agent:2.0'));
    expect(watcher.maxUnavailableSeen).toBeGreaterThanOrEqual(1);
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(k);

    const state = (await deps().store.getState(ns, 'agent'))!.value;
    const wall = (Date.parse(state.rollout!.finishedAt!) - Date.parse(state.rollout!.startedAt)) / 1000;
    const ideal = Math.ceil(NODES / k) * (READY_DELAY_SECONDS + minReadySeconds);
    // eslint-disable-next-line no-console
    console.log(`managed rollout, ${NODES} nodes, maxUnavailable ${maxUnavailable} (k=${k}): wall ${wall.toFixed(1)}s, ideal ceil(N/k) x (ready delay + minReadySeconds) = ${ideal}s, waves ${(state.rollout!.managed as { checkpoint: { waves: number } }).checkpoint.waves}`);
    // Waves wait for readiness, so the rollout takes at least one ready delay per wave (it would take about one
    // delay in all if it deleted everything at once). minReadySeconds may be met up to a second early: Kubernetes
    // condition timestamps have one-second resolution.
    expect(wall).toBeGreaterThanOrEqual(Math.ceil(NODES / k) * READY_DELAY_SECONDS);
    expect((await deps().store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('healthy');
  });
});

describe('a failing new version', () => {
  it('fails in the first wave, stalls within the deadline, and is rolled back automatically; only one wave of nodes ever ran it', async () => {
    const { ns, git, deps } = await setup('fail');
    const nodes = await workerNames();
    const annotations = { 'daemonset-gitops.io/progress-deadline': '12', 'daemonset-gitops.io/auto-rollback': 'true' };
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: 2, managedAnnotations: annotations })).commit('v1');
    await reconcile(deps(), {}, autoRollback);
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    git.write('a.yaml', managed({
      name: 'agent', namespace: ns, image: 'registry.local/agent:broken', maxUnavailable: 2, managedAnnotations: annotations,
      podLabels: { 'pod-container-running-failed.stage.kwok.x-k8s.io': 'true' },
    })).commit('v2: crashes');
    const r = await reconcile(deps(), {}, autoRollback);
    watcher.stop();

    expect(r.daemonSets[0]).toMatchObject({ revision: 2, rollout: { phase: 'stalled' } });
    expect(r.daemonSets[0].message).toMatch(/rolled back from revision 2 to revision 1 \(recorded as revision 3\)/);
    expect(watcher.nodesByImage.get('registry.local/agent:broken')?.size).toBe(2);
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(2);
    expect(Object.values(await imagesByNode(ns, 'agent'))).toEqual(nodes.map(() => 'registry.local/agent:1.0'));
    expect((await podsOf(ns, 'agent')).every(isPodReady)).toBe(true);
    const store = deps().store;
    expect((await store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('rolled-back');
    const r3 = (await store.getRevision(ns, 'agent', 3))!.value;
    expect(r3).toMatchObject({ cause: 'rollback', rollbackTo: 1, outcome: 'healthy' });
    expect(r3.reason).toMatch(/^automatic rollback: revision 2 stalled/);
  });
});

describe('canary', () => {
  async function canaryRun(canary: string, expectedFirst: (nodes: k8s.V1Node[]) => string[]) {
    const { ns, git, deps } = await setup('canary');
    const nodeObjects = await workerNodes(core);
    const nodes = nodeObjects.map((n) => n.metadata!.name!).sort();
    const ann = { 'daemonset-gitops.io/canary': canary, 'daemonset-gitops.io/canary-hold': '4s' };
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: 4, managedAnnotations: ann })).commit('v1');
    await reconcile(deps());
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: 4, managedAnnotations: ann })).commit('v2');
    const r = await reconcile(deps());
    watcher.stop();
    expect(r.daemonSets[0].rollout).toMatchObject({ phase: 'complete', upToDate: NODES });

    const canaryNodes = expectedFirst(nodeObjects).sort();
    const state = (await deps().store.getState(ns, 'agent'))!.value;
    expect((state.rollout!.managed as { checkpoint: { canaryNodes: string[]; canaryPassed: boolean } }).checkpoint).toMatchObject({ canaryNodes, canaryPassed: true });
    // The first deletions were exactly the canary nodes; the next came only after they were available for the hold.
    const first = watcher.deletions.slice(0, canaryNodes.length).map((d) => d.node).sort();
    expect(first).toEqual(canaryNodes);
    const rest = watcher.deletions.slice(canaryNodes.length);
    expect(rest.length).toBe(NODES - canaryNodes.length);
    const lastCanaryDeletion = Math.max(...watcher.deletions.slice(0, canaryNodes.length).map((d) => d.at));
    expect(Math.min(...rest.map((d) => d.at)) - lastCanaryDeletion).toBeGreaterThanOrEqual((READY_DELAY_SECONDS + 4) * 1000 * 0.9);
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(4);
  }

  it('by count: the first wave is the first 2 nodes by name, held until available for the hold time', async () => {
    await canaryRun('2', (nodes) => nodes.map((n) => n.metadata!.name!).sort().slice(0, 2));
  });

  it('by node label: the first wave is the nodes of zone b', async () => {
    await canaryRun('topology.kubernetes.io/zone=b', (nodes) => nodes.filter((n) => n.metadata!.labels!['topology.kubernetes.io/zone'] === 'b').map((n) => n.metadata!.name!));
  });
});

describe('pause and resume', () => {
  it('stops the waves mid-rollout, deletes nothing while paused, and finishes after resume', async () => {
    const { ns, git, deps } = await setup('pause');
    const nodes = await workerNames();
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: 1 })).commit('v1');
    await reconcile(deps());
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: 1 })).commit('v2');
    const running = reconcile(deps());
    await waitFor('two nodes to be updated', async () => Object.values(await imagesByNode(ns, 'agent')).filter((i) => i.endsWith(':2.0')).length >= 2, 120_000);
    const paused = await pause(deps(), { namespace: ns, name: 'agent', reason: 'checking dashboards' });
    expect(paused.paused).toBe(true);
    const first = await running;
    expect(first.daemonSets[0].rollout).toMatchObject({ phase: 'progressing' });
    expect(first.daemonSets[0].rollout!.message).toMatch(/^paused/);

    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    const before = (await podsOf(ns, 'agent')).map((p) => p.metadata!.uid).sort();
    const whilePaused = await reconcile(deps());
    expect(whilePaused.daemonSets[0].rollout!.message).toMatch(/^paused/);
    await new Promise((r) => setTimeout(r, (READY_DELAY_SECONDS + 3) * 1000));
    watcher.stop();
    expect(watcher.deletions).toEqual([]);
    expect((await podsOf(ns, 'agent')).map((p) => p.metadata!.uid).sort()).toEqual(before);
    const updatedWhilePaused = Object.values(await imagesByNode(ns, 'agent')).filter((i) => i.endsWith(':2.0')).length;
    expect(updatedWhilePaused).toBeLessThan(NODES);

    await resume(deps(), { namespace: ns, name: 'agent' });
    const done = await reconcile(deps());
    expect(done.daemonSets[0].rollout).toMatchObject({ phase: 'complete', upToDate: NODES });
    expect(Object.values(await imagesByNode(ns, 'agent'))).toEqual(nodes.map(() => 'registry.local/agent:2.0'));
  });
});

describe('NotReady nodes', () => {
  it('are skipped without blocking the rollout, and updated when they come back', async () => {
    const { ns, git, deps } = await setup('notready');
    const nodes = await workerNames();
    const sick = nodes[0];
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: 3 })).commit('v1');
    await reconcile(deps());
    await core.patchNode({ name: sick, body: { metadata: { labels: { 'node-not-ready.stage.kwok.x-k8s.io': 'true' } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch));
    onCleanup(async () => {
      await core.patchNode({ name: sick, body: { metadata: { labels: { 'node-not-ready.stage.kwok.x-k8s.io': null } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch)).catch(() => undefined);
    });
    await waitFor(`${sick} to be NotReady`, async () => (await core.readNode({ name: sick })).status!.conditions!.find((c) => c.type === 'Ready')!.status !== 'True');

    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: 3 })).commit('v2');
    const r = await reconcile(deps());
    expect(r.daemonSets[0].rollout).toMatchObject({ phase: 'progressing' });
    expect(r.daemonSets[0].rollout!.message).toContain(sick);
    const during = await imagesByNode(ns, 'agent');
    expect(during[sick]).toBe('registry.local/agent:1.0');
    expect(nodes.slice(1).map((n) => during[n])).toEqual(nodes.slice(1).map(() => 'registry.local/agent:2.0'));

    await core.patchNode({ name: sick, body: { metadata: { labels: { 'node-not-ready.stage.kwok.x-k8s.io': null } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch));
    await waitFor(`${sick} to be Ready again`, async () => (await core.readNode({ name: sick })).status!.conditions!.find((c) => c.type === 'Ready')!.status === 'True');
    const after = await reconcile(deps());
    expect(after.daemonSets[0].rollout).toMatchObject({ phase: 'complete', upToDate: NODES });
    expect((await imagesByNode(ns, 'agent'))[sick]).toBe('registry.local/agent:2.0');
  });
});

describe('a driver killed mid-rollout', () => {
  it('is not judged on the time nobody drove the rollout: the gap until the next run takes the lease does not count against the deadline', async () => {
    const { ns, git } = await setup('undriven');
    const env = stackConfigEnv({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, LEASE_SECONDS: '5' });
    const deps = () => stackDeps(stackConfig(env));
    const ann = { 'daemonset-gitops.io/progress-deadline': '75' };
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: 1, managedAnnotations: ann })).commit('v1');
    expect((await reconcile(deps())).daemonSets[0].rollout).toMatchObject({ phase: 'complete' });
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', await workerNames());
    await watcher.start();
    onCleanup(() => watcher.stop());
    // v2 never becomes available: the rollout can only stall, and must, once it was driven 75 s without progress
    git.write('a.yaml', managed({
      name: 'agent', namespace: ns, image: 'registry.local/agent:2.0-crashes', maxUnavailable: 1, managedAnnotations: ann,
      podLabels: { 'pod-container-running-failed.stage.kwok.x-k8s.io': 'true' },
    })).commit('v2: crashes');
    let pid = 0;
    const cli = runCliProcess(['reconcile', '--json'], env, 180_000, (p) => (pid = p));
    await waitFor('the first wave', async () => watcher.deletions.length >= 1, 120_000);
    await waitFor('the first wave recorded', async () => ((await deps().store.getState(ns, 'agent'))!.value.rollout?.managed?.checkpoint?.waves ?? 0) >= 1, 30_000);
    process.kill(pid, 'SIGKILL');
    expect((await cli).signal).toBe('SIGKILL');
    const killedAt = Date.now();

    // act: nobody drives it for longer than the deadline (a Lambda that timed out, a lease that has to expire)
    await waitFor('100 s without a driver', async () => Date.now() - killedAt >= 100_000, 120_000);
    const next = await reconcileOnceLeaseFree(stackConfig(env));
    watcher.stop();

    // assert: it stalls, on the time it was driven; the undriven gap beyond 60 s is not in it
    expect(next.daemonSets[0].rollout).toMatchObject({ revision: 2, phase: 'stalled' });
    const state = (await deps().store.getState(ns, 'agent'))!.value;
    const idle = Number(/no progress for (\d+)s \(deadline 75s\)/.exec(state.rollout!.message ?? '')?.[1]);
    const wall = (Date.parse((await deps().store.getRevision(ns, 'agent', 2))!.value.outcomeAt) - Date.parse(state.rollout!.lastProgressAt)) / 1000;
    expect(idle).toBeGreaterThanOrEqual(75);
    expect(wall - idle).toBeGreaterThanOrEqual(30);
    expect(watcher.deletions).toHaveLength(1);
  });

  it('resumes from its checkpoint and never exceeds the budget across the handover', async () => {
    const { ns, git } = await setup('resume');
    const nodes = await workerNames();
    const env = stackConfigEnv({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, LEASE_SECONDS: '5' });
    const deps = () => stackDeps(stackConfig(env));
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: 2 })).commit('v1');
    // The budget is measured from a fleet where every node runs an available v1 pod.
    expect((await reconcile(deps())).daemonSets[0].rollout).toMatchObject({ phase: 'complete', available: NODES });
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: 2 })).commit('v2');

    let pid = 0;
    const cli = runCliProcess(['reconcile', '--json'], env, 180_000, (p) => (pid = p));
    await waitFor('three pods deleted by the first driver', async () => watcher.deletions.length >= 3, 120_000);
    process.kill(pid, 'SIGKILL');
    const killed = await cli;
    expect(killed.signal).toBe('SIGKILL');
    const checkpoint = ((await deps().store.getState(ns, 'agent'))!.value.rollout!.managed as { checkpoint: { waves: number } }).checkpoint;
    expect(checkpoint.waves).toBeGreaterThanOrEqual(2);

    const next = await reconcileOnceLeaseFree(stackConfig(env));
    watcher.stop();
    expect(next.daemonSets[0].rollout).toMatchObject({ phase: 'complete', upToDate: NODES });
    const finalCheckpoint = ((await deps().store.getState(ns, 'agent'))!.value.rollout!.managed as { checkpoint: { waves: number } }).checkpoint;
    expect(finalCheckpoint.waves).toBeGreaterThan(checkpoint.waves);
    if (watcher.maxUnavailableSeen > 2) console.log(watcher.worst);
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(2);
    expect(Object.values(await imagesByNode(ns, 'agent'))).toEqual(nodes.map(() => 'registry.local/agent:2.0'));
  });
});
