/**
 * A managed rollback killed between its apply and the state write that seeds its rollout
 * (the nodes the failed rollout broke may have their pods replaced although NotReady). The
 * kill is real: `dsgitops rollback` runs as its own process and sends itself SIGKILL right
 * after the API server accepted the apply (DSGITOPS_FAULT=kill-after-apply), leaving its lease
 * unreleased. The next pass must still repair the broken node.
 */
import { reconcile } from '../../lib/reconcile';
import { adminClients, createNamespace, deleteNamespace, NodeBreaker, waitFor, workerNodes } from '../support/cluster';
import { TestRepo } from '../support/git';
import { imagesByNode, managedYaml, useWorkers, workerNames } from '../support/managed';
import { runCliProcess, stackConfig, stackConfigEnv, stackDeps } from '../support/reconciler';
import { reconcileOnceLeaseFree } from '../support/scenario';

jest.setTimeout(400_000);

const NODES = 4;
const GOOD = 'registry.local/agent:1.0';
const BROKEN = 'registry.local/agent:2.0-breaks-nodes';
const { kc, core } = adminClients();
let ns: string;
let git: TestRepo;
let env: Record<string, string>;
let breaker: NodeBreaker | undefined;

beforeAll(async () => {
  ns = await createNamespace(core, 'mrbcrash');
  git = new TestRepo();
  env = stackConfigEnv({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, LEASE_SECONDS: '5' });
});

afterAll(async () => {
  await breaker?.stop();
  await deleteNamespace(core, ns);
  git.cleanup();
});
useWorkers(NODES);

async function notReadyNodes(names: string[]): Promise<string[]> {
  const nodes = await workerNodes(core);
  return nodes.filter((n) => names.includes(n.metadata!.name!) && n.status?.conditions?.find((c) => c.type === 'Ready')?.status !== 'True').map((n) => n.metadata!.name!).sort();
}

describe('a managed rollback killed between its apply and its seed', () => {
  it('is recorded by the next pass with the nodes the bad revision broke, whose pods it replaces although they are NotReady', async () => {
    const nodes = await workerNames(core);
    const manifest = (image: string) => managedYaml({ name: 'agent', namespace: ns, image, maxUnavailable: 1, managedAnnotations: { 'daemonset-gitops.io/progress-deadline': '60' } }, 2);
    git.write('agent.yaml', manifest(GOOD)).commit('v1');
    expect((await reconcile(stackDeps(stackConfig(env)))).daemonSets[0].rollout).toMatchObject({ phase: 'complete' });

    breaker = new NodeBreaker(kc, ns, 'app=agent', BROKEN);
    await breaker.start();
    git.write('agent.yaml', manifest(BROKEN)).commit('v2: takes its node down');
    const failed = await reconcile(stackDeps(stackConfig(env)));
    expect(failed.daemonSets[0].rollout).toMatchObject({ revision: 2, phase: 'stalled' });
    expect(breaker.broken).toHaveLength(1);
    const [broken] = breaker.broken;
    await waitFor(`node ${broken} to be NotReady`, async () => (await notReadyNodes(nodes)).includes(broken), 60_000);

    const killed = await runCliProcess(['rollback', `${ns}/agent`, '--to-revision', '1', '--reason', 'v2 breaks nodes', '--json'], { ...env, DSGITOPS_FAULT: 'kill-after-apply' });
    expect(killed.signal).toBe('SIGKILL');
    const deps = stackDeps(stackConfig(env));
    // The apply landed, its state write did not: what seeds the rollback's rollout is only in its snapshot.
    expect((await deps.store.getState(ns, 'agent'))!.value.currentRevision).toBe(2);
    expect((await deps.store.getRevision(ns, 'agent', 3))!.value).toMatchObject({ cause: 'rollback', outcome: 'pending', managedSeed: { repairNodes: [broken], canaryPassed: true } });

    const next = await reconcileOnceLeaseFree(stackConfig(env), 60_000);
    expect(next.result).toBe('succeeded');
    expect(next.daemonSets[0]).toMatchObject({ action: 'pinned', revision: 3, rollout: { revision: 3, phase: 'complete' } });
    await waitFor('every node Ready again', async () => (await notReadyNodes(nodes)).length === 0, 60_000);
    expect(Object.values(await imagesByNode(core, ns, 'agent'))).toEqual(nodes.map(() => GOOD));
    const state = (await deps.store.getState(ns, 'agent'))!.value;
    expect(state).toMatchObject({ currentRevision: 3, lastHealthyRevision: 3, pin: { revision: 1, reason: 'v2 breaks nodes' } });
    // The rollback replaced the broken node's pod while the node was NotReady, and it is repaired: nothing is left to repair.
    const checkpoint = state.rollout!.managed!.checkpoint!;
    expect(checkpoint.touched).toContainEqual(expect.objectContaining({ node: broken, readyAtDelete: false }));
    expect(checkpoint.repairNodes ?? []).toEqual([]);
    expect((await deps.store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('rolled-back');
  });
});
