/**
 * An HTTP proxy in front of the stack's MinIO that can lose an answer: the request reaches
 * MinIO and is carried out, but the connection to the client is cut before the answer is
 * sent back, as a connection reset after the server acted does. Everything else is passed
 * through byte for byte (the Host header too, so SigV4 signatures still verify).
 */
import { createServer, request, Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LossyProxy {
  url: string;
  /** The answer to the next request matching `match` is lost (after the upstream answered). */
  loseNextAnswer(match: (method: string, path: string) => boolean): void;
  /** Requests that reached the upstream, as "METHOD /path". */
  readonly seen: string[];
  lost: number;
  close(): Promise<void>;
}

export async function startLossyProxy(upstream: string): Promise<LossyProxy> {
  const target = new URL(upstream);
  let pending: ((method: string, path: string) => boolean) | undefined;
  const proxy: LossyProxy = {
    url: '',
    seen: [],
    lost: 0,
    loseNextAnswer: (match) => {
      pending = match;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0];
    const lose = pending?.(method, path) ?? false;
    if (lose) pending = undefined;
    proxy.seen.push(`${method} ${path}`);
    const up = request(
      { host: target.hostname, port: target.port, method, path: req.url, headers: req.headers },
      (answer) => {
        if (lose) {
          answer.resume();
          answer.on('end', () => {
            proxy.lost += 1;
            req.socket.destroy();
          });
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    up.on('error', () => req.socket.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
