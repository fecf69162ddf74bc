/**
 * A new store (another bucket, prefix or CLUSTER_NAME) pointed at a cluster whose
 * DaemonSets this tool already manages adopts what runs there: history and rollback work
 * from its first pass, and a revision running in the cluster always has a snapshot.
 */
import { history } from '../../lib/history';
import { reconcile } from '../../lib/reconcile';
import { rollback } from '../../lib/rollback';
import { adminClients } from '../support/cluster';
import { dsYaml } from '../support/manifests';
import { stackConfig, stackDeps } from '../support/reconciler';
import { cleanupScenarios, scenario } from '../support/scenario';

jest.setTimeout(300_000);

const { apps } = adminClients();
afterAll(cleanupScenarios);

async function image(ns: string, name: string): Promise<string | undefined> {
  const ds = await apps.readNamespacedDaemonSet({ name, namespace: ns });
  return ds.spec!.template.spec!.containers[0].image;
}

describe('a new store on a cluster this tool already manages', () => {
  it('adopts the running revision on its first pass; history lists it, the next pass is steady, and a rollback returns to it after a Git change', async () => {
    const { ns, git, config } = await scenario('adopt');
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0' })).commit('agent 1.0');
    await reconcile(stackDeps(config));
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.1' })).commit('agent 1.1');
    expect((await reconcile(stackDeps(config))).daemonSets[0]).toMatchObject({ action: 'update', revision: 2 });

    const fresh = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
    expect(fresh.cluster.name).not.toBe(config.cluster.name);
    const deps = () => stackDeps(fresh);

    const adopting = await reconcile(deps());
    expect(adopting.result).toBe('succeeded');
    expect(adopting.daemonSets[0]).toMatchObject({ action: 'unchanged', applied: false, revision: 2 });
    expect(adopting.daemonSets[0].message).toMatch(/^adopted revision 2 from the cluster .*: cluster .* had no record of it in S3/);
    const h = await history(deps(), { namespace: ns, name: 'agent' });
    expect(h.revisions.map((r) => [r.revision, r.cause, r.outcome, r.images, r.current])).toEqual([
      [2, 'adopted', 'healthy', ['registry.local/agent:1.1'], true],
    ]);
    expect(h.total).toBe(1);
    const liveAnnotations = (await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns })).metadata!.annotations!;
    const snapshot = (await deps().store.getRevision(ns, 'agent', 2))!.value;
    expect(snapshot).toMatchObject({ cause: 'adopted', digest: liveAnnotations['daemonset-gitops.io/manifest-digest'], replaced: null });
    expect(snapshot.manifest).toEqual({ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'agent', namespace: ns }, spec: expect.any(Object) });
    expect(snapshot.appliedAt).toEqual(expect.any(String));

    const steady = await reconcile(deps());
    expect(steady.daemonSets[0]).toMatchObject({ action: 'unchanged', applied: false, revision: 2, message: 'revision 2 is applied' });
    expect(steady.kubernetesRequests).toBe(1);

    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0' })).commit('agent 2.0');
    expect((await reconcile(deps())).daemonSets[0]).toMatchObject({ action: 'update', applied: true, revision: 3 });
    expect(await image(ns, 'agent')).toBe('registry.local/agent:2.0');

    const rb = await rollback(deps(), { namespace: ns, name: 'agent', reason: '2.0 drops metrics' });
    expect(rb).toMatchObject({ fromRevision: 3, toRevision: 2, revision: 4, pin: { revision: 2 } });
    expect(rb.rollout?.phase).toBe('complete');
    expect(await image(ns, 'agent')).toBe('registry.local/agent:1.1');
    const after = await history(deps(), { namespace: ns, name: 'agent' });
    expect(after.revisions.map((r) => [r.revision, r.causeText, r.outcome])).toEqual([
      [4, 'rollback to 2', 'healthy'],
      [3, 'git-change', 'rolled-back'],
      [2, 'adopted', 'healthy'],
    ]);
    expect((await reconcile(deps())).daemonSets[0]).toMatchObject({ action: 'pinned', applied: false, revision: 4 });
  });
});
