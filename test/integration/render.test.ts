/**
 * Rendered sources on the local stack: one repository with a base, a chart and an overlay per
 * cluster (GIT_PATH=clusters/{cluster}); each cluster's pass applies its own overlay. A values-only
 * commit rolls the chart's DaemonSet; a generator change rolls the DaemonSet onto a new hashed
 * ConfigMap while the previous one stays; a rollback restores the stored rendered objects while
 * the chart repository is down, and a pass that cannot render changes nothing.
 */
import type * as k8s from '@kubernetes/client-node';
import { reconcile } from '../../lib/reconcile';
import type { ReconcileReport } from '../../lib/report';
import { rollback } from '../../lib/rollback';
import { KUSTOMIZE_VERSION } from '../../stack/versions';
import { adminClients, createNamespace, stackEnv, uniqueName } from '../support/cluster';
import { cleanupScenarios, onCleanup } from '../support/scenario';
import { TestRepo } from '../support/git';
import { stackConfig, stackDeps } from '../support/reconciler';
import { countingDeps } from '../support/counting-store';
import { ChartRepository, countingKustomize, writeBase, writeOverlay, writeProbeBase } from '../support/render-repo';

jest.setTimeout(300_000);

const { core, apps } = adminClients();

function ds(report: ReconcileReport, key: string) {
  const r = report.daemonSets.find((d) => d.key === key);
  if (!r) throw new Error(`${key} is not in the report: ${JSON.stringify(report.daemonSets.map((d) => d.key))} ${JSON.stringify(report.problems)} ${report.error?.message ?? ''}`);
  return r;
}

async function liveDs(ns: string, name: string): Promise<k8s.V1DaemonSet> {
  return apps.readNamespacedDaemonSet({ namespace: ns, name });
}

/** The ConfigMaps kustomize generated (agent-config-<its hash>), and the versioned copies the DaemonSets mount (docs/bundles.md). */
async function configMapNames(ns: string): Promise<{ generated: string[]; copies: string[] }> {
  const items = (await core.listNamespacedConfigMap({ namespace: ns })).items.filter((c) => c.metadata!.name!.startsWith('agent-config-'));
  const isCopy = (c: k8s.V1ConfigMap) => c.metadata!.labels?.['daemonset-gitops.io/config-copy-of'] !== undefined;
  return { generated: items.filter((c) => !isCopy(c)).map((c) => c.metadata!.name!).sort(), copies: items.filter(isCopy).map((c) => c.metadata!.name!).sort() };
}

/** The generated ConfigMap a volume's copy was made from: `<generated>-<10 hex digits>`. */
function copyOf(generated: string): RegExp {
  return new RegExp(`^${generated}-[0-9a-f]{10}$`);
}

afterAll(() => cleanupScenarios());

describe('an overlay per cluster (GIT_PATH=clusters/{cluster})', () => {
  const git = new TestRepo();
  onCleanup(() => git.cleanup());
  const clusterA = uniqueName('eu');
  const clusterB = uniqueName('us');
  let nsA: string;
  let nsB: string;
  const kustomize = countingKustomize(stackEnv().KUSTOMIZE_BIN!);
  const configs: Record<string, ReturnType<typeof stackConfig>> = {};
  const config = (cluster: string, ns: string) => (configs[cluster] ??= stackConfig({ GIT_URL: git.url, GIT_PATH: 'clusters/{cluster}', CLUSTER_NAME: cluster, ALLOWED_NAMESPACES: ns, KUSTOMIZE_BIN: kustomize.bin }));
  let first: ReconcileReport;
  let firstSha: string;

  beforeAll(async () => {
    nsA = await createNamespace(core, 'render-eu');
    nsB = await createNamespace(core, 'render-us');
    onCleanup(async () => {
      for (const ns of [nsA, nsB]) await core.deleteNamespace({ name: ns }).catch(() => undefined);
    });
    const w = git.write.bind(git);
    writeBase(w);
    writeProbeBase(w, nsA, { interval: '30s' });
    writeOverlay(w, `clusters/${clusterA}`, { namespace: nsA, tag: '1.4.0', chart: 'base' });
    writeOverlay(w, `clusters/${clusterB}`, { namespace: nsB, tag: '1.3.9', maxUnavailable: 1 });
    firstSha = git.commit('node agents: a base, the probe chart, an overlay for each cluster');
    first = await reconcile(stackDeps(config(clusterA, nsA)));
  });

  it('applies to each cluster the overlay named after it', async () => {
    const second = await reconcile(stackDeps(config(clusterB, nsB)));

    expect(first.error).toBeUndefined();
    expect(first.source?.path).toBe(`clusters/${clusterA}`);
    expect(ds(first, `${nsA}/node-agent`)).toMatchObject({ action: 'create', revision: 1 });
    expect(ds(first, `${nsA}/edge-probe`)).toMatchObject({ action: 'create', revision: 1 });
    expect(second.daemonSets.map((d) => d.key)).toEqual([`${nsB}/node-agent`]);
    const a = await liveDs(nsA, 'node-agent');
    const b = await liveDs(nsB, 'node-agent');
    expect(a.spec!.template.spec!.containers[0].image).toBe('registry.example/node-agent:1.4.0');
    expect(a.spec!.updateStrategy!.rollingUpdate!.maxUnavailable).toBe(2);
    expect(b.spec!.template.spec!.containers[0].image).toBe('registry.example/node-agent:1.3.9');
    expect(b.spec!.updateStrategy!.rollingUpdate!.maxUnavailable).toBe(1);
    expect((await liveDs(nsA, 'edge-probe')).spec!.template.spec!.containers[0].args).toEqual(['--interval=30s']);
    // The generated ConfigMap is applied under its hashed name, and the DaemonSet mounts its versioned copy.
    const { generated: [cm], copies: [copy] } = await configMapNames(nsA);
    expect(cm).toMatch(/^agent-config-[a-z0-9]{10}$/);
    expect(copy).toMatch(copyOf(cm));
    expect(a.spec!.template.spec!.volumes![0].configMap!.name).toBe(copy);
  });

  it('records in the revision what rendered it, from which commit', async () => {
    const snap = (await stackDeps(config(clusterA, nsA)).store.getRevision(nsA, 'node-agent', 1))!.value;

    expect(snap.commit?.sha).toBe(firstSha);
    expect(snap.rendered).toEqual({ renderer: 'kustomize', kustomization: `clusters/${clusterA}/kustomization.yaml`, kustomizeVersion: KUSTOMIZE_VERSION, helmVersion: expect.stringMatching(/^v4\.3\.2/) });
    expect(snap.manifest).toMatchObject({ metadata: { name: 'node-agent', namespace: nsA } });
  });

  it('does not render again while the commit is the same', async () => {
    const before = kustomize.runs();
    const { deps, s3 } = countingDeps(stackDeps(config(clusterA, nsA)));

    const again = await reconcile(deps);

    expect(s3.written).toEqual([]);
    expect(again.leaseTaken).toBeFalsy();
    expect(again.daemonSets.map((d) => d.action)).toEqual(['unchanged', 'unchanged']);
    expect(kustomize.runs()).toBe(before);
  });

  it('rolls the chart\'s DaemonSet on a values-only commit', async () => {
    const generation = (await liveDs(nsA, 'node-agent')).metadata!.generation;
    writeProbeBase(git.write.bind(git), nsA, { interval: '45s' });
    git.commit('probe: scrape every 45s');

    const report = await reconcile(stackDeps(config(clusterA, nsA)));

    expect(ds(report, `${nsA}/edge-probe`)).toMatchObject({ action: 'update', cause: 'git-change', revision: 2 });
    expect(ds(report, `${nsA}/node-agent`).action).toBe('unchanged');
    expect((await liveDs(nsA, 'edge-probe')).spec!.template.spec!.containers[0].args).toEqual(['--interval=45s']);
    expect((await liveDs(nsA, 'node-agent')).metadata!.generation).toBe(generation);
  });

  it('rolls the DaemonSet onto a new hashed ConfigMap on a generator change, keeping the previous one', async () => {
    const { generated: [previous], copies: [previousCopy] } = await configMapNames(nsA);
    writeBase(git.write.bind(git), 'level = debug\nflush = 1s\n');
    git.commit('node-agent: debug logging');

    const report = await reconcile(stackDeps(config(clusterA, nsA)));

    const row = ds(report, `${nsA}/node-agent`);
    expect(row).toMatchObject({ action: 'update', cause: 'git-change', revision: 2 });
    expect(row.rollout?.phase).toBe('complete');
    const names = await configMapNames(nsA);
    const mounted = (await liveDs(nsA, 'node-agent')).spec!.template.spec!.volumes![0].configMap!.name!;
    const current = names.generated.find((n) => n !== previous)!;
    expect(current).toBeDefined();
    expect(mounted).toMatch(copyOf(current));
    // The previous ConfigMap (PRUNE=false) and its copy, which the pods of revision 1 read, are still there.
    expect(names).toEqual({ generated: [previous, current].sort(), copies: [previousCopy, mounted].sort() });
    expect((await core.readNamespacedConfigMap({ namespace: nsA, name: mounted })).data!['agent.conf']).toBe('level = debug\nflush = 1s\n');
    expect((await core.readNamespacedConfigMap({ namespace: nsA, name: previousCopy })).data!['agent.conf']).toBe('level = info\nflush = 5s\n');
  });
});

describe('a chart from a chart repository that goes down', () => {
  const git = new TestRepo();
  onCleanup(() => git.cleanup());
  const charts = new ChartRepository(stackEnv().HELM_BIN!);
  onCleanup(() => charts.stop());
  let ns: string;
  let settings: ReturnType<typeof stackConfig>;

  beforeAll(async () => {
    ns = await createNamespace(core, 'render-repo');
    onCleanup(() => core.deleteNamespace({ name: ns }).then(() => undefined, () => undefined));
    await charts.start();
    charts.publish('0.2.0');
    settings = stackConfig({ GIT_URL: git.url, GIT_PATH: 'clusters/edge', ALLOWED_NAMESPACES: ns, RENDER_ALLOW_REMOTE: 'true' });
    const w = git.write.bind(git);
    writeBase(w);
    writeOverlay(w, 'clusters/edge', { namespace: ns, tag: '1.0.0', chart: { repo: charts.url, version: '0.2.0', interval: '20s' } });
    git.commit('probe 0.2.0 from the chart repository, every 20s');
    expect(ds(await reconcile(stackDeps(settings)), `${ns}/edge-probe`)).toMatchObject({ action: 'create', revision: 1 });
    writeOverlay(w, 'clusters/edge', { namespace: ns, tag: '1.0.0', chart: { repo: charts.url, version: '0.2.0', interval: '40s' } });
    git.commit('probe every 40s');
    expect(ds(await reconcile(stackDeps(settings)), `${ns}/edge-probe`)).toMatchObject({ action: 'update', revision: 2 });
  });

  it('rolls back to the stored rendered revision with the chart repository stopped', async () => {
    await charts.stop();

    const rb = await rollback(stackDeps(settings), { namespace: ns, name: 'edge-probe', toRevision: 1, reason: 'the 40s interval misses short spikes' });

    expect(rb.revision).toBe(3);
    const live = await liveDs(ns, 'edge-probe');
    expect(live.spec!.template.spec!.containers[0].args).toEqual(['--interval=20s']);
    expect(live.metadata!.labels!['chart-version']).toBe('0.2.0');
    const [one, three] = await Promise.all([1, 3].map(async (n) => (await stackDeps(settings).store.getRevision(ns, 'edge-probe', n))!.value));
    expect(three.manifest).toEqual(one.manifest);
    expect(three.rendered).toEqual(one.rendered);
  });

  it('leaves the cluster as it is when a new commit cannot be rendered', async () => {
    const before = await liveDs(ns, 'edge-probe');
    writeOverlay(git.write.bind(git), 'clusters/edge', { namespace: ns, tag: '1.0.1', chart: { repo: charts.url, version: '0.2.0', interval: '5s' } });
    git.commit('node-agent 1.0.1, probe every 5s');

    const report = await reconcile(stackDeps(settings));

    expect(report.problems).toEqual([expect.objectContaining({ file: 'clusters/edge/kustomization.yaml', code: 'render-failed', message: expect.stringContaining('clusters/edge/kustomization.yaml: kustomize build failed: ') })]);
    expect(report.daemonSets.every((d) => !d.applied)).toBe(true);
    const after = await liveDs(ns, 'edge-probe');
    expect(after.metadata!.generation).toBe(before.metadata!.generation);
    expect((await liveDs(ns, 'node-agent')).spec!.template.spec!.containers[0].image).toBe('registry.example/node-agent:1.0.0');
  });
});
