/**
 * A webhook function that is not configured, as anyone on the internet reaches it: an
 * unsigned request gets a generic 500, never a setting's value, a secret's length, a
 * parameter name or an account id (those go to the log), and a secret that cannot be read is
 * not asked for again at every request.
 */
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { handler } from '../../handlers/webhook';

const unsigned = {
  requestContext: { http: { method: 'POST', sourceIp: '203.0.113.9' } },
  headers: { 'x-github-event': 'push', 'x-github-delivery': 'anon-1', 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` },
  body: JSON.stringify({ ref: 'refs/heads/main', after: 'a'.repeat(40) }),
};

const base = {
  GIT_URL: 'https://git.internal.example.com/platform/node-agents.git',
  S3_BUCKET: 'platform-state-123456789012',
  CLUSTER_NAME: 'prod-eu-1',
  ALLOWED_NAMESPACES: 'logging',
  RECONCILE_FUNCTION_NAME: 'daemonset-gitops-prod-reconcile',
  AWS_REGION: 'eu-west-1',
  AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'example',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

let saved: NodeJS.ProcessEnv;
let logged: string[];
/** SSM as far as this test needs it: every parameter is missing. The SDK's client is made once per process, so every test uses this one. */
let ssm: Server;
let ssmRequests = 0;
let ssmUrl: string;

beforeAll(async () => {
  ssm = createServer((req, res) => {
    ssmRequests += 1;
    req.resume();
    req.on('end', () => res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify({ __type: 'ParameterNotFound', message: 'not found' })));
  });
  await new Promise<void>((r) => ssm.listen(0, '127.0.0.1', r));
  ssmUrl = `http://127.0.0.1:${(ssm.address() as AddressInfo).port}`;
});

afterAll(() => new Promise((r) => ssm.close(r)));

beforeEach(() => {
  saved = process.env;
  logged = [];
  jest.spyOn(process.stderr, 'write').mockImplementation((line: string | Uint8Array) => {
    logged.push(String(line));
    return true;
  });
});

afterEach(() => {
  process.env = saved;
  jest.restoreAllMocks();
});

async function answer(env: Record<string, string>): Promise<{ statusCode: number; body: string }> {
  process.env = { PATH: saved.PATH, ...env, AWS_ENDPOINT_URL_SSM: ssmUrl };
  return handler(unsigned);
}

describe('the webhook function, misconfigured, called by anyone', () => {
  it.each([
    ['a secret too short', { ...base, WEBHOOK_SECRET: 'hunter2' }, ['7 characters', 'WEBHOOK_SECRET is']],
    ['no secret at all', { ...base }, ['WEBHOOK_SECRET_PARAMETER', 'openssl']],
    ['an invalid S3 endpoint', { ...base, WEBHOOK_SECRET: 'x'.repeat(32), S3_ENDPOINT: 'minio.internal.example.com:9000' }, ['minio.internal.example.com', 'S3_ENDPOINT']],
    ['an invalid EKS endpoint', { ...base, WEBHOOK_SECRET: 'x'.repeat(32), EKS_CLUSTER_NAME: 'prod', EKS_CLUSTER_ENDPOINT: 'http://10.0.12.7', EKS_CLUSTER_CA: 'abc' }, ['10.0.12.7', 'EKS_CLUSTER']],
    ['an unreadable secret parameter', { ...base, WEBHOOK_SECRET_PARAMETER: 'arn:aws:ssm:eu-west-1:123456789012:parameter/hook/secret' }, ['123456789012', 'parameter/hook']],
  ])('with %s: a generic 500, the details only in the log', async (_what, env, secrets) => {
    const out = await answer(env);
    expect(out.statusCode).toBe(500);
    expect(JSON.parse(out.body)).toEqual({ result: 'failed', reason: 'the webhook is not configured: its operator finds why in the function\'s log' });
    for (const s of secrets) expect(out.body).not.toContain(s);
    const log = logged.join('');
    expect(log).toMatch(/"msg":"the webhook is not configured: /);
    for (const s of secrets) expect(log).toContain(s);
  });

  it('asks for an unreadable secret once, not once per anonymous request', async () => {
    const env = { ...base, WEBHOOK_SECRET_PARAMETER: '/hook/missing' };
    const before = ssmRequests;
    for (let i = 0; i < 20; i += 1) expect((await answer(env)).statusCode).toBe(500);
    expect(ssmRequests - before).toBe(1);
    expect(logged.join('')).toContain('WEBHOOK_SECRET_PARAMETER: SSM parameter /hook/missing does not exist');
  });
});
