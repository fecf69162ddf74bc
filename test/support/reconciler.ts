/**
 * Runs the product against the real local stack: configuration the way a user writes it
 * (environment variables, validated by loadConfig), the RBAC-limited reconciler identity,
 * MinIO, and real git repositories.
 */
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { USER_AGENT } from '../../lib/cluster/client';
import { Config, loadConfig } from '../../lib/config';
import { createDeps, Deps } from '../../lib/deps';
import { Logger } from '../../lib/log';
import { repoRoot } from '../../stack/paths';
import { cliCommand, ensureCliBuilt } from './cli-build';
import { stackEnv, uniqueName } from './cluster';

export interface CapturedLog {
  lines: string[];
  logger: Logger;
}

export function captureLog(): CapturedLog {
  const lines: string[] = [];
  return {
    lines,
    logger: { log: (level, message, fields) => lines.push(JSON.stringify({ level, message, ...fields })) },
  };
}

/** The environment a user would set for this stack; overrides win. */
export function stackConfigEnv(overrides: Record<string, string | undefined>): Record<string, string> {
  const env = stackEnv();
  const base: Record<string, string | undefined> = {
    S3_BUCKET: env.S3_BUCKET,
    S3_ENDPOINT: env.S3_ENDPOINT,
    S3_PREFIX: 'it',
    AWS_REGION: env.AWS_REGION,
    AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    KUBECONFIG: env.RECONCILER_KUBECONFIG,
    CLUSTER_NAME: uniqueName('it'),
    GIT_CACHE_DIR: mkdtempSync(join(tmpdir(), 'dsgitops-cache-')),
    PROGRESS_DEADLINE_SECONDS: '60',
    KUSTOMIZE_BIN: env.KUSTOMIZE_BIN,
    HELM_BIN: env.HELM_BIN,
    ...overrides,
  };
  return Object.fromEntries(Object.entries(base).filter(([, v]) => v !== undefined)) as Record<string, string>;
}

export function stackConfig(overrides: Record<string, string | undefined>): Config {
  return loadConfig(stackConfigEnv(overrides));
}

export function stackDeps(config: Config, options: { logger?: Logger; budgetMs?: number; runId?: string; onProgress?: (l: string) => void } = {}): Deps {
  // The S3 client takes its credentials from the standard environment variables.
  const env = stackEnv();
  process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  return createDeps(config, { logger: options.logger ?? captureLog().logger, budgetMs: options.budgetMs ?? 120_000, runId: options.runId, onProgress: options.onProgress });
}

/** Deletes what a configuration's runs wrote to S3 (its cluster's prefix). */
export async function deleteStorePrefix(config: Config): Promise<void> {
  const deps = stackDeps(config);
  for (const key of await deps.objects.list(`${deps.store.keys.root}/`)) await deps.objects.delete(key);
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the dsgitops command as a separate process, the way a person or a script does: the
 * compiled command (built first if a source changed since).
 */
export function runCliProcess(args: string[], env: Record<string, string>, timeoutMs = 180_000, onStart?: (pid: number) => void): Promise<CliRun> {
  ensureCliBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliCommand, ...args], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid !== undefined) onStart?.(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`dsgitops ${args.join(' ')} did not finish within ${timeoutMs / 1000}s\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * Counts the API requests the reconciler identity made while `fn` ran, from the API
 * server's own audit log (one entry per request; watches are counted once).
 */
/** A file's bytes from an offset on (the audit log grows to hundreds of MB: never read it whole). */
function readFrom(file: string, offset: number): string {
  const fd = openSync(file, 'r');
  try {
    const length = Math.max(0, fstatSync(fd).size - offset);
    const buf = Buffer.alloc(length);
    let read = 0;
    while (read < length) {
      const n = readSync(fd, buf, read, length - read, offset + read);
      if (n === 0) break;
      read += n;
    }
    return buf.subarray(0, read).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

export async function countApiRequests<T>(
  fn: () => Promise<T>,
  options: { thisProcess?: boolean } = {},
): Promise<{ result: T; requests: number; verbs: string[]; userAgents: string[] }> {
  const log = stackEnv().AUDIT_LOG;
  const before = statSync(log).size;
  const result = await fn();
  // The log backend writes in blocking mode: an entry is on disk before its response is sent.
  const text = readFrom(log, before);
  const seen = new Set<string>();
  const verbs: string[] = [];
  const userAgents: string[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line) as { auditID: string; verb: string; requestURI: string; user: { username: string }; userAgent?: string };
    if (e.user.username !== 'daemonset-gitops' || seen.has(e.auditID)) continue;
    // Other runs on a shared stack use the same identity; this process's requests name it (USER_AGENT).
    if (options.thisProcess && e.userAgent !== USER_AGENT) continue;
    seen.add(e.auditID);
    verbs.push(`${e.verb} ${e.requestURI.split('?')[0]}`);
    userAgents.push(e.userAgent ?? '');
  }
  return { result, requests: seen.size, verbs, userAgents };
}
