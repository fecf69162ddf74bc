/**
 * Push webhook (function URL): verify, then start work with an asynchronous invoke: a reconcile
 * pass, or in a fleet (FLEET_FILE) the promotion (PROMOTE_FUNCTION_NAME), which carries the
 * pushed head wave by wave.
 */
import { ConfigError } from '../lib/errors';
import { loadConfig, loadWebhookSettings } from '../lib/config';
import { s3ObjectStore } from '../lib/store/object-store';
import { invocationFields, jsonLogger } from '../lib/log';
import { answerFunctionUrl, webhookContext } from '../lib/webhook/endpoint';
import type { FunctionUrlResult } from '../lib/webhook/function-url';
import { lambdaStarter, promotionStarterForPushes } from '../lib/webhook/starters';

export async function handler(event: unknown, context?: { awsRequestId?: string; functionName?: string }): Promise<FunctionUrlResult> {
  const logger = jsonLogger({ function: 'webhook', ...invocationFields(context) });
  return answerFunctionUrl(event, async () => {
    const config = loadConfig();
    const settings = loadWebhookSettings();
    const objects = s3ObjectStore(config.s3);
    if (config.fleetFile) {
      if (!config.promoteFunction) throw new ConfigError('FLEET_FILE is set but PROMOTE_FUNCTION_NAME is not: name the promotion function (its durable alias) a push starts (serverless.yml sets it)');
      return webhookContext(config, settings, objects, promotionStarterForPushes(config.promoteFunction, config.s3.region), logger);
    }
    if (!settings.reconcileFunction) throw new ConfigError('RECONCILE_FUNCTION_NAME is not set: name the reconcile function the webhook invokes (serverless.yml sets it)');
    return webhookContext(config, settings, objects, lambdaStarter(settings.reconcileFunction, config.s3.region), logger);
  }, logger);
}
