/**
 * The webhook function as Lambda runs it, through `serverless invoke local` (the bundle
 * `serverless package` ships, its environment from serverless.yml), with function URL events.
 * Starting a pass needs AWS Lambda, which does not run here: that path is taken as far as
 * the invoke, whose failure must leave nothing recorded.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { loadConfig } from '../../lib/config';
import { StoreKeys } from '../../lib/store/keys';
import { stackConfigEnv, stackDeps } from '../support/reconciler';
import { invokeLocal } from '../support/serverless';

jest.setTimeout(600_000);

const secret = 'e2e-webhook-secret-0123456789';
const env = stackConfigEnv({ GIT_URL: 'file:///nonexistent', ALLOWED_NAMESPACES: 'e2e-webhook', WEBHOOK_SECRET: secret });
const keys = new StoreKeys(env.S3_PREFIX, env.CLUSTER_NAME);

interface UrlResult {
  statusCode: number;
  body: string;
}

async function invokeWebhook(event: unknown): Promise<UrlResult> {
  const run = await invokeLocal('webhook', event, env);
  if (!run.result) throw new Error(`no result from serverless invoke local:\n${run.stdout}\n${run.stderr}`);
  return run.result as unknown as UrlResult;
}

function urlEvent(headers: Record<string, string>, body: string) {
  return { version: '2.0', rawPath: '/', headers, body, isBase64Encoded: false, requestContext: { http: { method: 'POST', sourceIp: '192.0.2.1' }, requestId: randomUUID() } };
}

const sign = (body: string) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

afterAll(async () => {
  const objects = stackDeps(loadConfig(env)).objects;
  for (const key of await objects.list(`${keys.root}/`)) await objects.delete(key);
});

describe('serverless invoke local -f webhook', () => {
  it('answers a ping, refuses an unsigned push, and records nothing when the reconcile function cannot be invoked', async () => {
    const ping = JSON.stringify({ zen: 'Design for failure.' });
    const pinged = await invokeWebhook(urlEvent({ 'x-github-event': 'ping', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': sign(ping) }, ping));
    expect(pinged.statusCode).toBe(200);
    expect(JSON.parse(pinged.body)).toMatchObject({ result: 'ignored', reason: expect.stringMatching(/ping received/) });

    const push = JSON.stringify({ ref: 'refs/heads/main', after: 'a'.repeat(40) });
    const unsigned = await invokeWebhook(urlEvent({ 'x-github-event': 'push', 'x-github-delivery': randomUUID() }, push));
    expect(unsigned.statusCode).toBe(401);

    // No AWS here: the asynchronous invoke fails, the answer is a 503 the Git host retries, and the delivery is not kept as seen.
    const delivery = randomUUID();
    const started = await invokeWebhook(urlEvent({ 'x-github-event': 'push', 'x-github-delivery': delivery, 'x-hub-signature-256': sign(push) }, push));
    expect(started.statusCode).toBe(503);
    expect(JSON.parse(started.body)).toMatchObject({ result: 'failed', reason: expect.stringMatching(/^could not record the delivery or start a pass/) });
    const objects = stackDeps(loadConfig(env)).objects;
    expect(await objects.get(keys.webhookDelivery(`github-${delivery}`))).toBeUndefined();
  });
});
