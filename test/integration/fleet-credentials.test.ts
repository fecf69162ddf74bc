/**
 * A fleet cluster in another account (the fleet file's `eks.roleArn`) is signed in to as that
 * role: the pass assumes it with STS (moto's, on the local stack) and signs its EKS tokens with
 * the session. moto's STS is the oracle: it says whose session the credentials are.
 */
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { clusterAccess } from '../../lib/fleet/cluster-access';
import { parseFleetFile } from '../../lib/fleet/fleet-file';
import { signEksToken, TOKEN_PREFIX } from '../../lib/cluster/eks-token';
import { stackEnv } from '../support/cluster';
import { stackConfig } from '../support/reconciler';

const emulator = stackEnv().AWS_EMULATOR_ENDPOINT;
const region = 'eu-west-1';

const fleet = parseFleetFile(`
clusters:
  - name: prod-a
    eks: { name: prod-a-eks, region: ${region}, roleArn: "arn:aws:iam::111122223333:role/dsgitops-prod-a" }
  - name: prod-b
    eks: { name: prod-b-eks, region: ${region} }
waves:
  - { name: prod, clusters: [prod-a, prod-b] }
`, 'fleet.yaml');

describe('a fleet cluster reached with eks.roleArn', () => {
  beforeAll(() => {
    if (!emulator) throw new Error('.stack/env names no AWS_EMULATOR_ENDPOINT (moto): bring the stack up again (npm run stack:down && npm run stack:up)');
  });

  const config = () => stackConfig({ GIT_URL: 'https://git.example.com/a.git', ALLOWED_NAMESPACES: 'logging', STS_ENDPOINT: emulator, AWS_REGION: region });

  it('is signed in to as that role: STS says the session is the role assumed, named after the cluster', async () => {
    // The identity that assumes the role: the cluster's own session in a deployment, the stack's keys here.
    const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = stackEnv();
    const access = clusterAccess(config(), fleet.clusters[0], async () => ({ accessKeyId, secretAccessKey }));
    const credentials = access.eks?.credentials;
    expect(access.eks).toMatchObject({ clusterName: 'prod-a-eks', region });
    expect(credentials).toBeDefined();
    const sts = new STSClient({ region, endpoint: emulator, credentials });
    const who = await sts.send(new GetCallerIdentityCommand({}));
    expect(who.Account).toBe('111122223333');
    expect(who.Arn).toBe('arn:aws:sts::111122223333:assumed-role/dsgitops-prod-a/dsgitops-pass-prod-a');

    // The EKS token is signed with that session: its presigned URL carries the session's key and token.
    const session = await credentials!();
    const token = await signEksToken({ clusterName: 'prod-a-eks', region, credentials: credentials!, now: new Date() });
    const url = new URL(Buffer.from(token.token.slice(TOKEN_PREFIX.length), 'base64url').toString('utf8'));
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(new RegExp(`^${session.accessKeyId}/`));
    expect(url.searchParams.get('X-Amz-Security-Token')).toBe(session.sessionToken);
  });

  it('a cluster without roleArn signs in with the identity the pass runs as (the cluster\'s session, or the function\'s)', () => {
    expect(clusterAccess(config(), fleet.clusters[1]).eks).toEqual({ clusterName: 'prod-b-eks', region });
  });
});
