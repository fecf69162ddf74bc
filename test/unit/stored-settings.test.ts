import { loadConfig, withStoredSettings } from '../../lib/config';
import type { SecretSource } from '../../lib/secrets';

const required = { GIT_URL: 'https://git.example.com/a.git', S3_BUCKET: 'b', CLUSTER_NAME: 'prod', ALLOWED_NAMESPACES: 'logging' };
const pem = Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n').toString('base64');

describe('withStoredSettings', () => {
  it('reads the cluster CA and the trusted keys from where they are kept, for loadConfig', async () => {
    const asked: SecretSource[] = [];
    const stored: Record<string, string> = { '/dsg/ca': pem, 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:keys-AbCdEf': 'ssh-ed25519 AAAAC3Nza trusted' };
    const read = async (s: SecretSource) => {
      asked.push(s);
      return stored['parameter' in s ? s.parameter : 'secretArn' in s ? s.secretArn : ''];
    };
    const env = await withStoredSettings(read, {
      ...required, EKS_CLUSTER_NAME: 'prod', EKS_CLUSTER_ENDPOINT: 'https://x.eks.amazonaws.com', EKS_CLUSTER_CA_PARAMETER: '/dsg/ca',
      VERIFY_COMMITS: 'true', TRUSTED_SSH_KEYS_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:keys-AbCdEf',
    });
    const config = loadConfig(env);

    expect(config.cluster.eks?.caData).toBe(pem);
    expect(config.verify?.sshKeys).toBe('ssh-ed25519 AAAAC3Nza trusted');
    expect(asked.map((s) => s.setting)).toEqual(['EKS_CLUSTER_CA_PARAMETER', 'TRUSTED_SSH_KEYS_SECRET_ARN']);
  });

  it('asks for nothing when the values are given, and refuses a value and a place for the same setting', async () => {
    const read = jest.fn(async () => 'never');
    await expect(withStoredSettings(read, { ...required, TRUSTED_SSH_KEYS: 'ssh-ed25519 AAAA k' })).resolves.toMatchObject({ TRUSTED_SSH_KEYS: 'ssh-ed25519 AAAA k' });
    expect(read).not.toHaveBeenCalled();
    await expect(withStoredSettings(read, { ...required, EKS_CLUSTER_CA: pem, EKS_CLUSTER_CA_PARAMETER: '/dsg/ca' }))
      .rejects.toThrow('EKS_CLUSTER_CA and EKS_CLUSTER_CA_PARAMETER are all set');
  });
});
