/**
 * A fleet cluster's credentials: the role it assumes and the session policy that narrows it to
 * its own prefix. Whether a server enforces the policy is shown against MinIO
 * (test/integration/fleet-credentials.test.ts); here, what is asked for.
 */
import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { assumedRoleCredentials, clusterRoleArn, clusterSessionPolicy } from '../../../lib/fleet/credentials';
import { loadConfig } from '../../../lib/config';

const env = { GIT_URL: 'https://git.example.com/a.git', S3_BUCKET: 'b', CLUSTER_NAME: 'fleet', ALLOWED_NAMESPACES: 'logging' };

describe('clusterRoleArn', () => {
  it('puts the cluster\'s name into the pattern, and refuses a pattern without {cluster}', () => {
    expect(clusterRoleArn('arn:aws:iam::123456789012:role/dsgitops-fleet-eu-dev-{cluster}', 'prod-a')).toBe('arn:aws:iam::123456789012:role/dsgitops-fleet-eu-dev-prod-a');
    expect(() => clusterRoleArn('arn:aws:iam::123456789012:role/one-for-all', 'prod-a')).toThrow(/must contain \{cluster\}/);
  });

  it('is checked when the configuration is loaded', () => {
    expect(loadConfig({ ...env, FLEET_CLUSTER_ROLE_ARN: 'arn:aws:iam::123456789012:role/p-{cluster}' }).fleetClusterRoleArn).toBe('arn:aws:iam::123456789012:role/p-{cluster}');
    expect(() => loadConfig({ ...env, FLEET_CLUSTER_ROLE_ARN: 'arn:aws:iam::123456789012:role/shared' })).toThrow(/FLEET_CLUSTER_ROLE_ARN=.* must be an IAM role ARN containing \{cluster\}/);
  });
});

describe('clusterSessionPolicy', () => {
  it('allows the cluster\'s own objects and listing under its own prefix only, under 2,048 characters', () => {
    const policy = clusterSessionPolicy({ bucket: 'state', prefix: 'daemonset-gitops', cluster: 'prod-a' });
    expect(policy).toEqual({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: ['arn:aws:s3:::state/daemonset-gitops/prod-a/*'] },
        { Effect: 'Allow', Action: ['s3:ListBucket'], Resource: ['arn:aws:s3:::state'], Condition: { StringLike: { 's3:prefix': ['daemonset-gitops/prod-a/*'] } } },
      ],
    });
    expect(JSON.stringify(policy).length).toBeLessThan(2048);
  });
});

describe('assumedRoleCredentials', () => {
  it('asks STS once with the role, session name and policy, and again only when the credentials near their expiry', async () => {
    const sent: AssumeRoleCommand['input'][] = [];
    let expiresIn = 3600_000;
    const sts = {
      send: async (command: AssumeRoleCommand) => {
        sent.push(command.input);
        return { Credentials: { AccessKeyId: `ASIA${sent.length}`, SecretAccessKey: 's', SessionToken: 't', Expiration: new Date(Date.now() + expiresIn) } };
      },
    } as never;
    const provider = assumedRoleCredentials({ roleArn: 'arn:aws:iam::123456789012:role/r-prod-a', sessionName: 'dsgitops-pass-prod-a', policy: { Version: '2012-10-17', Statement: [] }, region: 'eu-west-1' }, sts);
    const [a, b] = await Promise.all([provider(), provider()]);
    expect(a).toEqual({ accessKeyId: 'ASIA1', secretAccessKey: 's', sessionToken: 't' });
    expect(b).toEqual(a);
    expect(sent).toEqual([{ RoleArn: 'arn:aws:iam::123456789012:role/r-prod-a', RoleSessionName: 'dsgitops-pass-prod-a', DurationSeconds: 3600, Policy: '{"Version":"2012-10-17","Statement":[]}' }]);

    // Credentials that expire within five minutes are renewed before use.
    const nearly = assumedRoleCredentials({ roleArn: 'arn:aws:iam::123456789012:role/r', sessionName: 's', region: 'eu-west-1' }, sts);
    expiresIn = 60_000;
    expect((await nearly()).accessKeyId).toBe('ASIA2');
    expect((await nearly()).accessKeyId).toBe('ASIA3');
  });

  it('says what to fix when the role may not be assumed', async () => {
    const sts = { send: async () => { throw Object.assign(new Error('User is not authorized to perform: sts:AssumeRole'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }); } } as never;
    await expect(assumedRoleCredentials({ roleArn: 'arn:aws:iam::123456789012:role/r', sessionName: 's', region: 'eu-west-1' }, sts)()).rejects.toMatchObject({
      reason: 'AssumeRoleFailed',
      retryable: false,
      message: expect.stringMatching(/cannot assume arn:aws:iam::123456789012:role\/r: access denied .*trust policy must name this function's role/),
    });
  });
});
