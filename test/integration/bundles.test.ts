/**
 * Node agents as they are published, on the local stack: a bundle (Namespace, ServiceAccount,
 * ClusterRole and binding, ConfigMap, Service, DaemonSet) in one file applies in one pass, in
 * dependency order, and the DaemonSet becomes available; a second pass costs one LIST per kind
 * plus a small constant and changes nothing; a refused ServiceAccount holds its DaemonSet by
 * name; a CRD and an object of it in one commit apply in one pass; and a RoleBinding to
 * cluster-admin from Git is refused by the API server itself; a manifest that spells out the
 * API server's defaults shows no diff, even to a server-side dry run. The reconciler runs as the
 * RBAC-limited identity, granted exactly what `dsgitops rbac --kinds …` prints.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllowedKinds } from '../../lib/bundle/kinds';
import { DEFAULT_RBAC_USER, rbacYaml } from '../../lib/rbac';
import { reconcile } from '../../lib/reconcile';
import type { ReconcileReport } from '../../lib/report';
import { adminClients, AvailabilityWatcher, deleteNamespace, stackEnv, uniqueName } from '../support/cluster';
import { TestRepo } from '../support/git';
import { useWorkers } from '../support/managed';
import { countApiRequests, stackConfig, stackDeps } from '../support/reconciler';

jest.setTimeout(240_000);

const { kc, core, apps } = adminClients();
const suffix = uniqueName('b').slice(2);
// Ends in a letter whose plural is a plain "s", the resource `dsgitops rbac` names for a kind it does not know.
const probeKind = `NodeProbe${suffix.replace(/[^a-z]/g, 'x').toUpperCase()}Q`;
const KINDS = `DaemonSet,ConfigMap,Secret,ServiceAccount,Role,RoleBinding,Service,Namespace,ClusterRole,ClusterRoleBinding,CustomResourceDefinition,apps/Deployment,probes.example.dev/${probeKind}`;
const GRANT = `dsgitops-bundles-${suffix}`;
const namespaces: string[] = [];
const repos: TestRepo[] = [];
const clusterObjects: string[][] = [];

function kubectl(args: string[], input?: string): string {
  const env = stackEnv();
  return execFileSync(env.KUBECTL, args, { input, env: { ...process.env, KUBECONFIG: env.KUBECONFIG }, encoding: 'utf8' });
}

function fixture(name: string, ns: string): string {
  return readFileSync(join(__dirname, '..', 'fixtures', 'bundles', name), 'utf8')
    .replaceAll('__NS__', ns)
    .replaceAll('__KIND__', probeKind)
    .replaceAll('__SINGULAR__', probeKind.toLowerCase())
    .replaceAll('__PLURAL__', `${probeKind.toLowerCase()}s`);
}

function object(report: ReconcileReport, id: string) {
  return report.objects?.find((o) => o.id === id);
}

beforeAll(() => {
  // What `dsgitops rbac --kinds KINDS` prints, beside the stack's own grant for the default kinds.
  kubectl(['apply', '-f', '-'], rbacYaml({ allowedNamespaces: '*', user: DEFAULT_RBAC_USER, name: GRANT, allowedKinds: parseAllowedKinds(KINDS, '--kinds', []) }));
  clusterObjects.push(['clusterrole', GRANT], ['clusterrolebinding', GRANT], ['clusterrole', `${GRANT}-reader`], ['clusterrolebinding', `${GRANT}-reader`]);
});

afterAll(async () => {
  for (const ns of namespaces) await deleteNamespace(core, ns);
  for (const [kind, name] of clusterObjects) kubectl(['delete', kind, name, '--ignore-not-found']);
  for (const r of repos) r.cleanup();
});
// Five settled workers whatever an earlier file left: the DaemonSet's desired nodes (every node: the agent tolerates the control plane's taint) are read once and counted on. Declared after the
// cleanup, so that it runs first (hooks run in the order they are declared).
useWorkers(5);

function newRepo(): TestRepo {
  const repo = new TestRepo();
  repos.push(repo);
  return repo;
}

describe('a node agent bundle', () => {
  const ns = uniqueName('lumen');
  namespaces.push(ns);
  const git = newRepo();
  // One configuration (one CLUSTER_NAME, so one store) for every pass of this bundle.
  let settings: ReturnType<typeof stackConfig> | undefined;
  const config = () => (settings ??= stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, ALLOWED_KINDS: KINDS }));
  let first: ReconcileReport;

  beforeAll(async () => {
    git.write('lumen/agent.yaml', fixture('node-agent.yaml', ns)).commit('lumen-agent 1.4.2, as published');
    clusterObjects.push(['clusterrole', `${ns}-lumen-agent`], ['clusterrolebinding', `${ns}-lumen-agent`]);
    first = await reconcile(stackDeps(config()));
  });

  it('is applied in one pass, its own Namespace first, and its DaemonSet becomes available', async () => {
    if (first.result !== 'succeeded') console.log(JSON.stringify({ objects: first.objects, ds: first.daemonSets, problems: first.problems, error: first.error }, null, 1));
    expect(first.result).toBe('succeeded');
    expect(first.objects?.map((o) => [o.id, o.action, o.applied])).toEqual([
      [`Namespace ${ns}`, 'create', true],
      [`ClusterRole ${ns}-lumen-agent`, 'create', true],
      [`ClusterRoleBinding ${ns}-lumen-agent`, 'create', true],
      [`ConfigMap ${ns}/lumen-agent-config`, 'create', true],
      // The versioned copy the DaemonSet mounts (docs/bundles.md).
      [expect.stringMatching(new RegExp(`^ConfigMap ${ns}/lumen-agent-config-[0-9a-f]{10}$`)), 'create', true],
      [`Service ${ns}/lumen-agent`, 'create', true],
      [`ServiceAccount ${ns}/lumen-agent`, 'create', true],
    ]);
    expect(first.daemonSets).toEqual([expect.objectContaining({ key: `${ns}/lumen-agent`, action: 'create', applied: true })]);
    expect(first.daemonSets[0].rollout).toMatchObject({ phase: 'complete' });
    const ds = await apps.readNamespacedDaemonSet({ name: 'lumen-agent', namespace: ns });
    expect(ds.status?.desiredNumberScheduled).toBeGreaterThan(0);
    expect(ds.status?.numberAvailable).toBe(ds.status?.desiredNumberScheduled);
    const cm = await core.readNamespacedConfigMap({ name: 'lumen-agent-config', namespace: ns });
    expect(cm.data?.['agent.conf']).toContain('listen = :9464');
    expect(cm.metadata?.managedFields?.map((f) => f.manager)).toContain('daemonset-gitops');
  });

  it('is unchanged on the next pass, whatever the YAML habits of the manifests', async () => {
    const again = await reconcile(stackDeps(config()));
    expect(again.result).toBe('succeeded');
    expect(again.objects?.map((o) => o.action)).toEqual(Array(7).fill('unchanged'));
    expect(again.daemonSets.map((d) => d.action)).toEqual(['unchanged']);
  });

  it('costs one LIST per kind in the source plus a small constant once nothing is left to record, and writes nothing', async () => {
    // A pass may still record what the last one saw of the rollout (as for DaemonSets alone); then passes are quiet.
    for (let i = 0; i < 3 && (await reconcile(stackDeps(config()))).leaseTaken; i++);
    const { result: again, requests, verbs } = await countApiRequests(() => reconcile(stackDeps(config())), { thisProcess: true });

    expect(again.result).toBe('succeeded');
    expect(again.objects?.map((o) => o.action)).toEqual(Array(7).fill('unchanged'));
    expect(again.daemonSets.map((d) => d.action)).toEqual(['unchanged']);
    expect(again.leaseTaken).toBeUndefined();
    // Kinds in the source: Namespace, ClusterRole, ClusterRoleBinding, ConfigMap, Service, ServiceAccount, DaemonSet.
    expect(verbs.every((v) => v.startsWith('list ') || v.startsWith('get '))).toBe(true);
    // At most one LIST per kind (no collection read twice), plus a small constant of other requests.
    const lists = verbs.filter((v) => v.startsWith('list '));
    expect(new Set(lists).size).toBe(lists.length);
    expect(lists.length).toBeLessThanOrEqual(7);
    expect(verbs.length - lists.length).toBeLessThanOrEqual(2);
    expect(requests).toBeLessThanOrEqual(7 + 2);
    console.log(`second pass of a 7-kind bundle: ${requests} Kubernetes requests: ${verbs.join(', ')}`);
  });

  it('corrects an edit of a ConfigMap made in the cluster (drift), and only that', async () => {
    kubectl(['-n', ns, 'patch', 'configmap', 'lumen-agent-config', '--type=merge', '-p', '{"data":{"agent.conf":"edited by hand"}}']);
    const healed = await reconcile(stackDeps(config()));
    expect(object(healed, `ConfigMap ${ns}/lumen-agent-config`)).toMatchObject({ action: 'update', applied: true, message: 'data.agent.conf differs from Git: corrected' });
    expect(healed.objects?.filter((o) => o.action !== 'unchanged')).toHaveLength(1);
    expect((await core.readNamespacedConfigMap({ name: 'lumen-agent-config', namespace: ns })).data?.['agent.conf']).toContain('scrape_interval');
  });
});

describe('a ServiceAccount the kinds policy refuses', () => {
  it('holds the DaemonSet that runs as it, by name, and blocks nothing else', async () => {
    const ns = uniqueName('held');
    namespaces.push(ns);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const git = newRepo();
    const bundle = fixture('node-agent.yaml', ns).split(/^---$/m).filter((d) => !/kind: (Namespace|ClusterRole|ClusterRoleBinding)\n/.test(d)).join('---');
    git.write('agent.yaml', bundle).commit('lumen-agent without its cluster-scoped part');

    const report = await reconcile(stackDeps(stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, ALLOWED_KINDS: 'DaemonSet,ConfigMap,Service' })));

    expect(report.result).toBe('failed');
    const held = report.daemonSets.find((d) => d.key === `${ns}/lumen-agent`)!;
    expect(held).toMatchObject({ action: 'invalid', applied: false });
    expect(held.message).toContain(`held: its ServiceAccount ${ns}/lumen-agent (serviceAccountName) at agent.yaml (document 1) is not applied`);
    expect(held.message).toContain('add ServiceAccount to ALLOWED_KINDS');
    expect(report.problems.find((p) => p.code === 'kind-not-allowed')).toMatchObject({ file: 'agent.yaml', document: 1, severity: 'skipped' });
    expect(report.objects?.map((o) => [o.id, o.applied])).toEqual([[`ConfigMap ${ns}/lumen-agent-config`, true], [`Service ${ns}/lumen-agent`, true]]);
    await expect(apps.readNamespacedDaemonSet({ name: 'lumen-agent', namespace: ns })).rejects.toMatchObject({ code: 404 });
  });
});

describe('a CRD and an object of it in the same commit', () => {
  it('apply in one pass: the CRD is Established before the object is applied', async () => {
    const ns = uniqueName('probes');
    namespaces.push(ns);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    clusterObjects.push(['customresourcedefinition', `${probeKind.toLowerCase()}s.probes.example.dev`]);
    const git = newRepo();
    git.write('probes.yaml', fixture('crd-controller.yaml', ns)).commit('probe controller 0.3.0 with its CRD');

    const report = await reconcile(stackDeps(stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, ALLOWED_KINDS: KINDS })));

    expect(report.result).toBe('succeeded');
    expect(report.objects?.map((o) => [o.id, o.action, o.applied])).toEqual([
      [`CustomResourceDefinition ${probeKind.toLowerCase()}s.probes.example.dev`, 'create', true],
      [`${probeKind} ${ns}/node-reachability`, 'create', true],
      [`ServiceAccount ${ns}/probe-controller`, 'create', true],
      [`Deployment ${ns}/probe-controller`, 'create', true],
    ]);
    const probe = JSON.parse(kubectl(['-n', ns, 'get', `${probeKind.toLowerCase()}s.probes.example.dev`, 'node-reachability', '-o', 'json'])) as { spec: { targets: string[] } };
    expect(probe.spec.targets).toEqual(['kubelet', 'dns']);
    expect((await apps.readNamespacedDeployment({ name: 'probe-controller', namespace: ns })).spec?.template.spec?.serviceAccountName).toBe('probe-controller');

    const again = await reconcile(stackDeps(stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, ALLOWED_KINDS: KINDS, CLUSTER_NAME: uniqueName('probes') })));
    expect(again.objects?.map((o) => o.action)).toEqual(['unchanged', 'unchanged', 'unchanged', 'unchanged']);
  });
});

describe('RBAC from Git', () => {
  it('cannot grant more than the reconciler holds: a RoleBinding to cluster-admin is refused by the API server and reported by name', async () => {
    const ns = uniqueName('grab');
    namespaces.push(ns);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const git = newRepo();
    git.write('grab.yaml', [
      `apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: take-over, namespace: ${ns}}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: ServiceAccount, name: default, namespace: ${ns}}]\n`,
      `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: innocent, namespace: ${ns}}\ndata: {a: b}\n`,
    ].join('---\n')).commit('a binding nobody should merge');

    const report = await reconcile(stackDeps(stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns })));

    expect(report.result).toBe('failed');
    const binding = object(report, `RoleBinding ${ns}/take-over`)!;
    expect(binding).toMatchObject({ action: 'failed', applied: false });
    expect(binding.error?.message).toMatch(new RegExp(`^RoleBinding ${ns}/take-over is refused by the API server: it grants permissions the reconciler does not hold itself`));
    expect(object(report, `ConfigMap ${ns}/innocent`)).toMatchObject({ action: 'create', applied: true });
    expect(kubectl(['-n', ns, 'get', 'rolebindings', '-o', 'name'])).not.toContain('take-over');
  });
});

describe('a rollout that cannot start', () => {
  it('says why within a look or two, naming the controller\'s FailedCreate Event, instead of "no progress" at the deadline', async () => {
    const ns = uniqueName('nosa');
    namespaces.push(ns);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const git = newRepo();
    // The ServiceAccount is not in the source (nothing to hold the DaemonSet for): the controller is refused at admission.
    git.write('ghost.yaml', fixture('node-agent.yaml', ns).split(/^---$/m).filter((d) => /kind: DaemonSet\n/.test(d)).join('---').replace('configMap: {name: lumen-agent-config}', 'emptyDir: {}')).commit('an agent whose ServiceAccount nobody created');

    const started = Date.now();
    const report = await reconcile(stackDeps(stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, PROGRESS_DEADLINE_SECONDS: '600' })));
    const tookMs = Date.now() - started;

    const entry = report.daemonSets.find((d) => d.key === `${ns}/lumen-agent`)!;
    expect(entry.rollout?.phase).toBe('stalled');
    expect(entry.rollout?.message).toMatch(/cannot create pods \(FailedCreate.*serviceaccount "lumen-agent" not found/);
    expect(tookMs).toBeLessThan(60_000);
    console.log(`rollout without its ServiceAccount: stalled with the controller's reason after ${(tookMs / 1000).toFixed(1)} s (deadline 600 s)`);
  });
});

describe('a commit that changes only a ConfigMap', () => {
  it('is shown by plan as a diff of the ConfigMap, and rolls the DaemonSet that mounts it, within maxUnavailable, as revision N+1 with its commit', async () => {
    const ns = uniqueName('cfg');
    namespaces.push(ns);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const git = newRepo();
    const bundle = (interval: string) => fixture('node-agent.yaml', ns)
      .split(/^---$/m).filter((d) => !/kind: (Namespace|ClusterRole|ClusterRoleBinding)\n/.test(d)).join('---')
      .replace('scrape_interval = 15s', `scrape_interval = ${interval}`)
      .replace('  selector:\n    matchLabels: {app: lumen-agent}\n  updateStrategy: {}', '  selector:\n    matchLabels: {app: lumen-agent}\n  updateStrategy: {rollingUpdate: {maxUnavailable: 2}}');
    git.write('agent.yaml', bundle('15s')).commit('lumen-agent 1.4.2');
    const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
    const first = await reconcile(stackDeps(config));
    expect(first.daemonSets[0]).toMatchObject({ action: 'create', revision: 1, rollout: { phase: 'complete' } });

    const nodes = (await core.listNode()).items.map((n) => n.metadata!.name!).sort();
    const watcher = new AvailabilityWatcher(kc, ns, 'app=lumen-agent', nodes);
    await watcher.start();
    const sha = git.write('agent.yaml', bundle('30s')).commit('lumen-agent: scrape every 30 s');
    const planned = await reconcile(stackDeps(config), { dryRun: true });
    expect(object(planned, `ConfigMap ${ns}/lumen-agent-config`)?.diff).toMatch(/-\s+scrape_interval = 15s\n\+\s+scrape_interval = 30s/);
    expect(planned.daemonSets[0]).toMatchObject({ action: 'update', applied: false });
    expect(planned.daemonSets[0].diff).toContain('daemonset-gitops.io/config-digest');
    const second = await reconcile(stackDeps(config));
    watcher.stop();

    expect(object(second, `ConfigMap ${ns}/lumen-agent-config`)).toMatchObject({ action: 'update', applied: true });
    expect(second.daemonSets[0]).toMatchObject({ action: 'update', cause: 'git-change', applied: true, revision: 2, rollout: { phase: 'complete' } });
    expect((await stackDeps(config).store.getRevision(ns, 'lumen-agent', 2))!.value.commit?.sha).toBe(sha);
    expect(watcher.deletions.length).toBeGreaterThan(0);
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(2);
    const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=lumen-agent' })).items.filter((p) => !p.metadata?.deletionTimestamp);
    const digests = new Set(pods.map((p) => p.metadata?.annotations?.['daemonset-gitops.io/config-digest']));
    expect(digests.size).toBe(1);
    expect([...digests][0]).toMatch(/^sha256:/);
  });
});

describe('a manifest that spells out what the API server defaults', () => {
  it('is unchanged on the next pass, and a plan against a store that never saw it (compared by a server-side dry run) shows no diff', async () => {
    const ns = uniqueName('plain');
    namespaces.push(ns);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const git = newRepo();
    git.write('exporter.yaml', fixture('defaulted.yaml', ns)).commit('plain-exporter 1.8.0, as kubectl prints it');
    const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
    const first = await reconcile(stackDeps(config));
    expect(first.result).toBe('succeeded');
    expect(first.daemonSets[0]).toMatchObject({ action: 'create', rollout: { phase: 'complete' } });

    const again = await reconcile(stackDeps(config));
    // The DaemonSet mounts its ConfigMap through a versioned copy (docs/bundles.md), named after a hash of its data.
    const named = (id: string) => id.replace(/-[0-9a-f]{10}$/, '-<copy>');
    expect(again.objects?.map((o) => [named(o.id), o.action])).toEqual([
      [`ConfigMap ${ns}/plain-exporter`, 'unchanged'],
      [`ConfigMap ${ns}/plain-exporter-<copy>`, 'unchanged'],
      [`Service ${ns}/plain-exporter`, 'unchanged'],
    ]);
    expect(again.daemonSets.map((d) => d.action)).toEqual(['unchanged']);

    const fresh = await reconcile(stackDeps(stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, CLUSTER_NAME: uniqueName('plain') })), { dryRun: true });
    expect(fresh.objects?.map((o) => [named(o.id), o.action, o.diff])).toEqual([
      [`ConfigMap ${ns}/plain-exporter`, 'unchanged', undefined],
      [`ConfigMap ${ns}/plain-exporter-<copy>`, 'unchanged', undefined],
      [`Service ${ns}/plain-exporter`, 'unchanged', undefined],
    ]);
    expect(fresh.daemonSets[0]).toMatchObject({ action: 'unchanged' });
    expect(fresh.daemonSets[0].diff).toBeUndefined();
  });
});
