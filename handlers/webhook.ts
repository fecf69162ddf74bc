/** Push webhook (function URL): verify, then start a reconcile pass with an asynchronous invoke. */
import { ConfigError } from '../lib/errors';
import { loadConfig, loadWebhookSettings } from '../lib/config';
import { s3ObjectStore } from '../lib/store/object-store';
import { invocationFields, jsonLogger } from '../lib/log';
import { answerFunctionUrl, webhookContext } from '../lib/webhook/endpoint';
import type { FunctionUrlResult } from '../lib/webhook/function-url';
import { lambdaStarter } from '../lib/webhook/starters';

export async function handler(event: unknown, context?: { awsRequestId?: string; functionName?: string }): Promise<FunctionUrlResult> {
  const logger = jsonLogger({ function: 'webhook', ...invocationFields(context) });
  return answerFunctionUrl(event, async () => {
    const config = loadConfig();
    const settings = loadWebhookSettings();
    if (!settings.reconcileFunction) throw new ConfigError('RECONCILE_FUNCTION_NAME is not set: name the reconcile function the webhook invokes (serverless.yml sets it)');
    const objects = s3ObjectStore(config.s3);
    return webhookContext(config, settings, objects, lambdaStarter(settings.reconcileFunction, config.s3.region), logger);
  }, logger);
}
