/**
 * A deployment's settings from a committed file rather than the deploying shell: the file named
 * by SETTINGS_FILE, else deploy/settings/<DEPLOYMENT_NAME or CLUSTER_NAME>.yaml when there is
 * one. It holds the same names as the environment (ALLOWED_NAMESPACES, GIT_URL, …), each a
 * string, a number, a boolean or a list (joined with commas).
 *
 * The rule (docs/aws.md, "Settings from a file"):
 * - the file must name every safety setting: ALLOWED_NAMESPACES, ALLOWED_KINDS and the VPC
 *   (VPC_SUBNET_IDS, with VPC_SECURITY_GROUP_IDS, or VPC_SUBNET_IDS: none);
 * - a setting comes from one place: a shell value of a setting the file names is refused unless
 *   it is the same value, and a safety setting the file leaves out (VPC_SECURITY_GROUP_IDS beside
 *   VPC_SUBNET_IDS: none) may not come from the shell either;
 * - settings the file does not name come from the shell as before (AWS_REGION, the stage's
 *   credentials); secrets never go in the file (GIT_TOKEN, WEBHOOK_SECRET: keep them in SSM).
 *
 * PURE but for reading the file: the deploy (deploy/stack.js) merges the result into its
 * environment before it checks anything else.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { parseDocument } from 'yaml';

/** The settings a deploy refuses to default open: they come from the file only, when there is one. */
export const SAFETY_SETTINGS = ['ALLOWED_NAMESPACES', 'ALLOWED_KINDS', 'VPC_SUBNET_IDS', 'VPC_SECURITY_GROUP_IDS'] as const;
/** Of those, the ones the file itself must name. */
const REQUIRED = ['ALLOWED_NAMESPACES', 'ALLOWED_KINDS', 'VPC_SUBNET_IDS'];

/** Settings a file may hold: what the functions read and what the stack is built from. */
const STORED = ['GIT_TOKEN', 'WEBHOOK_SECRET', 'EKS_CLUSTER_CA', 'TRUSTED_GPG_KEYS', 'TRUSTED_SSH_KEYS'];
export const FILE_SETTINGS = new Set([
  // the functions (lib/config.ts)
  'GIT_URL', 'GIT_REF', 'GIT_PATH', 'GIT_TIMEOUT_SECONDS', 'MAX_MANIFEST_BYTES', 'VERIFY_COMMITS', 'TRUSTED_GPG_KEYS', 'TRUSTED_SSH_KEYS',
  'RENDER_ALLOW_REMOTE', 'RENDER_TIMEOUT_SECONDS', 'RENDER_MAX_BYTES',
  'S3_BUCKET', 'S3_PREFIX', 'S3_ENDPOINT', 'S3_TIMEOUT_SECONDS', 'AWS_REGION', 'CLUSTER_NAME',
  'KUBECONFIG', 'EKS_CLUSTER_NAME', 'EKS_CLUSTER_ENDPOINT', 'EKS_CLUSTER_CA', 'KUBE_TIMEOUT_SECONDS',
  'ALLOWED_NAMESPACES', 'ALLOWED_KINDS', 'DEFAULT_NAMESPACE', 'SELF_HEAL', 'PRUNE', 'PROGRESS_DEADLINE_SECONDS', 'AUTO_ROLLBACK',
  'LEASE_SECONDS', 'CONFIG_REVISIONS_KEPT', 'WEBHOOK_MAX_BODY_BYTES', 'FLEET_FILE', 'FLEET_KUBECONFIGS', 'STS_ENDPOINT',
  ...STORED.flatMap((n) => [`${n}_PARAMETER`, `${n}_SECRET_ARN`]),
  // the stack (deploy/stack.js)
  'DEPLOYMENT_NAME', 'FLEET_CLUSTERS', 'VPC_SUBNET_IDS', 'VPC_SECURITY_GROUP_IDS', 'S3_KMS_KEY_ARN', 'SECRETS_KMS_KEY_ARN',
  'STATE_VERSION_RETENTION_DAYS', 'WEBHOOK_DELIVERY_RETENTION_DAYS', 'PASS_ALARM_MINUTES', 'RECONCILE_CONCURRENCY', 'WEBHOOK_CONCURRENCY',
  'ALARM_TOPIC_ARN', 'ALARM_EMAIL', 'LAMBDA_ARCHITECTURE', 'RECONCILE_SCHEDULE', 'RECONCILE_SCHEDULE_ENABLED',
]);

export interface DeploySettings {
  /** The file read, relative to the repository root; undefined when there is none. */
  file?: string;
  /** The file's settings, as environment values. */
  values: Record<string, string>;
  /** Each problem names the file and the key, and the fix. */
  problems: string[];
}

/** A list's items without the spaces around them, so that `a, b` and `a,b` are the same value. */
function normalised(value: string): string {
  return value.split(',').map((x) => x.trim()).filter(Boolean).join(',');
}

/** The file's settings and what is wrong with them (unknown keys, secrets, values that are no setting). */
export function parseSettingsFile(file: string, text: string): { values: Record<string, string>; problems: string[] } {
  const problems: string[] = [];
  const values: Record<string, string> = {};
  const doc = parseDocument(text);
  if (doc.errors.length > 0) return { values, problems: doc.errors.map((e) => `${file}: not YAML: ${e.message.split('\n')[0]}`) };
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) return { values, problems: [`${file}: the file is empty: give the deployment's settings, e.g. ALLOWED_NAMESPACES: [logging]`] };
  if (typeof data !== 'object' || Array.isArray(data)) return { values, problems: [`${file}: must be a mapping of setting names to values (ALLOWED_NAMESPACES: [logging, monitoring])`] };
  for (const [key, raw] of Object.entries(data as Record<string, unknown>)) {
    if (key === 'GIT_TOKEN' || key === 'WEBHOOK_SECRET') {
      problems.push(`${file}: ${key}: a secret is never committed: keep it in SSM Parameter Store (${key}_PARAMETER) or Secrets Manager (${key}_SECRET_ARN) and name that in the file`);
      continue;
    }
    if (!FILE_SETTINGS.has(key)) {
      problems.push(`${file}: ${key} is not a setting of a deployment (see docs/aws.md and docs/configuration.md for the names)`);
      continue;
    }
    if (typeof raw === 'string' || typeof raw === 'number' || typeof raw === 'boolean') {
      values[key] = String(raw).trim();
    } else if (Array.isArray(raw) && raw.every((x) => typeof x === 'string' || typeof x === 'number')) {
      values[key] = raw.map((x) => String(x).trim()).join(',');
    } else {
      problems.push(`${file}: ${key} must be a string, a number, a boolean or a list of strings`);
      continue;
    }
    if (values[key] === '') problems.push(`${file}: ${key} is empty: give its value, or leave the key out`);
  }
  for (const key of REQUIRED) {
    if (problems.some((p) => p.startsWith(`${file}: ${key} `))) continue;
    if (!(key in values)) {
      problems.push(key === 'VPC_SUBNET_IDS'
        ? `${file}: VPC_SUBNET_IDS is missing: a deployment's settings file names its VPC (VPC_SUBNET_IDS and VPC_SECURITY_GROUP_IDS), or VPC_SUBNET_IDS: none for a cluster with a public endpoint`
        : `${file}: ${key} is missing: a deployment's settings file names every safety setting (ALLOWED_NAMESPACES, ALLOWED_KINDS, VPC_SUBNET_IDS); a deploy never defaults one open`);
    }
  }
  return { values, problems };
}

/**
 * The file's settings against the shell's: a shell value for a setting the file names must be
 * the same value; a safety setting the file leaves out may not come from the shell.
 */
export function shellConflicts(file: string, values: Record<string, string>, shell: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  const safety = new Set<string>(SAFETY_SETTINGS);
  const names = new Set([...Object.keys(values), ...SAFETY_SETTINGS]);
  for (const key of names) {
    const given = (shell[key] ?? '').trim();
    if (!given) continue;
    if (!(key in values)) {
      if (safety.has(key)) problems.push(`${key}=${given} is set in the shell, but ${file} does not set it: a safety setting comes from the settings file only; add it to the file or unset it in the shell`);
      continue;
    }
    if (normalised(given) !== normalised(values[key])) {
      problems.push(`${key}=${given} in the shell differs from ${file} (${key}: ${values[key]})${safety.has(key) ? ', a safety setting' : ''}: a setting comes from one place; change the file, or unset ${key} in the shell`);
    }
  }
  return problems;
}

/** Which file holds the deployment's settings: SETTINGS_FILE, else deploy/settings/<deployment>.yaml if it exists. */
export function settingsFilePath(root: string, shell: Record<string, string | undefined>): { path?: string; problem?: string } {
  const named = (shell.SETTINGS_FILE ?? '').trim();
  if (named) {
    const path = isAbsolute(named) ? named : join(root, named);
    return existsSync(path) ? { path } : { problem: `SETTINGS_FILE=${named}: there is no such file (a path from the repository root, e.g. deploy/settings/prod-eu-1.yaml)` };
  }
  const deployment = (shell.DEPLOYMENT_NAME ?? '').trim() || (shell.CLUSTER_NAME ?? '').trim();
  if (!deployment || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(deployment)) return {};
  const path = join(root, 'deploy', 'settings', `${deployment}.yaml`);
  return existsSync(path) ? { path } : {};
}

/** The deployment's settings file, read and checked against the shell; no file: nothing, and the shell's settings as before (refused for a fleet, FLEET_FILE). */
export function loadDeploySettings(root: string, shell: Record<string, string | undefined>): DeploySettings {
  const { path, problem } = settingsFilePath(root, shell);
  if (problem) return { values: {}, problems: [problem] };
  if (!path) {
    // One stack drives every cluster of a fleet: its settings are committed, never the deploying shell's.
    const fleet = (shell.FLEET_FILE ?? '').trim();
    const deployment = (shell.DEPLOYMENT_NAME ?? '').trim() || (shell.CLUSTER_NAME ?? '').trim() || '<deployment>';
    return fleet
      ? { values: {}, problems: [`FLEET_FILE=${fleet}: a fleet's stack is deployed from a committed settings file, and there is none: write deploy/settings/${deployment}.yaml (or name one with SETTINGS_FILE) holding ALLOWED_NAMESPACES, ALLOWED_KINDS, VPC_SUBNET_IDS, FLEET_FILE and FLEET_CLUSTERS (docs/fleet.md, "Deploying a fleet")`] }
      : { values: {}, problems: [] };
  }
  const file = relative(root, path).startsWith('..') ? path : relative(root, path);
  const parsed = parseSettingsFile(file, readFileSync(path, 'utf8'));
  return { file, values: parsed.values, problems: [...parsed.problems, ...shellConflicts(file, parsed.values, shell)] };
}
