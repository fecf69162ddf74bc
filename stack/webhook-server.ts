/**
 * The push webhook over HTTP on 127.0.0.1, as a Lambda function URL serves it in AWS: each
 * request becomes a function URL event (payload 2.0, the body base64-encoded) for the same
 * code as handlers/webhook.ts, and its answer goes back as the HTTP response. The one
 * difference is how the pass starts: here it runs in this process, in the background,
 * where AWS invokes the reconcile function asynchronously. (serverless-offline, the usual
 * tool for this, does not serve function URLs and requires Serverless Framework v4.)
 *
 * Configured by the same environment as the functions (GIT_URL, S3_*, CLUSTER_NAME,
 * KUBECONFIG, WEBHOOK_SECRET, …). The body is read up to WEBHOOK_MAX_BODY_BYTES + 1 bytes and
 * no further: a larger one is refused without being held in memory.
 *
 * usage: webhook-server --port N
 */
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { loadConfig, loadWebhookSettings } from '../lib/config';
import { createClients, createDeps } from '../lib/deps';
import { errorMessage } from '../lib/errors';
import { jsonLogger } from '../lib/log';
import { autoRollback } from '../lib/rollback';
import { answerFunctionUrl, webhookContext } from '../lib/webhook/endpoint';
import type { FunctionUrlEvent } from '../lib/webhook/function-url';
import { inProcessStarter } from '../lib/webhook/in-process-starter';

function portArg(): number {
  const i = process.argv.indexOf('--port');
  const port = Number(i >= 0 ? process.argv[i + 1] : NaN);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error('webhook-server: --port N is required');
    process.exit(2);
  }
  return port;
}

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const config = loadConfig();
const settings = loadWebhookSettings();
const clients = createClients(config);
const logger = jsonLogger({ component: 'webhook', cluster: config.cluster.name });
const starter = inProcessStarter(() => createDeps(config, { clients, budgetMs: 15 * 60_000 }), autoRollback);

/** The body, or as much of it as tells that it is over the limit. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (size > limit) return;
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) resolve(Buffer.concat(chunks));
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    return;
  }
  const body = req.method === 'POST' ? await readBody(req, settings.maxBodyBytes) : Buffer.alloc(0);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(',') : v;
  const event: FunctionUrlEvent = {
    headers,
    body: body.toString('base64'),
    isBase64Encoded: true,
    requestContext: { http: { method: req.method ?? 'GET', sourceIp: req.socket.remoteAddress } },
  };
  const answer = await answerFunctionUrl(event, () => webhookContext(config, settings, clients.objects, starter.start, logger), logger);
  res.writeHead(answer.statusCode, answer.headers).end(answer.body);
  // Stop reading a body that was over the limit.
  if (!req.complete) req.destroy();
}

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    logger.log('error', `webhook request failed: ${errorMessage(err)}`, { action: 'webhook', status: 500 });
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end(`${JSON.stringify({ result: 'failed', reason: errorMessage(err) })}\n`);
  });
});
server.listen(portArg(), '127.0.0.1', () => {
  const address = server.address();
  console.log(`push webhook on http://127.0.0.1:${typeof address === 'object' && address ? address.port : '?'}/ for ${config.cluster.name} (GIT_REF=${config.git.ref})`);
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    server.close();
    // A pass under way keeps its lease renewed until it ends; stop after it, or within 30 s.
    const timer = setTimeout(() => process.exit(0), 30_000);
    void starter.idle().then(() => { clearTimeout(timer); process.exit(0); });
  });
}
