// The CloudFormation that serverless.yml adds to the functions, computed from the same
// environment variables the functions are configured with (read when `serverless package`
// or `deploy` resolves serverless.yml).
const env = (name, fallback = '') => (process.env[name] ?? '').trim() || fallback;

/** The Kubernetes user the functions' IAM role is mapped to; deploy/rbac.yaml binds it. */
const KUBERNETES_USER = 'daemonset-gitops';

/** Statements of the functions' IAM role. */
module.exports.statements = () => {
  const bucket = env('S3_BUCKET', 'daemonset-gitops');
  const prefix = env('S3_PREFIX', 'daemonset-gitops');
  const statements = [
    {
      Effect: 'Allow',
      Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
      Resource: `arn:aws:s3:::${bucket}/${prefix}/*`,
    },
    { Effect: 'Allow', Action: ['s3:ListBucket'], Resource: `arn:aws:s3:::${bucket}` },
  ];
  const eks = env('EKS_CLUSTER_NAME');
  if (eks && !env('EKS_CLUSTER_ENDPOINT')) {
    statements.push({
      Effect: 'Allow',
      Action: ['eks:DescribeCluster'],
      Resource: { 'Fn::Sub': `arn:\${AWS::Partition}:eks:\${AWS::Region}:\${AWS::AccountId}:cluster/${eks}` },
    });
  }
  return statements;
};

/** Resources beside the functions. */
module.exports.resources = () => {
  const Resources = {};
  const eks = env('EKS_CLUSTER_NAME');
  if (eks) {
    // Maps the functions' role to the Kubernetes user the RBAC binds (the cluster must use
    // the API or API_AND_CONFIG_MAP authentication mode).
    Resources.ReconcilerAccessEntry = {
      Type: 'AWS::EKS::AccessEntry',
      Properties: {
        ClusterName: eks,
        PrincipalArn: { 'Fn::GetAtt': ['IamRoleLambdaExecution', 'Arn'] },
        Username: KUBERNETES_USER,
        Type: 'STANDARD',
      },
    };
  }
  return { Resources };
};
