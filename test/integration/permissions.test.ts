/**
 * A permission missing from the reconciler's role is reported as what it is. The identity
 * here has every permission of deploy/rbac.yaml but `patch` on daemonsets: the API server
 * refuses its dry run with 403, and the report says which permission is missing and how to
 * grant it, instead of calling the manifest invalid.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { reconcile } from '../../lib/reconcile';
import type { ReconcileReport } from '../../lib/report';
import { repoRoot } from '../../stack/paths';
import { adminClients, uniqueName } from '../support/cluster';
import { dsYaml } from '../support/manifests';
import { stackConfig, stackDeps } from '../support/reconciler';
import { cleanupScenarios, onCleanup, Scenario, scenario } from '../support/scenario';

jest.setTimeout(180_000);

const { kc, core, apps } = adminClients();
const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
const serviceAccount = 'reconciler-without-patch';
let s: Scenario;
let report: ReconcileReport;

/** deploy/rbac.yaml's ClusterRole rules, less one verb on one resource. */
function rbacRulesWithout(verb: string, group: string, resource: string): k8s.V1PolicyRule[] {
  const docs = parseAllDocuments(readFileSync(join(repoRoot, 'deploy', 'rbac.yaml'), 'utf8')).map((d) => d.toJSON() as { kind: string; rules?: k8s.V1PolicyRule[] });
  const rules = docs.find((d) => d.kind === 'ClusterRole')!.rules!;
  const target = rules.find((r) => r.apiGroups?.includes(group) && r.resources?.includes(resource));
  // Without this the test would prove nothing: the role must have granted the verb.
  expect(target?.verbs).toContain(verb);
  return rules.map((r) => (r === target ? { ...r, verbs: r.verbs.filter((v) => v !== verb) } : r));
}

/** A kubeconfig for a token, with the server and CA of the stack's admin kubeconfig. */
function tokenKubeconfig(token: string, user: string): string {
  const cluster = kc.getCurrentCluster()!;
  const ca = cluster.caData ?? readFileSync(cluster.caFile!).toString('base64');
  const dir = mkdtempSync(join(tmpdir(), 'dsgitops-kubeconfig-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: { server: cluster.server, 'certificate-authority-data': ca } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: `${user}@local`, context: { cluster: 'local', user } }],
    'current-context': `${user}@local`,
  }), { mode: 0o600 });
  return path;
}

/** A ServiceAccount in `ns` bound to `rules` cluster-wide (the role lists DaemonSets in all namespaces); returns a kubeconfig for it. */
async function identityWith(ns: string, rules: k8s.V1PolicyRule[]): Promise<string> {
  const roleName = uniqueName('dsgitops-test-no-patch');
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: serviceAccount } } });
  await rbac.createClusterRole({ body: { metadata: { name: roleName }, rules } });
  onCleanup(() => rbac.deleteClusterRole({ name: roleName }).then(() => undefined, () => undefined));
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: roleName },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
      subjects: [{ kind: 'ServiceAccount', name: serviceAccount, namespace: ns }],
    },
  });
  onCleanup(() => rbac.deleteClusterRoleBinding({ name: roleName }).then(() => undefined, () => undefined));
  const request = await core.createNamespacedServiceAccountToken({ name: serviceAccount, namespace: ns, body: { spec: { audiences: [], expirationSeconds: 600 } } });
  const token = request.status?.token;
  if (!token) throw new Error(`the API server issued no token for service account ${ns}/${serviceAccount}`);
  return tokenKubeconfig(token, serviceAccount);
}

beforeAll(async () => {
  s = await scenario('perm', { GIT_PATH: 'apps' });
  s.git.write('apps/agent.yaml', dsYaml({ name: 'agent', namespace: s.ns, image: 'registry.local/agent:1.0' }));
  s.git.commit('agent 1.0');
  // The full reconciler identity creates it, so there is a live DaemonSet and a recorded state.
  const first = await reconcile(s.deps(), { wait: false });
  expect(first.daemonSets.find((d) => d.key === `${s.ns}/agent`)).toMatchObject({ action: 'create', applied: true, revision: 1 });

  const kubeconfig = await identityWith(s.ns, rbacRulesWithout('patch', 'apps', 'daemonsets'));
  s.git.write('apps/agent.yaml', dsYaml({ name: 'agent', namespace: s.ns, image: 'registry.local/agent:2.0' }));
  s.git.commit('agent 2.0');
  // The same cluster name as the first pass (so the same recorded state), another identity.
  const restricted = stackConfig({ GIT_URL: s.git.url, GIT_PATH: 'apps', ALLOWED_NAMESPACES: s.ns, CLUSTER_NAME: s.config.cluster.name, KUBECONFIG: kubeconfig });
  report = await reconcile(stackDeps(restricted), { wait: false });
});

afterAll(cleanupScenarios);

describe('an identity without patch on daemonsets', () => {
  it('fails that DaemonSet with PermissionDenied, naming the verb, the resource and the fix', () => {
    const entry = report.daemonSets.find((d) => d.key === `${s.ns}/agent`);

    expect(report.result).toBe('failed');
    expect(entry).toMatchObject({ action: 'failed', applied: false, revision: 1, error: { reason: 'PermissionDenied' } });
    expect(entry!.error!.message).toBe(
      `apply DaemonSet ${s.ns}/agent (dry run): permission denied: User "system:serviceaccount:${s.ns}:${serviceAccount}" cannot patch daemonsets in API group "apps" in namespace "${s.ns}". ` +
        'Fix: grant it in the Role or ClusterRole bound to this identity (a rule with apiGroups: ["apps"], resources: ["daemonsets"], verbs: ["patch"]); deploy/rbac.yaml lists every permission daemonset-gitops needs',
    );
    expect(report.summary).toMatchObject({ total: 1, failed: 1 });
  });

  it('does not call the manifest invalid: no InvalidManifest Event', async () => {
    const events = await core.listNamespacedEvent({ namespace: s.ns });
    const onAgent = events.items.filter((e) => e.involvedObject.name === 'agent');

    expect(onAgent.filter((e) => e.reason === 'InvalidManifest')).toEqual([]);
    expect(report.daemonSets[0].problems).toBeUndefined();
  });

  it('leaves the running DaemonSet as it was', async () => {
    const live = await apps.readNamespacedDaemonSet({ name: 'agent', namespace: s.ns });

    expect(live.spec!.template.spec!.containers[0].image).toBe('registry.local/agent:1.0');
  });
});
