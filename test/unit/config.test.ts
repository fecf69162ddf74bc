import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, namespaceAllowed } from '../../lib/config';
import { ConfigError } from '../../lib/errors';

const required = {
  GIT_URL: 'https://git.example.com/platform/node-agents.git',
  S3_BUCKET: 'dsgitops-state',
  CLUSTER_NAME: 'prod-eu-1',
  ALLOWED_NAMESPACES: 'logging',
};

/** The error loadConfig throws for this environment, or a failure when it throws none. */
function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected loadConfig to refuse the configuration');
}

describe('loadConfig', () => {
  it('fills in the documented defaults', () => {
    const config = loadConfig(required);

    expect(config).toEqual({
      git: { url: required.GIT_URL, ref: 'main', path: '.', token: undefined, cacheDir: join(tmpdir(), 'daemonset-gitops', 'git'), timeoutSeconds: 120 },
      s3: { bucket: 'dsgitops-state', prefix: 'daemonset-gitops', endpoint: undefined, region: 'us-east-1', timeoutSeconds: 20 },
      cluster: { name: 'prod-eu-1', kubeconfig: undefined, requestTimeoutSeconds: 30 },
      policy: { allowedNamespaces: ['logging'], selfHeal: true, prune: false, progressDeadlineSeconds: 600, autoRollback: false, allowedKinds: [{ kind: 'DaemonSet' }, { kind: 'ConfigMap' }, { kind: 'Secret' }, { kind: 'ServiceAccount' }, { kind: 'Role' }, { kind: 'RoleBinding' }, { kind: 'Service' }], defaultNamespace: 'default', configRevisionsKept: 10 },
      leaseSeconds: 900,
      maxManifestBytes: 1048576,
      render: { allowRemote: false, timeoutSeconds: 60, maxOutputBytes: 16777216, kustomize: undefined, helm: undefined },
    });
  });

  it('reads every variable it is given', () => {
    const config = loadConfig({
      ...required,
      GIT_REF: 'release-1.2',
      GIT_PATH: 'clusters/prod',
      GIT_TOKEN: 'ghp_secret',
      GIT_CACHE_DIR: '/var/cache/git',
      S3_PREFIX: 'gitops',
      S3_ENDPOINT: 'http://127.0.0.1:9000',
      AWS_REGION: 'eu-west-1',
      KUBECONFIG: '/etc/kube/config',
      ALLOWED_NAMESPACES: 'kube-system,logging',
      ALLOWED_KINDS: 'DaemonSet, apps/Deployment,core/Namespace,rbac.authorization.k8s.io/ClusterRole',
      DEFAULT_NAMESPACE: 'logging',
      SELF_HEAL: 'false',
      PRUNE: 'true',
      PROGRESS_DEADLINE_SECONDS: '300',
      AUTO_ROLLBACK: 'true',
      CONFIG_REVISIONS_KEPT: '3',
      LEASE_SECONDS: '60',
      MAX_MANIFEST_BYTES: '2048',
      S3_TIMEOUT_SECONDS: '15',
      GIT_TIMEOUT_SECONDS: '45',
      KUBE_TIMEOUT_SECONDS: '10',
      DSGITOPS_FAULT: 'kill-after-apply',
    });

    expect(config).toEqual({
      git: { url: required.GIT_URL, ref: 'release-1.2', path: 'clusters/prod', token: { setting: 'GIT_TOKEN', value: 'ghp_secret' }, cacheDir: '/var/cache/git', timeoutSeconds: 45 },
      s3: { bucket: 'dsgitops-state', prefix: 'gitops', endpoint: 'http://127.0.0.1:9000', region: 'eu-west-1', timeoutSeconds: 15 },
      cluster: { name: 'prod-eu-1', kubeconfig: '/etc/kube/config', requestTimeoutSeconds: 10 },
      policy: {
        allowedNamespaces: ['kube-system', 'logging'], selfHeal: false, prune: true, progressDeadlineSeconds: 300, autoRollback: true,
        allowedKinds: [{ kind: 'DaemonSet' }, { group: 'apps', kind: 'Deployment' }, { group: '', kind: 'Namespace' }, { group: 'rbac.authorization.k8s.io', kind: 'ClusterRole' }],
        defaultNamespace: 'logging',
        configRevisionsKept: 3,
      },
      leaseSeconds: 60,
      maxManifestBytes: 2048,
      fault: 'kill-after-apply',
      render: { allowRemote: false, timeoutSeconds: 60, maxOutputBytes: 16777216, kustomize: undefined, helm: undefined },
    });
  });

  it('treats blank values as unset', () => {
    const config = loadConfig({ ...required, GIT_REF: '  ', SELF_HEAL: '', GIT_TOKEN: ' ' });

    expect(config.git.ref).toBe('main');
    expect(config.git.token).toBeUndefined();
    expect(config.policy.selfHeal).toBe(true);
  });

  it('lists every missing required variable in one error', () => {
    const err = configError({ GIT_URL: ' ' });

    expect(err.reason).toBe('ConfigInvalid');
    expect(err.message).toMatch(/^configuration is invalid:\n/);
    expect(err.message).toContain('  - GIT_URL is required: the Git repository holding the DaemonSet manifests');
    expect(err.message).toContain('  - CLUSTER_NAME is required: a short name for this cluster');
    expect(err.message).toContain('  - S3_BUCKET is required: the bucket that stores revisions, state and the lease');
    expect(err.message).toContain('  - ALLOWED_NAMESPACES is required: the namespaces this reconciler may write');
  });

  it('has no default for ALLOWED_NAMESPACES: every namespace (*) must be stated', () => {
    const { ALLOWED_NAMESPACES: _, ...unstated } = required;
    const err = configError(unstated);

    expect(err.message).toBe('configuration is invalid:\n  - ALLOWED_NAMESPACES is required: the namespaces this reconciler may write, comma-separated (for example logging,monitoring), or * for every namespace, kube-system included: whoever can push to GIT_REF can then run privileged pods on every node (see SECURITY.md)');
    expect(loadConfig({ ...unstated, ALLOWED_NAMESPACES: '*' }).policy.allowedNamespaces).toBe('*');
  });

  it('reports every invalid value at once', () => {
    const err = configError({ ...required, PRUNE: 'sometimes', LEASE_SECONDS: 'soon', CLUSTER_NAME: 'Prod' });

    expect(err.message.split('\n').filter((l) => l.startsWith('  - '))).toHaveLength(3);
  });

  it.each([
    'https://alice:s3cret@git.example.com/platform/node-agents.git',
    'http://x-access-token:ghp_abc@github.com/org/repo.git',
  ])('refuses credentials in GIT_URL without repeating them (%s)', (url) => {
    const err = configError({ ...required, GIT_URL: url });

    expect(err.message).toContain('GIT_URL contains credentials: remove them from the URL and put the token in GIT_TOKEN');
    expect(err.message).not.toMatch(/s3cret|ghp_abc/);
  });

  it.each(['file:///srv/git/agents.git', '/srv/git/agents', 'https://git.example.com/a:b/repo.git'])('accepts a GIT_URL without credentials (%s)', (url) => {
    expect(loadConfig({ ...required, GIT_URL: url }).git.url).toBe(url);
  });

  it.each([
    ['true', true], ['1', true], ['yes', true], ['on', true], ['TRUE', true], [' On ', true],
    ['false', false], ['0', false], ['no', false], ['off', false], ['False', false],
  ])('reads the boolean %j as %s', (raw, value) => {
    expect(loadConfig({ ...required, PRUNE: raw }).policy.prune).toBe(value);
  });

  it.each(['SELF_HEAL', 'PRUNE', 'AUTO_ROLLBACK'])('refuses a value of %s that is not a boolean', (name) => {
    const err = configError({ ...required, [name]: 'maybe' });

    expect(err.message).toContain(`${name}=maybe is not a boolean: use true or false`);
  });

  it.each([
    ['PROGRESS_DEADLINE_SECONDS', 'ten', '10 to 86400'],
    ['PROGRESS_DEADLINE_SECONDS', '9', '10 to 86400'],
    ['PROGRESS_DEADLINE_SECONDS', '86401', '10 to 86400'],
    ['PROGRESS_DEADLINE_SECONDS', '60.5', '10 to 86400'],
    ['LEASE_SECONDS', '4', '5 to 86400'],
    ['MAX_MANIFEST_BYTES', '512', '1024 to 67108864'],
  ])('refuses %s=%s and gives the range', (name, raw, range) => {
    const err = configError({ ...required, [name]: raw });

    expect(err.message).toContain(`${name}=${raw} must be a whole number from ${range}`);
  });

  it.each([['10', 10], ['86400', 86400], [' 120 ', 120]])('accepts PROGRESS_DEADLINE_SECONDS=%j', (raw, value) => {
    expect(loadConfig({ ...required, PROGRESS_DEADLINE_SECONDS: raw }).policy.progressDeadlineSeconds).toBe(value);
  });

  it.each(['Prod-EU-1', 'prod_eu_1', '-prod', 'prod.eu'])('refuses CLUSTER_NAME=%s: it becomes part of S3 keys', (name) => {
    const err = configError({ ...required, CLUSTER_NAME: name });

    expect(err.message).toContain(`CLUSTER_NAME=${name} must be lower-case letters, digits and dashes`);
  });

  it.each(['../other-repo', 'clusters/../../etc', 'clusters/..', '/etc/kubernetes'])('refuses GIT_PATH=%s: it must stay inside the repository', (path) => {
    const err = configError({ ...required, GIT_PATH: path });

    expect(err.message).toContain(`GIT_PATH=${path} must be a relative path inside the repository`);
  });

  it.each(['clusters/prod', './manifests', 'a..b'])('accepts GIT_PATH=%s', (path) => {
    expect(loadConfig({ ...required, GIT_PATH: path }).git.path).toBe(path);
  });

  it.each<[string, string[] | '*']>([
    ['*', '*'],
    ['kube-system', ['kube-system']],
    [' kube-system , logging ,monitoring', ['kube-system', 'logging', 'monitoring']],
    ['kube-system,,logging,', ['kube-system', 'logging']],
  ])('reads ALLOWED_NAMESPACES=%j', (raw, allowed) => {
    expect(loadConfig({ ...required, ALLOWED_NAMESPACES: raw }).policy.allowedNamespaces).toEqual(allowed);
  });

  it('refuses ALLOWED_NAMESPACES entries that are not namespace names', () => {
    const err = configError({ ...required, ALLOWED_NAMESPACES: 'kube-system,Logging,*' });

    expect(err.message).toContain('ALLOWED_NAMESPACES contains "Logging", which is not a namespace name');
    expect(err.message).toContain('ALLOWED_NAMESPACES contains "*", which is not a namespace name');
    expect(err.message).not.toContain('"kube-system"');
  });

  it('refuses an ALLOWED_NAMESPACES of only commas', () => {
    const err = configError({ ...required, ALLOWED_NAMESPACES: ' , ,' });

    expect(err.message).toContain('ALLOWED_NAMESPACES is empty: list namespaces separated by commas, or * for any');
  });

  it.each([['/gitops/', 'gitops'], ['team/gitops', 'team/gitops'], ['/', '']])('trims slashes from S3_PREFIX=%j', (raw, prefix) => {
    expect(loadConfig({ ...required, S3_PREFIX: raw }).s3.prefix).toBe(prefix);
  });

  it('refuses an S3_ENDPOINT that is not a URL', () => {
    const err = configError({ ...required, S3_ENDPOINT: '127.0.0.1:9000' });

    expect(err.message).toContain('S3_ENDPOINT=127.0.0.1:9000 must be a URL such as http://127.0.0.1:9000');
  });

  it('refuses an unknown DSGITOPS_FAULT', () => {
    const err = configError({ ...required, DSGITOPS_FAULT: 'kill-before-apply' });

    expect(err.message).toContain('DSGITOPS_FAULT=kill-before-apply is not a known fault');
  });
});

describe('namespaceAllowed', () => {
  it.each<[string[] | '*', string, boolean]>([
    ['*', 'anything', true],
    [['kube-system', 'logging'], 'logging', true],
    [['kube-system', 'logging'], 'default', false],
    [[], 'default', false],
  ])('with ALLOWED_NAMESPACES %j decides %s: %s', (allowedNamespaces, namespace, allowed) => {
    expect(namespaceAllowed({ allowedNamespaces }, namespace)).toBe(allowed);
  });
});

describe('loadConfig: EKS sign-in', () => {
  const ca = Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n').toString('base64');

  it('signs in to the named EKS cluster in AWS_REGION, asking EKS for its endpoint', () => {
    const config = loadConfig({ ...required, EKS_CLUSTER_NAME: 'prod_eu-1', AWS_REGION: 'eu-west-1' });

    expect(config.cluster.eks).toEqual({ clusterName: 'prod_eu-1', region: 'eu-west-1' });
  });

  it('takes the endpoint and CA from the environment when both are given', () => {
    const config = loadConfig({ ...required, EKS_CLUSTER_NAME: 'prod', EKS_CLUSTER_ENDPOINT: 'https://ABC.gr7.eu-west-1.eks.amazonaws.com/', EKS_CLUSTER_CA: ca });

    expect(config.cluster.eks).toMatchObject({ endpoint: 'https://ABC.gr7.eu-west-1.eks.amazonaws.com', caData: ca });
  });

  it.each([
    [{ EKS_CLUSTER_NAME: 'prod', KUBECONFIG: '/k' }, 'KUBECONFIG and EKS_CLUSTER_NAME are both set'],
    [{ EKS_CLUSTER_NAME: 'prod', EKS_CLUSTER_ENDPOINT: 'https://x.eks.amazonaws.com' }, 'EKS_CLUSTER_ENDPOINT and EKS_CLUSTER_CA go together'],
    [{ EKS_CLUSTER_NAME: 'prod', EKS_CLUSTER_ENDPOINT: 'http://x', EKS_CLUSTER_CA: ca }, 'must be the cluster\'s https:// endpoint'],
    [{ EKS_CLUSTER_NAME: 'prod', EKS_CLUSTER_ENDPOINT: 'https://x', EKS_CLUSTER_CA: 'bm90IGEgY2VydA==' }, 'EKS_CLUSTER_CA must be the base64-encoded PEM'],
    [{ EKS_CLUSTER_NAME: '-bad name' }, 'EKS_CLUSTER_NAME=-bad name is not an EKS cluster name'],
    [{ EKS_CLUSTER_CA: ca }, 'used only with EKS_CLUSTER_NAME'],
  ])('refuses %j, naming the setting', (env, message) => {
    expect(configError({ ...required, ...env }).message).toContain(message);
  });
});

describe('loadConfig: secrets kept in AWS', () => {
  it.each([
    [{ GIT_TOKEN_PARAMETER: '/daemonset-gitops/git-token' }, { setting: 'GIT_TOKEN_PARAMETER', parameter: '/daemonset-gitops/git-token' }],
    [{ GIT_TOKEN_PARAMETER: 'arn:aws:ssm:eu-west-1:123456789012:parameter/dsg/token' }, { setting: 'GIT_TOKEN_PARAMETER', parameter: 'arn:aws:ssm:eu-west-1:123456789012:parameter/dsg/token' }],
    [{ GIT_TOKEN_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:dsg/git-AbCdEf' }, { setting: 'GIT_TOKEN_SECRET_ARN', secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:dsg/git-AbCdEf' }],
  ])('reads where the Git token is kept from %j', (env, source) => {
    expect(loadConfig({ ...required, ...env }).git.token).toEqual(source);
  });

  it.each([
    [{ GIT_TOKEN: 'x', GIT_TOKEN_PARAMETER: '/p' }, 'GIT_TOKEN and GIT_TOKEN_PARAMETER are all set: keep one of them'],
    [{ GIT_TOKEN_PARAMETER: 'has spaces' }, 'GIT_TOKEN_PARAMETER=has spaces is not an SSM parameter name'],
    [{ GIT_TOKEN_SECRET_ARN: 'my-secret' }, 'GIT_TOKEN_SECRET_ARN=my-secret is not a Secrets Manager secret ARN'],
  ])('refuses %j, naming the settings', (env, message) => {
    expect(configError({ ...required, ...env }).message).toContain(message);
  });
});
