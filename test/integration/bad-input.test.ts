/**
 * Bad input in Git: every problem is reported with its file, document and a fix, blocks only
 * its own document, and never reaches the cluster; a valid DaemonSet changed in the same
 * commit is still applied.
 */
import * as k8s from '@kubernetes/client-node';
import { reconcile } from '../../lib/reconcile';
import type { ReconcileReport } from '../../lib/report';
import { adminClients, createNamespace, deleteNamespace, uniqueName } from '../support/cluster';
import { TestRepo } from '../support/git';
import { dsObject, dsYaml } from '../support/manifests';
import { stackConfig, stackDeps } from '../support/reconciler';
import { stringify } from 'yaml';

jest.setTimeout(240_000);

const { kc, core, apps } = adminClients();
const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
let ns: string;
let git: TestRepo;
let report: ReconcileReport;
let config: ReturnType<typeof stackConfig>;
const bindingName = uniqueName('gitops-test-admin');

const billionLaughs = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
  'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
  'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
  'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
  'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
  'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
  'h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]',
  'i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]',
  '',
].join('\n');

beforeAll(async () => {
  ns = await createNamespace(core, 'bad');
  git = new TestRepo();
  git.write('apps/good.yaml', dsYaml({ name: 'good', namespace: ns, image: 'registry.local/good:1.0' }));
  git.write('apps/sticky.yaml', dsYaml({ name: 'sticky', namespace: ns }));
  git.commit('good and sticky');
  config = stackConfig({ GIT_URL: git.url, GIT_PATH: 'apps', ALLOWED_NAMESPACES: ns, MAX_MANIFEST_BYTES: '16384' });
  expect((await reconcile(stackDeps(config))).result).toBe('succeeded');

  // One commit: the valid DaemonSet changes, and every kind of bad input arrives with it.
  git.write('apps/good.yaml', dsYaml({ name: 'good', namespace: ns, image: 'registry.local/good:2.0' }));
  git.write('apps/broken.yaml', 'apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: broken\n  labels: [unclosed\n');
  git.write('apps/bomb.yaml', billionLaughs);
  git.write('apps/huge.yaml', `# padding\n${'#'.repeat(20_000)}\n${dsYaml({ name: 'huge', namespace: ns })}`);
  git.write('apps/rbac.yaml', stringify({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: bindingName },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
    subjects: [{ kind: 'User', name: 'mallory', apiGroup: 'rbac.authorization.k8s.io' }],
  }));
  git.write('apps/deployment.yaml', stringify({
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: ns },
    spec: { selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx' }] } } },
  }));
  git.write('apps/old.yaml', stringify({ ...dsObject({ name: 'old', namespace: ns }), apiVersion: 'extensions/v1beta1' }));
  const mismatch = dsObject({ name: 'fluentd', namespace: ns }) as { spec: { selector: object; template: { metadata: { labels: object } } } };
  mismatch.spec.selector = { matchLabels: { app: 'fluentd' } };
  mismatch.spec.template.metadata.labels = { name: 'fluentd' };
  git.write('apps/multi.yaml', `${stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg', namespace: ns }, data: { a: 'b' } })}---\n${stringify(mismatch)}`);
  git.write('apps/elsewhere.yaml', dsYaml({ name: 'intruder', namespace: 'kube-system' }));
  git.write('apps/twin-a.yaml', dsYaml({ name: 'twin', namespace: ns }));
  git.write('apps/nested/twin-b.yml', dsYaml({ name: 'twin', namespace: ns, image: 'registry.local/other:1.0' }));
  git.write('apps/sticky.yaml', dsYaml({ name: 'sticky', namespace: ns, selectorLabel: 'sticky-v2' }));
  git.write('apps/greedy.yaml', dsYaml({ name: 'greedy', namespace: ns, maxUnavailable: '150%' }));
  git.write('apps/README.md', 'not a manifest\n');
  git.commit('bump good, and a pile of mistakes');
  report = await reconcile(stackDeps(config));
});

afterAll(async () => {
  await deleteNamespace(core, ns);
  git.cleanup();
});

function problem(file: string) {
  return report.problems.find((p) => p.file === file);
}

function entry(name: string) {
  return report.daemonSets.find((d) => d.key === `${ns}/${name}`);
}

describe('a commit with bad manifests', () => {
  it('still applies the valid DaemonSet that changed in the same commit, and reports the pass as failed', async () => {
    expect(report.result).toBe('failed');
    expect(entry('good')).toMatchObject({ action: 'update', applied: true, revision: 2 });
    const ds = await apps.readNamespacedDaemonSet({ name: 'good', namespace: ns });
    expect(ds.spec!.template.spec!.containers[0].image).toBe('registry.local/good:2.0');
  });

  it('reports a YAML syntax error with its file, document and line', () => {
    expect(problem('apps/broken.yaml')).toMatchObject({ code: 'yaml-syntax', document: 1, severity: 'error' });
    expect(problem('apps/broken.yaml')!.message).toMatch(/YAML syntax error at line \d+/);
  });

  it('refuses an alias bomb without expanding it', () => {
    expect(problem('apps/bomb.yaml')).toMatchObject({ code: 'alias-limit', document: 1 });
    expect(problem('apps/bomb.yaml')!.message).toMatch(/alias bomb/);
  });

  it('refuses a file over MAX_MANIFEST_BYTES and says how to fix it', () => {
    expect(problem('apps/huge.yaml')).toMatchObject({ code: 'too-large' });
    expect(problem('apps/huge.yaml')!.message).toMatch(/over the 16384-byte limit \(MAX_MANIFEST_BYTES\): split it/);
  });

  it('never applies kinds ALLOWED_KINDS does not allow: a ClusterRoleBinding and a Deployment are reported as skipped, naming the setting', async () => {
    expect(problem('apps/rbac.yaml')).toMatchObject({ code: 'kind-not-allowed', severity: 'skipped' });
    expect(problem('apps/rbac.yaml')!.message).toMatch(/ClusterRoleBinding .* is not applied: ALLOWED_KINDS \(.*\) does not allow it; add rbac.authorization.k8s.io\/ClusterRoleBinding to ALLOWED_KINDS/);
    expect(problem('apps/deployment.yaml')).toMatchObject({ code: 'kind-not-allowed', severity: 'skipped' });
    // A ConfigMap is among the default kinds: document 1 of the same file is applied beside the invalid DaemonSet of document 2.
    expect(report.objects?.find((o) => o.source.file === 'apps/multi.yaml')).toMatchObject({ id: `ConfigMap ${ns}/cfg`, action: 'create', applied: true });
    await expect(rbac.readClusterRoleBinding({ name: bindingName })).rejects.toMatchObject({ code: 404 });
    await expect(apps.readNamespacedDeployment({ name: 'web', namespace: ns })).rejects.toMatchObject({ code: 404 });
  });

  it('asks for apps/v1 when a manifest uses extensions/v1beta1', () => {
    expect(entry('old')).toMatchObject({ action: 'invalid', applied: false });
    expect(entry('old')!.message).toBe('apps/old.yaml (document 1): apiVersion extensions/v1beta1 is not served for DaemonSets by current Kubernetes: use apiVersion: apps/v1 (it also requires spec.selector)');
  });

  it('names both sides when the selector does not match the template labels (document 2 of a file)', () => {
    expect(entry('fluentd')).toMatchObject({ action: 'invalid' });
    expect(entry('fluentd')!.message).toBe('apps/multi.yaml (document 2): spec.selector does not match spec.template.metadata.labels (app=fluentd vs name=fluentd)');
  });

  it('touches nothing outside ALLOWED_NAMESPACES', async () => {
    expect(entry('intruder')).toBeUndefined();
    const msg = report.daemonSets.find((d) => d.key === 'kube-system/intruder')!.message;
    expect(msg).toMatch(/^apps\/elsewhere.yaml \(document 1\): namespace kube-system is not in ALLOWED_NAMESPACES/);
    await expect(apps.readNamespacedDaemonSet({ name: 'intruder', namespace: 'kube-system' })).rejects.toMatchObject({ code: 404 });
  });

  it('applies neither copy of a DaemonSet defined twice', async () => {
    expect(entry('twin')).toMatchObject({ action: 'invalid' });
    expect(entry('twin')!.message).toMatch(/defined more than once \(apps\/nested\/twin-b.yml \(document 1\) and apps\/twin-a.yaml \(document 1\)|defined more than once \(apps\/twin-a.yaml \(document 1\) and apps\/nested\/twin-b.yml \(document 1\)/);
    await expect(apps.readNamespacedDaemonSet({ name: 'twin', namespace: ns })).rejects.toMatchObject({ code: 404 });
  });

  it('explains that spec.selector is immutable and leaves the live DaemonSet as it is', async () => {
    expect(entry('sticky')).toMatchObject({ action: 'invalid', applied: false });
    expect(entry('sticky')!.message).toMatch(/apps\/sticky.yaml \(document 1\): spec.selector changed .* but it is immutable: to change it, delete the DaemonSet/);
    const live = await apps.readNamespacedDaemonSet({ name: 'sticky', namespace: ns });
    expect(live.spec!.selector.matchLabels).toEqual({ app: 'sticky' });
  });

  it('reports what the API server dry run rejects, such as maxUnavailable: 150%', async () => {
    expect(entry('greedy')).toMatchObject({ action: 'invalid', applied: false });
    expect(entry('greedy')!.message).toMatch(/^apps\/greedy.yaml \(document 1\): the API server rejected DaemonSet .*\/greedy \(dry run\): .*maxUnavailable/);
    await expect(apps.readNamespacedDaemonSet({ name: 'greedy', namespace: ns })).rejects.toMatchObject({ code: 404 });
  });

  it('records no revision for anything it did not apply', async () => {
    const deps = stackDeps(config);
    expect(await deps.store.listRevisionNumbers(ns, 'good')).toEqual([1, 2]);
    expect(await deps.store.listRevisionNumbers(ns, 'sticky')).toEqual([1]);
    for (const name of ['old', 'fluentd', 'twin', 'greedy', 'huge']) expect(await deps.store.listRevisionNumbers(ns, name)).toEqual([]);
  });
});
