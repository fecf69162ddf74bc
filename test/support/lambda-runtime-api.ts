/**
 * The Lambda Runtime API (2018-06-01), as AWS documents it for custom runtimes and the runtime
 * interface client speaks it: the runtime long-polls `GET /runtime/invocation/next` for an event
 * (its request id and deadline in headers), then posts the handler's result to
 * `/runtime/invocation/{id}/response` or its error to `/runtime/invocation/{id}/error`;
 * a handler that cannot even load is posted to `/runtime/init/error`.
 * The tests queue invocations here and read back what the runtime answered.
 */
import { randomUUID } from 'node:crypto';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Outcome =
  | { ok: true; result: unknown; ms: number }
  | { ok: false; error: { errorType?: string; errorMessage?: string; trace?: string[] }; ms: number };

interface Pending {
  id: string;
  event: unknown;
  deadlineMs: number;
  started: number;
  resolve: (o: Outcome) => void;
}

const PREFIX = '/2018-06-01/runtime';

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (data += c));
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export class RuntimeApi {
  private readonly server: Server;
  private readonly queue: Pending[] = [];
  private readonly inFlight = new Map<string, Pending>();
  private waiting: ServerResponse | undefined;
  /** What the runtime posted to /runtime/init/error, if the handler failed to load. */
  initError: unknown;
  private initErrorListeners: ((e: unknown) => void)[] = [];

  constructor(readonly functionName: string) {
    this.server = createServer((req, res) => void this.handle(req, res));
    // A long poll waits as long as it takes.
    this.server.requestTimeout = 0;
    this.server.headersTimeout = 0;
    this.server.keepAliveTimeout = 0;
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.waiting?.destroy();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Invokes the function with `event` and `timeoutMs` left on its clock; resolves with what the runtime posted back. */
  invoke(event: unknown, timeoutMs: number): Promise<Outcome> {
    return new Promise((resolve, reject) => {
      const pending: Pending = { id: randomUUID(), event, deadlineMs: Date.now() + timeoutMs, started: Date.now(), resolve };
      this.initErrorListeners.push((e) => reject(new Error(`the function failed to initialise: ${JSON.stringify(e)}`)));
      this.queue.push(pending);
      this.dispatch();
    });
  }

  private dispatch(): void {
    if (!this.waiting || this.queue.length === 0) return;
    const next = this.queue.shift()!;
    const res = this.waiting;
    this.waiting = undefined;
    this.inFlight.set(next.id, next);
    res.writeHead(200, {
      'content-type': 'application/json',
      'lambda-runtime-aws-request-id': next.id,
      'lambda-runtime-deadline-ms': String(next.deadlineMs),
      'lambda-runtime-invoked-function-arn': `arn:aws:lambda:us-east-1:123456789012:function:${this.functionName}`,
      'lambda-runtime-trace-id': `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomUUID().replace(/-/g, '').slice(0, 24)};Sampled=0`,
    });
    res.end(JSON.stringify(next.event));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '';
    if (req.method === 'GET' && url === `${PREFIX}/invocation/next`) {
      this.waiting = res;
      this.dispatch();
      return;
    }
    const text = await body(req);
    const m = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(url);
    if (req.method === 'POST' && m && this.inFlight.has(m[1])) {
      const p = this.inFlight.get(m[1])!;
      this.inFlight.delete(m[1]);
      const ms = Date.now() - p.started;
      p.resolve(m[2] === 'response' ? { ok: true, result: parse(text), ms } : { ok: false, error: parse(text) as Outcome extends { error: infer E } ? E : never, ms });
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"OK"}');
      return;
    }
    if (req.method === 'POST' && url === `${PREFIX}/init/error`) {
      this.initError = parse(text);
      for (const l of this.initErrorListeners) l(this.initError);
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"OK"}');
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errorMessage: `unknown request ${req.method} ${url}` }));
  }
}
