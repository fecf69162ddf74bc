/**
 * Where an EKS cluster's API server is, from the configuration or from eks:DescribeCluster,
 * and the identity to sign tokens with: the SDK's default credential chain (a Lambda
 * function's role, a profile, environment variables).
 */
import { DescribeClusterCommand, EKSClient } from '@aws-sdk/client-eks';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import type { EksConfig } from '../config';
import { ClusterError, ConfigError } from '../errors';
import type { CredentialsProvider } from './eks-token';

export interface EksEndpoint {
  endpoint: string;
  /** Base64 PEM of the cluster's CA. */
  caData: string;
}

/** The process's AWS credentials, memoised and refreshed before they expire by the SDK. */
export function defaultCredentials(): CredentialsProvider {
  return defaultProvider();
}

/** Described clusters, per region and name: a warm Lambda container asks EKS once. */
const described = new Map<string, Promise<EksEndpoint>>();

/** The cluster's endpoint and CA: as configured, or asked of EKS once per process. */
export function eksEndpoint(eks: EksConfig, client?: Pick<EKSClient, 'send'>): Promise<EksEndpoint> {
  if (eks.endpoint && eks.caData) return Promise.resolve({ endpoint: eks.endpoint, caData: eks.caData });
  const key = `${eks.region}/${eks.clusterName}`;
  let pending = described.get(key);
  if (!pending) {
    pending = describe(eks, client ?? new EKSClient({ region: eks.region, ...(eks.credentials ? { credentials: eks.credentials } : {}) }));
    described.set(key, pending);
    // A failure is not remembered: the next invocation asks again.
    pending.catch(() => described.delete(key));
  }
  return pending;
}

async function describe(eks: EksConfig, client: Pick<EKSClient, 'send'>): Promise<EksEndpoint> {
  const fallback = 'or set EKS_CLUSTER_ENDPOINT and EKS_CLUSTER_CA from aws eks describe-cluster';
  let answer;
  try {
    answer = await client.send(new DescribeClusterCommand({ name: eks.clusterName }));
  } catch (err) {
    const e = err as { name?: string; message?: string };
    if (e.name === 'ResourceNotFoundException') {
      throw new ConfigError(`EKS_CLUSTER_NAME=${eks.clusterName}: EKS has no such cluster in ${eks.region} (check the name and AWS_REGION)`);
    }
    if (e.name === 'AccessDeniedException') {
      throw new ConfigError(`EKS_CLUSTER_NAME=${eks.clusterName}: this identity may not call eks:DescribeCluster on it: grant it, ${fallback}`);
    }
    throw new ClusterError(`cannot describe EKS cluster ${eks.clusterName} in ${eks.region}: ${e.message ?? String(err)} (${fallback})`, { retryable: true, cause: err });
  }
  const endpoint = answer.cluster?.endpoint;
  const caData = answer.cluster?.certificateAuthority?.data;
  if (!endpoint || !caData) {
    throw new ClusterError(`EKS cluster ${eks.clusterName} has no endpoint or CA yet (status ${answer.cluster?.status ?? 'unknown'}): wait until it is ACTIVE`, { retryable: true });
  }
  return { endpoint, caData };
}
