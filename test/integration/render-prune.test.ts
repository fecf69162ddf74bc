/**
 * kustomize's generated, hash-suffixed ConfigMaps under PRUNE=true, on the local stack. A
 * generator change is a new ConfigMap name, so the previous one leaves Git's source. The
 * DaemonSet runs with a versioned copy of the generated ConfigMap (docs/bundles.md), so what a
 * running or kept revision needs is its copy: the previous generated ConfigMap, which no pod
 * reads, is pruned by the pass that replaces it, while its copy stays as long as revision 1 is
 * running or kept (CONFIG_REVISIONS_KEPT, here 2) and is deleted after. A rollback to a
 * revision past that window recreates its copy from S3, and the next pass keeps it.
 */
import type { ReconcileReport } from '../../lib/report';
import { reconcile } from '../../lib/reconcile';
import { rollback } from '../../lib/rollback';
import { adminClients, createNamespace } from '../support/cluster';
import { TestRepo } from '../support/git';
import { stackConfig, stackDeps } from '../support/reconciler';
import { agentKustomization } from '../support/render-repo';
import { cleanupScenarios, onCleanup } from '../support/scenario';

jest.setTimeout(300_000);

const { core, apps } = adminClients();
afterAll(() => cleanupScenarios());

function write(git: TestRepo, ns: string, conf: string): void {
  git.write('agents/kustomization.yaml', agentKustomization({ namespace: ns }));
  git.write('agents/agent.conf', conf);
  git.write('agents/daemonset.yaml', `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: log-agent
spec:
  selector:
    matchLabels: {app: log-agent}
  template:
    metadata:
      labels: {app: log-agent}
    spec:
      containers:
        - name: agent
          image: registry.example/log-agent:2.1.0
          volumeMounts: [{name: config, mountPath: /etc/agent}]
      volumes:
        - name: config
          configMap: {name: agent-config}
`);
}

describe('generated ConfigMaps of a kustomize path with PRUNE=true', () => {
  const git = new TestRepo();
  onCleanup(() => git.cleanup());
  let ns: string;
  let config: ReturnType<typeof stackConfig>;

  const configMapsInCluster = async () => (await core.listNamespacedConfigMap({ namespace: ns })).items.map((c) => c.metadata!.name!).filter((n) => n.startsWith('agent-config-')).sort();

  /** The generated ConfigMap a revision runs with, and its copy, as its snapshot records them. */
  const configOf = async (revision: number) => {
    const [e] = (await stackDeps(config).store.getRevision(ns, 'log-agent', revision))!.value.config!;
    return { generated: e.name, copy: e.copyName };
  };

  async function pass(message: string, conf: string, revision: number): Promise<ReconcileReport> {
    write(git, ns, conf);
    git.commit(message);
    const report = await reconcile(stackDeps(config));
    expect(report.error).toBeUndefined();
    expect(report.daemonSets.find((d) => d.key === `${ns}/log-agent`)).toMatchObject({ applied: true, revision, rollout: { phase: 'complete' } });
    return report;
  }

  beforeAll(async () => {
    ns = await createNamespace(core, 'render-prune');
    onCleanup(() => core.deleteNamespace({ name: ns }).then(() => undefined, () => undefined));
    config = stackConfig({ GIT_URL: git.url, GIT_PATH: 'agents', ALLOWED_NAMESPACES: ns, PRUNE: 'true', CONFIG_REVISIONS_KEPT: '2' });
  });

  it('prunes the generated ConfigMap a generator change replaces, keeps its copy while revision 1 is running or kept, deletes the copy after, and a rollback recreates it', async () => {
    await pass('log-agent: info', 'level = info\n', 1);
    const one = await configOf(1);
    // kustomize's name (the generator's name and a suffix of its own hash), and the copy the DaemonSet mounts.
    expect(one.generated).toMatch(/^agent-config-[a-z0-9]{10}$/);
    expect(one.copy).toMatch(new RegExp(`^${one.generated}-[0-9a-f]{10}$`));
    expect(await configMapsInCluster()).toEqual([one.generated, one.copy].sort());

    const second = await pass('log-agent: debug', 'level = debug\n', 2);
    const two = await configOf(2);
    expect(two.generated).not.toBe(one.generated);
    // Git's previous ConfigMap goes (no pod reads it); revision 1's copy, what its pods read, stays.
    expect(second.orphans?.map((o) => [o.id, o.action])).toEqual([[`ConfigMap ${ns}/${one.generated}`, 'pruned']]);
    expect(second.prunedCopies ?? []).toEqual([]);
    expect(await configMapsInCluster()).toEqual([one.copy, two.generated, two.copy].sort());
    expect((await core.readNamespacedConfigMap({ namespace: ns, name: one.copy })).data).toEqual({ 'agent.conf': 'level = info\n' });

    const third = await pass('log-agent: warn', 'level = warn\n', 3);
    const three = await configOf(3);
    // Revision 1 has left the revisions kept (3 and 2): its copy goes; revision 2's stays.
    expect(third.orphans?.map((o) => [o.id, o.action])).toEqual([[`ConfigMap ${ns}/${two.generated}`, 'pruned']]);
    expect(third.prunedCopies).toEqual([`ConfigMap ${ns}/${one.copy}`]);
    expect(await configMapsInCluster()).toEqual([two.copy, three.generated, three.copy].sort());

    // A rollback to revision 1 restores its configuration from S3, and the pass after keeps it.
    const rb = await rollback(stackDeps(config), { namespace: ns, name: 'log-agent', toRevision: 1, reason: 'debug logging fills the disks' });
    expect(rb).toMatchObject({ toRevision: 1, revision: 4 });
    const live = await apps.readNamespacedDaemonSet({ namespace: ns, name: 'log-agent' });
    expect(live.spec!.template.spec!.volumes![0].configMap!.name).toBe(one.copy);
    expect((await core.readNamespacedConfigMap({ namespace: ns, name: one.copy })).data).toEqual({ 'agent.conf': 'level = info\n' });
    const after = await reconcile(stackDeps(config));
    expect(after.daemonSets.find((d) => d.key === `${ns}/log-agent`)).toMatchObject({ action: 'pinned', applied: false });
    expect(after.prunedCopies ?? []).toEqual([]);
    expect(await configMapsInCluster()).toEqual(expect.arrayContaining([one.copy, three.generated, three.copy]));
  });
});
