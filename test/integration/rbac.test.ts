/**
 * The RBAC `dsgitops rbac` prints, applied to the real API server for an identity of its own
 * (a ServiceAccount token; the stack's reconciler identity is left as it is): with it a pass
 * over the allowed namespace works as usual, and a DaemonSet in a namespace outside the list
 * is refused by the API server itself, even when the client does not check the policy.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, ListObjectVersionsCommand, S3Client } from '@aws-sdk/client-s3';
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { KubernetesCluster } from '../../lib/cluster/client';
import { PermissionDeniedError } from '../../lib/errors';
import { adminClients, createNamespace, deleteNamespace, stackEnv, uniqueName } from '../support/cluster';
import { TestRepo } from '../support/git';
import { dsObject, dsYaml } from '../support/manifests';
import { runCliProcess, stackConfigEnv } from '../support/reconciler';

const env = stackEnv();
const { kc, core } = adminClients();
const authz = kc.makeApiClient(k8s.AuthorizationV1Api);
const serviceAccount = 'dsgitops-rbac-test';
const objectName = uniqueName('dsgitops-rbac-test');
let allowed: string;
let other: string;
let user: string;
let rbacYaml: string;
let kubeconfig: string;
let dir: string;
let repo: TestRepo;
let settings: Record<string, string>;

function kubectl(args: string[], input?: string): string {
  return execFileSync(env.KUBECTL, [`--kubeconfig=${env.KUBECONFIG}`, ...args], { input, encoding: 'utf8' });
}

beforeAll(async () => {
  allowed = await createNamespace(core, 'rbac-in');
  other = await createNamespace(core, 'rbac-out');
  dir = mkdtempSync(join(tmpdir(), 'dsgitops-rbac-'));
  repo = new TestRepo();
  user = `system:serviceaccount:${allowed}:${serviceAccount}`;
  await core.createNamespacedServiceAccount({ namespace: allowed, body: { metadata: { name: serviceAccount } } });
  const token = (await core.createNamespacedServiceAccountToken({ namespace: allowed, name: serviceAccount, body: { spec: { audiences: [], expirationSeconds: 600 } } })).status!.token;
  const cluster = kc.getCurrentCluster()!;
  kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: { server: cluster.server, 'certificate-authority-data': cluster.caData ?? readFileSync(cluster.caFile!).toString('base64') } }],
    users: [{ name: serviceAccount, user: { token } }],
    contexts: [{ name: 'narrowed', context: { cluster: 'local', user: serviceAccount } }],
    'current-context': 'narrowed',
  }), { mode: 0o600 });
  settings = stackConfigEnv({ GIT_URL: repo.url, KUBECONFIG: kubeconfig, ALLOWED_NAMESPACES: allowed });

  const printed = await runCliProcess(['rbac', '--user', user, '--name', objectName], { ALLOWED_NAMESPACES: allowed });
  expect(printed.code).toBe(0);
  rbacYaml = printed.stdout;
  kubectl(['apply', '-f', '-'], rbacYaml);
}, 120_000);

afterAll(async () => {
  if (rbacYaml) kubectl(['delete', '--ignore-not-found', '-f', '-'], rbacYaml);
  await deleteNamespace(core, other);
  await deleteNamespace(core, allowed);
  repo?.cleanup();
  rmSync(dir, { recursive: true, force: true });
  // The run's S3 state, every version of it.
  const s3 = new S3Client({ endpoint: env.S3_ENDPOINT, region: env.AWS_REGION, forcePathStyle: true, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } });
  const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: env.S3_BUCKET, Prefix: `${settings.S3_PREFIX}/${settings.CLUSTER_NAME}/` }));
  for (const v of [...(listed.Versions ?? []), ...(listed.DeleteMarkers ?? [])]) {
    await s3.send(new DeleteObjectCommand({ Bucket: env.S3_BUCKET, Key: v.Key, VersionId: v.VersionId }));
  }
}, 120_000);

async function may(verb: string, resource: string, group: string, namespace?: string, as = user): Promise<boolean> {
  const review = await authz.createSubjectAccessReview({ body: { spec: { user: as, resourceAttributes: { verb, resource, group, namespace } } } });
  return review.status!.allowed;
}

describe('dsgitops rbac, unstated', () => {
  it('prints nothing without ALLOWED_NAMESPACES or --namespaces: every namespace is not a default', async () => {
    const run = await runCliProcess(['rbac'], {});
    expect(run.code).not.toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain("ALLOWED_NAMESPACES (or --namespaces) is required: the namespaces the reconciler may write, comma-separated, or '*' for every namespace");
    const everywhere = await runCliProcess(['rbac', '--namespaces', '*'], {});
    expect(everywhere.code).toBe(0);
    expect(everywhere.stdout).toContain('writes in every namespace (ALLOWED_NAMESPACES=*)');
  }, 120_000);
});

describe('dsgitops rbac, applied', () => {
  it('lets the API server allow writes only in the listed namespace, and reads everywhere', async () => {
    expect(await may('patch', 'daemonsets', 'apps', allowed)).toBe(true);
    expect(await may('delete', 'pods', '', allowed)).toBe(true);
    expect(await may('create', 'events', '', allowed)).toBe(true);
    expect(await may('patch', 'daemonsets', 'apps', other)).toBe(false);
    expect(await may('delete', 'pods', '', other)).toBe(false);
    expect(await may('create', 'events', '', other)).toBe(false);
    expect(await may('list', 'daemonsets', 'apps')).toBe(true);
    expect(await may('watch', 'pods', '')).toBe(true);
    expect(await may('list', 'nodes', '')).toBe(true);
    expect(await may('delete', 'nodes', '')).toBe(false);
  });

  it('lets the reader (the status function) read everywhere and write nowhere', async () => {
    const reader = `${user}-reader`;
    expect(await may('list', 'daemonsets', 'apps', undefined, reader)).toBe(true);
    expect(await may('watch', 'daemonsets', 'apps', allowed, reader)).toBe(true);
    expect(await may('patch', 'daemonsets', 'apps', allowed, reader)).toBe(false);
    expect(await may('delete', 'pods', '', allowed, reader)).toBe(false);
  });

  it('is enough for a pass in the allowed namespace, rollout watched to the end', async () => {
    repo.write('ds.yaml', dsYaml({ name: 'narrowed', namespace: allowed })).commit('one DaemonSet');

    const run = await runCliProcess(['reconcile', '--json', '--wait-seconds', '120'], settings);

    expect(run.stderr).not.toMatch(/forbidden|permission denied/i);
    const report = JSON.parse(run.stdout) as { result: string; daemonSets: { action: string; applied?: boolean; rollout?: { phase: string } }[] };
    expect(report.result).toBe('succeeded');
    expect(report.daemonSets).toEqual([expect.objectContaining({ action: 'create', applied: true, rollout: expect.objectContaining({ phase: 'complete' }) })]);
  }, 180_000);

  it('makes the API server refuse a DaemonSet outside the list, even from a client that does not check the policy', async () => {
    const cluster = KubernetesCluster.fromKubeconfig(kubeconfig);
    const manifest = dsObject({ name: 'outside', namespace: other });

    await expect(cluster.dryRunApply(manifest)).rejects.toBeInstanceOf(PermissionDeniedError);
    await expect(cluster.apply(manifest)).rejects.toThrow(`User "${user}" cannot patch daemonsets in API group "apps" in namespace "${other}"`);
    expect(await cluster.getDaemonSet(other, 'outside')).toBeUndefined();
  });
});
