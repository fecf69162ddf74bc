/**
 * A rollback killed at any point keeps what it was asked for: its pin, and for a recreate,
 * the DaemonSet it has not yet replaced. The kill is real: `dsgitops rollback` runs as its
 * own process and sends itself SIGKILL at the injected point, leaving its lease unreleased.
 * A recreate whose apply the API server refuses after the delete (a ValidatingAdmissionPolicy
 * that starts denying the target in between) keeps it too; one whose target the API server
 * refuses before the delete deletes nothing.
 */
import * as k8s from '@kubernetes/client-node';
import { rollback } from '../../lib/rollback';
import type { Cluster } from '../../lib/cluster/client';
import { reconcile } from '../../lib/reconcile';
import { adminClients, createNamespace, deleteNamespace, waitFor } from '../support/cluster';
import { TestRepo } from '../support/git';
import { dsYaml } from '../support/manifests';
import { CliRun, runCliProcess, stackConfig, stackConfigEnv, stackDeps } from '../support/reconciler';
import { reconcileOnceLeaseFree } from '../support/scenario';

jest.setTimeout(300_000);

const { kc, core, apps } = adminClients();
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

/**
 * A ValidatingAdmissionPolicy that denies DaemonSets running `image` in the test's namespace,
 * in force once the API server refuses a dry run of one; returns its removal (in force once a
 * dry run is accepted again).
 */
async function denyImage(image: string): Promise<() => Promise<void>> {
  const admission = kc.makeApiClient(k8s.AdmissionregistrationV1Api);
  const name = `deny-${ns}-${image.replace(/[^a-z0-9]+/g, '-')}`.slice(0, 63).replace(/-$/, '');
  await admission.createValidatingAdmissionPolicy({ body: {
    metadata: { name },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: { resourceRules: [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['daemonsets'] }] },
      validations: [{ expression: `!object.spec.template.spec.containers.exists(c, c.image == '${image}')`, message: `${image} is not allowed in this namespace` }],
    },
  } });
  await admission.createValidatingAdmissionPolicyBinding({ body: {
    metadata: { name },
    spec: { policyName: name, validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } } },
  } });
  const probe = () => apps.createNamespacedDaemonSet({ namespace: ns, dryRun: 'All', body: {
    metadata: { name: 'policy-probe' },
    spec: { selector: { matchLabels: { app: 'policy-probe' } }, template: { metadata: { labels: { app: 'policy-probe' } }, spec: { containers: [{ name: 'c', image }] } } },
  } }).then(() => 'accepted', (err: Error) => (/not allowed in this namespace/.test(String((err as { body?: unknown }).body ?? err.message)) ? 'denied' : 'other'));
  await waitFor(`the policy denying ${image} to be in force`, async () => (await probe()) === 'denied', 30_000);
  return async () => {
    await admission.deleteValidatingAdmissionPolicyBinding({ name });
    await admission.deleteValidatingAdmissionPolicy({ name });
    await waitFor(`the policy denying ${image} to be lifted`, async () => (await probe()) === 'accepted', 30_000);
  };
}

/** A DaemonSet created from `selector-v1` as revision 1, then from Git's `selector-v2` as revision 2 (deleted by hand in between). */
async function movedTwice(name: string): Promise<void> {
  git.write(`${name}.yaml`, dsYaml({ name, namespace: ns, selectorLabel: `${name}-v1`, image: `registry.local/${name}:1.0` })).commit(`${name} 1.0`);
  await reconcile(stackDeps(stackConfig(env)));
  await apps.deleteNamespacedDaemonSet({ name, namespace: ns });
  await waitFor('the DaemonSet to be gone', async () => apps.readNamespacedDaemonSet({ name, namespace: ns }).then(() => undefined, () => true));
  git.write(`${name}.yaml`, dsYaml({ name, namespace: ns, selectorLabel: `${name}-v2`, image: `registry.local/${name}:2.0` })).commit(`${name} 2.0 with a new selector`);
  expect((await reconcile(stackDeps(stackConfig(env)))).daemonSets.find((d) => d.name === name)).toMatchObject({ applied: true, revision: 2 });
}

const gone = (name: string) => apps.readNamespacedDaemonSet({ name, namespace: ns }).then(() => false, () => true);

describe('a rollback with recreate between its delete and its apply', () => {
  it('killed right after its delete: the next pass creates the DaemonSet from the revision written ahead, pinned, never from Git', async () => {
    await movedTwice('moved-kill');
    const args = ['rollback', `${ns}/moved-kill`, '--to-revision', '1', '--recreate', '--reason', 'dashboards select v1', '--json'];
    const killed = await runCliProcess(args, { ...env, DSGITOPS_FAULT: 'kill-after-delete' });
    expect(killed.signal).toBe('SIGKILL');
    await waitFor('the DaemonSet to be gone', async () => (await gone('moved-kill')) || undefined);
    const deps = stackDeps(stackConfig(env));
    // Recorded before the delete: the pin, and which revision re-creates it.
    expect((await deps.store.getState(ns, 'moved-kill'))!.value).toMatchObject({ currentRevision: 2, pin: { revision: 1, reason: 'dashboards select v1' }, recreate: { revision: 3 } });

    const next = await reconcileOnceLeaseFree(stackConfig(env));
    expect(next.result).toBe('succeeded');
    expect(next.daemonSets.find((d) => d.name === 'moved-kill')).toMatchObject({ action: 'create', cause: 'rollback', applied: true, revision: 3 });
    expect(await live('moved-kill')).toMatchObject({ image: 'registry.local/moved-kill:1.0', selector: { app: 'moved-kill-v1' }, revision: '3', pinned: 'revision 1: dashboards select v1' });
    expect(await deps.store.listRevisionNumbers(ns, 'moved-kill')).toEqual([1, 2, 3]);
    expect((await deps.store.getState(ns, 'moved-kill'))!.value).toMatchObject({ currentRevision: 3, pin: { revision: 1 } });
    expect((await deps.store.getState(ns, 'moved-kill'))!.value.recreate).toBeUndefined();
    expect((await deps.store.getRevision(ns, 'moved-kill', 2))!.value.outcome).toBe('rolled-back');
    expect((await reconcile(stackDeps(stackConfig(env)))).daemonSets.find((d) => d.name === 'moved-kill')).toMatchObject({ action: 'pinned', applied: false, revision: 3 });
  });

  it('killed after recording the pin, before its delete: the next pass deletes the object it replaces and creates the DaemonSet from the revision written ahead', async () => {
    await movedTwice('moved-early');
    const before = await live('moved-early');
    const args = ['rollback', `${ns}/moved-early`, '--to-revision', '1', '--recreate', '--reason', 'dashboards select v1', '--json'];
    const killed = await runCliProcess(args, { ...env, DSGITOPS_FAULT: 'kill-before-delete' });
    expect(killed.signal).toBe('SIGKILL');
    expect(await live('moved-early')).toEqual(before);
    const deps = stackDeps(stackConfig(env));
    expect((await deps.store.getState(ns, 'moved-early'))!.value).toMatchObject({ currentRevision: 2, pin: { revision: 1 }, recreate: { revision: 3, replacedUid: before.uid } });

    const next = await reconcileOnceLeaseFree(stackConfig(env));
    expect(next.daemonSets.find((d) => d.name === 'moved-early')).toMatchObject({ action: 'create', cause: 'rollback', applied: true, revision: 3 });
    const after = await live('moved-early');
    expect(after).toMatchObject({ image: 'registry.local/moved-early:1.0', selector: { app: 'moved-early-v1' }, revision: '3', pinned: 'revision 1: dashboards select v1' });
    expect(after.uid).not.toBe(before.uid);
    expect(await deps.store.listRevisionNumbers(ns, 'moved-early')).toEqual([1, 2, 3]);
  });

  it('whose apply the API server refuses after the delete: the error says so, and passes complete the rollback once it is accepted, never creating Git\'s version', async () => {
    await movedTwice('moved-refused');
    const base = stackDeps(stackConfig(env));
    let lift: (() => Promise<void>) | undefined;
    // Between the delete and the apply, a policy starts denying the target's image.
    const cluster = new Proxy(base.cluster, {
      get(target, prop) {
        if (prop === 'deleteDaemonSet') {
          return async (namespace: string, name: string) => {
            await target.deleteDaemonSet(namespace, name);
            lift = await denyImage('registry.local/moved-refused:1.0');
          };
        }
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as Cluster;
    try {
      await expect(rollback({ ...base, cluster }, { namespace: ns, name: 'moved-refused', toRevision: 1, recreate: true, reason: 'dashboards select v1', wait: false }))
        .rejects.toThrow(/not allowed in this namespace.*moved-refused was deleted to be re-created from revision 1; the rollback stays recorded \(pinned, written ahead as revision 3\): the next pass creates it from that revision, never from Git/s);
      expect(await gone('moved-refused')).toBe(true);

      // A pass while the policy holds: the rollback is tried again and refused again; Git's version is not created.
      const refused = await reconcile(stackDeps(stackConfig(env)));
      expect(refused.daemonSets.find((d) => d.name === 'moved-refused')).toMatchObject({ action: 'failed', cause: 'rollback', applied: false });
      expect(await gone('moved-refused')).toBe(true);
    } finally {
      await lift?.();
    }
    const next = await reconcile(stackDeps(stackConfig(env)));
    expect(next.daemonSets.find((d) => d.name === 'moved-refused')).toMatchObject({ action: 'create', cause: 'rollback', applied: true, revision: 3 });
    expect(await live('moved-refused')).toMatchObject({ image: 'registry.local/moved-refused:1.0', selector: { app: 'moved-refused-v1' }, revision: '3', pinned: 'revision 1: dashboards select v1' });
    expect(await stackDeps(stackConfig(env)).store.listRevisionNumbers(ns, 'moved-refused')).toEqual([1, 2, 3]);
  });

  it('whose target the API server refuses is refused before anything is deleted', async () => {
    await movedTwice('moved-denied');
    const before = await live('moved-denied');
    const lift = await denyImage('registry.local/moved-denied:1.0');
    try {
      await expect(rollback(stackDeps(stackConfig(env)), { namespace: ns, name: 'moved-denied', toRevision: 1, recreate: true, wait: false }))
        .rejects.toThrow(/refused revision 1 of .*moved-denied in a dry run .*so nothing was deleted or changed: .*not allowed in this namespace/);
    } finally {
      await lift();
    }
    expect(await live('moved-denied')).toEqual(before);
    const state = (await stackDeps(stackConfig(env)).store.getState(ns, 'moved-denied'))!.value;
    expect(state).toMatchObject({ currentRevision: 2 });
    expect(state.pin).toBeUndefined();
    expect(state.recreate).toBeUndefined();
    expect((await reconcile(stackDeps(stackConfig(env)))).daemonSets.find((d) => d.name === 'moved-denied')).toMatchObject({ action: 'unchanged', revision: 2 });
  });
});
