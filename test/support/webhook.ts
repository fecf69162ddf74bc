/**
 * The push webhook as the local stack serves it (stack/webhook-server.ts), started on a free
 * port for one test file with that file's configuration, and requests to it as each
 * provider sends them.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { repoRoot } from '../../stack/paths';
import { waitFor } from './cluster';

export interface WebhookServer {
  url: string;
  pid: number;
  /** What the server logged so far (JSON lines). */
  log(): string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startWebhookServer(env: Record<string, string>): Promise<WebhookServer> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'stack', 'webhook-server.ts'), '--port', String(port)], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const url = `http://127.0.0.1:${port}/`;
  await waitFor(`the webhook server on port ${port} (output so far: ${output})`, async () => (await fetch(`${url}healthz`)).ok, 30_000);
  return {
    url,
    pid: child.pid!,
    log: () => output,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      process.kill(child.pid!, 'SIGTERM');
    }),
  };
}

export interface Answer {
  status: number;
  body: { result: string; reason: string; provider?: string; delivery?: string; commit?: string };
  ms: number;
}

export async function post(url: string, headers: Record<string, string>, body: Buffer | string): Promise<Answer> {
  const t0 = performance.now();
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const ms = performance.now() - t0;
  return { status: res.status, body: (await res.json()) as Answer['body'], ms };
}

export const hmacHex = (secret: string, body: Buffer | string) => createHmac('sha256', secret).update(body).digest('hex');

/** A push payload in the shape all three providers share. */
export function pushBody(ref: string, after: string): Buffer {
  return Buffer.from(JSON.stringify({ ref, before: '0'.repeat(40), after, repository: { clone_url: 'https://git.example.com/o/r.git' }, pusher: { name: 'alice' } }));
}

export function githubHeaders(secret: string, body: Buffer, event = 'push', delivery = randomUUID()): Record<string, string> {
  return { 'x-github-event': event, 'x-github-delivery': delivery, 'x-hub-signature-256': `sha256=${hmacHex(secret, body)}` };
}

export function giteaHeaders(secret: string, body: Buffer, delivery = randomUUID()): Record<string, string> {
  return { 'x-gitea-event': 'push', 'x-gitea-delivery': delivery, 'x-gitea-signature': hmacHex(secret, body) };
}

export function gitlabHeaders(secret: string, delivery = randomUUID()): Record<string, string> {
  return { 'x-gitlab-event': 'Push Hook', 'idempotency-key': delivery, 'x-gitlab-token': secret };
}
