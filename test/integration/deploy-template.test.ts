/**
 * The CloudFormation template `serverless package` writes, for the ways it is deployed: it
 * passes cfn-lint (the pinned PyPI release, in its cached venv), and it grants each function
 * only what it does. A deploy with required settings missing fails before anything is built,
 * naming them. The alarm's metric filter matches the JSON line a failed pass really logs.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

function statements(t: Template, role: string): Statement[] {
  return t.Resources[role].Properties.Policies.flatMap((p: { PolicyDocument: { Statement: Statement[] } }) => p.PolicyDocument.Statement);
}

function actions(t: Template, role: string): string[] {
  return statements(t, role).flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])).sort();
}

const writers = ['ReconcileRole', 'RollbackRole', 'UnpinRole', 'PauseRole', 'ResumeRole'];
const dirs: string[] = [];

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the packaged template: EKS, the bucket created, the token in SSM', () => {
  let t: Template;
  let file: string;

  beforeAll(async () => {
    ensurePythonTool('cfn-lint');
    const p = await serverlessPackage({ ...base, EKS_CLUSTER_NAME: 'prod', GIT_TOKEN_PARAMETER: '/daemonset-gitops/git-token', ALARM_EMAIL: 'oncall@example.com' });
    dirs.push(p.dir);
    if (!p.template) throw new Error(`serverless package failed (exit ${p.code}):\n${p.output}`);
    t = p.template;
    file = p.file!;
  }, 300_000);

  it('passes cfn-lint', async () => {
    const lint = await cfnLint(file);
    expect(lint.output).toBe('');
    expect(lint.code).toBe(0);
  }, 120_000);

  it('gives each function its own role, and only the writers may write', () => {
    for (const fn of ['Reconcile', 'Rollback', 'History', 'Unpin', 'Pause', 'Resume', 'Status', 'Webhook']) {
      expect(t.Resources[`${fn}LambdaFunction`].Properties.Role).toEqual({ 'Fn::Sub': `\${${fn}Role.Arn}` });
    }
    for (const role of writers) expect(actions(t, role)).toContain('s3:PutObject');
    expect(actions(t, 'HistoryRole')).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:ListBucket']);
    expect(actions(t, 'StatusRole')).toEqual(['eks:DescribeCluster', 'logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:ListBucket']);
    // Only the webhook deletes, and only its own delivery records (one it could not act on).
    for (const [id, r] of Object.entries(t.Resources)) {
      if (r.Type === 'AWS::IAM::Role' && id !== 'WebhookRole') expect(JSON.stringify(r)).not.toContain('s3:DeleteObject');
    }
    const deletes = statements(t, 'WebhookRole').filter((st) => [st.Action].flat().includes('s3:DeleteObject'));
    expect(deletes).toHaveLength(1);
    expect(JSON.stringify(deletes[0].Resource)).toContain('/daemonset-gitops/webhook/*');
    expect(actions(t, 'WebhookRole')).toContain('lambda:InvokeFunction');
    expect(t.Resources.IamRoleLambdaExecution).toBeUndefined();
  });

  it('lists the bucket only under the prefix, and names no partition itself', () => {
    for (const role of [...writers, 'HistoryRole', 'StatusRole']) {
      const list = statements(t, role).find((s) => s.Action.includes('s3:ListBucket'));
      expect(list?.Condition).toEqual({ StringLike: { 's3:prefix': ['daemonset-gitops/*'] } });
    }
    const ours = Object.entries(t.Resources).filter(([id]) => !id.startsWith('ServerlessDeployment'));
    expect(JSON.stringify(ours)).not.toMatch(/arn:aws:/);
  });

  it('lets only the functions that fetch from Git read the token', () => {
    expect(actions(t, 'ReconcileRole')).toContain('ssm:GetParameter');
    expect(actions(t, 'RollbackRole')).toContain('ssm:GetParameter');
    expect(statements(t, 'ReconcileRole').find((s) => s.Action.includes('ssm:GetParameter'))?.Resource)
      .toEqual({ 'Fn::Sub': 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/daemonset-gitops/git-token' });
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
  });

  it('does not retry a failed scheduled pass, and alarms on failed passes', () => {
    expect(t.Resources.ReconcileLambdaEvConf.Properties.MaximumRetryAttempts).toBe(0);
    expect(t.Resources.FailedPassesMetricFilter.Properties.LogGroupName).toEqual({ Ref: 'ReconcileLogGroup' });
    expect(t.Resources.FailedPassesAlarm.Properties).toMatchObject({ MetricName: 'FailedPasses', Dimensions: [{ Name: 'Cluster', Value: 'prod-eu-1' }], AlarmActions: [{ Ref: 'AlarmTopic' }] });
    expect(t.Resources.AlarmEmailSubscription.Properties).toMatchObject({ Protocol: 'email', Endpoint: 'oncall@example.com' });
  });
});

describe('the packaged template: an existing bucket, a kubeconfig, the token in Secrets Manager, in a VPC', () => {
  const secretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:dsg/git-token-AbCdEf';
  let t: Template;
  let file: string;

  beforeAll(async () => {
    const p = await serverlessPackage({ ...base, S3_BUCKET: 'platform-state', S3_PREFIX: 'gitops', KUBECONFIG: 'kubeconfig.yaml', GIT_TOKEN_SECRET_ARN: secretArn, ALARM_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:oncall',
      VPC_SUBNET_IDS: 'subnet-0123456789abcdef0,subnet-0fedcba9876543210', VPC_SECURITY_GROUP_IDS: 'sg-0123456789abcdef0' });
    dirs.push(p.dir);
    if (!p.template) throw new Error(`serverless package failed (exit ${p.code}):\n${p.output}`);
    t = p.template;
    file = p.file!;
  }, 300_000);

  it('passes cfn-lint', async () => {
    const lint = await cfnLint(file);
    expect(lint.output).toBe('');
    expect(lint.code).toBe(0);
  }, 120_000);

  it('creates no bucket and grants the named one under its prefix, in the stack\'s partition', () => {
    expect(t.Resources.StateBucket).toBeUndefined();
    const write = statements(t, 'ReconcileRole').find((s) => s.Action.includes('s3:PutObject'));
    expect(write?.Resource).toEqual({ 'Fn::Join': ['', [{ 'Fn::Sub': 'arn:${AWS::Partition}:s3:::platform-state' }, '/gitops/*']] });
    expect(t.Resources.ReconcileLambdaFunction.Properties.Environment.Variables.S3_BUCKET).toBe('platform-state');
  });

  it('puts every function in the VPC, with the permissions its network interfaces need', () => {
    for (const fn of ['Reconcile', 'Rollback', 'History', 'Unpin', 'Pause', 'Resume', 'Status']) {
      expect(t.Resources[`${fn}LambdaFunction`].Properties.VpcConfig).toEqual({ SubnetIds: ['subnet-0123456789abcdef0', 'subnet-0fedcba9876543210'], SecurityGroupIds: ['sg-0123456789abcdef0'] });
      expect(t.Resources[`${fn}Role`].Properties.ManagedPolicyArns).toEqual([{ 'Fn::Sub': 'arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole' }]);
    }
  });

  it('lets only reconcile and rollback read the secret, and needs no EKS access', () => {
    for (const role of ['ReconcileRole', 'RollbackRole']) {
      expect(statements(t, role).find((s) => s.Action.includes('secretsmanager:GetSecretValue'))?.Resource).toBe(secretArn);
    }
    for (const role of ['UnpinRole', 'PauseRole', 'ResumeRole', 'StatusRole', 'HistoryRole']) expect(actions(t, role)).not.toContain('secretsmanager:GetSecretValue');
    expect(Object.values(t.Resources).filter((r) => r.Type === 'AWS::EKS::AccessEntry')).toEqual([]);
    expect(JSON.stringify(t)).not.toContain('eks:DescribeCluster');
    expect(t.Resources.FailedPassesAlarm.Properties.AlarmActions).toEqual(['arn:aws:sns:eu-west-1:123456789012:oncall']);
  });
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

describe('the failed-pass metric filter', () => {
  it('names fields that the JSON line of a failed pass carries: action "pass", result "failed" and the cluster', async () => {
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
      await expect(handler({}, { getRemainingTimeInMillis: () => 60_000, awsRequestId: 'metric-filter-test' })).rejects.toThrow(/failed: SourceUnavailable/);
    } finally {
      process.stderr.write = write;
      for (const k of Object.keys(settings)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
    const logged = lines.join('').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    // The metric filter of deploy/stack.js: { ($.action = "pass") && ($.result = "failed") }, dimension Cluster = $.cluster.
    const matching = logged.filter((l) => l.action === 'pass' && l.result === 'failed');
    expect(matching).toHaveLength(1);
    expect(matching[0].cluster).toBe(settings.CLUSTER_NAME);
  }, 60_000);
});
