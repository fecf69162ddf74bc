/**
 * Amazon EKS bearer tokens, made in-process as `aws eks get-token` makes them: a presigned
 * STS GetCallerIdentity URL (SigV4 query signing with the AWS SDK's signer, the cluster name
 * in the signed header x-k8s-aws-id, valid 60 s for the signature's own expiry), encoded as
 * base64url without padding behind the prefix `k8s-aws-v1.`. The API server hands the URL
 * to STS, which answers with the IAM identity that signed it; EKS maps that identity to a
 * Kubernetes user (an access entry).
 *
 * EKS accepts a token for 15 minutes after it was signed; like the AWS CLI this module
 * reports 14 minutes, and a TokenSource signs again well before that, so a long pass
 * (rollouts watched for many minutes) never sends an expired token.
 */
import { partition } from '@aws-sdk/core/client';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Resolves the credentials to sign with (the SDK's provider chain memoises and refreshes them). */
export type CredentialsProvider = () => Promise<AwsCredentials>;

export const TOKEN_PREFIX = 'k8s-aws-v1.';
export const CLUSTER_ID_HEADER = 'x-k8s-aws-id';
/** X-Amz-Expires of the presigned URL. */
const URL_EXPIRES_SECONDS = 60;
/** What `aws eks get-token` reports as the token's expiry (EKS itself accepts 15 minutes). */
export const TOKEN_LIFETIME_MS = 14 * 60_000;

export interface EksToken {
  token: string;
  /** When the token was signed. */
  signedAt: Date;
  /** signedAt + 14 minutes, as `aws eks get-token` reports it. */
  expiresAt: Date;
}

/** The regional STS endpoint's host name in the region's partition (sts.cn-north-1.amazonaws.com.cn). */
export function stsHost(region: string): string {
  return `sts.${region}.${partition(region).dnsSuffix}`;
}

/**
 * The query parameters in the order botocore writes them; the order carries no meaning for
 * STS, but it makes the token the same bytes as the AWS CLI's.
 */
const QUERY_ORDER = [
  'Action',
  'Version',
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-SignedHeaders',
  'X-Amz-Security-Token',
  'X-Amz-Signature',
];

function rfc3986(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function queryString(query: Record<string, string | string[] | null | undefined>): string {
  const keys = Object.keys(query).sort((a, b) => {
    const ia = QUERY_ORDER.indexOf(a);
    const ib = QUERY_ORDER.indexOf(b);
    return (ia < 0 ? QUERY_ORDER.length : ia) - (ib < 0 ? QUERY_ORDER.length : ib) || (a < b ? -1 : a > b ? 1 : 0);
  });
  return keys.map((k) => {
    const v = query[k];
    return `${rfc3986(k)}=${rfc3986(Array.isArray(v) ? v.join(',') : (v ?? ''))}`;
  }).join('&');
}

/** Signs a token for `clusterName` with the credentials, as of `now`. */
export async function signEksToken(input: { clusterName: string; region: string; credentials: AwsCredentials | CredentialsProvider; now: Date }): Promise<EksToken> {
  const host = stsHost(input.region);
  const signer = new SignatureV4({
    service: 'sts',
    region: input.region,
    credentials: typeof input.credentials === 'function' ? input.credentials : async () => input.credentials as AwsCredentials,
    sha256: Sha256,
    uriEscapePath: true,
  });
  const presigned = await signer.presign(
    {
      method: 'GET',
      protocol: 'https:',
      hostname: host,
      path: '/',
      query: { Action: 'GetCallerIdentity', Version: '2011-06-15' },
      headers: { host, [CLUSTER_ID_HEADER]: input.clusterName },
    },
    { expiresIn: URL_EXPIRES_SECONDS, signingDate: input.now },
  );
  const url = `https://${host}/?${queryString(presigned.query ?? {})}`;
  const signedAt = new Date(Math.floor(input.now.getTime() / 1000) * 1000);
  return {
    token: TOKEN_PREFIX + Buffer.from(url, 'utf8').toString('base64url'),
    signedAt,
    expiresAt: new Date(signedAt.getTime() + TOKEN_LIFETIME_MS),
  };
}

export const EXEC_CREDENTIAL_API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'] as const;

/**
 * The ExecCredential that `aws eks get-token` prints, byte for byte: kubectl's exec plugin
 * protocol, with the API version kubectl asks for in KUBERNETES_EXEC_INFO (v1beta1 when it
 * asks for none or for one this does not know).
 */
export function execCredentialJson(token: EksToken, execInfo?: string): string {
  let apiVersion: string = EXEC_CREDENTIAL_API_VERSIONS[1];
  if (execInfo) {
    try {
      const asked = (JSON.parse(execInfo) as { apiVersion?: unknown }).apiVersion;
      if ((EXEC_CREDENTIAL_API_VERSIONS as readonly unknown[]).includes(asked)) apiVersion = asked as string;
    } catch {
      // kubectl sent something unreadable: answer with the default, as the AWS CLI does.
    }
  }
  const credential = {
    kind: 'ExecCredential',
    apiVersion,
    spec: {},
    status: { expirationTimestamp: token.expiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z'), token: token.token },
  };
  // The AWS CLI's JSON output is indented by four spaces and followed by an empty line.
  return `${JSON.stringify(credential, null, 4)}\n\n`;
}

/** Sign again this long before the reported expiry. */
export const REFRESH_BEFORE_EXPIRY_MS = 2 * 60_000;

/** Where a cluster client gets the bearer token for its next request. */
export interface BearerTokenSource {
  token(): Promise<string>;
}

/**
 * A token for one cluster, signed when first needed and again once it is within
 * REFRESH_BEFORE_EXPIRY_MS of its expiry; concurrent requests share one signing.
 */
export class EksTokenSource implements BearerTokenSource {
  private current?: EksToken;
  private pending?: Promise<EksToken>;

  constructor(
    private readonly clusterName: string,
    private readonly region: string,
    private readonly credentials: CredentialsProvider,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async token(): Promise<string> {
    const now = this.now();
    if (this.current && now.getTime() < this.current.expiresAt.getTime() - REFRESH_BEFORE_EXPIRY_MS) return this.current.token;
    this.pending ??= signEksToken({ clusterName: this.clusterName, region: this.region, credentials: this.credentials, now })
      .finally(() => { this.pending = undefined; });
    this.current = await this.pending;
    return this.current.token;
  }
}
