/**
 * A rollback killed at any point keeps what it was asked for: its pin, and for a recreate,
 * the DaemonSet it has not yet replaced. The kill is real: `dsgitops rollback` runs as its
 * own process and sends itself SIGKILL at the injected point, leaving its lease unreleased.
 */
import { reconcile } from '../../lib/reconcile';
import { adminClients, createNamespace, deleteNamespace, waitFor } from '../support/cluster';
import { TestRepo } from '../support/git';
import { dsYaml } from '../support/manifests';
import { CliRun, runCliProcess, stackConfig, stackConfigEnv, stackDeps } from '../support/reconciler';
import { reconcileOnceLeaseFree } from '../support/scenario';

jest.setTimeout(300_000);

const { core, apps } = adminClients();
let ns: string;
let git: TestRepo;
let env: Record<string, string>;

beforeAll(async () => {
  ns = await createNamespace(core, 'rbcrash');
  git = new TestRepo();
  env = stackConfigEnv({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, LEASE_SECONDS: '5' });
});

afterAll(async () => {
  await deleteNamespace(core, ns);
  git.cleanup();
});

async function live(name: string) {
  const ds = await apps.readNamespacedDaemonSet({ name, namespace: ns });
  return {
    uid: ds.metadata!.uid,
    image: ds.spec!.template.spec!.containers[0].image,
    selector: ds.spec!.selector.matchLabels,
    revision: ds.metadata!.annotations!['daemonset-gitops.io/revision'],
    pinned: ds.metadata!.annotations!['daemonset-gitops.io/pinned'],
  };
}

/** Runs the command again until the killed run's lease (5 s) has expired and it is let in. */
function rerunWhenLeaseFree(args: string[]): Promise<CliRun> {
  return waitFor('the killed run\'s lease to expire', async () => {
    const run = await runCliProcess(args, env);
    return run.code !== 0 && /another run holds the lease/.test(run.stderr) ? undefined : run;
  }, 60_000, 1000);
}

describe('a rollback killed mid-way', () => {
  it('killed right after its apply: the next pass records it with its pin, reports the DaemonSet pinned, and does not apply Git\'s version', async () => {
    git.write('held.yaml', dsYaml({ name: 'held', namespace: ns, image: 'registry.local/held:1.0' })).commit('held 1.0');
    expect((await reconcile(stackDeps(stackConfig(env)))).daemonSets[0]).toMatchObject({ action: 'create', revision: 1 });
    git.write('held.yaml', dsYaml({ name: 'held', namespace: ns, image: 'registry.local/held:2.0' })).commit('held 2.0');
    expect((await reconcile(stackDeps(stackConfig(env)))).daemonSets[0]).toMatchObject({ action: 'update', revision: 2 });

    const killed = await runCliProcess(['rollback', `${ns}/held`, '--to-revision', '1', '--reason', 'v2 leaks memory', '--json'], { ...env, DSGITOPS_FAULT: 'kill-after-apply' });
    expect(killed.signal).toBe('SIGKILL');
    expect(await live('held')).toMatchObject({ image: 'registry.local/held:1.0', revision: '3', pinned: 'revision 1: v2 leaks memory' });
    const deps = stackDeps(stackConfig(env));
    expect((await deps.store.getState(ns, 'held'))!.value).toMatchObject({ currentRevision: 2 });
    expect((await deps.store.getState(ns, 'held'))!.value.pin).toBeUndefined();

    const next = await reconcileOnceLeaseFree(stackConfig(env));
    expect(next.result).toBe('succeeded');
    expect(next.daemonSets[0]).toMatchObject({ action: 'pinned', applied: false, revision: 3, pin: { revision: 1, reason: 'v2 leaks memory' } });
    expect(await live('held')).toMatchObject({ image: 'registry.local/held:1.0', revision: '3', pinned: 'revision 1: v2 leaks memory' });
    expect(await deps.store.listRevisionNumbers(ns, 'held')).toEqual([1, 2, 3]);
    expect((await deps.store.getRevision(ns, 'held', 2))!.value.outcome).toBe('rolled-back');
    expect((await deps.store.getState(ns, 'held'))!.value).toMatchObject({ currentRevision: 3, pin: { revision: 1, reason: 'v2 leaks memory' } });

    const again = await reconcile(stackDeps(stackConfig(env)));
    expect(again.daemonSets[0]).toMatchObject({ action: 'pinned', applied: false, revision: 3 });
    expect((await live('held')).image).toBe('registry.local/held:1.0');
  });

  it('a recreate killed right after its snapshot has not deleted the DaemonSet; run again, it completes under the same revision', async () => {
    git.write('moved.yaml', dsYaml({ name: 'moved', namespace: ns, selectorLabel: 'moved-v1', image: 'registry.local/moved:1.0' })).commit('moved 1.0');
    await reconcile(stackDeps(stackConfig(env)));
    await apps.deleteNamespacedDaemonSet({ name: 'moved', namespace: ns });
    await waitFor('the DaemonSet to be gone', async () => apps.readNamespacedDaemonSet({ name: 'moved', namespace: ns }).then(() => undefined, () => true));
    git.write('moved.yaml', dsYaml({ name: 'moved', namespace: ns, selectorLabel: 'moved-v2', image: 'registry.local/moved:2.0' })).commit('moved 2.0 with a new selector');
    expect((await reconcile(stackDeps(stackConfig(env)))).daemonSets.find((d) => d.name === 'moved')).toMatchObject({ applied: true, revision: 2 });
    const before = await live('moved');

    const args = ['rollback', `${ns}/moved`, '--to-revision', '1', '--recreate', '--reason', 'dashboards select moved-v1', '--json'];
    const killed = await runCliProcess(args, { ...env, DSGITOPS_FAULT: 'kill-after-snapshot' });
    expect(killed.signal).toBe('SIGKILL');
    expect(await live('moved')).toEqual(before);
    const deps = stackDeps(stackConfig(env));
    expect(await deps.store.listRevisionNumbers(ns, 'moved')).toEqual([1, 2, 3]);
    const pending = (await deps.store.getRevision(ns, 'moved', 3))!.value;
    expect(pending).toMatchObject({ outcome: 'pending', cause: 'rollback', rollbackTo: 1, pin: { revision: 1, reason: 'dashboards select moved-v1' } });
    expect((pending.replaced as { metadata: { uid: string } }).metadata.uid).toBe(before.uid);

    const rerun = await rerunWhenLeaseFree(args);
    expect(rerun.code).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ recreated: true, toRevision: 1, revision: 3 });
    const after = await live('moved');
    expect(after).toMatchObject({ image: 'registry.local/moved:1.0', selector: { app: 'moved-v1' }, revision: '3', pinned: 'revision 1: dashboards select moved-v1' });
    expect(after.uid).not.toBe(before.uid);
    expect(await deps.store.listRevisionNumbers(ns, 'moved')).toEqual([1, 2, 3]);
    expect((await deps.store.getState(ns, 'moved'))!.value).toMatchObject({ currentRevision: 3, pin: { revision: 1 } });
    expect((await reconcile(stackDeps(stackConfig(env)))).daemonSets.find((d) => d.name === 'moved')).toMatchObject({ action: 'pinned', applied: false, revision: 3 });
  });
});
