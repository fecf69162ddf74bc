/**
 * Secrets read from AWS instead of the environment: an SSM Parameter Store parameter
 * (`<NAME>_PARAMETER`, SecureString decrypted) or a Secrets Manager secret
 * (`<NAME>_SECRET_ARN`). Each is read once per process (a warm Lambda container reuses it)
 * and only when first needed, so a function that never needs it never asks. A failed read is
 * answered from memory for a while (1 s after the first failure, doubling up to 60 s), so
 * requests that keep coming (anonymous callers of the webhook) do not each call AWS again. A value is
 * never logged and never part of an error message; errors name the setting and the fix.
 *
 * Local endpoints (an emulator) come from the SDK's own settings: AWS_ENDPOINT_URL_SSM,
 * AWS_ENDPOINT_URL_SECRETS_MANAGER.
 */
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { ConfigError, DsGitopsError } from './errors';

/** Where a secret is kept: a value given directly, a parameter, or a secret. */
export type SecretSource =
  | { setting: string; value: string }
  | { setting: string; parameter: string }
  | { setting: string; secretArn: string };

export class SecretUnavailableError extends DsGitopsError {
  constructor(message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super('SecretUnavailable', message, options);
  }
}

export interface SecretClients {
  ssm: Pick<SSMClient, 'send'>;
  secretsManager: Pick<SecretsManagerClient, 'send'>;
}

// The SDK's modules are loaded when a secret is first read: most runs keep no secret in AWS,
// and evaluating them is a good part of a cold start.
const ssmModule = () => import('@aws-sdk/client-ssm');
const secretsManagerModule = () => import('@aws-sdk/client-secrets-manager');

let defaultSsm: SecretClients['ssm'] | undefined;
let defaultSecretsManager: SecretClients['secretsManager'] | undefined;

/** The SDK's clients, in the region of the process (AWS_REGION, as in Lambda) unless a parameter's ARN names another. */
async function ssmClient(given?: SecretClients): Promise<SecretClients['ssm']> {
  if (given) return given.ssm;
  defaultSsm ??= new (await ssmModule()).SSMClient({});
  return defaultSsm;
}

async function secretsManagerClient(given?: SecretClients): Promise<SecretClients['secretsManager']> {
  if (given) return given.secretsManager;
  defaultSecretsManager ??= new (await secretsManagerModule()).SecretsManagerClient({});
  return defaultSecretsManager;
}

/** The value of a secret given directly in the environment (undefined for one kept in AWS). */
export function givenValue(source: SecretSource | undefined): string | undefined {
  return source && 'value' in source ? source.value : undefined;
}

/** Reads so far in this process, by where they came from; a failed one with when it may be tried again. */
const cache = new Map<string, { pending: Promise<string>; failures: number; retryAt?: number }>();

const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 60_000;

/** How long a read that failed `failures` times in a row is not tried again. */
export function secretBackoffMs(failures: number): number {
  return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.max(0, failures - 1));
}

/**
 * The secret's value: given, or read (once per process) from SSM or Secrets Manager. A read
 * that failed is answered with the same error until its back-off has passed.
 */
export function readSecret(source: SecretSource, options: { clients?: SecretClients; now?: () => number } = {}): Promise<string> {
  if ('value' in source) return Promise.resolve(source.value);
  const now = options.now ?? Date.now;
  const key = 'parameter' in source ? `ssm:${source.parameter}` : `secretsmanager:${source.secretArn}`;
  const known = cache.get(key);
  if (known && (known.retryAt === undefined || now() < known.retryAt)) return known.pending;
  const c = options.clients;
  const pending = 'parameter' in source ? fromParameter(source.setting, source.parameter, c) : fromSecretsManager(source.setting, source.secretArn, c);
  const entry: { pending: Promise<string>; failures: number; retryAt?: number } = { pending, failures: known?.failures ?? 0 };
  cache.set(key, entry);
  pending.then(
    () => { entry.failures = 0; },
    () => {
      entry.failures += 1;
      entry.retryAt = now() + secretBackoffMs(entry.failures);
    },
  );
  return pending;
}

/** Reads an optional secret: undefined when no source is configured. */
export async function readOptionalSecret(source: SecretSource | undefined, options: { clients?: SecretClients; now?: () => number } = {}): Promise<string | undefined> {
  return source ? readSecret(source, options) : undefined;
}

function failure(setting: string, where: string, err: unknown, permission: string): DsGitopsError {
  const name = (err as { name?: string }).name ?? 'Error';
  if (/NotFound/.test(name)) return new ConfigError(`${setting}: ${where} does not exist (check the name and the region)`);
  if (/AccessDenied|UnrecognizedClient|InvalidSignature|KMS/.test(name)) {
    return new ConfigError(`${setting}: this identity may not read ${where} (${name}): grant it ${permission}`);
  }
  return new SecretUnavailableError(`${setting}: reading ${where} failed: ${name}: ${(err as Error).message ?? ''}`.trim(), { retryable: true, cause: err });
}

async function fromParameter(setting: string, parameter: string, c: SecretClients | undefined): Promise<string> {
  const where = `SSM parameter ${parameter}`;
  try {
    const { GetParameterCommand } = await ssmModule();
    const answer = await (await ssmClient(c)).send(new GetParameterCommand({ Name: parameter, WithDecryption: true }));
    const value = answer.Parameter?.Value;
    if (!value) throw new ConfigError(`${setting}: ${where} is empty`);
    return value;
  } catch (err) {
    if (err instanceof DsGitopsError) throw err;
    throw failure(setting, where, err, 'ssm:GetParameter on it (and kms:Decrypt on its key if that is a customer-managed key)');
  }
}

async function fromSecretsManager(setting: string, secretArn: string, c: SecretClients | undefined): Promise<string> {
  const where = `Secrets Manager secret ${secretArn}`;
  try {
    const { GetSecretValueCommand } = await secretsManagerModule();
    const answer = await (await secretsManagerClient(c)).send(new GetSecretValueCommand({ SecretId: secretArn }));
    const value = answer.SecretString;
    if (!value) throw new ConfigError(`${setting}: ${where} has no string value (a binary secret cannot be used)`);
    return value;
  } catch (err) {
    if (err instanceof DsGitopsError) throw err;
    throw failure(setting, where, err, 'secretsmanager:GetSecretValue on it (and kms:Decrypt on its key if that is a customer-managed key)');
  }
}
