/**
 * The CloudFormation template `serverless package` writes, for the ways it is deployed: it
 * passes cfn-lint (the pinned PyPI release, in its cached venv), and it grants each function
 * only what it does. A deploy with required settings missing fails before anything is built,
 * naming them. The alarm's metric filter matches the JSON line a failed pass really logs.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensurePythonTool, pythonTools } from '../../stack/python-tools';
import { repoRoot } from '../../stack/paths';

const run = promisify(execFile);

interface Statement { Effect: string; Action: string[] | string; Resource: unknown; Condition?: unknown }
interface Template { Resources: Record<string, { Type: string; Properties: Record<string, any>; DependsOn?: unknown }> }

const base = {
  GIT_URL: 'https://git.example.com/platform/node-agents.git',
  CLUSTER_NAME: 'prod-eu-1',
  AWS_REGION: 'eu-west-1',
  ALLOWED_NAMESPACES: 'logging,monitoring',
  ALLOWED_KINDS: 'DaemonSet,ConfigMap,ServiceAccount',
  VPC_SUBNET_IDS: 'none',
};

async function serverlessPackage(settings: Record<string, string>): Promise<{ code: number | null; output: string; template?: Template; file?: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'dsgitops-template-'));
  const child = spawn(join(repoRoot, 'node_modules', '.bin', 'serverless'), ['package', '--package', dir], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...settings },
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const file = join(dir, 'cloudformation-template-update-stack.json');
  return { code, output, dir, file, template: existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Template) : undefined };
}

async function cfnLint(file: string): Promise<{ code: number; output: string }> {
  const python = ensurePythonTool('cfn-lint');
  try {
    const r = await run(python, [...pythonTools['cfn-lint'].run, file]);
    return { code: 0, output: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, output: e.stdout + e.stderr };
  }
}

/** The template `serverless package` wrote, its folder removed after the file; no template fails with serverless's own output. */
async function packagedTemplate(packaging: ReturnType<typeof serverlessPackage>): Promise<{ t: Template; file: string; dir: string }> {
  const p = await packaging;
  dirs.push(p.dir);
  if (!p.template) throw new Error(`serverless package failed (exit ${p.code}):\n${p.output}`);
  return { t: p.template, file: p.file!, dir: p.dir };
}

/** The describe's test that cfn-lint finds nothing in its template: it prints nothing and exits 0. */
function itPassesCfnLint(file: () => string, title = 'passes cfn-lint'): void {
  it(title, async () => {
    const lint = await cfnLint(file());
    expect(lint.output).toBe('');
    expect(lint.code).toBe(0);
  }, 120_000);
}

function statements(t: Template, role: string): Statement[] {
  return t.Resources[role].Properties.Policies.flatMap((p: { PolicyDocument: { Statement: Statement[] } }) => p.PolicyDocument.Statement);
}

function actions(t: Template, role: string): string[] {
  return statements(t, role).flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])).sort();
}

/** A cluster CA as `aws eks describe-cluster` gives it: a base64 PEM certificate (about 1.5 KB). */
function clusterCa(): string {
  const d = mkdtempSync(join(tmpdir(), 'dsgitops-ca-'));
  dirs.push(d);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(d, 'key.pem'), '-out', join(d, 'ca.pem'), '-subj', '/CN=kubernetes', '-days', '1'], { stdio: 'ignore' });
  return readFileSync(join(d, 'ca.pem')).toString('base64');
}

/** One ASCII-armored OpenPGP public key (RSA 4096 with an RSA 4096 encryption subkey, about 3 KB), as `gpg --armor --export` prints it. */
function armoredKey(): string {
  const home = mkdtempSync(join(tmpdir(), 'dsgitops-gpg-'));
  dirs.push(home);
  const gpg = (args: string[]) => execFileSync('gpg', ['--batch', '--yes', '--passphrase', '', '--pinentry-mode', 'loopback', ...args], { env: { ...process.env, GNUPGHOME: home }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  gpg(['--quick-gen-key', 'Release signing <release@example.com>', 'rsa4096', 'sign', 'never']);
  const fingerprint = gpg(['--list-keys', '--with-colons', 'release@example.com']).split('\n').find((l) => l.startsWith('fpr:'))!.split(':')[9];
  gpg(['--quick-add-key', fingerprint, 'rsa4096', 'encr', 'never']);
  const armored = gpg(['--armor', '--export', 'release@example.com']);
  expect(armored.length).toBeGreaterThan(2800);
  return armored;
}

const writers = ['ReconcileRole', 'RollbackRole', 'UnpinRole', 'PauseRole', 'ResumeRole'];
const dirs: string[] = [];

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * The settings of the deploy example in docs/aws.md (step 6): its `export` line, continuation
 * lines joined, followed by `npx serverless deploy`. The first template is packaged with them.
 */
function documentedDeploySettings(): Record<string, string> {
  const guide = readFileSync(join(repoRoot, 'docs', 'aws.md'), 'utf8');
  const step = guide.slice(guide.indexOf('**6. Deploy.**'));
  const block = /```sh\n([\s\S]*?)```/.exec(step)?.[1];
  if (!block) throw new Error('docs/aws.md: no sh block after "**6. Deploy.**"');
  const lines = block.replace(/\\\n\s*/g, ' ').trim().split('\n');
  expect(lines).toHaveLength(2);
  expect(lines[1]).toBe('npx serverless deploy');
  const words = lines[0].split(/\s+/);
  expect(words[0]).toBe('export');
  return Object.fromEntries(words.slice(1).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]));
}

describe('the packaged template: the deploy example of docs/aws.md (EKS, the bucket created, the token in SSM)', () => {
  let t: Template;
  let file: string;

  beforeAll(async () => {
    ensurePythonTool('cfn-lint');
    const documented = documentedDeploySettings();
    expect(documented).toMatchObject({ CLUSTER_NAME: 'prod-eu-1', EKS_CLUSTER_NAME: 'prod', GIT_TOKEN_PARAMETER: '/daemonset-gitops/git-token', ALARM_EMAIL: 'oncall@example.com' });
    ({ t, file } = await packagedTemplate(serverlessPackage(documented)));
  }, 300_000);

  itPassesCfnLint(() => file);

  it('gives each function its own role, and only the writers may write', () => {
    for (const fn of ['Reconcile', 'Rollback', 'History', 'Unpin', 'Pause', 'Resume', 'Status', 'Webhook']) {
      expect(t.Resources[`${fn}LambdaFunction`].Properties.Role).toEqual({ 'Fn::Sub': `\${${fn}Role.Arn}` });
    }
    for (const role of writers) expect(actions(t, role)).toContain('s3:PutObject');
    expect(actions(t, 'HistoryRole')).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:ListBucket', 'sqs:SendMessage']);
    expect(actions(t, 'StatusRole')).toEqual(['eks:DescribeCluster', 'logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:ListBucket', 'sqs:SendMessage']);
    // Only the webhook deletes, and only its own delivery records (one it could not act on).
    for (const [id, r] of Object.entries(t.Resources)) {
      if (r.Type === 'AWS::IAM::Role' && id !== 'WebhookRole') expect(JSON.stringify(r)).not.toContain('s3:DeleteObject');
    }
    const deletes = statements(t, 'WebhookRole').filter((st) => [st.Action].flat().includes('s3:DeleteObject'));
    expect(deletes).toHaveLength(1);
    expect(deletes[0].Resource).toEqual({ 'Fn::Join': ['', [{ 'Fn::GetAtt': ['StateBucket', 'Arn'] }, '/daemonset-gitops/prod-eu-1/webhook/*']] });
    expect(actions(t, 'WebhookRole')).toContain('lambda:InvokeFunction');
    expect(t.Resources.IamRoleLambdaExecution).toBeUndefined();
  });

  it('reaches only its own cluster\'s objects, the webhook only its delivery records and push.json, and names no partition itself', () => {
    for (const role of [...writers, 'HistoryRole', 'StatusRole']) {
      const list = statements(t, role).find((s) => s.Action.includes('s3:ListBucket'));
      expect(list?.Condition).toEqual({ StringLike: { 's3:prefix': ['daemonset-gitops/prod-eu-1/*'] } });
      const objects = statements(t, role).filter((s) => [s.Action].flat().some((a) => a.startsWith('s3:') && a !== 's3:ListBucket'));
      expect(objects.map((s) => s.Resource)).toEqual([{ 'Fn::Join': ['', [{ 'Fn::GetAtt': ['StateBucket', 'Arn'] }, '/daemonset-gitops/prod-eu-1/*']] }]);
    }
    const webhookObjects = statements(t, 'WebhookRole').filter((s) => [s.Action].flat().some((a) => a.startsWith('s3:')));
    expect(webhookObjects.map((s) => [[s.Action].flat().sort(), s.Resource, s.Condition])).toEqual([
      [['s3:DeleteObject', 's3:GetObject', 's3:PutObject'], { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['StateBucket', 'Arn'] }, '/daemonset-gitops/prod-eu-1/webhook/*']] }, undefined],
      [['s3:ListBucket'], { 'Fn::GetAtt': ['StateBucket', 'Arn'] }, { StringLike: { 's3:prefix': ['daemonset-gitops/prod-eu-1/webhook/*'] } }],
    ]);
    const ours = Object.entries(t.Resources).filter(([id]) => !id.startsWith('ServerlessDeployment'));
    expect(JSON.stringify(ours)).not.toMatch(/arn:aws:/);
  });

  it('lets only the functions that fetch from Git read the token', () => {
    expect(actions(t, 'ReconcileRole')).toContain('ssm:GetParameter');
    expect(actions(t, 'RollbackRole')).toContain('ssm:GetParameter');
    expect(statements(t, 'ReconcileRole').find((s) => s.Action.includes('ssm:GetParameter'))?.Resource)
      .toEqual([{ 'Fn::Sub': 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/daemonset-gitops/git-token' }]);
    for (const role of ['UnpinRole', 'PauseRole', 'ResumeRole', 'StatusRole', 'HistoryRole']) expect(actions(t, role)).not.toContain('ssm:GetParameter');
    for (const fn of ['Reconcile', 'Rollback']) expect(t.Resources[`${fn}LambdaFunction`].Properties.Environment.Variables.GIT_TOKEN_PARAMETER).toBe('/daemonset-gitops/git-token');
    expect(t.Resources.StatusLambdaFunction.Properties.Environment.Variables.GIT_TOKEN_PARAMETER).toBeUndefined();
  });

  it('maps the roles that talk to the cluster to the Kubernetes users with access entries (status to the reader)', () => {
    const entries = Object.values(t.Resources).filter((r) => r.Type === 'AWS::EKS::AccessEntry');
    expect(entries.map((e) => e.Properties.PrincipalArn['Fn::GetAtt'][0]).sort()).toEqual(['PauseRole', 'ReconcileRole', 'ResumeRole', 'RollbackRole', 'StatusRole', 'UnpinRole']);
    for (const e of entries) {
      const reader = e.Properties.PrincipalArn['Fn::GetAtt'][0] === 'StatusRole';
      expect(e.Properties).toMatchObject({ ClusterName: 'prod', Username: reader ? 'daemonset-gitops-reader' : 'daemonset-gitops', Type: 'STANDARD' });
    }
  });

  it('creates a versioned, encrypted, private, TLS-only bucket whose old versions expire', () => {
    const bucket = t.Resources.StateBucket.Properties;
    expect(bucket.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm).toBe('AES256');
    expect(bucket.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    expect(bucket.LifecycleConfiguration.Rules[0]).toMatchObject({ Prefix: 'daemonset-gitops/', NoncurrentVersionExpiration: { NoncurrentDays: 30 } });
    const deny = t.Resources.StateBucketPolicy.Properties.PolicyDocument.Statement[0];
    expect(deny).toMatchObject({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } });
    expect(t.Resources.ReconcileLambdaFunction.Properties.Environment.Variables.S3_BUCKET).toEqual({ Ref: 'StateBucket' });
    // Delivery records only need to outlive redeliveries; the rule names this cluster's records only.
    expect(bucket.LifecycleConfiguration.Rules).toContainEqual(expect.objectContaining({ Prefix: 'daemonset-gitops/prod-eu-1/webhook/deliveries/', ExpirationInDays: 30, Status: 'Enabled' }));
  });

  it('blocks public access to the framework\'s deployment bucket and refuses requests to it without TLS', () => {
    expect(t.Resources.ServerlessDeploymentBucket.Properties.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    expect(t.Resources.ServerlessDeploymentBucketPolicy.Properties.PolicyDocument.Statement).toContainEqual(expect.objectContaining({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': false } } }));
  });

  it('lets the webhook invoke the reconcile function by that function\'s own ARN, and gives each function only the settings it reads', () => {
    const reconcileArn = { 'Fn::GetAtt': ['ReconcileLambdaFunction', 'Arn'] };
    expect(statements(t, 'WebhookRole').find((s) => s.Action.includes('lambda:InvokeFunction'))?.Resource).toEqual(reconcileArn);
    const vars = (fn: string) => t.Resources[`${fn}LambdaFunction`].Properties.Environment.Variables as Record<string, unknown>;
    expect(vars('Webhook').RECONCILE_FUNCTION_NAME).toBe(t.Resources.ReconcileLambdaFunction.Properties.FunctionName);
    expect(Object.keys(vars('Webhook'))).not.toContain('EKS_CLUSTER_NAME');
    expect(Object.keys(vars('History'))).not.toContain('EKS_CLUSTER_NAME');
    expect(Object.keys(vars('History'))).not.toContain('GIT_TOKEN_PARAMETER');
    expect(vars('Status').EKS_CLUSTER_NAME).toBe('prod');
    expect(vars('Reconcile').EKS_CLUSTER_NAME).toBe('prod');
  });

  it('publishes no function versions, and bounds the public webhook and reconcile: reserved concurrency, event age', () => {
    expect(Object.values(t.Resources).filter((r) => r.Type === 'AWS::Lambda::Version')).toEqual([]);
    expect(t.Resources.WebhookLambdaFunction.Properties.ReservedConcurrentExecutions).toBe(10);
    expect(t.Resources.ReconcileLambdaFunction.Properties.ReservedConcurrentExecutions).toBe(2);
    expect(t.Resources.ReconcileLambdaEvConf.Properties.MaximumEventAgeInSeconds).toBe(900);
    expect(t.Resources.WebhookLambdaEvConf.Properties.MaximumEventAgeInSeconds).toBe(60);
  });

  it('does not retry a failed scheduled pass, and alarms on failed passes', () => {
    expect(t.Resources.ReconcileLambdaEvConf.Properties.MaximumRetryAttempts).toBe(0);
    expect(t.Resources.FailedPassesAlarm.Properties).toMatchObject({ Namespace: 'daemonset-gitops', MetricName: 'FailedPasses', Dimensions: [{ Name: 'Cluster', Value: 'prod-eu-1' }], AlarmActions: [{ Ref: 'AlarmTopic' }] });
    expect(t.Resources.AlarmEmailSubscription.Properties).toMatchObject({ Protocol: 'email', Endpoint: 'oncall@example.com' });
  });

  it('alarms on every function\'s errors, sends every failed asynchronous invocation to a queue that alarms, and alarms when no pass succeeded for 30 minutes, missing data included', () => {
    for (const fn of ['Reconcile', 'Rollback', 'History', 'Unpin', 'Pause', 'Resume', 'Status', 'Webhook']) {
      expect(t.Resources[`${fn}ErrorsAlarm`].Properties).toMatchObject({ Namespace: 'AWS/Lambda', MetricName: 'Errors', Dimensions: [{ Name: 'FunctionName', Value: { Ref: `${fn}LambdaFunction` } }], AlarmActions: [{ Ref: 'AlarmTopic' }] });
      expect(t.Resources[`${fn}LambdaEvConf`].Properties.DestinationConfig).toEqual({ OnFailure: { Destination: { 'Fn::GetAtt': ['FailedInvocationsQueue', 'Arn'] } } });
      expect(statements(t, `${fn}Role`)).toContainEqual({ Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: { 'Fn::GetAtt': ['FailedInvocationsQueue', 'Arn'] } });
    }
    expect(t.Resources.FailedInvocationsAlarm.Properties).toMatchObject({ Namespace: 'AWS/SQS', MetricName: 'ApproximateNumberOfMessagesVisible', Threshold: 1 });
    expect(t.Resources.NoSuccessfulPassAlarm.Properties).toMatchObject({
      Namespace: 'daemonset-gitops', MetricName: 'SuccessfulPasses', Dimensions: [{ Name: 'Cluster', Value: 'prod-eu-1' }],
      Statistic: 'Sum', Period: 1800, ComparisonOperator: 'LessThanThreshold', Threshold: 1, TreatMissingData: 'breaching',
    });
  });
});

describe('the packaged template: an existing bucket, a kubeconfig, the token in Secrets Manager, in a VPC', () => {
  const secretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:dsg/git-token-AbCdEf';
  let t: Template;
  let file: string;

  beforeAll(async () => {
    ({ t, file } = await packagedTemplate(serverlessPackage({ ...base, S3_BUCKET: 'platform-state', S3_PREFIX: 'gitops', KUBECONFIG: 'kubeconfig.yaml', GIT_TOKEN_SECRET_ARN: secretArn, ALARM_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:oncall',
      VPC_SUBNET_IDS: 'subnet-0123456789abcdef0,subnet-0fedcba9876543210', VPC_SECURITY_GROUP_IDS: 'sg-0123456789abcdef0' })));
  }, 300_000);

  itPassesCfnLint(() => file);

  it('creates no bucket and grants the named one under its prefix, in the stack\'s partition', () => {
    expect(t.Resources.StateBucket).toBeUndefined();
    const write = statements(t, 'ReconcileRole').find((s) => s.Action.includes('s3:PutObject'));
    expect(write?.Resource).toEqual({ 'Fn::Join': ['', [{ 'Fn::Sub': 'arn:${AWS::Partition}:s3:::platform-state' }, '/gitops/prod-eu-1/*']] });
    expect(t.Resources.ReconcileLambdaFunction.Properties.Environment.Variables.S3_BUCKET).toBe('platform-state');
  });

  it('puts only the functions that talk to the cluster in the VPC, with the network interface statements and no logs:* on every log group', () => {
    for (const fn of ['Reconcile', 'Rollback', 'Unpin', 'Pause', 'Resume', 'Status']) {
      expect(t.Resources[`${fn}LambdaFunction`].Properties.VpcConfig).toEqual({ SubnetIds: ['subnet-0123456789abcdef0', 'subnet-0fedcba9876543210'], SecurityGroupIds: ['sg-0123456789abcdef0'] });
      expect(actions(t, `${fn}Role`)).toEqual(expect.arrayContaining(['ec2:CreateNetworkInterface', 'ec2:DeleteNetworkInterface', 'ec2:DescribeNetworkInterfaces']));
    }
    for (const fn of ['History', 'Webhook']) {
      expect(t.Resources[`${fn}LambdaFunction`].Properties.VpcConfig).toBeUndefined();
      expect(actions(t, `${fn}Role`).filter((a) => a.startsWith('ec2:'))).toEqual([]);
    }
    for (const [, r] of Object.entries(t.Resources).filter(([, r]) => r.Type === 'AWS::IAM::Role')) {
      expect(r.Properties.ManagedPolicyArns).toBeUndefined();
      expect(JSON.stringify(r.Properties.Policies)).not.toMatch(/"logs:\*"|"logs:CreateLogGroup"/);
    }
  });

  it('lets only reconcile and rollback read the secret, and needs no EKS access', () => {
    for (const role of ['ReconcileRole', 'RollbackRole']) {
      expect(statements(t, role).find((s) => s.Action.includes('secretsmanager:GetSecretValue'))?.Resource).toEqual([secretArn]);
    }
    for (const role of ['UnpinRole', 'PauseRole', 'ResumeRole', 'StatusRole', 'HistoryRole']) expect(actions(t, role)).not.toContain('secretsmanager:GetSecretValue');
    expect(Object.values(t.Resources).filter((r) => r.Type === 'AWS::EKS::AccessEntry')).toEqual([]);
    expect(JSON.stringify(t)).not.toContain('eks:DescribeCluster');
    expect(t.Resources.FailedPassesAlarm.Properties.AlarmActions).toEqual(['arn:aws:sns:eu-west-1:123456789012:oncall']);
  });
});

describe('serverless package refuses what Lambda would refuse', () => {
  it('subnets without security groups, naming the missing setting', async () => {
    const p = await serverlessPackage({ ...base, EKS_CLUSTER_NAME: 'prod', VPC_SUBNET_IDS: 'subnet-0123456789abcdef0' });
    dirs.push(p.dir);

    expect(p.code).not.toBe(0);
    expect(p.template).toBeUndefined();
    expect(p.output).toContain('VPC_SUBNET_IDS is set but VPC_SECURITY_GROUP_IDS is not');
  }, 120_000);

  let ca: string;
  let key: string;

  beforeAll(() => {
    ca = clusterCa();
    key = armoredKey();
  }, 300_000);

  it('an environment over 4 KB (a cluster CA and an armored OpenPGP key), naming the function and where to keep them', async () => {
    const p = await serverlessPackage({ ...base, EKS_CLUSTER_NAME: 'prod', EKS_CLUSTER_ENDPOINT: 'https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com', EKS_CLUSTER_CA: ca, VERIFY_COMMITS: 'true', TRUSTED_GPG_KEYS: key });
    dirs.push(p.dir);

    expect(p.code).not.toBe(0);
    expect(p.template).toBeUndefined();
    expect(p.output).toMatch(/the reconcile function's environment would be \d+ bytes, over Lambda's limit of 4096/);
    expect(p.output).toContain('TRUSTED_GPG_KEYS_PARAMETER');
    expect(p.output).toContain('EKS_CLUSTER_CA_PARAMETER');
    // The functions that do not read them are not the ones refused.
    expect(p.output).not.toMatch(/the (status|history|webhook) function's environment/);
  }, 300_000);
});

describe('the packaged template: the CA and keys in SSM, an existing bucket encrypted with SSE-KMS, on arm64', () => {
  const kmsKey = 'arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
  const secretsKey = 'arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555';
  let t: Template;
  let file: string;
  let dir: string;

  beforeAll(async () => {
    ({ t, file, dir } = await packagedTemplate(serverlessPackage({ ...base, EKS_CLUSTER_NAME: 'prod', EKS_CLUSTER_ENDPOINT: 'https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com', EKS_CLUSTER_CA_PARAMETER: '/dsg/cluster-ca',
      VERIFY_COMMITS: 'true', TRUSTED_GPG_KEYS_PARAMETER: '/dsg/trusted-keys', GIT_TOKEN_PARAMETER: '/dsg/git-token', S3_BUCKET: 'platform-state', S3_KMS_KEY_ARN: kmsKey, SECRETS_KMS_KEY_ARN: secretsKey, LAMBDA_ARCHITECTURE: 'arm64' })));
  }, 300_000);

  itPassesCfnLint(() => file);

  it('keeps every function\'s environment under 4 KB, and gives the stored settings only to the functions that read them', () => {
    for (const [id, r] of Object.entries(t.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function')) {
      const vars = r.Properties.Environment.Variables as Record<string, string>;
      const bytes = Object.entries(vars).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(String(v)), 0);
      expect({ id, under: bytes <= 4096 }).toEqual({ id, under: true });
    }
    const vars = (fn: string) => t.Resources[`${fn}LambdaFunction`].Properties.Environment.Variables;
    expect(vars('Reconcile')).toMatchObject({ TRUSTED_GPG_KEYS_PARAMETER: '/dsg/trusted-keys', EKS_CLUSTER_CA_PARAMETER: '/dsg/cluster-ca', VERIFY_COMMITS: 'true' });
    expect(vars('Status').EKS_CLUSTER_CA_PARAMETER).toBe('/dsg/cluster-ca');
    expect(vars('Status').TRUSTED_GPG_KEYS_PARAMETER).toBeUndefined();
    expect(vars('History').EKS_CLUSTER_CA_PARAMETER).toBeUndefined();
    const parameters = (role: string) => statements(t, role).find((s) => s.Action.includes('ssm:GetParameter'))?.Resource;
    const arn = (name: string) => ({ 'Fn::Sub': `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter/dsg/${name}` });
    expect(parameters('ReconcileRole')).toEqual([arn('git-token'), arn('trusted-keys'), arn('cluster-ca')]);
    expect(parameters('StatusRole')).toEqual([arn('cluster-ca')]);
    expect(parameters('HistoryRole')).toBeUndefined();
  });

  it('runs every function on arm64 but reconcile, whose renderers layer is x86_64, with the memory chosen for it', () => {
    const memory: Record<string, number> = {};
    for (const [id, r] of Object.entries(t.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function')) {
      expect({ id, arch: r.Properties.Architectures }).toEqual({ id, arch: [id === 'ReconcileLambdaFunction' ? 'x86_64' : 'arm64'] });
      memory[id] = r.Properties.MemorySize;
    }
    expect(memory.ReconcileLambdaFunction).toBe(1024);
    expect(memory.HistoryLambdaFunction).toBe(512);
  });

  it('lets each function use the bucket\'s KMS key through S3 only, and the secrets\' key through SSM only', () => {
    const viaS3 = { StringEquals: { 'kms:ViaService': [{ 'Fn::Sub': 's3.${AWS::Region}.amazonaws.com' }] } };
    const viaSsm = { StringEquals: { 'kms:ViaService': [{ 'Fn::Sub': 'ssm.${AWS::Region}.amazonaws.com' }] } };
    for (const role of [...writers, 'WebhookRole']) {
      expect(statements(t, role)).toContainEqual({ Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: kmsKey, Condition: viaS3 });
    }
    for (const role of ['HistoryRole', 'StatusRole']) expect(statements(t, role)).toContainEqual({ Effect: 'Allow', Action: ['kms:Decrypt'], Resource: kmsKey, Condition: viaS3 });
    const kms = Object.entries(t.Resources).filter(([, r]) => r.Type === 'AWS::IAM::Role').flatMap(([id]) => statements(t, id)).filter((s) => [s.Action].flat().some((a) => a.startsWith('kms:')));
    for (const s of kms) expect(s.Condition).toEqual(s.Resource === kmsKey ? viaS3 : viaSsm);
    expect(kms.filter((s) => s.Resource === secretsKey).length).toBe(6);
  });

  it('gives the same zips, byte for byte, when the same sources are packaged again', async () => {
    const again = await serverlessPackage({ ...base, EKS_CLUSTER_NAME: 'prod', EKS_CLUSTER_ENDPOINT: 'https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com', EKS_CLUSTER_CA_PARAMETER: '/dsg/cluster-ca',
      VERIFY_COMMITS: 'true', TRUSTED_GPG_KEYS_PARAMETER: '/dsg/trusted-keys', GIT_TOKEN_PARAMETER: '/dsg/git-token', S3_BUCKET: 'platform-state', S3_KMS_KEY_ARN: kmsKey, SECRETS_KMS_KEY_ARN: secretsKey, LAMBDA_ARCHITECTURE: 'arm64' });
    dirs.push(again.dir);
    const zips = readdirSync(dir).filter((f) => f.endsWith('.zip')).sort();
    expect(zips).toHaveLength(8);
    expect(readdirSync(again.dir).filter((f) => f.endsWith('.zip')).sort()).toEqual(zips);
    for (const zip of zips) {
      const digest = (d: string) => createHash('sha256').update(readFileSync(join(d, zip))).digest('hex');
      expect({ zip, digest: digest(again.dir) }).toEqual({ zip, digest: digest(dir) });
      // Nothing native in them: the same zip runs on x86_64 and arm64 (LAMBDA_ARCHITECTURE).
      const entries = execFileSync('unzip', ['-Z1', join(dir, zip)], { encoding: 'utf8' }).trim().split('\n');
      expect(entries.filter((e) => /\.(node|so)$/.test(e))).toEqual([]);
    }
  }, 300_000);
});

describe('serverless package with settings missing', () => {
  it('fails before building anything, naming every missing setting', async () => {
    const p = await serverlessPackage({ AWS_REGION: 'eu-west-1', GIT_TOKEN: 'x', GIT_TOKEN_PARAMETER: '/x' });
    dirs.push(p.dir);

    expect(p.code).not.toBe(0);
    expect(p.template).toBeUndefined();
    for (const missing of ['GIT_URL is required', 'CLUSTER_NAME is required', 'ALLOWED_NAMESPACES is required', 'EKS_CLUSTER_NAME is required', 'GIT_TOKEN and GIT_TOKEN_PARAMETER are all set']) {
      expect(p.output).toContain(missing);
    }
  }, 120_000);

  it('refuses a plain GIT_TOKEN, which would end up in the template', async () => {
    const p = await serverlessPackage({ ...base, EKS_CLUSTER_NAME: 'prod', GIT_TOKEN: 'ghp_plain_token_value' });
    dirs.push(p.dir);

    expect(p.code).not.toBe(0);
    expect(p.template).toBeUndefined();
    expect(p.output).toContain('GIT_TOKEN would be written into the CloudFormation template');
    expect(p.output).not.toContain('ghp_plain_token_value');
  }, 120_000);
});

describe('serverless package refuses to deploy a safety setting open by omission', () => {
  it('without ALLOWED_KINDS, and without the VPC pair or VPC_SUBNET_IDS=none, naming each', async () => {
    const { ALLOWED_KINDS: _kinds, VPC_SUBNET_IDS: _vpc, ...rest } = base;
    const p = await serverlessPackage({ ...rest, EKS_CLUSTER_NAME: 'prod', GIT_TOKEN_PARAMETER: '/x' });
    dirs.push(p.dir);

    expect(p.code).not.toBe(0);
    expect(p.template).toBeUndefined();
    expect(p.output).toContain('ALLOWED_KINDS is required to deploy');
    expect(p.output).toContain('VPC_SUBNET_IDS and VPC_SECURITY_GROUP_IDS are required to deploy');
  }, 120_000);

  it('a fleet file without the list of its clusters', async () => {
    const p = await serverlessPackage({ ...base, EKS_CLUSTER_NAME: 'prod', FLEET_FILE: 'fleet.yaml' });
    dirs.push(p.dir);

    expect(p.code).not.toBe(0);
    expect(p.output).toContain('FLEET_FILE is set but FLEET_CLUSTERS is not');
    expect(p.output).toContain('FLEET_FILE=fleet.yaml: a fleet\'s stack is deployed from a committed settings file, and there is none: write deploy/settings/prod-eu-1.yaml');
  }, 120_000);
});

/** A deployment's committed settings file (deploy/settings-file.ts), in a directory of its own, named by SETTINGS_FILE. */
function settingsFile(text: string): string {
  const d = mkdtempSync(join(tmpdir(), 'dsgitops-settings-'));
  dirs.push(d);
  writeFileSync(join(d, 'prod-eu-1.yaml'), text);
  return join(d, 'prod-eu-1.yaml');
}

const SETTINGS_YAML = `GIT_URL: https://git.example.com/platform/node-agents.git
CLUSTER_NAME: prod-eu-1
EKS_CLUSTER_NAME: prod
GIT_TOKEN_PARAMETER: /daemonset-gitops/git-token
ALLOWED_NAMESPACES: [logging, monitoring]
ALLOWED_KINDS: [DaemonSet, ConfigMap]
VPC_SUBNET_IDS: none
PROGRESS_DEADLINE_SECONDS: 900
`;

describe('serverless package with a committed settings file', () => {
  it('deploys what the file says, with nothing of it in the shell but the file\'s name', async () => {
    const p = await serverlessPackage({ AWS_REGION: 'eu-west-1', SETTINGS_FILE: settingsFile(SETTINGS_YAML) });
    dirs.push(p.dir);
    if (!p.template) throw new Error(`serverless package failed (exit ${p.code}):\n${p.output}`);
    const vars = (fn: string) => p.template!.Resources[`${fn}LambdaFunction`].Properties.Environment.Variables as Record<string, unknown>;
    expect(vars('Reconcile')).toMatchObject({ ALLOWED_NAMESPACES: 'logging,monitoring', ALLOWED_KINDS: 'DaemonSet,ConfigMap', PROGRESS_DEADLINE_SECONDS: '900', EKS_CLUSTER_NAME: 'prod', CLUSTER_NAME: 'prod-eu-1' });
    expect(p.template!.Resources.ReconcileLambdaFunction.Properties.FunctionName).toBe('daemonset-gitops-prod-eu-1-dev-reconcile');
  }, 300_000);

  it('refuses a file without a safety setting, and a shell that contradicts the file, naming the file and the key', async () => {
    const missing = settingsFile(SETTINGS_YAML.replace('ALLOWED_KINDS: [DaemonSet, ConfigMap]\n', ''));
    const p = await serverlessPackage({ AWS_REGION: 'eu-west-1', SETTINGS_FILE: missing, ALLOWED_NAMESPACES: '*' });
    dirs.push(p.dir);
    expect(p.code).not.toBe(0);
    expect(p.template).toBeUndefined();
    expect(p.output).toContain(`${missing}: ALLOWED_KINDS is missing`);
    expect(p.output).toContain(`ALLOWED_NAMESPACES=* in the shell differs from ${missing} (ALLOWED_NAMESPACES: logging,monitoring), a safety setting`);
  }, 300_000);
});

/** The fleet of docs/fleet.md: staging and two production clusters, each an EKS cluster of the account. */
const fleetSettings = {
  ...base,
  CLUSTER_NAME: 'fleet-eu',
  EKS_CLUSTER_NAME: 'staging-eks',
  GIT_TOKEN_PARAMETER: '/daemonset-gitops/git-token',
  FLEET_FILE: 'fleet.yaml',
  FLEET_CLUSTERS: 'staging=staging-eks,prod-a=prod-a-eks,prod-b=prod-b-eks,prod-c=arn:aws:iam::111122223333:role/dsgitops-prod-c',
};
const FLEET = ['staging', 'prod-a', 'prod-b'];

/** The fleet packaged as it is deployed: from a committed settings file, the shell naming the file and the region only. */
function fleetPackage(extra: Record<string, string>): ReturnType<typeof serverlessPackage> {
  const { AWS_REGION, ...committed } = { ...fleetSettings, ...extra };
  return serverlessPackage({ AWS_REGION, SETTINGS_FILE: settingsFile(Object.entries(committed).map(([k, v]) => `${k}: ${JSON.stringify(v)}\n`).join('')) });
}
const pascalName = (n: string) => n.split('-').map((w) => w[0].toUpperCase() + w.slice(1)).join('');

describe('the packaged template: one stack for a fleet of three clusters (and a fourth in another account)', () => {
  let t: Template;
  let file: string;

  beforeAll(async () => {
    ({ t, file } = await packagedTemplate(fleetPackage({})));
  }, 300_000);

  itPassesCfnLint(() => file, 'passes cfn-lint (whose schema of AWS::Lambda::Function includes DurableConfig)');

  it('makes the promotion a durable function, invoked by its durable alias, with checkpoints of its own executions only', () => {
    const promote = t.Resources.PromoteLambdaFunction.Properties;
    expect(promote.DurableConfig).toEqual({ ExecutionTimeout: 30 * 24 * 3600, RetentionPeriodInDays: 30 });
    expect(promote.Role).toEqual({ 'Fn::Sub': '${PromoteRole.Arn}' });
    const alias = Object.values(t.Resources).find((r) => r.Type === 'AWS::Lambda::Alias' && r.Properties.FunctionName?.Ref === 'PromoteLambdaFunction');
    expect(alias?.Properties.Name).toBe('durable');
    const st = statements(t, 'PromoteRole');
    const checkpoint = st.find((x) => ([] as string[]).concat(x.Action).includes('lambda:CheckpointDurableExecution'))!;
    expect(JSON.stringify(checkpoint.Resource)).toContain('function:daemonset-gitops-fleet-eu-dev-promote:*/durable-execution/*');
    const invoke = st.find((x) => ([] as string[]).concat(x.Action).includes('lambda:InvokeFunction'))!;
    expect(JSON.stringify(invoke.Resource)).toContain('FleetPassLambdaFunction');
    expect(promote.Environment.Variables.FLEET_PASS_FUNCTION).toBe('daemonset-gitops-fleet-eu-dev-fleetPass');
    // The promotion writes its own records and each cluster's promotion.json, nothing else of a cluster's prefix.
    const writes = st.filter((x) => ([] as string[]).concat(x.Action).includes('s3:PutObject')).flatMap((x) => ([] as unknown[]).concat(x.Resource)).map((r) => JSON.stringify(r));
    expect(writes.sort()).toEqual([...[...FLEET, 'prod-c'].map((c) => `daemonset-gitops/${c}/promotion.json`), 'daemonset-gitops/fleet/*'].map((tail) => JSON.stringify({ 'Fn::Join': ['', [{ 'Fn::GetAtt': ['StateBucket', 'Arn'] }, `/${tail}`]] })).sort());
  });

  it('gives each cluster a role of its own: its prefix only, its EKS cluster only, assumable by the fleet pass and the per-DaemonSet functions only', () => {
    for (const c of FLEET) {
      const id = `FleetCluster${pascalName(c)}Role`;
      const r = t.Resources[id].Properties;
      expect(r.RoleName).toBe(`dsgitops-fleet-eu-dev-${c}`);
      const trusted = ['FleetPassRole', 'RollbackRole', 'HistoryRole', 'StatusRole', 'UnpinRole', 'PauseRole', 'ResumeRole'];
      expect(r.AssumeRolePolicyDocument.Statement).toEqual([{ Effect: 'Allow', Principal: { AWS: trusted.map((x) => ({ 'Fn::GetAtt': [x, 'Arn'] })) }, Action: 'sts:AssumeRole' }]);
      const st = statements(t, id);
      const objects = st.filter((x) => ([] as string[]).concat(x.Action).some((a) => a.startsWith('s3:') && a !== 's3:ListBucket'));
      expect(objects.map((x) => x.Resource)).toEqual([{ 'Fn::Join': ['', [{ 'Fn::GetAtt': ['StateBucket', 'Arn'] }, `/daemonset-gitops/${c}/*`]] }]);
      const list = st.find((x) => x.Action.includes('s3:ListBucket'))!;
      expect(list.Condition).toEqual({ StringLike: { 's3:prefix': [`daemonset-gitops/${c}/*`] } });
      expect(JSON.stringify(st)).toContain(`cluster/${c}-eks`);
      for (const other of FLEET.filter((o) => o !== c)) expect(JSON.stringify(st)).not.toContain(`/${other}`);
      const entry = t.Resources[`FleetCluster${pascalName(c)}AccessEntry`].Properties;
      expect(entry).toMatchObject({ ClusterName: `${c}-eks`, PrincipalArn: { 'Fn::GetAtt': [id, 'Arn'] }, Username: 'daemonset-gitops' });
    }
  });

  it('lets rollback, history, status, unpin, pause and resume assume the clusters\' roles (by name) and read the fleet file from Git; not reconcile or the webhook', () => {
    for (const fn of ['Rollback', 'History', 'Status', 'Unpin', 'Pause', 'Resume']) {
      const assume = statements(t, `${fn}Role`).find((x) => ([] as string[]).concat(x.Action).includes('sts:AssumeRole'));
      expect(JSON.stringify(assume?.Resource)).toContain('role/dsgitops-fleet-eu-dev-prod-a');
      const vars = t.Resources[`${fn}LambdaFunction`].Properties.Environment.Variables;
      expect(JSON.stringify(vars.FLEET_CLUSTER_ROLE_ARN)).toContain('role/dsgitops-fleet-eu-dev-{cluster}');
      expect(vars).toMatchObject({ FLEET_FILE: 'fleet.yaml', GIT_TOKEN_PARAMETER: '/daemonset-gitops/git-token' });
    }
    for (const fn of ['Reconcile', 'Webhook']) {
      expect(actions(t, `${fn}Role`)).not.toContain('sts:AssumeRole');
      expect(t.Resources[`${fn}LambdaFunction`].Properties.Environment.Variables.FLEET_CLUSTER_ROLE_ARN).toBeUndefined();
    }
  });

  it('lets the role of a cluster in another account assume that cluster\'s role (the fleet file\'s eks.roleArn) and nothing else', () => {
    const st = statements(t, 'FleetClusterProdCRole');
    expect(st.find((x) => ([] as string[]).concat(x.Action).includes('sts:AssumeRole'))?.Resource).toBe('arn:aws:iam::111122223333:role/dsgitops-prod-c');
    expect(JSON.stringify(st)).not.toContain('eks:');
    expect(t.Resources.FleetClusterProdCAccessEntry).toBeUndefined();
  });

  it('gives the fleet pass no S3 and no cluster of its own: it may only assume the clusters\' roles, found by name', () => {
    const st = statements(t, 'FleetPassRole');
    expect(actions(t, 'FleetPassRole').filter((a) => a.startsWith('s3:') || a.startsWith('eks:'))).toEqual([]);
    const assume = st.find((x) => x.Action.includes('sts:AssumeRole'))!;
    expect(assume.Resource).toEqual([...FLEET, 'prod-c'].map((c) => ({ 'Fn::Sub': `arn:\${AWS::Partition}:iam::\${AWS::AccountId}:role/dsgitops-fleet-eu-dev-${c}` })));
    const pass = t.Resources.FleetPassLambdaFunction.Properties;
    expect(pass.Environment.Variables.FLEET_CLUSTER_ROLE_ARN).toEqual({ 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:role/dsgitops-fleet-eu-dev-{cluster}' });
    // One schedule per cluster, each passing its cluster's name; the single-cluster reconcile is not scheduled.
    const rules = Object.values(t.Resources).filter((r) => r.Type === 'AWS::Events::Rule');
    const passInputs = rules.filter((r) => JSON.stringify(r.Properties.Targets).includes('FleetPassLambdaFunction')).map((r) => JSON.parse(r.Properties.Targets[0].Input).cluster).sort();
    expect(passInputs).toEqual([...FLEET, 'prod-c'].sort());
    const reconcileRule = rules.find((r) => JSON.stringify(r.Properties.Targets).includes('ReconcileLambdaFunction'));
    expect(reconcileRule?.Properties.State).toBe('DISABLED');
  });

  it('lets a push start the promotion (its durable alias) and fleet resume too; every function sees FLEET_FILE; each environment under 4 KB', () => {
    const webhook = t.Resources.WebhookLambdaFunction.Properties.Environment.Variables;
    expect(webhook.PROMOTE_FUNCTION_NAME).toBe('daemonset-gitops-fleet-eu-dev-promote:durable');
    expect(webhook.RECONCILE_FUNCTION_NAME).toBeUndefined();
    const invoke = statements(t, 'WebhookRole').find((x) => ([] as string[]).concat(x.Action).includes('lambda:InvokeFunction'))!;
    expect(invoke.Resource).toEqual({ 'Fn::Sub': 'arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:daemonset-gitops-fleet-eu-dev-promote:durable' });
    expect(t.Resources.FleetLambdaFunction.Properties.Environment.Variables.PROMOTE_FUNCTION_NAME).toBe('daemonset-gitops-fleet-eu-dev-promote:durable');
    for (const [id, r] of Object.entries(t.Resources)) {
      if (r.Type !== 'AWS::Lambda::Function') continue;
      const vars = r.Properties.Environment.Variables as Record<string, unknown>;
      expect([id, vars.FLEET_FILE]).toEqual([id, 'fleet.yaml']);
      const bytes = Object.entries(vars).reduce((n, [k, v]) => n + k.length + (typeof v === 'string' ? Buffer.byteLength(v) : 200), 0);
      expect(bytes).toBeLessThanOrEqual(4096);
    }
  });

  it('names the stack, the functions and the cluster roles after the deployment, so two deployments never collide', async () => {
    const other = await fleetPackage({ DEPLOYMENT_NAME: 'fleet-us' });
    dirs.push(other.dir);
    if (!other.template) throw new Error(`serverless package failed (exit ${other.code}):\n${other.output}`);
    const named = (tpl: Template) => Object.values(tpl.Resources).flatMap((r) => [r.Properties?.FunctionName, r.Properties?.RoleName, r.Properties?.LogGroupName]).filter((n): n is string => typeof n === 'string');
    const mine = named(t);
    const theirs = named(other.template);
    expect(mine.length).toBeGreaterThan(10);
    expect(mine.filter((n) => theirs.includes(n))).toEqual([]);
    const state = JSON.parse(readFileSync(join(other.dir, 'serverless-state.json'), 'utf8')) as { service: { service: string } };
    expect(state.service.service).toBe('daemonset-gitops-fleet-us');
  }, 300_000);
});

/**
 * The embedded metric format as CloudWatch's specification defines it: `_aws` with a numeric
 * Timestamp and CloudWatchMetrics, each naming a Namespace, Dimensions (arrays of member names
 * whose values are strings) and Metrics (members whose values are numbers).
 */
function metricsOf(line: Record<string, unknown>): { namespace: string; dimensions: Record<string, string>; values: Record<string, number> }[] {
  const aws = line._aws as { Timestamp: unknown; CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit?: string }[] }[] } | undefined;
  if (!aws) return [];
  expect(typeof aws.Timestamp).toBe('number');
  return aws.CloudWatchMetrics.map((d) => {
    for (const set of d.Dimensions) for (const name of set) expect(typeof line[name]).toBe('string');
    for (const m of d.Metrics) expect(typeof line[m.Name]).toBe('number');
    return {
      namespace: d.Namespace,
      dimensions: Object.fromEntries(d.Dimensions.flat().map((n) => [n, line[n] as string])),
      values: Object.fromEntries(d.Metrics.map((m) => [m.Name, line[m.Name] as number])),
    };
  });
}

describe('the metrics the alarms read', () => {
  it('a failed pass logs, in the embedded metric format, one FailedPasses and no SuccessfulPasses for its cluster, with the invocation\'s request id and cold start', async () => {
    const { handler } = await import('../../handlers/reconcile');
    const { stackConfigEnv } = await import('../support/reconciler');
    const settings = stackConfigEnv({ GIT_URL: join(tmpdir(), 'no-such-repository-here'), ALLOWED_NAMESPACES: 'metric-filter' });
    const saved = { ...process.env };
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    Object.assign(process.env, settings);
    try {
      // A failed pass fails the invocation (for Lambda's Errors metric too), after logging its report.
      await expect(handler({}, { getRemainingTimeInMillis: () => 60_000, awsRequestId: 'metric-test-1', functionName: 'daemonset-gitops-dev-reconcile' })).rejects.toThrow(/failed: SourceUnavailable/);
      await expect(handler({}, { getRemainingTimeInMillis: () => 60_000, awsRequestId: 'metric-test-2' })).rejects.toThrow(/failed: SourceUnavailable/);
    } finally {
      process.stderr.write = write;
      for (const k of Object.keys(settings)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
    const logged = lines.join('').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    // The alarms of deploy/stack.js: namespace daemonset-gitops, FailedPasses / SuccessfulPasses, dimension Cluster.
    const metrics = logged.flatMap((l) => metricsOf(l).map((m) => ({ ...m, requestId: l.requestId, coldStart: l.coldStart })));
    expect(metrics).toHaveLength(2);
    for (const m of metrics) {
      expect(m).toMatchObject({ namespace: 'daemonset-gitops', dimensions: { Cluster: settings.CLUSTER_NAME }, values: { FailedPasses: 1, SuccessfulPasses: 0 } });
    }
    expect(metrics.map((m) => m.requestId)).toEqual(['metric-test-1', 'metric-test-2']);
    // This process had served no invocation before the first (jest imported the handler for it).
    expect(metrics.map((m) => m.coldStart)).toEqual([true, false]);
    expect(logged.filter((l) => l.requestId === 'metric-test-1').every((l) => l.function === 'daemonset-gitops-dev-reconcile')).toBe(true);
  }, 60_000);
});
