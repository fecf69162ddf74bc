/**
 * Prune by inventory, on the local stack: every object a pass applies besides DaemonSets is
 * recorded in S3 (inventory.json) before anything is deleted; with PRUNE=true an object removed
 * from Git is deleted, a ConfigMap that a kept revision still names is not, a cluster-scoped
 * object only when ALLOWED_KINDS lists its kind by name, and nothing at all while a file of the
 * source cannot be read; with PRUNE=false they are listed as orphaned. A run killed between its
 * inventory write and its deletes (for real: the command sends itself SIGKILL after its first
 * delete) is completed by the next pass.
 */
import * as k8s from '@kubernetes/client-node';
import { reconcile } from '../../lib/reconcile';
import type { ReconcileReport } from '../../lib/report';
import { InventoryStore } from '../../lib/store/inventory';
import type { Config } from '../../lib/config';
import { adminClients, createNamespace, deleteNamespace, stackEnv, uniqueName } from '../support/cluster';
import { TestRepo } from '../support/git';
import { parseAllowedKinds } from '../../lib/bundle/kinds';
import { DEFAULT_RBAC_USER, rbacYaml } from '../../lib/rbac';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCliProcess, stackConfig, stackConfigEnv, stackDeps } from '../support/reconciler';
import { reconcileOnceLeaseFree } from '../support/scenario';

jest.setTimeout(240_000);

const { kc, core } = adminClients();
const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
const namespaces: string[] = [];
const repos: TestRepo[] = [];
const clusterRoles: string[] = [];

const GRANT = uniqueName('dsgitops-prune');
const BUNDLE_KINDS = 'DaemonSet,ConfigMap,Secret,ServiceAccount,Service,Namespace,ClusterRole,ClusterRoleBinding';

function kubectl(args: string[], input?: string): string {
  const env = stackEnv();
  return execFileSync(env.KUBECTL, args, { input, env: { ...process.env, KUBECONFIG: env.KUBECONFIG }, encoding: 'utf8' });
}

beforeAll(() => {
  // What `dsgitops rbac --kinds …` prints for the kinds these passes apply, beside the stack's own grant.
  kubectl(['apply', '-f', '-'], rbacYaml({ allowedNamespaces: '*', user: DEFAULT_RBAC_USER, name: GRANT, allowedKinds: parseAllowedKinds(BUNDLE_KINDS, '--kinds', []) }));
});

afterAll(async () => {
  for (const [kind, name] of [['clusterrole', GRANT], ['clusterrolebinding', GRANT], ['clusterrole', `${GRANT}-reader`], ['clusterrolebinding', `${GRANT}-reader`]]) kubectl(['delete', kind, name, '--ignore-not-found']);
  for (const ns of namespaces) await deleteNamespace(core, ns);
  for (const name of clusterRoles) await rbac.deleteClusterRole({ name }).catch(() => undefined);
  for (const r of repos) r.cleanup();
});

function agent(ns: string, config: string, pull?: string): string {
  return `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: ${ns}}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata:
      labels: {app: agent}
      annotations: {pod-ready.stage.kwok.x-k8s.io/delay: "1s"}
    spec:
      tolerations: [{operator: Exists, effect: NoSchedule, key: node-role.kubernetes.io/control-plane}]
      containers: [{name: agent, image: registry.local/agent:1.0, volumeMounts: [{name: config, mountPath: /etc/agent}]}]
      volumes: [{name: config, configMap: {name: ${config}}}]${pull ? `\n      imagePullSecrets: [{name: ${pull}}]` : ''}
`;
}

// A pull secret is named by the template as it is (a ConfigMap the template mounts is named through its versioned copy).
const pullSecret = (ns: string, name: string) => `apiVersion: v1\nkind: Secret\nmetadata: {name: ${name}, namespace: ${ns}}\ntype: kubernetes.io/dockerconfigjson\nstringData: {.dockerconfigjson: '{"auths":{}}'}\n`;

const configMap = (ns: string, name: string, data = 'level: info') => `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${name}, namespace: ${ns}}\ndata: {agent.yaml: "${data}"}\n`;
const service = (ns: string) => `apiVersion: v1\nkind: Service\nmetadata: {name: agent-metrics, namespace: ${ns}}\nspec:\n  clusterIP: None\n  selector: {app: agent}\n  ports: [{port: 9100}]\n`;
const clusterRole = (name: string) => `apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: ${name}}\nrules: [{apiGroups: [""], resources: [nodes], verbs: [get]}]\n`;

function orphan(report: ReconcileReport, id: string) {
  return report.orphans?.find((o) => o.id === id);
}

async function exists(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return true;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return false;
    throw err;
  }
}

async function inventoryOf(config: Config) {
  const deps = stackDeps(config);
  return (await new InventoryStore(deps.objects, deps.store.keys).read())?.value;
}

describe('prune by inventory', () => {
  let ns: string;
  let git: TestRepo;
  let base: Record<string, string>;
  let firstSha: string;
  const config = (env: Record<string, string>) => stackConfig({ ...base, ...env });
  const role = uniqueName('dsgitops-prune-role');
  clusterRoles.push(role);

  beforeAll(async () => {
    ns = await createNamespace(core, 'prune');
    namespaces.push(ns);
    git = new TestRepo();
    repos.push(git);
    base = { GIT_URL: git.url, ALLOWED_NAMESPACES: ns, CLUSTER_NAME: uniqueName('prune') };
    firstSha = git.write('agent.yaml', [agent(ns, 'agent-config-v1', 'agent-pull-v1'), configMap(ns, 'agent-config-v1'), pullSecret(ns, 'agent-pull-v1'), configMap(ns, 'extra'), service(ns)].join('---\n'))
      .write('role.yaml', clusterRole(role))
      .commit('agent 1.0 with its config, a spare ConfigMap, a Service and a ClusterRole');
    const first = await reconcile(stackDeps(config({ ALLOWED_KINDS: '*', PRUNE: 'true' })));
    if (first.result !== 'succeeded') console.log(JSON.stringify({ error: first.error, problems: first.problems, objects: first.objects, ds: first.daemonSets }, null, 1));
    expect(first.result).toBe('succeeded');
    expect(first.objects?.every((o) => o.applied)).toBe(true);
  });

  it('records every object applied besides the DaemonSet in inventory.json, with the commit', async () => {
    const inventory = (await inventoryOf(config({ ALLOWED_KINDS: '*' })))!;
    expect(inventory.objects.map((o) => `${o.kind} ${o.namespace ?? ''}/${o.name}`).sort()).toEqual([
      `ClusterRole /${role}`,
      `ConfigMap ${ns}/agent-config-v1`,
      `ConfigMap ${ns}/extra`,
      `Secret ${ns}/agent-pull-v1`,
      `Service ${ns}/agent-metrics`,
    ]);
    expect(inventory.pruning).toEqual([]);
    expect(inventory.commit).toBe(firstSha);
  });

  it('lists what left Git as orphaned with PRUNE=false, and deletes nothing', async () => {
    git.write('agent.yaml', [agent(ns, 'agent-config-v2', 'agent-pull-v2'), configMap(ns, 'agent-config-v2', 'level: debug'), pullSecret(ns, 'agent-pull-v2')].join('---\n')).remove('role.yaml')
      .commit('agent reads agent-config-v2; the spare ConfigMap, the Service and the ClusterRole go');
    const report = await reconcile(stackDeps(config({ ALLOWED_KINDS: '*', PRUNE: 'false' })));

    expect(report.result).toBe('succeeded');
    expect(report.orphans?.map((o) => [o.id, o.action])).toEqual([
      [`ConfigMap ${ns}/agent-config-v1`, 'orphaned'],
      [`ConfigMap ${ns}/extra`, 'orphaned'],
      [`Secret ${ns}/agent-pull-v1`, 'orphaned'],
      [`Service ${ns}/agent-metrics`, 'orphaned'],
      [`ClusterRole ${role}`, 'orphaned'],
    ]);
    expect(orphan(report, `ConfigMap ${ns}/extra`)!.message).toMatch(/PRUNE=false.*PRUNE=true would delete it/);
    expect(orphan(report, `ClusterRole ${role}`)!.message).toMatch(/PRUNE=true would keep it too: cluster-scoped/);
    expect(await exists(() => core.readNamespacedConfigMap({ name: 'extra', namespace: ns }))).toBe(true);
    expect(await exists(() => core.readNamespacedService({ name: 'agent-metrics', namespace: ns }))).toBe(true);
    expect(report.daemonSets[0]).toMatchObject({ action: 'update', revision: 2 });
  });

  it('with PRUNE=true deletes what left Git, keeps the Secret a kept revision names, and a cluster-scoped object allowed only through *', async () => {
    const report = await reconcile(stackDeps(config({ ALLOWED_KINDS: '*', PRUNE: 'true' })));

    expect(report.result).toBe('succeeded');
    expect(orphan(report, `ConfigMap ${ns}/extra`)).toMatchObject({ action: 'pruned', pruned: true, message: 'no longer in Git: deleted (PRUNE=true)' });
    expect(orphan(report, `Service ${ns}/agent-metrics`)).toMatchObject({ action: 'pruned', pruned: true });
    // Revision 1 names its ConfigMap through the versioned copy, which stays; Git's ConfigMap is needed by nothing now.
    expect(orphan(report, `ConfigMap ${ns}/agent-config-v1`)).toMatchObject({ action: 'pruned', pruned: true });
    expect(orphan(report, `Secret ${ns}/agent-pull-v1`)).toMatchObject({ action: 'orphaned', pruned: false });
    expect(orphan(report, `Secret ${ns}/agent-pull-v1`)!.message).toContain(`still needed: revision 1 of DaemonSet ${ns}/agent, kept for rollback, names it (imagePullSecrets[0])`);
    expect(orphan(report, `ClusterRole ${role}`)).toMatchObject({ action: 'orphaned', pruned: false });
    expect(orphan(report, `ClusterRole ${role}`)!.message).toContain('ALLOWED_KINDS lists rbac.authorization.k8s.io/ClusterRole by name (not through *)');

    expect(await exists(() => core.readNamespacedConfigMap({ name: 'extra', namespace: ns }))).toBe(false);
    expect(await exists(() => core.readNamespacedService({ name: 'agent-metrics', namespace: ns }))).toBe(false);
    expect(await exists(() => core.readNamespacedConfigMap({ name: 'agent-config-v1', namespace: ns }))).toBe(false);
    expect(await exists(() => core.readNamespacedSecret({ name: 'agent-pull-v1', namespace: ns }))).toBe(true);
    const copies = await core.listNamespacedConfigMap({ namespace: ns, labelSelector: 'daemonset-gitops.io/config-copy-of=agent-config-v1' });
    expect(copies.items).toHaveLength(1);
    expect(await exists(() => rbac.readClusterRole({ name: role }))).toBe(true);
    const inventory = (await inventoryOf(config({})))!;
    expect(inventory.pruning).toEqual([]);
    expect(inventory.objects.map((o) => o.name).sort()).toEqual(['agent-config-v2', 'agent-pull-v1', 'agent-pull-v2', role].sort());
  });

  it('deletes a cluster-scoped object once ALLOWED_KINDS lists its kind by name', async () => {
    const report = await reconcile(stackDeps(config({ ALLOWED_KINDS: 'DaemonSet,ConfigMap,Service,rbac.authorization.k8s.io/ClusterRole', PRUNE: 'true' })));
    expect(orphan(report, `ClusterRole ${role}`)).toMatchObject({ action: 'pruned', pruned: true });
    expect(await exists(() => rbac.readClusterRole({ name: role }))).toBe(false);
  });

  it('prunes nothing while a file of the source cannot be read, and what it should once it can', async () => {
    git.write('spare.yaml', configMap(ns, 'spare')).commit('a spare ConfigMap');
    expect(await reconcile(stackDeps(config({ ALLOWED_KINDS: '*', PRUNE: 'true' })))).toMatchObject({ result: 'succeeded' });
    git.remove('spare.yaml').write('broken.yaml', 'kind: [oops\n').commit('the spare ConfigMap leaves Git; a broken file arrives');

    const careful = await reconcile(stackDeps(config({ ALLOWED_KINDS: '*', PRUNE: 'true' })));
    expect(orphan(careful, `ConfigMap ${ns}/spare`)).toMatchObject({ action: 'orphaned', pruned: false, message: expect.stringMatching(/some manifests could not be read this pass, so nothing is pruned/) });
    expect(await exists(() => core.readNamespacedConfigMap({ name: 'spare', namespace: ns }))).toBe(true);

    git.remove('broken.yaml').commit('fix the file');
    const after = await reconcile(stackDeps(config({ ALLOWED_KINDS: '*', PRUNE: 'true' })));
    expect(orphan(after, `ConfigMap ${ns}/spare`)).toMatchObject({ action: 'pruned', pruned: true });
    expect(await exists(() => core.readNamespacedConfigMap({ name: 'spare', namespace: ns }))).toBe(false);
    // The ConfigMap of the running template stays, though Git no longer has it as an object.
    git.write('agent.yaml', agent(ns, 'agent-config-v2')).commit('agent-config-v2 leaves Git; the DaemonSet still mounts it');
    const still = await reconcile(stackDeps(config({ ALLOWED_KINDS: '*', PRUNE: 'true' })));
    expect(orphan(still, `ConfigMap ${ns}/agent-config-v2`)).toMatchObject({ action: 'orphaned', pruned: false });
    expect(orphan(still, `ConfigMap ${ns}/agent-config-v2`)!.message).toContain(`still needed: DaemonSet ${ns}/agent in Git names it (volumes[0].configMap)`);
    expect(await exists(() => core.readNamespacedConfigMap({ name: 'agent-config-v2', namespace: ns }))).toBe(true);
  });

  it('completes the prune of a run killed between its inventory write and its deletes', async () => {
    const deps = stackDeps(config({ ALLOWED_KINDS: '*', PRUNE: 'true' }));
    const store = new InventoryStore(deps.objects, deps.store.keys);
    const read = (await store.read())!;
    // What such a run leaves: the objects it was deleting listed as `pruning`, still in the cluster, and not in Git.
    const labels = { 'daemonset-gitops.io/managed-by': 'daemonset-gitops' };
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'left-behind', namespace: ns, labels }, data: { a: 'b' } } });
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'agent-config-v2-copy', namespace: ns, labels: { ...labels, 'daemonset-gitops.io/config-copy-of': 'agent-config-v2' } }, data: { a: 'b' } } });
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'taken-over', namespace: ns }, data: { a: 'b' } } });
    const entry = (name: string) => ({ group: '', version: 'v1', kind: 'ConfigMap', namespace: ns, name, file: 'agent.yaml' });
    await store.write({ ...read.value, runId: 'killed-run', pruning: [entry('left-behind'), entry('agent-config-v2-copy'), entry('taken-over')] }, read.etag);

    const report = await reconcile(deps);

    expect(orphan(report, `ConfigMap ${ns}/left-behind`)).toMatchObject({ action: 'pruned', pruned: true });
    expect(orphan(report, `ConfigMap ${ns}/agent-config-v2-copy`)).toMatchObject({ action: 'orphaned', message: expect.stringContaining('versioned configuration copy') });
    expect(orphan(report, `ConfigMap ${ns}/taken-over`)).toMatchObject({ action: 'orphaned', message: expect.stringContaining('no longer carries daemonset-gitops.io/managed-by') });
    expect(await exists(() => core.readNamespacedConfigMap({ name: 'left-behind', namespace: ns }))).toBe(false);
    expect(await exists(() => core.readNamespacedConfigMap({ name: 'agent-config-v2-copy', namespace: ns }))).toBe(true);
    expect(await exists(() => core.readNamespacedConfigMap({ name: 'taken-over', namespace: ns }))).toBe(true);
    const inventory = (await store.read())!.value;
    expect(inventory.pruning).toEqual([]);
    expect(inventory.objects.map((o) => o.name)).not.toEqual(expect.arrayContaining(['left-behind']));
    expect(inventory.objects.map((o) => o.name)).not.toContain('taken-over');
    expect(inventory.objects.map((o) => o.name)).not.toContain('agent-config-v2-copy');
  });
});

describe('a whole bundle removed from Git, with PRUNE=true', () => {
  it('is deleted in the reverse of its apply order: the DaemonSet and namespaced objects first, its ClusterRoleBinding, ClusterRole and Namespace last (once nothing of Git lives in it)', async () => {
    const ns = uniqueName('gone');
    namespaces.push(ns);
    const git = new TestRepo();
    repos.push(git);
    const env = { GIT_URL: git.url, ALLOWED_NAMESPACES: ns, ALLOWED_KINDS: BUNDLE_KINDS, PRUNE: 'true', CLUSTER_NAME: uniqueName('gone') };
    git.write('lumen.yaml', readFileSync(join(__dirname, '..', 'fixtures', 'bundles', 'node-agent.yaml'), 'utf8').replaceAll('__NS__', ns)).write('keep.yaml', configMap(ns, 'unrelated')).commit('lumen-agent, as published');
    clusterRoles.push(`${ns}-lumen-agent`);
    const first = await reconcile(stackDeps(stackConfig(env)));
    expect(first.result).toBe('succeeded');

    git.remove('lumen.yaml').commit('lumen-agent is retired');
    const report = await reconcile(stackDeps(stackConfig(env)));

    expect(report.result).toBe('succeeded');
    expect(report.daemonSets.find((d) => d.key === `${ns}/lumen-agent`)).toMatchObject({ action: 'pruned', applied: true });
    expect(report.orphans?.map((o) => [o.id, o.action])).toEqual([
      [`ConfigMap ${ns}/lumen-agent-config`, 'pruned'],
      [`Service ${ns}/lumen-agent`, 'pruned'],
      [`ServiceAccount ${ns}/lumen-agent`, 'pruned'],
      [`ClusterRoleBinding ${ns}-lumen-agent`, 'pruned'],
      [`ClusterRole ${ns}-lumen-agent`, 'pruned'],
      [`Namespace ${ns}`, 'orphaned'],
    ]);
    expect(await exists(() => rbac.readClusterRole({ name: `${ns}-lumen-agent` }))).toBe(false);
    // Another object of the source still lives in the Namespace: deleting it would take that along.
    expect(orphan(report, `Namespace ${ns}`)!.message).toContain(`Git's source still has objects in namespace ${ns}`);
    expect((await core.readNamespace({ name: ns })).metadata?.deletionTimestamp).toBeUndefined();

    git.remove('keep.yaml').commit('nothing left in the namespace');
    const last = await reconcile(stackDeps(stackConfig(env)));
    expect(last.orphans?.map((o) => [o.id, o.action])).toEqual([[`ConfigMap ${ns}/unrelated`, 'pruned'], [`Namespace ${ns}`, 'pruned']]);
    const namespace = await core.readNamespace({ name: ns }).catch(() => undefined);
    expect(namespace === undefined || namespace.metadata?.deletionTimestamp !== undefined).toBe(true);
  });
});

describe('a run killed in the middle of its deletes', () => {
  it('leaves what it had not deleted listed in the inventory, and the next pass deletes it', async () => {
    const ns = await createNamespace(core, 'killed');
    namespaces.push(ns);
    const git = new TestRepo();
    repos.push(git);
    const env = stackConfigEnv({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, PRUNE: 'true', LEASE_SECONDS: '5' });
    git.write('config.yaml', ['one', 'two', 'three'].map((n) => configMap(ns, n)).join('---\n')).commit('three ConfigMaps');
    expect((await reconcile(stackDeps(stackConfig(env)))).result).toBe('succeeded');
    git.remove('config.yaml').commit('no ConfigMaps');

    const killed = await runCliProcess(['reconcile', '--json'], { ...env, DSGITOPS_FAULT: 'kill-mid-prune' });
    expect(killed.signal).toBe('SIGKILL');
    const names = async () => (await core.listNamespacedConfigMap({ namespace: ns, labelSelector: 'daemonset-gitops.io/managed-by=daemonset-gitops' })).items.map((c) => c.metadata!.name!).sort();
    const left = await names();
    expect(left).toHaveLength(2);
    const inventory = (await inventoryOf(stackConfig(env)))!;
    expect(inventory.pruning.map((e) => e.name).sort()).toEqual(['one', 'three', 'two']);

    const next = await reconcileOnceLeaseFree(stackConfig(env));
    expect(next.result).toBe('succeeded');
    expect(next.orphans?.filter((o) => o.action === 'pruned').map((o) => o.name).sort()).toEqual(left);
    expect(next.orphans?.find((o) => !left.includes(o.name))?.message).toBe('no longer in Git, and already gone from the cluster');
    expect(await names()).toEqual([]);
    expect((await inventoryOf(stackConfig(env)))).toMatchObject({ objects: [], pruning: [] });
  });
});
