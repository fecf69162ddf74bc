// The CloudFormation that serverless.yml adds to the functions, computed from the environment
// of `serverless package` / `deploy` (the same variables the functions are configured with):
//
// - the settings, checked with the functions' own rules (lib/config.ts) before anything is
//   packaged, so a deploy with GIT_URL or CLUSTER_NAME missing fails and names them;
// - the state bucket (unless S3_BUCKET names an existing one): versioned, encrypted, private,
//   TLS only, old versions of the lease and state expired;
// - one IAM role per function with only what it does: S3 read or read/write under the prefix,
//   the Git token's parameter or secret for the functions that fetch from Git, the cluster
//   (an EKS access entry, eks:DescribeCluster when the endpoint is not given) for those that
//   talk to it; the partition, region and account from the stack;
// - a metric filter and alarms on failed passes and on errors, with an optional SNS topic.
const { require: tsRequire } = require('tsx/cjs/api');

const env = (name, fallback = '') => (process.env[name] ?? '').trim() || fallback;

/** The Kubernetes users the functions' roles are mapped to; `dsgitops rbac` and deploy/rbac.yaml bind them. */
const KUBERNETES_USER = 'daemonset-gitops';
const KUBERNETES_READER = 'daemonset-gitops-reader';

/** What each function does, and so may do. */
const FUNCTIONS = {
  reconcile: { s3: 'write', cluster: true, git: true },
  rollback: { s3: 'write', cluster: true, git: true },
  unpin: { s3: 'write', cluster: true, git: false },
  pause: { s3: 'write', cluster: true, git: false },
  resume: { s3: 'write', cluster: true, git: false },
  status: { s3: 'read', cluster: true, git: false, clusterReadOnly: true },
  history: { s3: 'read', cluster: false, git: false },
  // Records delivery ids (and removes one when it could not start the pass), starts reconcile.
  webhook: { s3: 'write', cluster: false, git: false, webhook: true },
};

const capitalised = (name) => name[0].toUpperCase() + name.slice(1);
const roleId = (fn) => `${capitalised(fn)}Role`;
const sub = (text) => ({ 'Fn::Sub': text });

/**
 * The settings, validated as the functions will validate them at start. The bucket may be
 * left out (the stack then creates it); everything else the functions require must be set.
 */
function settings() {
  const problems = [];
  const { loadConfig } = tsRequire('../lib/config.ts', __filename);
  try {
    loadConfig({ ...process.env, S3_BUCKET: env('S3_BUCKET', 'created-by-the-stack') });
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
  for (const name of ['STATE_VERSION_RETENTION_DAYS']) {
    const v = env(name);
    if (v && !(Number.isInteger(Number(v)) && Number(v) >= 1 && Number(v) <= 3650)) problems.push(`${name}=${v} must be a whole number of days from 1 to 3650`);
  }
  const topic = env('ALARM_TOPIC_ARN');
  if (topic && !/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+$/.test(topic)) problems.push(`ALARM_TOPIC_ARN=${topic} is not an SNS topic ARN`);
  if (problems.length > 0) {
    throw new Error(`daemonset-gitops cannot be deployed with these settings (environment of serverless package/deploy):\n  - ${problems.join('\n  - ')}`);
  }
  return {
    bucket: env('S3_BUCKET'),
    prefix: env('S3_PREFIX', 'daemonset-gitops').replace(/^\/+|\/+$/g, ''),
    eks: env('EKS_CLUSTER_NAME'),
    eksEndpointGiven: Boolean(env('EKS_CLUSTER_ENDPOINT')),
    tokenParameter: env('GIT_TOKEN_PARAMETER'),
    tokenSecretArn: env('GIT_TOKEN_SECRET_ARN'),
    webhookParameter: env('WEBHOOK_SECRET_PARAMETER'),
    webhookSecretArn: env('WEBHOOK_SECRET_SECRET_ARN'),
    secretsKmsKey: env('SECRETS_KMS_KEY_ARN'),
    retentionDays: Number(env('STATE_VERSION_RETENTION_DAYS', '30')),
    alarmTopic: topic,
    alarmEmail: env('ALARM_EMAIL'),
    vpc: Boolean(env('VPC_SUBNET_IDS')),
    clusterName: env('CLUSTER_NAME'),
  };
}

function bucketArn(s) {
  return s.bucket ? sub(`arn:\${AWS::Partition}:s3:::${s.bucket}`) : { 'Fn::GetAtt': ['StateBucket', 'Arn'] };
}

function objectsArn(s) {
  return { 'Fn::Join': ['', [bucketArn(s), `/${s.prefix}/*`]] };
}

function parameterArn(name) {
  return name.startsWith('arn:') ? name : sub(`arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter/${name.replace(/^\//, '')}`);
}

function roleStatements(fn, what, s) {
  const statements = [
    {
      Effect: 'Allow',
      Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      Resource: { 'Fn::GetAtt': [`${capitalised(fn)}LogGroup`, 'Arn'] },
    },
    { Effect: 'Allow', Action: what.s3 === 'write' ? ['s3:GetObject', 's3:PutObject'] : ['s3:GetObject'], Resource: objectsArn(s) },
    { Effect: 'Allow', Action: ['s3:ListBucket'], Resource: bucketArn(s), Condition: { StringLike: { 's3:prefix': [`${s.prefix}/*`] } } },
  ];
  if (what.git && s.tokenParameter) statements.push({ Effect: 'Allow', Action: ['ssm:GetParameter'], Resource: parameterArn(s.tokenParameter) });
  if (what.git && s.tokenSecretArn) statements.push({ Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: s.tokenSecretArn });
  if (what.git && s.secretsKmsKey && (s.tokenParameter || s.tokenSecretArn)) statements.push({ Effect: 'Allow', Action: ['kms:Decrypt'], Resource: s.secretsKmsKey });
  if (what.webhook) {
    statements.push({ Effect: 'Allow', Action: ['s3:DeleteObject'], Resource: { 'Fn::Join': ['', [bucketArn(s), `/${s.prefix}/webhook/*`]] } });
    statements.push({ Effect: 'Allow', Action: ['lambda:InvokeFunction'], Resource: sub('arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-reconcile') });
    if (s.webhookParameter) statements.push({ Effect: 'Allow', Action: ['ssm:GetParameter'], Resource: parameterArn(s.webhookParameter) });
    if (s.webhookSecretArn) statements.push({ Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: s.webhookSecretArn });
    if (s.secretsKmsKey && (s.webhookParameter || s.webhookSecretArn)) statements.push({ Effect: 'Allow', Action: ['kms:Decrypt'], Resource: s.secretsKmsKey });
  }
  if (what.cluster && s.eks && !s.eksEndpointGiven) {
    statements.push({ Effect: 'Allow', Action: ['eks:DescribeCluster'], Resource: sub(`arn:\${AWS::Partition}:eks:\${AWS::Region}:\${AWS::AccountId}:cluster/${s.eks}`) });
  }
  return statements;
}

function role(fn, what, s) {
  return {
    Type: 'AWS::IAM::Role',
    Properties: {
      Description: `daemonset-gitops ${fn}: ${what.s3 === 'write' ? 'reads and writes' : 'reads'} its S3 prefix${what.cluster ? ', talks to the cluster' : ''}${what.git ? ', reads the Git token' : ''}${what.webhook ? ', reads the webhook secret, starts reconcile' : ''}`,
      AssumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
      },
      ...(s.vpc ? { ManagedPolicyArns: [sub('arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole')] } : {}),
      Policies: [{ PolicyName: fn, PolicyDocument: { Version: '2012-10-17', Statement: roleStatements(fn, what, s) } }],
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
  resources.FailedPassesMetricFilter = {
    Type: 'AWS::Logs::MetricFilter',
    Properties: {
      LogGroupName: { Ref: 'ReconcileLogGroup' },
      // The JSON line every pass ends with: {"action":"pass","result":"failed",...,"cluster":"..."}
      FilterPattern: '{ ($.action = "pass") && ($.result = "failed") }',
      MetricTransformations: [{ MetricNamespace: 'daemonset-gitops', MetricName: 'FailedPasses', MetricValue: '1', Dimensions: [{ Key: 'Cluster', Value: '$.cluster' }] }],
    },
  };
  resources.FailedPassesAlarm = anyCountAlarm(
    `daemonset-gitops: a reconcile pass of cluster ${s.clusterName} failed (its report and log say why)`,
    'daemonset-gitops', 'FailedPasses', [{ Name: 'Cluster', Value: s.clusterName }], actions,
  );
  resources.ReconcileErrorsAlarm = anyCountAlarm(
    `daemonset-gitops: the reconcile function of cluster ${s.clusterName} ended in an error (configuration, timeout, crash)`,
    'AWS/Lambda', 'Errors', [{ Name: 'FunctionName', Value: { Ref: 'ReconcileLambdaFunction' } }], actions,
  );
  return resources;
}

function accessEntries(s) {
  if (!s.eks) return {};
  const resources = {};
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

/** Resources beside the functions. */
module.exports.resources = () => {
  const s = settings();
  const roles = Object.fromEntries(Object.entries(FUNCTIONS).map(([fn, what]) => [roleId(fn), role(fn, what, s)]));
  return {
    Resources: { ...bucketResources(s), ...roles, ...accessEntries(s), ...alarmResources(s) },
    Outputs: {
      StateBucketName: { Description: 'The bucket holding revisions, state and the lease', Value: s.bucket || { Ref: 'StateBucket' } },
    },
  };
};

/** The functions' S3_BUCKET: the bucket named, or the one the stack creates. */
module.exports.bucket = () => settings().bucket || { Ref: 'StateBucket' };

/** The functions' VPC, when VPC_SUBNET_IDS is set (a cluster with a private endpoint). */
module.exports.vpc = () => {
  const list = (name) => env(name).split(',').map((x) => x.trim()).filter(Boolean);
  if (list('VPC_SUBNET_IDS').length === 0) return null;
  return { subnetIds: list('VPC_SUBNET_IDS'), securityGroupIds: list('VPC_SECURITY_GROUP_IDS') };
};

module.exports.FUNCTIONS = FUNCTIONS;
