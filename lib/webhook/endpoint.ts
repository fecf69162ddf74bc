/**
 * The webhook behind an HTTP front (a Lambda function URL, or the local stack's adapter):
 * the function URL event in, the handler's answer out. A webhook that is not configured
 * starts nothing and answers anyone who calls it a generic 500: which setting is wrong (and
 * with it paths, endpoints, parameter names, account ids) goes to the log only.
 */
import type { Config, WebhookSettings } from '../config';
import { errorMessage } from '../errors';
import type { Logger } from '../log';
import { StoreKeys } from '../store/keys';
import { systemClock } from '../clock';
import type { ObjectStore } from '../store/object-store';
import { FunctionUrlResult, jsonResponse, readFunctionUrlEvent } from './function-url';
import { handleWebhook, PassStarter, WebhookContext } from './handle';
import { webhookSecret } from './secret';

export async function webhookContext(config: Config, settings: WebhookSettings, objects: ObjectStore, start: PassStarter, logger: Logger): Promise<WebhookContext> {
  return {
    secret: await webhookSecret(settings),
    gitRef: config.git.ref,
    maxBodyBytes: settings.maxBodyBytes,
    objects,
    keys: new StoreKeys(config.s3.prefix, config.cluster.name),
    start,
    logger,
    clock: systemClock,
  };
}

export async function answerFunctionUrl(event: unknown, context: () => Promise<WebhookContext>, logger: Logger): Promise<FunctionUrlResult> {
  const request = readFunctionUrlEvent(event);
  if (!request.ok) return request.response;
  let ctx: WebhookContext;
  try {
    ctx = await context();
  } catch (err) {
    logger.log('error', `the webhook is not configured: ${errorMessage(err)}`, { action: 'webhook', status: 500, result: 'failed' });
    return jsonResponse(500, { result: 'failed', reason: 'the webhook is not configured: its operator finds why in the function\'s log' });
  }
  const answer = await handleWebhook(ctx, request.headers, request.body);
  return jsonResponse(answer.status, answer.body);
}
