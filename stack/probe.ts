import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { paths } from './paths';

export interface ProbeOptions {
  /** Present the admin client certificate and trust the stack CA. */
  adminTls?: boolean;
  /** Accept any serving certificate (components that make their own self-signed one). */
  insecure?: boolean;
  timeoutMs?: number;
}

/** GET a URL on 127.0.0.1; resolves with the status code and body, or undefined if unreachable. */
export function probe(url: string, options: ProbeOptions = {}): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const tls = u.protocol === 'https:';
    const opts: Record<string, unknown> = { method: 'GET', timeout: options.timeoutMs ?? 2000 };
    if (tls && options.adminTls) {
      opts.ca = readFileSync(join(paths.pki, 'ca.crt'));
      opts.cert = readFileSync(join(paths.pki, 'admin.crt'));
      opts.key = readFileSync(join(paths.pki, 'admin.key'));
    }
    if (tls && options.insecure) opts.rejectUnauthorized = false;
    const req = (tls ? httpsRequest : httpRequest)(u, opts, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}
