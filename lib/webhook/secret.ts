/**
 * The one place the webhook's shared secret is read: WEBHOOK_SECRET, or from SSM Parameter
 * Store (WEBHOOK_SECRET_PARAMETER) or Secrets Manager (WEBHOOK_SECRET_SECRET_ARN), once per process.
 */
import type { WebhookSettings } from '../config';
import { ConfigError } from '../errors';
import { readOptionalSecret } from '../secrets';

export const MIN_SECRET_LENGTH = 16;

export async function webhookSecret(settings: WebhookSettings): Promise<string> {
  const secret = await readOptionalSecret(settings.secret);
  if (!secret) {
    throw new ConfigError('WEBHOOK_SECRET (or WEBHOOK_SECRET_PARAMETER / WEBHOOK_SECRET_SECRET_ARN) is not set: the webhook cannot check who sent a push. Set it to a random string (for example `openssl rand -hex 32`) and give the same value to GitHub/Gitea as the webhook\'s "Secret", or to GitLab as its "Secret token"');
  }
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new ConfigError(`${settings.secret!.setting} is ${secret.length} characters long: use at least ${MIN_SECRET_LENGTH} random characters (for example \`openssl rand -hex 32\`)`);
  }
  return secret;
}
