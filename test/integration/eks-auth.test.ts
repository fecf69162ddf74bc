/**
 * The EKS sign-in path of the cluster client against the real API server: a client built by
 * KubernetesCluster.forEks (endpoint, CA and a token source, no kubeconfig file) sends the
 * source's current token with every request, so a token renewed during a long pass is used
 * from the next request on. The local API server cannot check IAM tokens; it checks
 * ServiceAccount tokens, which stand in for the signed ones here, and names the user it
 * authenticated in its answer.
 */
import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { KubernetesCluster } from '../../lib/cluster/client';
import { CredentialsRejectedError, PermissionDeniedError } from '../../lib/errors';
import { adminClients, createNamespace, deleteNamespace } from '../support/cluster';

const { kc, core } = adminClients();
let namespace: string;

async function serviceAccountToken(name: string): Promise<string> {
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  const answer = await core.createNamespacedServiceAccountToken({ namespace, name, body: { spec: { audiences: [], expirationSeconds: 600 } } as k8s.AuthenticationV1TokenRequest });
  const token = answer.status?.token;
  if (!token) throw new Error(`the API server issued no token for service account ${namespace}/${name}`);
  return token;
}

function stackEndpoint(): { endpoint: string; caData: string } {
  const cluster = kc.getCurrentCluster()!;
  const caData = cluster.caData ?? readFileSync(cluster.caFile!).toString('base64');
  return { endpoint: cluster.server, caData };
}

beforeAll(async () => {
  namespace = await createNamespace(core, 'eks-auth');
});

afterAll(async () => {
  await deleteNamespace(core, namespace);
});

describe('KubernetesCluster.forEks', () => {
  it('sends the token source\'s current token with every request', async () => {
    const tokens = { a: await serviceAccountToken('signer-a'), b: await serviceAccountToken('signer-b') };
    const source = { current: tokens.a, asked: 0, async token() { this.asked += 1; return this.current; } };
    const cluster = KubernetesCluster.forEks(stackEndpoint(), source);

    const first = cluster.getDaemonSet(namespace, 'any');
    await expect(first).rejects.toBeInstanceOf(PermissionDeniedError);
    await expect(first).rejects.toThrow(`User "system:serviceaccount:${namespace}:signer-a" cannot get daemonsets`);

    source.current = tokens.b;
    await expect(cluster.getDaemonSet(namespace, 'any')).rejects.toThrow(`User "system:serviceaccount:${namespace}:signer-b" cannot get daemonsets`);
    expect(source.asked).toBeGreaterThanOrEqual(2);
  });

  it('reports a token the API server does not accept as rejected credentials', async () => {
    const cluster = KubernetesCluster.forEks(stackEndpoint(), { token: async () => 'k8s-aws-v1.not-a-token' });

    await expect(cluster.listNodes()).rejects.toBeInstanceOf(CredentialsRejectedError);
  });
});
