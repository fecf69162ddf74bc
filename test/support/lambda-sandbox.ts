/**
 * One Lambda execution environment for a packaged function, as the nodejs24.x runtime makes it:
 * Node.js 24 runs AWS's runtime interface client (aws-lambda-ric), which loads the handler
 * named by _HANDLER from LAMBDA_TASK_ROOT and takes its invocations from the Runtime API
 * (test/support/lambda-runtime-api.ts). The function's zip is unpacked into a read-only task
 * directory, the process runs as an unprivileged user (nobody) with Lambda's environment,
 * no HOME, and a PATH that holds node and nothing else (no git); only its temporary directory
 * is writable. The process stays up between invocations, as a warm environment does.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, linkSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureLambdaNode, ensureRuntimeInterfaceClient } from '../../scripts/lambda-runtime';
import { unpackReadOnly } from '../../scripts/lambda-package';
import { Outcome, RuntimeApi } from './lambda-runtime-api';

const NOBODY = 65534;

export interface SandboxOptions {
  functionName: string;
  /** serverless.yml's `handler` of the function, e.g. handlers/reconcile.handler. */
  handler: string;
  zip: string;
  /** The function's own environment (serverless.yml's provider.environment, as deployed). */
  environment: Record<string, string>;
  /** A kubeconfig file to give the function (copied in, readable only by it); KUBECONFIG points at the copy. */
  kubeconfig?: string;
  memoryMb?: number;
  /** Layer zips, unpacked read-only (programs kept executable) under the sandbox's /opt, whose bin/ joins the PATH as Lambda's /opt/bin does. */
  layers?: string[];
}

export class LambdaSandbox {
  readonly root = mkdtempSync(join(tmpdir(), 'dsgitops-lambda-'));
  readonly task = join(this.root, 'var', 'task');
  readonly tmp = join(this.root, 'tmp');
  readonly path = join(this.root, 'var', 'lang', 'bin');
  private readonly api: RuntimeApi;
  private proc: ChildProcess | undefined;
  /** Everything the function wrote to stdout and stderr (what CloudWatch Logs would hold). */
  logs = '';

  private constructor(private readonly options: SandboxOptions) {
    this.api = new RuntimeApi(options.functionName);
  }

  static async start(options: SandboxOptions): Promise<LambdaSandbox> {
    const sandbox = new LambdaSandbox(options);
    try {
      await sandbox.boot();
    } catch (err) {
      await sandbox.stop();
      throw err;
    }
    return sandbox;
  }

  private async boot(): Promise<void> {
    const { options } = this;
    chmodSync(this.root, 0o755);
    // /var/lang/bin: node alone.
    mkdirSync(this.path, { recursive: true });
    const node = join(this.path, 'node');
    try {
      linkSync(ensureLambdaNode(), node);
    } catch {
      copyFileSync(ensureLambdaNode(), node);
    }
    chmodSync(node, 0o755);
    // /var/runtime: the runtime interface client.
    const ric = ensureRuntimeInterfaceClient();
    const runtimeDir = join(this.root, 'var', 'runtime');
    mkdirSync(runtimeDir, { recursive: true });
    for (const f of ['index.mjs', 'rapid-client.node']) copyFileSync(join(ric, f), join(runtimeDir, f));
    for (const d of [join(this.root, 'var'), join(this.root, 'var', 'lang'), this.path, runtimeDir]) chmodSync(d, 0o755);
    // /var/task: the zip, read-only.
    unpackReadOnly(options.zip, this.task);
    // /opt: the layers, read-only.
    const opt = join(this.root, 'opt');
    for (const layer of options.layers ?? []) {
      mkdirSync(opt, { recursive: true });
      execFileSync('unzip', ['-q', '-o', layer, '-d', opt]);
    }
    if (options.layers?.length) execFileSync('chmod', ['-R', 'a-w,a+rX', opt]);
    // /tmp: the only writable place.
    mkdirSync(this.tmp, { mode: 0o700 });
    chownSync(this.tmp, NOBODY, NOBODY);
    const env: Record<string, string> = {
      ...options.environment,
      AWS_LAMBDA_RUNTIME_API: await this.api.listen(),
      _HANDLER: options.handler,
      LAMBDA_TASK_ROOT: this.task,
      LAMBDA_RUNTIME_DIR: runtimeDir,
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
      AWS_LAMBDA_FUNCTION_NAME: options.functionName,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(options.memoryMb ?? 1024),
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${options.functionName}`,
      AWS_LAMBDA_LOG_STREAM_NAME: `2026/01/01/[$LATEST]${this.root.slice(-6)}`,
      AWS_REGION: options.environment.AWS_REGION ?? 'us-east-1',
      AWS_DEFAULT_REGION: options.environment.AWS_REGION ?? 'us-east-1',
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
      PATH: `${this.path}:/nonexistent/bin${options.layers?.length ? `:${join(this.root, 'opt', 'bin')}` : ''}`,
      TMPDIR: this.tmp,
      NODE_PATH: `${runtimeDir}:${this.task}`,
    };
    if (options.kubeconfig) {
      const copy = join(this.tmp, 'kubeconfig');
      copyFileSync(options.kubeconfig, copy);
      chownSync(copy, NOBODY, NOBODY);
      chmodSync(copy, 0o400);
      env.KUBECONFIG = copy;
    }
    delete env.HOME;
    this.proc = spawn(node, [join(runtimeDir, 'index.mjs')], { cwd: this.task, env, uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d) => (this.logs += d));
    this.proc.stderr!.on('data', (d) => (this.logs += d));
  }

  /** Invokes the function with `timeoutMs` on its clock (what the function's timeout leaves). */
  invoke(event: unknown, timeoutMs: number): Promise<Outcome> {
    if (!this.proc || this.proc.exitCode !== null) return Promise.reject(new Error(`the runtime is not running:\n${this.logs}`));
    return new Promise((resolve, reject) => {
      const exited = (code: number | null): void => reject(new Error(`the runtime exited (${code}) during the invocation:\n${this.logs}`));
      this.proc!.once('exit', exited);
      this.api.invoke(event, timeoutMs).then((o) => {
        this.proc?.off('exit', exited);
        resolve(o);
      }, reject);
    });
  }

  /** The structured log lines (JSON objects) the function wrote. */
  logLines(): Record<string, unknown>[] {
    return this.logs.split('\n').flatMap((l) => {
      const start = l.indexOf('{');
      if (start < 0) return [];
      try {
        return [JSON.parse(l.slice(start)) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }

  async stop(): Promise<void> {
    if (this.proc?.pid && this.proc.exitCode === null) {
      const exited = new Promise((r) => this.proc!.once('exit', r));
      process.kill(this.proc.pid, 'SIGKILL');
      await exited;
    }
    await this.api.close();
    execFileSync('chmod', ['-R', 'u+w', this.root]);
    rmSync(this.root, { recursive: true, force: true });
  }
}
