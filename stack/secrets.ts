import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { paths } from './paths';

/** A random secret made on first use and kept under .stack/config, so restarts reuse it. */
export function readSecret(name: string): string {
  const file = join(paths.config, name);
  if (!existsSync(file)) {
    mkdirSync(paths.config, { recursive: true });
    writeFileSync(file, `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
  }
  return readFileSync(file, 'utf8').trim();
}
