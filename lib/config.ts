/**
 * Environment -> typed, validated configuration. The only module that reads process.env.
 * Every problem is collected and reported at once, each naming the variable and the fix.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from './errors';
import type { SecretSource } from './secrets';
import type { CredentialsProvider } from './cluster/eks-token';
import { DEFAULT_ALLOWED_KINDS, KindsPolicy, parseAllowedKinds } from './bundle/kinds';

export interface GitConfig {
  url: string;
  ref: string;
  path: string;
  /** The token for HTTPS remotes: GIT_TOKEN, GIT_TOKEN_PARAMETER or GIT_TOKEN_SECRET_ARN; read when a fetch needs it. */
  token?: SecretSource;
  cacheDir: string;
  /** GIT_TIMEOUT_SECONDS: the longest a fetch (listing the remote's refs included) may take; then it is abandoned. */
  timeoutSeconds?: number;
}

export interface S3Config {
  bucket: string;
  prefix: string;
  endpoint?: string;
  region: string;
  /** S3_TIMEOUT_SECONDS: the longest one S3 call may take, the SDK's retries included; then it is abandoned. */
  timeoutSeconds?: number;
  /** Credentials other than the process's: a fleet cluster's pass works with its cluster's session (lib/fleet/credentials.ts). */
  credentials?: CredentialsProvider;
}

export interface Policy {
  /** Namespaces this tool may touch; '*' allows any. */
  allowedNamespaces: string[] | '*';
  selfHeal: boolean;
  prune: boolean;
  progressDeadlineSeconds: number;
  autoRollback: boolean;
  /** ALLOWED_KINDS: the kinds of object a pass applies (lib/bundle/kinds.ts); absent: the default. */
  allowedKinds?: KindsPolicy;
  /** DEFAULT_NAMESPACE: where a namespaced document without a namespace goes; absent: `default`. */
  defaultNamespace?: string;
  /** CONFIG_REVISIONS_KEPT: how many of a DaemonSet's latest revisions keep their versioned config copies (docs/bundles.md); absent: 10. */
  configRevisionsKept?: number;
}

/** Sign in to Amazon EKS with the process's IAM identity instead of a kubeconfig. */
export interface EksConfig {
  clusterName: string;
  region: string;
  /** The API server's URL and CA (base64 PEM, as DescribeCluster returns it); asked of EKS when absent. */
  endpoint?: string;
  caData?: string;
  /** Credentials other than the process's to sign in with (a fleet cluster's role, or its eks.roleArn assumed). */
  credentials?: CredentialsProvider;
}

export interface ClusterConfig {
  name: string;
  kubeconfig?: string;
  /** KUBE_TIMEOUT_SECONDS: the longest one API request may wait for its answer; then it is cancelled (its connection closed). */
  requestTimeoutSeconds?: number;
  eks?: EksConfig;
}

export interface Config {
  git: GitConfig;
  s3: S3Config;
  cluster: ClusterConfig;
  policy: Policy;
  leaseSeconds: number;
  maxManifestBytes: number;
  /** VERIFY_COMMITS: only commits signed by a trusted key are applied (lib/source/trust.ts reads the keys). */
  verify?: { commits: boolean; gpgKeys?: string; sshKeys?: string };
  /**
   * FLEET_FILE: the fleet file's path inside the repository (lib/fleet/fleet-file.ts). With it,
   * a pass reconciles the commit promoted to CLUSTER_NAME (lib/fleet/), not GIT_REF's head.
   */
  fleetFile?: string;
  /** FLEET_KUBECONFIGS: `cluster=path,…`, how a fleet's clusters are reached without EKS (a kubeconfig each). */
  fleetKubeconfigs?: Record<string, string>;
  /** FLEET_PASS_FUNCTION: the fleet-pass function (name or ARN) the durable promotion invokes per cluster. */
  fleetPassFunction?: string;
  /** FLEET_CLUSTER_ROLE_ARN: the role each fleet cluster's pass assumes, {cluster} replaced by its name (lib/fleet/credentials.ts). */
  fleetClusterRoleArn?: string;
  /** STS_ENDPOINT: an STS-compatible endpoint for assuming roles (MinIO, moto); default: AWS's. */
  stsEndpoint?: string;
  /** PROMOTE_FUNCTION_NAME: the promotion (its durable alias) a push or `fleet resume` starts. */
  promoteFunction?: string;
  /** Test-only fault injection: the process kills itself at that point of an apply, or of a recreate between its delete and its apply (DSGITOPS_FAULT). */
  fault?: 'kill-after-snapshot' | 'kill-after-apply' | 'kill-before-delete' | 'kill-after-delete' | 'kill-mid-prune';
  /** How a GIT_PATH holding a kustomization is rendered (lib/source/render.ts); absent: the defaults. */
  render?: RenderConfig;
}

/** The renderers' settings: RENDER_ALLOW_REMOTE, RENDER_TIMEOUT_SECONDS, RENDER_MAX_BYTES, KUSTOMIZE_BIN, HELM_BIN. */
export interface RenderConfig {
  /** Remote bases and charts (fetched at render time) only when true. */
  allowRemote: boolean;
  timeoutSeconds: number;
  /** The most output a render may produce; a larger render fails. */
  maxOutputBytes: number;
  /** The programs; absent: /opt/bin (the Lambda layer), else the PATH. */
  kustomize?: string;
  helm?: string;
}

type Env = Record<string, string | undefined>;

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** EKS cluster names: 1-100 letters, digits, dashes and underscores, starting with a letter or digit. */
const EKS_NAME = /^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/;

class Reader {
  readonly problems: string[] = [];

  constructor(private readonly env: Env) {}

  string(name: string, help: string, fallback?: string): string {
    const v = this.env[name]?.trim();
    if (v) return v;
    if (fallback !== undefined) return fallback;
    this.problems.push(`${name} is required: ${help}`);
    return '';
  }

  /**
   * A secret setting NAME: its value in NAME, or where to read it, in NAME_PARAMETER (an SSM
   * parameter name or ARN) or NAME_SECRET_ARN (a Secrets Manager secret's ARN); one of them.
   */
  secret(name: string): SecretSource | undefined {
    const value = this.optional(name);
    const parameter = this.optional(`${name}_PARAMETER`);
    const secretArn = this.optional(`${name}_SECRET_ARN`);
    const given = [value && name, parameter && `${name}_PARAMETER`, secretArn && `${name}_SECRET_ARN`].filter(Boolean);
    if (given.length > 1) {
      this.problems.push(`${given.join(' and ')} are all set: keep one of them (the value itself, an SSM parameter, or a Secrets Manager secret)`);
      return undefined;
    }
    if (parameter) {
      if (!/^(arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter\/)?[A-Za-z0-9_.\-/]{1,2048}$/.test(parameter)) {
        this.problems.push(`${name}_PARAMETER=${parameter} is not an SSM parameter name (for example /daemonset-gitops/git-token) or ARN`);
        return undefined;
      }
      return { setting: `${name}_PARAMETER`, parameter };
    }
    if (secretArn) {
      if (!/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/.test(secretArn)) {
        this.problems.push(`${name}_SECRET_ARN=${secretArn} is not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-abcdef)`);
        return undefined;
      }
      return { setting: `${name}_SECRET_ARN`, secretArn };
    }
    return value ? { setting: name, value } : undefined;
  }

  optional(name: string): string | undefined {
    const v = this.env[name]?.trim();
    return v ? v : undefined;
  }

  boolean(name: string, fallback: boolean): boolean {
    const v = this.env[name]?.trim().toLowerCase();
    if (!v) return fallback;
    if (['true', '1', 'yes', 'on'].includes(v)) return true;
    if (['false', '0', 'no', 'off'].includes(v)) return false;
    this.problems.push(`${name}=${this.env[name]} is not a boolean: use true or false`);
    return fallback;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = this.env[name]?.trim();
    if (!raw) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      this.problems.push(`${name}=${raw} must be a whole number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  }
}

export function loadConfig(env: Env = process.env): Config {
  const r = new Reader(env);
  const url = r.string('GIT_URL', 'the Git repository holding the DaemonSet manifests (https://…, file://… or a path)');
  if (/^https?:\/\/[^/]*@/i.test(url)) {
    r.problems.push('GIT_URL contains credentials: remove them from the URL and put the token in GIT_TOKEN, which is never logged');
  }
  const gitPathTemplate = r.string('GIT_PATH', '', '.');
  if (gitPathTemplate.split('/').includes('..') || gitPathTemplate.startsWith('/')) {
    r.problems.push(`GIT_PATH=${gitPathTemplate} must be a relative path inside the repository (no leading / and no ..)`);
  }
  const clusterName = r.string('CLUSTER_NAME', 'a short name for this cluster; it keys the state in S3 (for example prod-eu-1)');
  if (clusterName && !NAME.test(clusterName)) {
    r.problems.push(`CLUSTER_NAME=${clusterName} must be lower-case letters, digits and dashes (it becomes part of S3 keys)`);
  }
  const gitPath = resolveGitPath(gitPathTemplate, clusterName, r.problems);
  const prefix = r.string('S3_PREFIX', '', 'daemonset-gitops').replace(/^\/+|\/+$/g, '');
  const endpoint = r.optional('S3_ENDPOINT');
  if (endpoint && !/^https?:\/\//.test(endpoint)) {
    r.problems.push(`S3_ENDPOINT=${endpoint} must be a URL such as http://127.0.0.1:9000`);
  }
  // Stated, never assumed: `*` lets whoever can push to GIT_REF run privileged pods on every node, kube-system included (SECURITY.md).
  const namespaces = r.string('ALLOWED_NAMESPACES', 'the namespaces this reconciler may write, comma-separated (for example logging,monitoring), or * for every namespace, kube-system included: whoever can push to GIT_REF can then run privileged pods on every node (see SECURITY.md)');
  const allowed = namespaces ? parseAllowedNamespaces(namespaces, 'ALLOWED_NAMESPACES', r.problems) : [];
  const defaultNamespace = r.optional('DEFAULT_NAMESPACE');
  if (defaultNamespace && !NAME.test(defaultNamespace)) r.problems.push(`DEFAULT_NAMESPACE=${defaultNamespace} is not a namespace name (lower-case letters, digits and dashes)`);
  const region = r.string('AWS_REGION', '', 'us-east-1');
  const eks = eksConfig(r, region);
  const kubeconfig = r.optional('KUBECONFIG');
  if (eks && kubeconfig) {
    r.problems.push('KUBECONFIG and EKS_CLUSTER_NAME are both set: keep EKS_CLUSTER_NAME to sign in with the IAM role, or KUBECONFIG to use that file, not both');
  }
  const config: Config = {
    git: {
      url,
      ref: r.string('GIT_REF', '', 'main'),
      path: gitPath,
      token: r.secret('GIT_TOKEN'),
      cacheDir: r.string('GIT_CACHE_DIR', '', join(tmpdir(), 'daemonset-gitops', 'git')),
      timeoutSeconds: r.integer('GIT_TIMEOUT_SECONDS', 120, 1, 900),
    },
    s3: {
      bucket: r.string('S3_BUCKET', 'the bucket that stores revisions, state and the lease'),
      prefix,
      endpoint,
      region,
      timeoutSeconds: r.integer('S3_TIMEOUT_SECONDS', 20, 1, 900),
    },
    cluster: { name: clusterName, kubeconfig, requestTimeoutSeconds: r.integer('KUBE_TIMEOUT_SECONDS', 30, 1, 600), ...(eks ? { eks } : {}) },
    policy: {
      allowedNamespaces: allowed,
      selfHeal: r.boolean('SELF_HEAL', true),
      prune: r.boolean('PRUNE', false),
      progressDeadlineSeconds: r.integer('PROGRESS_DEADLINE_SECONDS', 600, 10, 86400),
      autoRollback: r.boolean('AUTO_ROLLBACK', false),
      allowedKinds: parseAllowedKinds(r.string('ALLOWED_KINDS', '', DEFAULT_ALLOWED_KINDS), 'ALLOWED_KINDS', r.problems),
      defaultNamespace: r.string('DEFAULT_NAMESPACE', '', 'default'),
      configRevisionsKept: r.integer('CONFIG_REVISIONS_KEPT', 10, 2, 1000),
    },
    leaseSeconds: r.integer('LEASE_SECONDS', 900, 5, 86400),
    maxManifestBytes: r.integer('MAX_MANIFEST_BYTES', 1 << 20, 1024, 64 << 20),
    render: {
      allowRemote: r.boolean('RENDER_ALLOW_REMOTE', false),
      timeoutSeconds: r.integer('RENDER_TIMEOUT_SECONDS', 60, 1, 900),
      maxOutputBytes: r.integer('RENDER_MAX_BYTES', 16 << 20, 1024, 256 << 20),
      kustomize: r.optional('KUSTOMIZE_BIN'),
      helm: r.optional('HELM_BIN'),
    },
  };
  const verifyCommits = r.boolean('VERIFY_COMMITS', false);
  if (verifyCommits) {
    config.verify = { commits: true, gpgKeys: r.optional('TRUSTED_GPG_KEYS'), sshKeys: r.optional('TRUSTED_SSH_KEYS') };
    if (!config.verify.gpgKeys && !config.verify.sshKeys) {
      r.problems.push('VERIFY_COMMITS=true needs trusted keys: put ASCII-armored OpenPGP public keys in TRUSTED_GPG_KEYS (gpg --armor --export KEYID) and/or SSH public keys, one per line, in TRUSTED_SSH_KEYS');
    } else if (config.verify.gpgKeys && !config.verify.gpgKeys.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')) {
      r.problems.push('TRUSTED_GPG_KEYS holds no ASCII-armored public key: export it with gpg --armor --export KEYID');
    }
  }
  const fleetFile = r.optional('FLEET_FILE');
  if (fleetFile) {
    if (fleetFile.startsWith('/') || fleetFile.split('/').includes('..')) r.problems.push(`FLEET_FILE=${fleetFile} must be a path inside the repository (no leading / and no ..), e.g. fleet.yaml`);
    else config.fleetFile = fleetFile;
  }
  const fleetPassFunction = r.optional('FLEET_PASS_FUNCTION');
  if (fleetPassFunction) config.fleetPassFunction = fleetPassFunction;
  const roleArn = r.optional('FLEET_CLUSTER_ROLE_ARN');
  if (roleArn) {
    if (!/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@{}/-]+$/.test(roleArn) || !roleArn.includes('{cluster}')) r.problems.push(`FLEET_CLUSTER_ROLE_ARN=${roleArn} must be an IAM role ARN containing {cluster} (arn:aws:iam::ACCOUNT:role/NAME-{cluster}), replaced by each cluster's name`);
    else config.fleetClusterRoleArn = roleArn;
  }
  const stsEndpoint = r.optional('STS_ENDPOINT');
  if (stsEndpoint) config.stsEndpoint = stsEndpoint;
  const promoteFunction = r.optional('PROMOTE_FUNCTION_NAME');
  if (promoteFunction) config.promoteFunction = promoteFunction;
  const fleetKubeconfigs = r.optional('FLEET_KUBECONFIGS');
  if (fleetKubeconfigs) {
    config.fleetKubeconfigs = {};
    for (const item of fleetKubeconfigs.split(',').map((x) => x.trim()).filter(Boolean)) {
      const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)=(.+)$/.exec(item);
      if (m) config.fleetKubeconfigs[m[1]] = m[3];
      else r.problems.push(`FLEET_KUBECONFIGS: ${item} is not CLUSTER=PATH (for example staging=/etc/kube/staging.yaml)`);
    }
  }
  const fault = r.optional('DSGITOPS_FAULT');
  if (fault === 'kill-after-snapshot' || fault === 'kill-after-apply' || fault === 'kill-before-delete' || fault === 'kill-after-delete' || fault === 'kill-mid-prune') config.fault = fault;
  else if (fault) r.problems.push(`DSGITOPS_FAULT=${fault} is not a known fault (kill-after-snapshot, kill-after-apply, kill-before-delete, kill-after-delete)`);
  if (r.problems.length > 0) {
    throw new ConfigError(`configuration is invalid:\n  - ${r.problems.join('\n  - ')}`);
  }
  return config;
}

/**
 * GIT_PATH with `{cluster}` replaced by CLUSTER_NAME (`clusters/{cluster}` -> `clusters/prod-eu-1`),
 * so one repository and one setting serve every cluster. Any other `{…}` is refused.
 */
export function resolveGitPath(template: string, clusterName: string, problems: string[]): string {
  const unknown = template.match(/\{(?!cluster\})[^}]*\}/);
  if (unknown) problems.push(`GIT_PATH=${template} contains ${unknown[0]}: the only placeholder is {cluster} (replaced by CLUSTER_NAME)`);
  return template.replaceAll('{cluster}', clusterName);
}

function eksConfig(r: Reader, region: string): EksConfig | undefined {
  const clusterName = r.optional('EKS_CLUSTER_NAME');
  const endpoint = r.optional('EKS_CLUSTER_ENDPOINT');
  const caData = r.optional('EKS_CLUSTER_CA');
  if (!clusterName) {
    if (endpoint || caData) r.problems.push('EKS_CLUSTER_ENDPOINT and EKS_CLUSTER_CA are used only with EKS_CLUSTER_NAME: set the cluster\'s name too');
    return undefined;
  }
  if (!EKS_NAME.test(clusterName)) {
    r.problems.push(`EKS_CLUSTER_NAME=${clusterName} is not an EKS cluster name (letters, digits, - and _, at most 100, starting with a letter or digit)`);
  }
  if (Boolean(endpoint) !== Boolean(caData)) {
    r.problems.push('EKS_CLUSTER_ENDPOINT and EKS_CLUSTER_CA go together: set both (from aws eks describe-cluster: cluster.endpoint and cluster.certificateAuthority.data), or neither and the role may call eks:DescribeCluster');
  }
  if (endpoint && !/^https:\/\/[^/\s]+\/?$/.test(endpoint)) {
    r.problems.push(`EKS_CLUSTER_ENDPOINT=${endpoint} must be the cluster's https:// endpoint, as aws eks describe-cluster prints it`);
  }
  if (caData && !isBase64Pem(caData)) {
    r.problems.push('EKS_CLUSTER_CA must be the base64-encoded PEM certificate that aws eks describe-cluster prints as certificateAuthority.data');
  }
  return { clusterName, region, ...(endpoint && caData ? { endpoint: endpoint.replace(/\/$/, ''), caData } : {}) };
}

function isBase64Pem(value: string): boolean {
  if (!/^[A-Za-z0-9+/=\s]+$/.test(value)) return false;
  return Buffer.from(value, 'base64').toString('utf8').includes('-----BEGIN CERTIFICATE-----');
}

/** A comma-separated namespace list, or `*`; problems name `setting`. */
export function parseAllowedNamespaces(raw: string, setting: string, problems: string[]): Policy['allowedNamespaces'] {
  if (raw.trim() === '*') return '*';
  const allowed = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const ns of allowed) {
    if (!NAME.test(ns)) problems.push(`${setting} contains "${ns}", which is not a namespace name`);
  }
  if (allowed.length === 0) problems.push(`${setting} is empty: list namespaces separated by commas, or * for any`);
  return allowed;
}

/** What `dsgitops rbac` reads besides its flags. */
export function rbacEnvironment(env: Env = process.env): { allowedNamespaces?: string; allowedKinds?: string } {
  return { allowedNamespaces: env.ALLOWED_NAMESPACES?.trim() || undefined, allowedKinds: env.ALLOWED_KINDS?.trim() || undefined };
}

/** The kinds a pass applies: ALLOWED_KINDS, or the default when the policy was built without it. */
export function allowedKindsOf(policy: Pick<Policy, 'allowedKinds'>): KindsPolicy {
  return policy.allowedKinds ?? parseAllowedKinds(DEFAULT_ALLOWED_KINDS, 'ALLOWED_KINDS', []);
}

/** Where a namespaced document without a namespace goes. */
export function defaultNamespaceOf(policy: Pick<Policy, 'defaultNamespace'>): string {
  return policy.defaultNamespace ?? 'default';
}

/** What `dsgitops eks-token` reads besides its flags: the default region and kubectl's exec info. */
export function eksTokenEnvironment(env: Env = process.env): { region?: string; execInfo?: string } {
  return {
    region: env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim() || undefined,
    execInfo: env.KUBERNETES_EXEC_INFO || undefined,
  };
}

/** Whether configuration for a real target is present, or the embedded local default applies. */
export function hasTargetConfig(env: Env = process.env): boolean {
  return Boolean(env.GIT_URL || env.S3_BUCKET || env.CLUSTER_NAME);
}

export function namespaceAllowed(policy: Pick<Policy, 'allowedNamespaces'>, namespace: string): boolean {
  return policy.allowedNamespaces === '*' || policy.allowedNamespaces.includes(namespace);
}

/** The push webhook's settings (handlers/webhook.ts); the secret is read through lib/webhook/secret.ts. */
export interface WebhookSettings {
  /** WEBHOOK_SECRET, WEBHOOK_SECRET_PARAMETER or WEBHOOK_SECRET_SECRET_ARN; read at the first request. */
  secret?: SecretSource;
  maxBodyBytes: number;
  /** The reconcile function the webhook invokes asynchronously (AWS). */
  reconcileFunction?: string;
}

export function loadWebhookSettings(env: Env = process.env): WebhookSettings {
  const r = new Reader(env);
  const settings: WebhookSettings = {
    secret: r.secret('WEBHOOK_SECRET'),
    maxBodyBytes: r.integer('WEBHOOK_MAX_BODY_BYTES', 1 << 20, 1024, 6 << 20),
    reconcileFunction: r.optional('RECONCILE_FUNCTION_NAME'),
  };
  if (r.problems.length > 0) throw new ConfigError(`configuration is invalid:\n  - ${r.problems.join('\n  - ')}`);
  return settings;
}

/**
 * Settings too large for Lambda's 4 KB environment when given as values; each may be kept in
 * SSM Parameter Store (NAME_PARAMETER) or Secrets Manager (NAME_SECRET_ARN) instead.
 */
export const STORED_SETTINGS = ['EKS_CLUSTER_CA', 'TRUSTED_GPG_KEYS', 'TRUSTED_SSH_KEYS'] as const;

/**
 * The environment with each stored setting read (through `read`: lib/secrets.ts's readSecret,
 * once per process) into NAME, ready for loadConfig. Both a value and a place for the same
 * setting are refused, naming them.
 */
export async function withStoredSettings(read: (source: SecretSource) => Promise<string>, env: Env = process.env): Promise<Env> {
  const r = new Reader(env);
  const sources = STORED_SETTINGS.map((name) => [name, r.secret(name)] as const);
  if (r.problems.length > 0) throw new ConfigError(`configuration is invalid:\n  - ${r.problems.join('\n  - ')}`);
  const out: Env = { ...env };
  for (const [name, source] of sources) {
    if (source && !('value' in source)) out[name] = await read(source);
  }
  return out;
}
