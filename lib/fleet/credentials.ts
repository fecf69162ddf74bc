/**
 * The credentials a fleet cluster's pass works with. The fleet-pass function's own role reaches
 * no cluster's state: for the cluster it is asked to reconcile it assumes that cluster's role
 * (FLEET_CLUSTER_ROLE_ARN with {cluster} replaced; one role per cluster, deploy/stack.js), as two
 * sessions: one for S3 whose session policy narrows it to the cluster's own objects,
 * `<prefix>/<cluster>/…`, whatever the role itself allows, and one for the cluster that can
 * touch no S3 at all. A cluster of another account (the fleet file's
 * `eks.roleArn`) is signed in to with that role, assumed from the cluster's session.
 *
 * Assumptions / Invariants:
 * - The session policy is the intersection's second half: an S3 server that evaluates session
 *   policies (AWS, MinIO) refuses the session any object outside the cluster's prefix even if
 *   the role allows more (a role shared by every cluster, as on the local stack).
 * - Credentials are asked for once and again five minutes before they expire, never per call.
 */
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentials, CredentialsProvider } from '../cluster/eks-token';
import type { Config } from '../config';
import { ConfigError, DsGitopsError } from '../errors';

/** Renew this long before the credentials expire. */
const REFRESH_BEFORE_MS = 5 * 60_000;
/** One hour: the longest a chained role session may last. */
const SESSION_SECONDS = 3600;

export class AssumeRoleError extends DsGitopsError {
  constructor(message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super('AssumeRoleFailed', message, options);
  }
}

export interface AssumeRoleInput {
  roleArn: string;
  /** Shown in CloudTrail and in the assumed identity's ARN: which cluster's pass this is. */
  sessionName: string;
  /** An IAM policy document narrowing the session (at most 2,048 characters, as STS allows). */
  policy?: object;
  region: string;
  /** STS_ENDPOINT: an STS-compatible server (MinIO, moto); default: AWS's regional endpoint. */
  endpoint?: string;
  /** The identity that assumes the role; default: the process's (the function's role). */
  credentials?: CredentialsProvider;
}

/** The ARN of the role a cluster's pass assumes: FLEET_CLUSTER_ROLE_ARN with {cluster} replaced. */
export function clusterRoleArn(pattern: string, cluster: string): string {
  if (!pattern.includes('{cluster}')) throw new ConfigError(`FLEET_CLUSTER_ROLE_ARN=${pattern} must contain {cluster}, replaced by the cluster's name (deploy/stack.js sets it)`);
  return pattern.replaceAll('{cluster}', cluster);
}

/** The partition of an ARN (aws, aws-cn, aws-us-gov), for the S3 ARNs of a session policy. */
function partitionOf(arn: string): string {
  return /^arn:(aws[a-z-]*):/.exec(arn)?.[1] ?? 'aws';
}

/**
 * The session policy of a cluster's pass for S3: its own objects (read, write) and listing
 * under its own prefix, nothing else.
 */
export function clusterSessionPolicy(input: { bucket: string; prefix: string; cluster: string; partition?: string }): object {
  const root = input.prefix ? `${input.prefix.replace(/^\/+|\/+$/g, '')}/${input.cluster}` : input.cluster;
  const partition = input.partition ?? 'aws';
  return {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: [`arn:${partition}:s3:::${input.bucket}/${root}/*`] },
      { Effect: 'Allow', Action: ['s3:ListBucket'], Resource: [`arn:${partition}:s3:::${input.bucket}`], Condition: { StringLike: { 's3:prefix': [`${root}/*`] } } },
    ],
  };
}

/**
 * The session policy of a cluster's pass for EKS: finding the cluster, and assuming the fleet
 * file's `eks.roleArn` (the role decides which cluster and which role); no S3 at all. Signing
 * in needs no permission (the token is a presigned sts:GetCallerIdentity).
 */
export const EKS_SESSION_POLICY = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: ['eks:DescribeCluster', 'sts:AssumeRole'], Resource: ['*'] }],
};

/** Credentials of an assumed role, asked for once and renewed before they expire. */
export function assumedRoleCredentials(input: AssumeRoleInput, client?: Pick<STSClient, 'send'>): CredentialsProvider {
  const sts = client ?? new STSClient({ region: input.region, ...(input.endpoint ? { endpoint: input.endpoint } : {}), ...(input.credentials ? { credentials: input.credentials } : {}) });
  let current: { credentials: AwsCredentials; expires: number } | undefined;
  let pending: Promise<AwsCredentials> | undefined;
  const fetchCredentials = async (): Promise<AwsCredentials> => {
    let out;
    try {
      out = await sts.send(new AssumeRoleCommand({
        RoleArn: input.roleArn,
        RoleSessionName: input.sessionName.slice(0, 64),
        DurationSeconds: SESSION_SECONDS,
        ...(input.policy ? { Policy: JSON.stringify(input.policy) } : {}),
      }));
    } catch (err) {
      const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
      const status = e.$metadata?.httpStatusCode;
      const denied = status === 403 || e.name === 'AccessDenied' || e.name === 'AccessDeniedException';
      throw new AssumeRoleError(denied
        ? `cannot assume ${input.roleArn}: access denied (${e.message ?? e.name}); the role's trust policy must name this function's role, and this role must be allowed sts:AssumeRole on it`
        : `cannot assume ${input.roleArn}: ${e.message ?? String(err)}`, { retryable: !denied && status !== 400, cause: err });
    }
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey) throw new AssumeRoleError(`assuming ${input.roleArn} returned no credentials`, { retryable: true });
    const credentials = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}) };
    current = { credentials, expires: c.Expiration ? c.Expiration.getTime() : Date.now() + SESSION_SECONDS * 1000 };
    return credentials;
  };
  return async () => {
    if (current && current.expires - REFRESH_BEFORE_MS > Date.now()) return current.credentials;
    pending ??= fetchCredentials().finally(() => {
      pending = undefined;
    });
    return pending;
  };
}

/**
 * The credentials of one fleet cluster's pass, both of its cluster's role: for S3, narrowed to
 * its prefix; for the cluster (EKS), narrowed to finding and signing in to it.
 */
export function clusterPassCredentials(input: { rolePattern: string; cluster: string; bucket: string; prefix: string; region: string; endpoint?: string }): { s3: CredentialsProvider; eks: CredentialsProvider } {
  const roleArn = clusterRoleArn(input.rolePattern, input.cluster);
  const common = { roleArn, sessionName: `dsgitops-pass-${input.cluster}`, region: input.region, ...(input.endpoint ? { endpoint: input.endpoint } : {}) };
  return {
    s3: assumedRoleCredentials({ ...common, policy: clusterSessionPolicy({ bucket: input.bucket, prefix: input.prefix, cluster: input.cluster, partition: partitionOf(roleArn) }) }),
    eks: assumedRoleCredentials({ ...common, policy: EKS_SESSION_POLICY }),
  };
}

/**
 * What one fleet cluster's work (its pass, a rollback on it, its status) uses S3 with: with
 * FLEET_CLUSTER_ROLE_ARN the cluster's own session, narrowed to its prefix, and the session for
 * reaching the cluster; without it, the process's own credentials.
 */
export function clusterScope(base: Config, cluster: string): { s3: Config['s3']; eks?: CredentialsProvider } {
  if (!base.fleetClusterRoleArn) return { s3: base.s3 };
  const session = clusterPassCredentials({ rolePattern: base.fleetClusterRoleArn, cluster, bucket: base.s3.bucket, prefix: base.s3.prefix, region: base.s3.region, ...(base.stsEndpoint ? { endpoint: base.stsEndpoint } : {}) });
  return { s3: { ...base.s3, credentials: session.s3 }, eks: session.eks };
}
