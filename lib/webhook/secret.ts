/**
 * The one place the webhook's shared secret is read. It is asynchronous so that a secret
 * store (SSM Parameter Store, Secrets Manager) can stand behind it without changing callers.
 */
import type { WebhookSettings } from '../config';
import { ConfigError } from '../errors';

export const MIN_SECRET_LENGTH = 16;

export async function webhookSecret(settings: WebhookSettings): Promise<string> {
  const secret = settings.secret;
  if (!secret) {
    throw new ConfigError('WEBHOOK_SECRET is not set: the webhook cannot check who sent a push. Set it to a random string (for example `openssl rand -hex 32`) and give the same value to GitHub/Gitea as the webhook\'s "Secret", or to GitLab as its "Secret token"');
  }
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new ConfigError(`WEBHOOK_SECRET is ${secret.length} characters long: use at least ${MIN_SECRET_LENGTH} random characters (for example \`openssl rand -hex 32\`)`);
  }
  return secret;
}
