// The CloudFormation that serverless.yml adds to the functions, computed from the environment
// of `serverless package` / `deploy` (the same variables the functions are configured with):
//
// - the settings, from the deployment's committed settings file (deploy/settings-file.ts:
//   SETTINGS_FILE or deploy/settings/<deployment>.yaml) and the environment, which may not
//   contradict the file;
// - the settings, checked with the functions' own rules (lib/config.ts) before anything is
//   packaged, so a deploy with GIT_URL or CLUSTER_NAME missing fails and names them;
// - the state bucket (unless S3_BUCKET names an existing one): versioned, encrypted, private,
//   TLS only, old versions of the lease and state expired, webhook delivery records expired;
// - one IAM role per function with only what it does: S3 read or read/write under its
//   cluster's part of the prefix (the webhook: its own records only), the bucket's KMS key
//   through S3 when it has one, the parameters or secrets of the settings it reads, the cluster
//   (an EKS access entry, eks:DescribeCluster when the endpoint is not given) for those that
//   talk to it; the partition, region and account from the stack;
// - each function's environment: only the settings it reads (functionEnvironment below);
// - the VPC, for the functions that talk to the cluster only;
// - alarms on failed passes, on every function's errors, on asynchronous invocations that
//   failed (sent to a queue) and on no successful pass for a while, with an optional SNS topic.
const { require: tsRequire } = require('tsx/cjs/api');

const env = (name, fallback = '') => (process.env[name] ?? '').trim() || fallback;

/** The Kubernetes users the functions' roles are mapped to; `dsgitops rbac` and deploy/rbac.yaml bind them. */
const KUBERNETES_USER = 'daemonset-gitops';
const KUBERNETES_READER = 'daemonset-gitops-reader';

/**
 * What each function does, and so may do. `memory` (MB) comes from measurements (docs/aws.md,
 * "Memory"): a pass's peak RSS at 2,000 nodes with twice its margin, the small functions
 * sized for their cold start rather than their memory.
 */
const FUNCTIONS = {
  reconcile: { s3: 'write', cluster: true, git: true, memory: 1024 },
  rollback: { s3: 'write', cluster: true, git: true, memory: 1024 },
  unpin: { s3: 'write', cluster: true, git: false, memory: 512 },
  pause: { s3: 'write', cluster: true, git: false, memory: 512 },
  resume: { s3: 'write', cluster: true, git: false, memory: 512 },
  status: { s3: 'read', cluster: true, git: false, clusterReadOnly: true, memory: 512 },
  history: { s3: 'read', cluster: false, git: false, memory: 512 },
  // Records deliveries and push.json under its cluster's webhook/ (and removes a delivery it could not act on), starts reconcile.
  webhook: { s3: 'webhook', cluster: false, git: false, webhook: true, memory: 512 },
};

/**
 * The fleet's functions (FLEET_FILE set at deploy): the durable promotion, the per-cluster
 * pass and the operators' function. The pass's own role reaches no S3 and no cluster: it
 * assumes the role of the cluster it is asked to reconcile (FLEET_CLUSTERS, one role each,
 * scoped to that cluster's prefix and mapped to that cluster only).
 */
const FLEET_FUNCTIONS = {
  promote: { s3: 'fleet', cluster: false, git: true, fleet: true, durable: true, memory: 512 },
  fleetPass: { s3: 'none', cluster: true, git: true, fleet: true, assumesClusterRoles: true, memory: 1024 },
  fleet: { s3: 'fleet', cluster: false, git: true, fleet: true, startsPromotion: true, memory: 512 },
};

/** How long one promotion's durable execution may run in all (waits included), and how long its history is kept. */
const PROMOTION_EXECUTION_SECONDS = 30 * 24 * 3600;
const PROMOTION_RETENTION_DAYS = 30;

/** A cluster of the fleet file, a deployment: the fleet file's own rule for names. */
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Lambda refuses a function whose environment (names and values) is larger than this. */
const ENVIRONMENT_LIMIT_BYTES = 4096;

/**
 * Settings too large for that limit when given as values (a CA bundle, armored keys): each may
 * be kept in SSM Parameter Store (NAME_PARAMETER) or Secrets Manager (NAME_SECRET_ARN)
 * instead, read by the function at start (lib/config.ts, withStoredSettings).
 */
const STORED = {
  EKS_CLUSTER_CA: 'cluster',
  TRUSTED_GPG_KEYS: 'git',
  TRUSTED_SSH_KEYS: 'git',
};

/** The settings each kind of function reads (lib/config.ts); every function reads `base`. */
const SETTINGS = {
  // The configuration loader of every function requires these.
  base: ['GIT_URL', 'S3_PREFIX', 'S3_ENDPOINT', 'CLUSTER_NAME', 'ALLOWED_NAMESPACES', 'S3_TIMEOUT_SECONDS'],
  cluster: ['KUBECONFIG', 'EKS_CLUSTER_NAME', 'EKS_CLUSTER_ENDPOINT', 'EKS_CLUSTER_CA', 'KUBE_TIMEOUT_SECONDS', 'ALLOWED_KINDS', 'DEFAULT_NAMESPACE',
    'SELF_HEAL', 'PRUNE', 'PROGRESS_DEADLINE_SECONDS', 'AUTO_ROLLBACK', 'LEASE_SECONDS', 'CONFIG_REVISIONS_KEPT'],
  git: ['GIT_REF', 'GIT_PATH', 'GIT_TOKEN', 'GIT_TIMEOUT_SECONDS', 'MAX_MANIFEST_BYTES', 'VERIFY_COMMITS', 'TRUSTED_GPG_KEYS', 'TRUSTED_SSH_KEYS',
    'RENDER_ALLOW_REMOTE', 'RENDER_TIMEOUT_SECONDS', 'RENDER_MAX_BYTES'],
  webhook: ['GIT_REF', 'WEBHOOK_MAX_BODY_BYTES', 'WEBHOOK_SECRET'],
  fleet: ['FLEET_FILE', 'FLEET_KUBECONFIGS', 'STS_ENDPOINT'],
};
const SECRET_SETTINGS = new Set(['GIT_TOKEN', 'WEBHOOK_SECRET', ...Object.keys(STORED)]);

const capitalised = (name) => name[0].toUpperCase() + name.slice(1);
const DEFAULT_KINDS = 'DaemonSet,ConfigMap,Secret,ServiceAccount,Role,RoleBinding,Service';
const roleId = (fn) => `${capitalised(fn)}Role`;
const sub = (text) => ({ 'Fn::Sub': text });

/** The deployment's settings file, read once and merged into the environment every check below reads. */
let fromFile;
function applySettingsFile() {
  if (!fromFile) {
    const { loadDeploySettings } = tsRequire('./settings-file.ts', __filename);
    fromFile = loadDeploySettings(require('node:path').join(__dirname, '..'), process.env);
    // The shell agrees with the file wherever both set a value (or a problem names it): the file's values stand.
    for (const [name, value] of Object.entries(fromFile.values)) process.env[name] = value;
  }
  return fromFile;
}

/**
 * The settings, validated as the functions will validate them at start. The bucket may be
 * left out (the stack then creates it); everything else the functions require must be set.
 */
function settings() {
  const file = applySettingsFile();
  const problems = [...file.problems];
  const { loadConfig } = tsRequire('../lib/config.ts', __filename);
  try {
    loadConfig({ ...process.env, ...storedPlaceholders(), S3_BUCKET: env('S3_BUCKET', 'created-by-the-stack') });
  } catch (err) {
    problems.push(...String(err.message).split('\n').slice(1).map((l) => l.replace(/^\s*- /, '')));
  }
  const building = process.argv.slice(2).some((a) => a === 'package' || a === 'deploy');
  if (building && env('GIT_TOKEN')) {
    // `serverless invoke local` may use a plain token; a deployment would write it into the
    // template, the function's configuration and the packaged state.
    problems.push('GIT_TOKEN would be written into the CloudFormation template and the functions\' configuration: keep the token in SSM Parameter Store (GIT_TOKEN_PARAMETER) or Secrets Manager (GIT_TOKEN_SECRET_ARN) and unset GIT_TOKEN');
  }
  if (building && env('WEBHOOK_SECRET')) {
    problems.push('WEBHOOK_SECRET would be written into the CloudFormation template and the webhook\'s configuration: keep it in SSM Parameter Store (WEBHOOK_SECRET_PARAMETER) or Secrets Manager (WEBHOOK_SECRET_SECRET_ARN) and unset WEBHOOK_SECRET');
  }
  if (!env('EKS_CLUSTER_NAME') && !env('KUBECONFIG')) {
    problems.push('EKS_CLUSTER_NAME is required: the EKS cluster the functions sign in to with their IAM roles (or KUBECONFIG, a kubeconfig file packaged with the functions)');
  }
  const whole = (name, fallback, min, max) => {
    const v = env(name);
    if (!v) return fallback;
    if (Number.isInteger(Number(v)) && Number(v) >= min && Number(v) <= max) return Number(v);
    problems.push(`${name}=${v} must be a whole number from ${min} to ${max}`);
    return fallback;
  };
  const retentionDays = whole('STATE_VERSION_RETENTION_DAYS', 30, 1, 3650);
  const deliveryRetentionDays = whole('WEBHOOK_DELIVERY_RETENTION_DAYS', 30, 1, 3650);
  const passAlarmMinutes = whole('PASS_ALARM_MINUTES', 30, 10, 1440);
  const concurrency = (name, fallback) => (env(name) === 'none' ? undefined : whole(name, fallback, 1, 1000));
  const topic = env('ALARM_TOPIC_ARN');
  if (topic && !/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+$/.test(topic)) problems.push(`ALARM_TOPIC_ARN=${topic} is not an SNS topic ARN`);
  const kmsKey = (name) => {
    const v = env(name);
    if (v && !/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/.test(v)) problems.push(`${name}=${v} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID; an alias cannot be granted)`);
    return v;
  };
  const s3KmsKey = kmsKey('S3_KMS_KEY_ARN');
  if (s3KmsKey && !env('S3_BUCKET')) problems.push('S3_KMS_KEY_ARN is for an existing bucket (S3_BUCKET) encrypted with that key: the bucket the stack creates uses S3-managed keys; unset it or name the bucket');
  const secretsKmsKey = kmsKey('SECRETS_KMS_KEY_ARN');
  // "none" says, in so many words, that the functions run outside any VPC.
  const noVpc = env('VPC_SUBNET_IDS') === 'none';
  const subnets = noVpc ? [] : list('VPC_SUBNET_IDS');
  const groups = list('VPC_SECURITY_GROUP_IDS');
  if (noVpc && groups.length > 0) problems.push('VPC_SUBNET_IDS=none but VPC_SECURITY_GROUP_IDS is set: name the subnets too, or unset the groups');
  if (building && !file.file) {
    // A shell that misses a safety setting must not deploy it open: each is said explicitly.
    if (!env('ALLOWED_KINDS')) problems.push(`ALLOWED_KINDS is required to deploy (a deployment never falls back to a default): the kinds the passes may apply, e.g. ALLOWED_KINDS=${DEFAULT_KINDS}`);
    if (!noVpc && subnets.length === 0 && groups.length === 0) problems.push('VPC_SUBNET_IDS and VPC_SECURITY_GROUP_IDS are required to deploy: the private subnets and security group of the functions that talk to the cluster, or VPC_SUBNET_IDS=none for a cluster with a public endpoint (a redeploy must not drop a VPC by omission)');
  }
  const deployment = env('DEPLOYMENT_NAME', env('CLUSTER_NAME'));
  if (deployment && (!NAME.test(deployment) || deployment.length > 24)) problems.push(`DEPLOYMENT_NAME=${deployment} must be lower-case letters, digits and dashes, at most 24 characters: it names the stack and every function (default: CLUSTER_NAME)`);
  const fleetFile = env('FLEET_FILE');
  const fleetClusters = [];
  for (const item of list('FLEET_CLUSTERS')) {
    const [name, to, ...rest] = item.split('=');
    const roleArn = to && /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/.test(to) ? to : undefined;
    if (!NAME.test(name) || rest.length > 0 || (to !== undefined && !roleArn && !/^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/.test(to))) problems.push(`FLEET_CLUSTERS contains ${item}: write NAME=EKS_CLUSTER (its EKS cluster in this account and region), NAME=ROLE_ARN (the fleet file's eks.roleArn of a cluster in another account) or NAME alone (reached by a kubeconfig)`);
    else if (fleetClusters.some((c) => c.name === name)) problems.push(`FLEET_CLUSTERS names ${name} twice`);
    else fleetClusters.push({ name, ...(roleArn ? { roleArn } : to ? { eks: to } : {}) });
  }
  if (fleetFile && fleetClusters.length === 0) problems.push('FLEET_FILE is set but FLEET_CLUSTERS is not: list the fleet file\'s clusters (comma-separated; NAME=EKS_CLUSTER for those reached by EKS), each gets a role scoped to its own prefix');
  if (!fleetFile && fleetClusters.length > 0) problems.push('FLEET_CLUSTERS is set but FLEET_FILE is not: name the fleet file (e.g. fleet.yaml), or unset FLEET_CLUSTERS for a single cluster');
  const ids = new Map();
  for (const c of fleetClusters) {
    const id = pascal(c.name);
    if (ids.has(id)) problems.push(`FLEET_CLUSTERS: ${ids.get(id)} and ${c.name} would get the same resource names; rename one`);
    ids.set(id, c.name);
  }
  if (subnets.length > 0 && groups.length === 0) problems.push(`VPC_SUBNET_IDS is set but VPC_SECURITY_GROUP_IDS is not: Lambda refuses a VPC configuration without security groups; name a group the cluster's security group accepts on 443 (comma-separated ids, sg-…)`);
  if (groups.length > 0 && subnets.length === 0) problems.push('VPC_SECURITY_GROUP_IDS is set but VPC_SUBNET_IDS is not: name the private subnets the functions run in (comma-separated ids, subnet-…), or unset both');
  for (const id of subnets) if (!/^subnet-[0-9a-f]{8,17}$/.test(id)) problems.push(`VPC_SUBNET_IDS contains ${id}, which is not a subnet id (subnet-…)`);
  for (const id of groups) if (!/^sg-[0-9a-f]{8,17}$/.test(id)) problems.push(`VPC_SECURITY_GROUP_IDS contains ${id}, which is not a security group id (sg-…)`);
  const architecture = env('LAMBDA_ARCHITECTURE', 'x86_64');
  if (architecture !== 'x86_64' && architecture !== 'arm64') problems.push(`LAMBDA_ARCHITECTURE=${architecture}: use x86_64 (the default) or arm64 (Graviton)`);
  if (problems.length > 0) {
    throw new Error(`daemonset-gitops cannot be deployed with these settings (${file.file ? `${file.file} and the ` : ''}environment of serverless package/deploy):\n  - ${problems.join('\n  - ')}`);
  }
  return {
    bucket: env('S3_BUCKET'),
    prefix: env('S3_PREFIX', 'daemonset-gitops').replace(/^\/+|\/+$/g, ''),
    eks: env('EKS_CLUSTER_NAME'),
    eksEndpointGiven: Boolean(env('EKS_CLUSTER_ENDPOINT')),
    secretsKmsKey,
    s3KmsKey,
    retentionDays,
    deliveryRetentionDays,
    passAlarmMinutes,
    // In a fleet the per-cluster passes are scheduled instead (fleetPass, one schedule per cluster).
    scheduled: env('RECONCILE_SCHEDULE_ENABLED', 'true') !== 'false' && !fleetFile,
    reconcileConcurrency: concurrency('RECONCILE_CONCURRENCY', 2),
    webhookConcurrency: concurrency('WEBHOOK_CONCURRENCY', 10),
    alarmTopic: topic,
    alarmEmail: env('ALARM_EMAIL'),
    vpc: subnets.length > 0 ? { subnetIds: subnets, securityGroupIds: groups } : null,
    architecture,
    clusterName: env('CLUSTER_NAME'),
    deployment,
    fleet: fleetFile ? { file: fleetFile, clusters: fleetClusters } : null,
  };
}

/** prod-a -> ProdA, for CloudFormation logical ids. */
function pascal(name) {
  return name.split('-').map(capitalised).join('');
}

/** The role a fleet cluster's pass assumes: named, so that the pass can find it from its cluster's name. */
function clusterRoleName(s, stage, cluster) {
  return `dsgitops-${s.deployment}-${stage}-${cluster}`;
}

function list(name) {
  return env(name).split(',').map((x) => x.trim()).filter(Boolean);
}

/**
 * A stored setting (NAME_PARAMETER or NAME_SECRET_ARN) is checked when the function reads
 * it; for the checks here it stands for a value of the right shape.
 */
function storedPlaceholders() {
  const shapes = {
    EKS_CLUSTER_CA: Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64'),
    TRUSTED_GPG_KEYS: '-----BEGIN PGP PUBLIC KEY BLOCK-----',
    TRUSTED_SSH_KEYS: 'ssh-ed25519 stored',
  };
  const out = {};
  for (const name of Object.keys(STORED)) {
    if (!env(name) && (env(`${name}_PARAMETER`) || env(`${name}_SECRET_ARN`))) out[name] = shapes[name];
  }
  return out;
}

/** Where each secret or stored setting of a function is kept: SSM parameters and Secrets Manager secrets. */
function storedSources(fn, what) {
  const names = [];
  if (what.git) names.push('GIT_TOKEN', 'TRUSTED_GPG_KEYS', 'TRUSTED_SSH_KEYS');
  if (what.cluster) names.push('EKS_CLUSTER_CA');
  if (what.webhook) names.push('WEBHOOK_SECRET');
  return {
    parameters: names.map((n) => env(`${n}_PARAMETER`)).filter(Boolean),
    secrets: names.map((n) => env(`${n}_SECRET_ARN`)).filter(Boolean),
  };
}

function bucketArn(s) {
  return s.bucket ? sub(`arn:\${AWS::Partition}:s3:::${s.bucket}`) : { 'Fn::GetAtt': ['StateBucket', 'Arn'] };
}

/** The cluster's own part of the prefix: each role reaches its cluster's objects only. */
function clusterRoot(s) {
  return s.prefix ? `${s.prefix}/${s.clusterName}` : s.clusterName;
}

/** A cluster's part of the prefix. */
function prefixed(s, cluster) {
  return s.prefix ? `${s.prefix}/${cluster}` : cluster;
}

const clusterRoleId = (cluster) => `FleetCluster${pascal(cluster)}Role`;

/** The promotion's durable alias (osls names it `durable`): a durable function is invoked qualified. */
function promoteAliasArn(names) {
  return sub(`arn:\${AWS::Partition}:lambda:\${AWS::Region}:\${AWS::AccountId}:function:${names.promote}:durable`);
}

function roleDescription(fn, what, s) {
  if (what.s3 === 'fleet') return `daemonset-gitops ${fn}: reads and writes the fleet's promotion records and each cluster's promotion.json, reads the Git token${what.durable ? ', checkpoints its durable executions, invokes the fleet pass' : ', starts the promotion'}`;
  if (what.s3 === 'none') return `daemonset-gitops ${fn}: assumes the role of the cluster it reconciles (no S3 or cluster of its own), reads the Git token`;
  return `daemonset-gitops ${fn}: ${what.s3 === 'write' ? 'reads and writes' : what.s3 === 'read' ? 'reads' : 'writes its delivery records under'} its cluster's S3 prefix${what.cluster ? ', talks to the cluster' : ''}${what.git ? ', reads the Git token' : ''}${what.webhook ? `, reads the webhook secret, starts ${s.fleet ? 'the promotion' : 'reconcile'}` : ''}${what.actsOnClusters ? ', assumes the role of the fleet cluster its event names' : ''}`;
}

/** One fleet cluster's role: assumed by the fleet pass and the per-DaemonSet functions only, its cluster's prefix only, its cluster only. */
function clusterRole(cluster, s, stage) {
  const statements = [
    { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: { 'Fn::Join': ['', [bucketArn(s), `/${prefixed(s, cluster.name)}/*`]] } },
    { Effect: 'Allow', Action: ['s3:ListBucket'], Resource: bucketArn(s), Condition: { StringLike: { 's3:prefix': [`${prefixed(s, cluster.name)}/*`] } } },
  ];
  if (s.s3KmsKey) statements.push({ Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: s.s3KmsKey, Condition: viaService('s3') });
  if (cluster.eks) statements.push({ Effect: 'Allow', Action: ['eks:DescribeCluster'], Resource: sub(`arn:\${AWS::Partition}:eks:\${AWS::Region}:\${AWS::AccountId}:cluster/${cluster.eks}`) });
  // A cluster of another account: its pass signs in as the fleet file's eks.roleArn, which must trust this role.
  if (cluster.roleArn) statements.push({ Effect: 'Allow', Action: ['sts:AssumeRole'], Resource: cluster.roleArn });
  return {
    Type: 'AWS::IAM::Role',
    Properties: {
      RoleName: clusterRoleName(s, stage, cluster.name),
      Description: `daemonset-gitops fleet cluster ${cluster.name}: its pass reads and writes ${prefixed(s, cluster.name)}/ only${cluster.eks ? ` and signs in to ${cluster.eks} only` : ''}${cluster.roleArn ? ` and assumes ${cluster.roleArn} only` : ''}`,
      AssumeRolePolicyDocument: {
        Version: '2012-10-17',
        // The fleet pass, and the per-DaemonSet functions acting on this cluster (a rollback on it).
        Statement: [{ Effect: 'Allow', Principal: { AWS: ['FleetPassRole', ...PER_CLUSTER.map(roleId)].map((r) => ({ 'Fn::GetAtt': [r, 'Arn'] })) }, Action: 'sts:AssumeRole' }],
      },
      Policies: [{ PolicyName: `cluster-${cluster.name}`, PolicyDocument: { Version: '2012-10-17', Statement: statements } }],
    },
  };
}

function objectsArn(s, under = '') {
  return { 'Fn::Join': ['', [bucketArn(s), `/${clusterRoot(s)}/${under}*`]] };
}

function parameterArn(name) {
  return name.startsWith('arn:') ? name : sub(`arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter/${name.replace(/^\//, '')}`);
}

/** Use of a KMS key through one service only (the SSM, Secrets Manager or S3 call that needs it). */
function viaService(...services) {
  return { StringEquals: { 'kms:ViaService': services.map((svc) => sub(`${svc}.\${AWS::Region}.amazonaws.com`)) } };
}

/**
 * The network interface statements a function in a VPC needs (those of
 * AWSLambdaVPCAccessExecutionRole without its logs:* on every log group).
 */
const NETWORK_INTERFACE_ACTIONS = ['ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses'];

function roleStatements(fn, what, s, names) {
  const statements = [
    {
      Effect: 'Allow',
      Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      Resource: { 'Fn::GetAtt': [`${capitalised(fn)}LogGroup`, 'Arn'] },
    },
  ];
  if (what.s3 === 'fleet') {
    // The promotion's own records, and each cluster's promotion record (the commit promoted to it): nothing else of a cluster's prefix.
    const fleetRoot = s.prefix ? `${s.prefix}/fleet` : 'fleet';
    statements.push({ Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: { 'Fn::Join': ['', [bucketArn(s), `/${fleetRoot}/*`]] } });
    statements.push({ Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: s.fleet.clusters.map((c) => ({ 'Fn::Join': ['', [bucketArn(s), `/${prefixed(s, c.name)}/promotion.json`]] })) });
    statements.push({ Effect: 'Allow', Action: ['s3:ListBucket'], Resource: bucketArn(s), Condition: { StringLike: { 's3:prefix': [`${fleetRoot}/*`] } } });
  } else if (what.s3 === 'none') {
    // No S3 of its own: the pass works with the role of the cluster it reconciles.
  } else if (what.s3 === 'webhook') {
    // Its delivery records and push.json: all that starting a pass needs.
    statements.push({ Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'], Resource: objectsArn(s, 'webhook/') });
    statements.push({ Effect: 'Allow', Action: ['s3:ListBucket'], Resource: bucketArn(s), Condition: { StringLike: { 's3:prefix': [`${clusterRoot(s)}/webhook/*`] } } });
  } else {
    statements.push({ Effect: 'Allow', Action: what.s3 === 'write' ? ['s3:GetObject', 's3:PutObject'] : ['s3:GetObject'], Resource: objectsArn(s) });
    statements.push({ Effect: 'Allow', Action: ['s3:ListBucket'], Resource: bucketArn(s), Condition: { StringLike: { 's3:prefix': [`${clusterRoot(s)}/*`] } } });
  }
  if (s.s3KmsKey) {
    // The bucket's default encryption is SSE-KMS with this key: reading needs Decrypt, writing GenerateDataKey.
    const actions = what.s3 === 'read' ? ['kms:Decrypt'] : ['kms:Decrypt', 'kms:GenerateDataKey'];
    statements.push({ Effect: 'Allow', Action: actions, Resource: s.s3KmsKey, Condition: viaService('s3') });
  }
  const stored = storedSources(fn, what);
  if (stored.parameters.length > 0) statements.push({ Effect: 'Allow', Action: ['ssm:GetParameter'], Resource: stored.parameters.map(parameterArn) });
  if (stored.secrets.length > 0) statements.push({ Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: stored.secrets });
  if (s.secretsKmsKey && stored.parameters.length + stored.secrets.length > 0) {
    const services = [...(stored.parameters.length > 0 ? ['ssm'] : []), ...(stored.secrets.length > 0 ? ['secretsmanager'] : [])];
    statements.push({ Effect: 'Allow', Action: ['kms:Decrypt'], Resource: s.secretsKmsKey, Condition: viaService(...services) });
  }
  if (what.webhook) {
    // In a fleet a push starts the promotion (its durable alias), not a pass of one cluster.
    statements.push({ Effect: 'Allow', Action: ['lambda:InvokeFunction'], Resource: s.fleet ? promoteAliasArn(names) : { 'Fn::GetAtt': ['ReconcileLambdaFunction', 'Arn'] } });
  }
  if (what.startsPromotion) statements.push({ Effect: 'Allow', Action: ['lambda:InvokeFunction'], Resource: promoteAliasArn(names) });
  if (what.durable) {
    // Checkpoints of its own executions (every version: the ARN of an execution is qualified), and the durable invokes of the pass.
    statements.push({ Effect: 'Allow', Action: ['lambda:CheckpointDurableExecution', 'lambda:GetDurableExecutionState'], Resource: sub(`arn:\${AWS::Partition}:lambda:\${AWS::Region}:\${AWS::AccountId}:function:${names.promote}:*/durable-execution/*`) });
    statements.push({ Effect: 'Allow', Action: ['lambda:InvokeFunction'], Resource: [{ 'Fn::GetAtt': ['FleetPassLambdaFunction', 'Arn'] }, { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['FleetPassLambdaFunction', 'Arn'] }, ':*']] }] });
  }
  if (what.assumesClusterRoles || what.actsOnClusters) {
    // By name, not GetAtt: the cluster roles trust this role, which would make a cycle.
    statements.push({ Effect: 'Allow', Action: ['sts:AssumeRole'], Resource: s.fleet.clusters.map((c) => sub(`arn:\${AWS::Partition}:iam::\${AWS::AccountId}:role/${clusterRoleName(s, names.stage, c.name)}`)) });
  }
  // An asynchronous invocation that failed is sent to the queue (its onFailure destination); a durable function has no destinations.
  if (!what.durable) statements.push({ Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: { 'Fn::GetAtt': ['FailedInvocationsQueue', 'Arn'] } });
  if (what.cluster && s.eks && !s.eksEndpointGiven && !what.assumesClusterRoles) {
    statements.push({ Effect: 'Allow', Action: ['eks:DescribeCluster'], Resource: sub(`arn:\${AWS::Partition}:eks:\${AWS::Region}:\${AWS::AccountId}:cluster/${s.eks}`) });
  }
  if (what.cluster && s.vpc) {
    // Describe and create take no resource-level condition that would narrow them usefully; Lambda's own managed policy grants them on * too.
    statements.push({ Effect: 'Allow', Action: NETWORK_INTERFACE_ACTIONS, Resource: '*' });
  }
  return statements;
}

function role(fn, what, s, names) {
  return {
    Type: 'AWS::IAM::Role',
    Properties: {
      Description: roleDescription(fn, what, s),
      AssumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
      },
      Policies: [{ PolicyName: fn, PolicyDocument: { Version: '2012-10-17', Statement: roleStatements(fn, what, s, names) } }],
    },
  };
}

function bucketResources(s) {
  if (s.bucket) return {};
  return {
    StateBucket: {
      Type: 'AWS::S3::Bucket',
      // The revisions are the history rollbacks need: removing the stack keeps them.
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        // The lease and the revision numbers rely on conditional writes; versions keep every state written.
        VersioningConfiguration: { Status: 'Enabled' },
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
        LifecycleConfiguration: {
          Rules: [
            {
              // Every lease renewal and state update leaves a version behind; current objects are never expired.
              Id: 'expire-noncurrent-versions',
              Status: 'Enabled',
              Prefix: `${s.prefix}/`,
              NoncurrentVersionExpiration: { NoncurrentDays: s.retentionDays },
              AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
            },
            { Id: 'remove-expired-delete-markers', Status: 'Enabled', Prefix: `${s.prefix}/`, ExpiredObjectDeleteMarker: true },
            {
              // A delivery record only has to outlive the provider's redeliveries (and replays of the same signed body).
              Id: 'expire-webhook-deliveries',
              Status: 'Enabled',
              Prefix: `${clusterRoot(s)}/webhook/deliveries/`,
              ExpirationInDays: s.deliveryRetentionDays,
              NoncurrentVersionExpiration: { NoncurrentDays: 1 },
            },
          ],
        },
      },
    },
    StateBucketPolicy: {
      Type: 'AWS::S3::BucketPolicy',
      Properties: {
        Bucket: { Ref: 'StateBucket' },
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'DenyWithoutTLS',
              Effect: 'Deny',
              Principal: '*',
              Action: 's3:*',
              Resource: [{ 'Fn::GetAtt': ['StateBucket', 'Arn'] }, { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['StateBucket', 'Arn'] }, '/*']] }],
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            },
          ],
        },
      },
    },
  };
}

/** The CloudWatch namespace of the functions' own metrics (lib/metrics.ts writes them). */
const METRICS_NAMESPACE = 'daemonset-gitops';

/** An alarm that goes off when the metric counts one or more in 15 minutes, and clears when it counts none. */
function anyCountAlarm(description, namespace, metricName, dimensions, actions) {
  return {
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmDescription: description,
      Namespace: namespace,
      MetricName: metricName,
      Dimensions: dimensions,
      Statistic: 'Sum',
      Period: 900,
      EvaluationPeriods: 1,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      ...actions,
    },
  };
}

function alarmResources(s) {
  const resources = {};
  let topic = s.alarmTopic || undefined;
  if (!topic && s.alarmEmail) {
    resources.AlarmTopic = { Type: 'AWS::SNS::Topic', Properties: { DisplayName: 'daemonset-gitops alarms' } };
    resources.AlarmEmailSubscription = { Type: 'AWS::SNS::Subscription', Properties: { TopicArn: { Ref: 'AlarmTopic' }, Protocol: 'email', Endpoint: s.alarmEmail } };
    topic = { Ref: 'AlarmTopic' };
  }
  const actions = topic ? { AlarmActions: [topic], OKActions: [topic] } : {};
  // Every pass's end is a metric in CloudWatch's embedded metric format (lib/metrics.ts), per cluster.
  resources.FailedPassesAlarm = anyCountAlarm(
    `daemonset-gitops: a reconcile pass of cluster ${s.clusterName} failed (its report and log say why)`,
    METRICS_NAMESPACE, 'FailedPasses', [{ Name: 'Cluster', Value: s.clusterName }], actions,
  );
  for (const fn of Object.keys(deployedFunctions(s))) {
    resources[`${capitalised(fn)}ErrorsAlarm`] = anyCountAlarm(
      `daemonset-gitops: the ${fn} function of cluster ${s.clusterName} ended in an error (configuration, timeout, crash${fn === 'reconcile' ? ', a failed pass' : ''})`,
      'AWS/Lambda', 'Errors', [{ Name: 'FunctionName', Value: { Ref: `${capitalised(fn)}LambdaFunction` } }], actions,
    );
  }
  // Asynchronous invocations that failed (a rollback, a pass started by a push) or were too old to run.
  resources.FailedInvocationsQueue = {
    Type: 'AWS::SQS::Queue',
    Properties: { MessageRetentionPeriod: 1_209_600, SqsManagedSseEnabled: true },
  };
  resources.FailedInvocationsQueuePolicy = {
    Type: 'AWS::SQS::QueuePolicy',
    Properties: {
      Queues: [{ Ref: 'FailedInvocationsQueue' }],
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [{ Sid: 'DenyWithoutTLS', Effect: 'Deny', Principal: '*', Action: 'sqs:*', Resource: { 'Fn::GetAtt': ['FailedInvocationsQueue', 'Arn'] }, Condition: { Bool: { 'aws:SecureTransport': 'false' } } }],
      },
    },
  };
  resources.FailedInvocationsAlarm = {
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmDescription: `daemonset-gitops: an asynchronous invocation for cluster ${s.clusterName} failed or expired; the queue's message holds the request and the error`,
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['FailedInvocationsQueue', 'QueueName'] } }],
      Statistic: 'Maximum',
      Period: 300,
      EvaluationPeriods: 1,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      ...actions,
    },
  };
  if (s.scheduled) {
    // Missing data is the point: a schedule that stopped, a function that no longer starts.
    resources.NoSuccessfulPassAlarm = {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: {
        AlarmDescription: `daemonset-gitops: no reconcile pass of cluster ${s.clusterName} succeeded in ${s.passAlarmMinutes} minutes (schedule stopped, every pass failing, or the function not starting)`,
        Namespace: METRICS_NAMESPACE,
        MetricName: 'SuccessfulPasses',
        Dimensions: [{ Name: 'Cluster', Value: s.clusterName }],
        Statistic: 'Sum',
        Period: s.passAlarmMinutes * 60,
        EvaluationPeriods: 1,
        Threshold: 1,
        ComparisonOperator: 'LessThanThreshold',
        TreatMissingData: 'breaching',
        ...actions,
      },
    };
  }
  return resources;
}

function accessEntries(s) {
  const resources = {};
  for (const c of s.fleet?.clusters ?? []) {
    if (!c.eks) continue;
    // Each fleet cluster's role is mapped in its own cluster only.
    resources[`FleetCluster${pascal(c.name)}AccessEntry`] = {
      Type: 'AWS::EKS::AccessEntry',
      Properties: { ClusterName: c.eks, PrincipalArn: { 'Fn::GetAtt': [clusterRoleId(c.name), 'Arn'] }, Username: KUBERNETES_USER, Type: 'STANDARD' },
    };
  }
  if (!s.eks) return resources;
  for (const [fn, what] of Object.entries(FUNCTIONS)) {
    if (!what.cluster) continue;
    // Maps the function's role to the Kubernetes user the RBAC binds (the cluster's
    // authentication mode must be API or API_AND_CONFIG_MAP).
    resources[`${capitalised(fn)}AccessEntry`] = {
      Type: 'AWS::EKS::AccessEntry',
      Properties: { ClusterName: s.eks, PrincipalArn: { 'Fn::GetAtt': [roleId(fn), 'Arn'] }, Username: what.clusterReadOnly ? KUBERNETES_READER : KUBERNETES_USER, Type: 'STANDARD' },
    };
  }
  return resources;
}

/** The per-DaemonSet functions, which in a fleet act on the cluster their event names, as that cluster's role (lib/fleet/cluster-target.ts). */
const PER_CLUSTER = ['rollback', 'history', 'status', 'unpin', 'pause', 'resume'];

/** The single-cluster functions as this deployment has them: in a fleet the per-DaemonSet ones read the fleet file from Git and assume the clusters' roles. */
function singleClusterFunctions(s) {
  if (!s.fleet) return FUNCTIONS;
  return Object.fromEntries(Object.entries(FUNCTIONS).map(([fn, what]) => [fn, PER_CLUSTER.includes(fn) ? { ...what, git: true, actsOnClusters: true } : what]));
}

/** The functions of this deployment: the single-cluster ones, and the fleet's when FLEET_FILE is set. */
function deployedFunctions(s) {
  return s.fleet ? { ...singleClusterFunctions(s), ...FLEET_FUNCTIONS } : FUNCTIONS;
}

/** The functions' names as the framework gives them (service-stage-function), and the stage. */
async function functionNames(resolveVariable) {
  const service = await resolveVariable('self:service');
  const stage = await resolveVariable('sls:stage');
  const names = { stage };
  for (const fn of [...Object.keys(FUNCTIONS), ...Object.keys(FLEET_FUNCTIONS)]) names[fn] = `${service}-${stage}-${fn}`;
  return names;
}

/** Resources beside the functions. */
module.exports.resources = async ({ resolveVariable }) => {
  const s = settings();
  const names = await functionNames(resolveVariable);
  const roles = Object.fromEntries(Object.entries(deployedFunctions(s)).map(([fn, what]) => [roleId(fn), role(fn, what, s, names)]));
  const clusterRoles = Object.fromEntries((s.fleet?.clusters ?? []).map((c) => [clusterRoleId(c.name), clusterRole(c, s, names.stage)]));
  for (const c of s.fleet?.clusters ?? []) {
    const roleName = clusterRoleName(s, names.stage, c.name);
    if (roleName.length > 64) throw new Error(`daemonset-gitops cannot be deployed with these settings: the role of fleet cluster ${c.name} would be named ${roleName}, over IAM's 64 characters: shorten DEPLOYMENT_NAME or the stage`);
  }
  return {
    Resources: { ...bucketResources(s), ...roles, ...clusterRoles, ...accessEntries(s), ...alarmResources(s) },
    Outputs: {
      StateBucketName: { Description: 'The bucket holding revisions, state and the lease', Value: s.bucket || { Ref: 'StateBucket' } },
    },
  };
};

/** The functions' S3_BUCKET: the bucket named, or the one the stack creates. */
module.exports.bucket = () => settings().bucket || { Ref: 'StateBucket' };

/** Bytes a value takes in a function's environment; a reference is counted at the longest it can resolve to. */
function environmentValueBytes(value) {
  if (typeof value === 'string') return Buffer.byteLength(value);
  // A bucket name is at most 63 characters; a function ARN about 140.
  if (value && value.Ref === 'StateBucket') return 63;
  return 200;
}

/** Lambda's count of an environment: its names and values. */
function environmentBytes(variables) {
  return Object.entries(variables).reduce((n, [k, v]) => n + Buffer.byteLength(k) + environmentValueBytes(v), 0);
}

/** The environment of one function: the settings it reads, as given to serverless package/deploy. */
function functionEnvironment(fn, what, s, reconcileName, fnNames) {
  // In a fleet every function sees FLEET_FILE: the single-cluster pass then applies nothing of the branch head (lib/fleet).
  const groups = ['base', ...(what.cluster ? ['cluster'] : []), ...(what.git ? ['git'] : []), ...(what.webhook ? ['webhook'] : []), ...(s.fleet ? ['fleet'] : [])];
  const names = [...new Set(groups.flatMap((g) => SETTINGS[g]))];
  const variables = { S3_BUCKET: s.bucket || { Ref: 'StateBucket' } };
  for (const name of names) {
    const variants = SECRET_SETTINGS.has(name) ? [name, `${name}_PARAMETER`, `${name}_SECRET_ARN`] : [name];
    for (const v of variants) if (env(v)) variables[v] = env(v);
  }
  if (what.git) variables.GIT_CACHE_DIR = '/tmp/daemonset-gitops/git';
  // The reconcile function's own name, as the framework names it (its role is granted that function's ARN).
  if (what.webhook && !s.fleet) variables.RECONCILE_FUNCTION_NAME = reconcileName;
  // The promotion, by its durable alias: a push (webhook) or `fleet resume` starts one.
  if ((what.webhook && s.fleet) || what.startsPromotion) variables.PROMOTE_FUNCTION_NAME = `${fnNames.promote}:durable`;
  if (what.durable) variables.FLEET_PASS_FUNCTION = fnNames.fleetPass;
  if (what.assumesClusterRoles || what.actsOnClusters) variables.FLEET_CLUSTER_ROLE_ARN = sub(`arn:\${AWS::Partition}:iam::\${AWS::AccountId}:role/${clusterRoleName(s, fnNames.stage, '{cluster}')}`);
  variables.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  return variables;
}

/**
 * What serverless.yml takes for each function: its environment (refused when larger than
 * Lambda's limit, naming the largest settings and where to keep them), memory, architecture,
 * VPC (only the functions that talk to the cluster), reserved concurrency.
 */
module.exports.functions = async ({ resolveVariable }) => {
  const s = settings();
  const names = await functionNames(resolveVariable);
  const reconcileName = names.reconcile;
  // The function that renders carries the renderers layer (deploy/renderers-layer.js), whose
  // kustomize and helm are x86_64 builds: it stays on x86_64 whatever LAMBDA_ARCHITECTURE says.
  const layered = (await resolveVariable("param:artifact, 'zip'")) === 'zip' ? new Set(['reconcile']) : new Set();
  const out = {};
  for (const [fn, what] of Object.entries(singleClusterFunctions(s))) {
    out[fn] = {
      // Checked when it is read, so that a problem is reported once, for the function it belongs to.
      get environment() {
        return checkedEnvironment(fn, functionEnvironment(fn, what, s, reconcileName, names));
      },
      memorySize: what.memory,
      architecture: layered.has(fn) ? 'x86_64' : s.architecture,
      vpc: what.cluster && s.vpc ? s.vpc : null,
      reservedConcurrency: fn === 'reconcile' ? (s.reconcileConcurrency ?? null) : fn === 'webhook' ? (s.webhookConcurrency ?? null) : null,
      onFailure: { type: 'sqs', arn: { 'Fn::GetAtt': ['FailedInvocationsQueue', 'Arn'] } },
    };
  }
  return out;
};

/** Whether the single-cluster reconcile function runs on its schedule (not in a fleet). */
module.exports.reconcileScheduled = () => settings().scheduled;

/**
 * The fleet's functions, each a whole serverless.yml function entry, or null without a fleet
 * (the framework then leaves it out).
 */
module.exports.fleet = async ({ resolveVariable }) => {
  const s = settings();
  if (!s.fleet) return { promote: null, fleetPass: null, fleet: null };
  const names = await functionNames(resolveVariable);
  const image = (await resolveVariable("param:artifact, 'zip'")) === 'image';
  const handlerFile = { promote: 'promote', fleetPass: 'fleet-pass', fleet: 'fleet' };
  const schedule = env('RECONCILE_SCHEDULE', 'rate(5 minutes)');
  const scheduled = env('RECONCILE_SCHEDULE_ENABLED', 'true') !== 'false';
  const onFailure = { type: 'sqs', arn: { 'Fn::GetAtt': ['FailedInvocationsQueue', 'Arn'] } };
  const common = (fn) => {
    const what = FLEET_FUNCTIONS[fn];
    return {
      ...(image ? { image: { name: 'dsgitops', command: [`handlers/${handlerFile[fn]}.handler`] } } : { handler: `handlers/${handlerFile[fn]}.handler` }),
      role: sub(`\${${roleId(fn)}.Arn}`),
      environment: checkedEnvironment(fn, functionEnvironment(fn, what, s, names.reconcile, names)),
      memorySize: what.memory,
      architecture: s.architecture,
      ...(what.cluster && s.vpc ? { vpc: s.vpc } : {}),
    };
  };
  return {
    promote: {
      ...common('promote'),
      description: 'The fleet\'s promotion (durable): the branch head carried wave by wave, each cluster by a durable invoke of fleetPass',
      // One invocation between two checkpoints; the whole promotion, waits included, may last durableConfig.executionTimeout.
      timeout: 900,
      durableConfig: { executionTimeout: PROMOTION_EXECUTION_SECONDS, retentionPeriodInDays: PROMOTION_RETENTION_DAYS },
    },
    fleetPass: {
      ...common('fleetPass'),
      description: 'One fleet cluster\'s pass at the commit promoted to it: {"cluster"}; assumes that cluster\'s role',
      timeout: 900,
      maximumRetryAttempts: 0,
      maximumEventAge: 900,
      destinations: { onFailure },
      // Scheduled per cluster: drift is corrected against the commit promoted to each.
      events: s.fleet.clusters.map((c) => ({ schedule: { rate: schedule, enabled: scheduled, input: { cluster: c.name } } })),
    },
    fleet: {
      ...common('fleet'),
      description: 'The fleet by invoke: {"action": "status" | "hold" | "resume" | "promote", ...}; resume starts the promotion',
      timeout: 300,
      maximumRetryAttempts: 0,
      destinations: { onFailure },
    },
  };
};

/** The environment, or an error naming the function, its size, its largest settings and where to keep them. */
function checkedEnvironment(fn, environment) {
  const bytes = environmentBytes(environment);
  if (bytes <= ENVIRONMENT_LIMIT_BYTES) return environment;
  const largest = Object.entries(environment).map(([k, v]) => [k, Buffer.byteLength(k) + environmentValueBytes(v)]).sort((x, y) => y[1] - x[1]).slice(0, 3);
  const movable = largest.map(([k]) => k).filter((k) => k in STORED);
  throw new Error(`daemonset-gitops cannot be deployed with these settings: the ${fn} function's environment would be ${bytes} bytes, over Lambda's limit of ${ENVIRONMENT_LIMIT_BYTES} (largest: ${largest.map(([k, n]) => `${k} ${n}`).join(', ')})`
    + (movable.length > 0 ? `: keep ${movable.join(' and ')} in SSM Parameter Store (${movable.map((k) => `${k}_PARAMETER`).join(', ')}) or Secrets Manager (${movable.map((k) => `${k}_SECRET_ARN`).join(', ')}) instead` : ''));
}

module.exports.FUNCTIONS = FUNCTIONS;
module.exports.STORED = STORED;
module.exports.environmentBytes = environmentBytes;
module.exports.ENVIRONMENT_LIMIT_BYTES = ENVIRONMENT_LIMIT_BYTES;
/** The deployment's name, part of the stack's and every function's name. */
module.exports.deployment = () => settings().deployment;
