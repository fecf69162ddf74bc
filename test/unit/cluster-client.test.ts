/**
 * The cluster adapter's own request handling, over real HTTP to a server on 127.0.0.1 that
 * plays the API server badly: it never answers, answers 503 or 429, or refuses. What is
 * tested is the adapter's own HTTP calls (the kubeconfig applied by client-node): its timeout
 * cancels the request, an answer cut off fails the call, and it repeats only what is safe to
 * repeat.
 */
import { createServer as createHttpServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo, createServer as createTcpServer, Socket } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { KubernetesCluster } from '../../lib/cluster/client';
import { ApplyError, ClusterError, PermissionDeniedError } from '../../lib/errors';

const manifest = {
  apiVersion: 'apps/v1',
  kind: 'DaemonSet',
  metadata: { name: 'fluentd', namespace: 'logging' },
  spec: {
    selector: { matchLabels: { app: 'fluentd' } },
    template: { metadata: { labels: { app: 'fluentd' } }, spec: { containers: [{ name: 'fluentd', image: 'fluentd:1.16' }] } },
  },
};

const fastRetry = { attempts: 4, baseDelayMs: 20, maxDelayMs: 40, maxRetryAfterMs: 2_000 };

function clusterAt(port: number, options: ConstructorParameters<typeof KubernetesCluster>[1] = {}): KubernetesCluster {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    // client-node speaks plain HTTP only with skipTLSVerify; there is no TLS to verify here.
    clusters: [{ name: 'local', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'nobody' }],
    contexts: [{ name: 'local', cluster: 'local', user: 'nobody' }],
    currentContext: 'local',
  });
  return new KubernetesCluster(kc, options);
}

function listen(server: Server | ReturnType<typeof createTcpServer>): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function status(code: number, reason: string, message: string): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}

/** An HTTP server that answers the n-th request with answers[n] (the last one repeats), and records when each came. */
async function scriptedServer(answers: { status: number; body: string; headers?: Record<string, string> }[]) {
  const requests: { method: string; url: string; at: number }[] = [];
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', at: Date.now() });
    const a = answers[Math.min(requests.length - 1, answers.length - 1)];
    req.resume();
    req.on('end', () => {
      res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
      res.end(a.body);
    });
  });
  const port = await listen(server);
  return { port, requests, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const nodeList = JSON.stringify({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: '7' }, items: [] });
const unavailable = status(503, 'ServiceUnavailable', 'the server is currently unable to handle the request');

describe('a request that gets no answer', () => {
  let server: ReturnType<typeof createTcpServer>;
  const sockets: { socket: Socket; received: string; closedAt?: number }[] = [];

  beforeAll(async () => {
    // Accepts connections, reads what is sent, and never answers.
    server = createTcpServer((socket) => {
      const entry: (typeof sockets)[number] = { socket, received: '' };
      sockets.push(entry);
      socket.on('data', (d) => (entry.received += d.toString('utf8')));
      socket.on('close', () => (entry.closedAt = Date.now()));
      socket.on('error', () => undefined);
    });
  });

  afterAll(async () => {
    for (const s of sockets) s.socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('is cancelled at the timeout: the client closes the connection, so the apply cannot land later', async () => {
    const port = await listen(server);
    const cluster = clusterAt(port, { requestTimeoutMs: 300, retry: fastRetry });

    const started = Date.now();
    const err = await cluster.apply(manifest).then(() => undefined, (e: unknown) => e);

    expect(err).toBeInstanceOf(ClusterError);
    expect((err as ClusterError).message).toBe(`apply DaemonSet logging/fluentd: no answer from the API server at http://127.0.0.1:${port} within 0.3s: the request was cancelled`);
    // The server got the whole apply request...
    expect(sockets).toHaveLength(1);
    expect(sockets[0].received).toMatch(/^PATCH \/apis\/apps\/v1\/namespaces\/logging\/daemonsets\/fluentd\?fieldManager=daemonset-gitops&force=true HTTP\/1.1/);
    // ...and the client closed the connection at the timeout instead of leaving it open.
    const deadline = Date.now() + 2_000;
    while (sockets[0].closedAt === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(sockets[0].closedAt).toBeDefined();
    expect(sockets[0].closedAt! - started).toBeGreaterThanOrEqual(290);
    expect(sockets[0].closedAt! - started).toBeLessThan(1_500);
    // A timed-out request is not sent again in the same pass.
    await new Promise((r) => setTimeout(r, 200));
    expect(sockets).toHaveLength(1);
    expect(cluster.requestCount).toBe(1);
  });
});

describe('an answer cut off in the middle', () => {
  it('fails the call as one without an answer (and repeats a read), instead of waiting for the rest', async () => {
    // Sends the headers and the start of a 1000-byte body, then closes the connection.
    const server = createTcpServer((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"kind":"NodeList",');
        setTimeout(() => socket.destroy(), 20);
      });
      socket.on('error', () => undefined);
    });
    const port = await listen(server);
    try {
      const cluster = clusterAt(port, { requestTimeoutMs: 10_000, retry: fastRetry });
      const started = Date.now();
      const err = await cluster.listNodes().then(() => undefined, (e: unknown) => e);

      expect(err).toBeInstanceOf(ClusterError);
      expect((err as ClusterError).message).toMatch(new RegExp(`^list nodes: cannot reach the API server at http://127.0.0.1:${port}: `));
      expect(cluster.requestCount).toBe(fastRetry.attempts);
      // Failed at once, not at the 10 s timeout.
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('retries', () => {
  it('sends a read again after 503s, and succeeds', async () => {
    const server = await scriptedServer([{ status: 503, body: unavailable }, { status: 503, body: unavailable }, { status: 200, body: nodeList }]);
    try {
      const cluster = clusterAt(server.port, { retry: fastRetry });

      await expect(cluster.listNodes()).resolves.toEqual([]);

      expect(server.requests.map((r) => r.method)).toEqual(['GET', 'GET', 'GET']);
      expect(cluster.requestCount).toBe(3);
    } finally {
      await server.close();
    }
  });

  it('waits as long as a 429\'s Retry-After asks before asking again', async () => {
    const tooMany = status(429, 'TooManyRequests', 'Too many requests, please try again later.');
    const server = await scriptedServer([{ status: 429, body: tooMany, headers: { 'retry-after': '1' } }, { status: 200, body: nodeList }]);
    try {
      await clusterAt(server.port, { retry: fastRetry }).listNodes();

      expect(server.requests).toHaveLength(2);
      expect(server.requests[1].at - server.requests[0].at).toBeGreaterThanOrEqual(1_000);
    } finally {
      await server.close();
    }
  });

  it('gives up on a dry run after the last attempt with a retryable ClusterError, not an ApplyError', async () => {
    const webhook = status(500, 'InternalError', 'Internal error occurred: failed calling webhook "policy.example.com": failed to call webhook: Post "https://policy.policy-system.svc:443/validate?timeout=10s": context deadline exceeded');
    const server = await scriptedServer([{ status: 500, body: webhook }]);
    try {
      const err = await clusterAt(server.port, { retry: fastRetry }).dryRunApply(manifest).then(() => undefined, (e: unknown) => e);

      expect(err).toBeInstanceOf(ClusterError);
      expect(err).not.toBeInstanceOf(ApplyError);
      expect(err).toMatchObject({ reason: 'ClusterUnavailable', retryable: true, status: 500 });
      expect(server.requests.map((r) => r.method)).toEqual(['PATCH', 'PATCH', 'PATCH', 'PATCH']);
      expect(server.requests[0].url).toContain('dryRun=All');
    } finally {
      await server.close();
    }
  });

  it('does not repeat a refusal that will not change by itself (403)', async () => {
    const forbidden = status(403, 'Forbidden', 'daemonsets.apps "fluentd" is forbidden: User "daemonset-gitops" cannot patch resource "daemonsets" in API group "apps" in the namespace "logging"');
    const server = await scriptedServer([{ status: 403, body: forbidden }]);
    try {
      const err = await clusterAt(server.port, { retry: fastRetry }).dryRunApply(manifest).then(() => undefined, (e: unknown) => e);

      expect(err).toBeInstanceOf(PermissionDeniedError);
      expect(server.requests).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it('does not repeat a create, which would make a second Event', async () => {
    const server = await scriptedServer([{ status: 503, body: unavailable }]);
    try {
      const err = await clusterAt(server.port, { retry: fastRetry })
        .createEvent({ namespace: 'logging', name: 'fluentd' }, 'Normal', 'Applied', 'revision 3 applied')
        .then(() => undefined, (e: unknown) => e);

      expect(err).toMatchObject({ reason: 'ClusterUnavailable', retryable: true, status: 503 });
      expect(server.requests.map((r) => r.method)).toEqual(['POST']);
    } finally {
      await server.close();
    }
  });
});
