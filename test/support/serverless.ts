/**
 * `serverless invoke local`, as the e2e tests run the functions: the bundles `serverless
 * package` ships, their environment from serverless.yml and the given one.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../stack/paths';

export interface Invocation {
  code: number | null;
  /** The function's result: the JSON printed after serverless's own output, if any. */
  result: Record<string, unknown> | undefined;
  stdout: string;
  stderr: string;
}

export function invokeLocal(fn: string, data: unknown, env: Record<string, string>): Promise<Invocation> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(repoRoot, 'node_modules', '.bin', 'serverless'), ['invoke', 'local', '-f', fn, '--data', JSON.stringify(data)], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const start = stdout.indexOf('{');
      let result: Record<string, unknown> | undefined;
      try {
        result = start >= 0 ? (JSON.parse(stdout.slice(start)) as Record<string, unknown>) : undefined;
      } catch {
        result = undefined;
      }
      resolve({ code, result, stdout, stderr });
    });
  });
}
