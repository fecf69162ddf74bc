/**
 * The webhook's starter in AWS: one asynchronous Invoke of the reconcile function, as the
 * Lambda API defines it (POST /2015-03-31/functions/NAME/invocations with
 * X-Amz-Invocation-Type: Event, answered 202). Lambda does not run here, so an HTTP server
 * on 127.0.0.1 stands in for its endpoint and records what the SDK sends.
 */
import { LambdaClient } from '@aws-sdk/client-lambda';
import { createServer, IncomingMessage, Server } from 'node:http';
import { executionName } from '../../lib/fleet/start';
import { lambdaStarter, promotionStarterForPushes } from '../../lib/webhook/starters';

let server: Server;
let endpoint: string;
let status = 202;
const seen: { method?: string; url?: string; headers: IncomingMessage['headers']; body: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      res.writeHead(status, { 'content-type': 'application/json' }).end(status === 202 ? '' : '{"Type":"User","message":"Function not found"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const client = () => new LambdaClient({ region: 'eu-west-1', endpoint, credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' }, maxAttempts: 1 });
const push = { commit: 'a'.repeat(40), ref: 'refs/heads/main', provider: 'github', delivery: 'd-1', receivedAt: '2026-01-01T00:00:00.000Z' };

describe('lambdaStarter', () => {
  it('invokes the reconcile function asynchronously, with the push as its event', async () => {
    await lambdaStarter('daemonset-gitops-dev-reconcile', 'eu-west-1', client())(push);

    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/2015-03-31/functions/daemonset-gitops-dev-reconcile/invocations' });
    expect(seen[0].headers['x-amz-invocation-type']).toBe('Event');
    expect(seen[0].headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/lambda\/aws4_request/);
    expect(JSON.parse(seen[0].body)).toEqual({ push });
  });

  it('fails when Lambda refuses, so the webhook answers 5xx and the Git host retries', async () => {
    status = 404;
    await expect(lambdaStarter('missing', 'eu-west-1', client())(push)).rejects.toThrow(/Function not found/);
  });
});

describe('promotionStarterForPushes (a fleet: FLEET_FILE)', () => {
  it('starts the promotion by its durable alias, asynchronously, as an execution named after the pushed commit', async () => {
    status = 202;
    seen.length = 0;
    await promotionStarterForPushes('daemonset-gitops-fleet-eu-dev-promote:durable', 'eu-west-1', client())(push);

    expect(seen).toHaveLength(1);
    // The qualifier travels in the function name, URL-encoded, as the Lambda API takes it.
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/2015-03-31/functions/daemonset-gitops-fleet-eu-dev-promote%3Adurable/invocations' });
    expect(seen[0].headers['x-amz-invocation-type']).toBe('Event');
    expect(seen[0].headers['x-amz-durable-execution-name']).toBe(`push-${push.commit}`);
    expect(JSON.parse(seen[0].body)).toEqual({ by: 'push (github delivery d-1)', reason: `push of aaaaaaa to refs/heads/main` });
  });

  it('names executions only with what Lambda allows (1 to 64 of letters, digits, - and _)', () => {
    expect(executionName('resume', '20261206102233-abc1234', '1765016553000')).toBe('resume-20261206102233-abc1234-1765016553000');
    expect(executionName('push', 'refs/heads/main', 'x'.repeat(80))).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
  });
});
