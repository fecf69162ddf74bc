/**
 * Environment -> typed, validated configuration. The only module that reads process.env.
 * Every problem is collected and reported at once, each naming the variable and the fix.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from './errors';

export interface GitConfig {
  url: string;
  ref: string;
  path: string;
  token?: string;
  cacheDir: string;
}

export interface S3Config {
  bucket: string;
  prefix: string;
  endpoint?: string;
  region: string;
}

export interface Policy {
  /** Namespaces this tool may touch; '*' allows any. */
  allowedNamespaces: string[] | '*';
  selfHeal: boolean;
  prune: boolean;
  progressDeadlineSeconds: number;
  autoRollback: boolean;
}

export interface Config {
  git: GitConfig;
  s3: S3Config;
  cluster: { name: string; kubeconfig?: string };
  policy: Policy;
  leaseSeconds: number;
  maxManifestBytes: number;
  /** VERIFY_COMMITS: only commits signed by a trusted key are applied (lib/source/trust.ts reads the keys). */
  verify?: { commits: boolean; gpgKeys?: string; sshKeys?: string };
  /** Test-only fault injection: the process kills itself at that point of an apply (DSGITOPS_FAULT). */
  fault?: 'kill-after-snapshot' | 'kill-after-apply';
}

type Env = Record<string, string | undefined>;

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

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
  const gitPath = r.string('GIT_PATH', '', '.');
  if (gitPath.split('/').includes('..') || gitPath.startsWith('/')) {
    r.problems.push(`GIT_PATH=${gitPath} must be a relative path inside the repository (no leading / and no ..)`);
  }
  const clusterName = r.string('CLUSTER_NAME', 'a short name for this cluster; it keys the state in S3 (for example prod-eu-1)');
  if (clusterName && !NAME.test(clusterName)) {
    r.problems.push(`CLUSTER_NAME=${clusterName} must be lower-case letters, digits and dashes (it becomes part of S3 keys)`);
  }
  const prefix = r.string('S3_PREFIX', '', 'daemonset-gitops').replace(/^\/+|\/+$/g, '');
  const endpoint = r.optional('S3_ENDPOINT');
  if (endpoint && !/^https?:\/\//.test(endpoint)) {
    r.problems.push(`S3_ENDPOINT=${endpoint} must be a URL such as http://127.0.0.1:9000`);
  }
  const allowedRaw = r.string('ALLOWED_NAMESPACES', '', '*');
  const allowed = allowedRaw === '*' ? '*' : allowedRaw.split(',').map((s) => s.trim()).filter(Boolean);
  if (allowed !== '*') {
    for (const ns of allowed) {
      if (!NAME.test(ns)) r.problems.push(`ALLOWED_NAMESPACES contains "${ns}", which is not a namespace name`);
    }
    if (allowed.length === 0) r.problems.push('ALLOWED_NAMESPACES is empty: list namespaces separated by commas, or * for any');
  }
  const config: Config = {
    git: {
      url,
      ref: r.string('GIT_REF', '', 'main'),
      path: gitPath,
      token: r.optional('GIT_TOKEN'),
      cacheDir: r.string('GIT_CACHE_DIR', '', join(tmpdir(), 'daemonset-gitops', 'git')),
    },
    s3: {
      bucket: r.string('S3_BUCKET', 'the bucket that stores revisions, state and the lease'),
      prefix,
      endpoint,
      region: r.string('AWS_REGION', '', 'us-east-1'),
    },
    cluster: { name: clusterName, kubeconfig: r.optional('KUBECONFIG') },
    policy: {
      allowedNamespaces: allowed,
      selfHeal: r.boolean('SELF_HEAL', true),
      prune: r.boolean('PRUNE', false),
      progressDeadlineSeconds: r.integer('PROGRESS_DEADLINE_SECONDS', 600, 10, 86400),
      autoRollback: r.boolean('AUTO_ROLLBACK', false),
    },
    leaseSeconds: r.integer('LEASE_SECONDS', 900, 5, 86400),
    maxManifestBytes: r.integer('MAX_MANIFEST_BYTES', 1 << 20, 1024, 64 << 20),
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
  const fault = r.optional('DSGITOPS_FAULT');
  if (fault === 'kill-after-snapshot' || fault === 'kill-after-apply') config.fault = fault;
  else if (fault) r.problems.push(`DSGITOPS_FAULT=${fault} is not a known fault (kill-after-snapshot, kill-after-apply)`);
  if (r.problems.length > 0) {
    throw new ConfigError(`configuration is invalid:\n  - ${r.problems.join('\n  - ')}`);
  }
  return config;
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
  secret?: string;
  maxBodyBytes: number;
  /** The reconcile function the webhook invokes asynchronously (AWS). */
  reconcileFunction?: string;
}

export function loadWebhookSettings(env: Env = process.env): WebhookSettings {
  const r = new Reader(env);
  const settings: WebhookSettings = {
    secret: r.optional('WEBHOOK_SECRET'),
    maxBodyBytes: r.integer('WEBHOOK_MAX_BODY_BYTES', 1 << 20, 1024, 6 << 20),
    reconcileFunction: r.optional('RECONCILE_FUNCTION_NAME'),
  };
  if (r.problems.length > 0) throw new ConfigError(`configuration is invalid:\n  - ${r.problems.join('\n  - ')}`);
  return settings;
}
