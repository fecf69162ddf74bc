/**
 * Starting and stopping the stack's programs as plain background processes.
 *
 * Every process this stack starts gets a pid file holding its pid and the program it runs.
 * A pid counts as ours only while /proc shows that same program under it, so a stale pid
 * file whose number the kernel has since given to another process is never signalled.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { paths } from './paths';

export interface ProcessSpec {
  name: string;
  /** Absolute path of the program. */
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

interface PidRecord {
  pid: number;
  command: string;
  fingerprint: string;
}

/** Identifies how a process was started; a different fingerprint means its configuration changed. */
export function fingerprint(spec: ProcessSpec): string {
  return createHash('sha256').update(JSON.stringify([spec.command, spec.args, spec.env ?? {}])).digest('hex').slice(0, 16);
}

function pidFile(name: string): string {
  return join(paths.pids, `${name}.pid`);
}

export function logFile(name: string): string {
  return join(paths.logs, `${name}.log`);
}

function readRecord(name: string): PidRecord | undefined {
  const file = pidFile(name);
  if (!existsSync(file)) return undefined;
  const [pid, command, print] = readFileSync(file, 'utf8').split('\n');
  const n = Number(pid);
  return Number.isInteger(n) && n > 0 && command ? { pid: n, command, fingerprint: print ?? '' } : undefined;
}

function commandLineOf(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

/** The fingerprint recorded when the named process was started. */
export function runningFingerprint(name: string): string | undefined {
  return readRecord(name)?.fingerprint;
}

/** The pid of the named process if it is still the program this stack started. */
export function runningPid(name: string): number | undefined {
  const record = readRecord(name);
  if (!record) return undefined;
  const argv = commandLineOf(record.pid);
  if (!argv || !argv.some((a) => a === record.command)) return undefined;
  return alive(record.pid) ? record.pid : undefined;
}

export function startProcess(spec: ProcessSpec): number {
  mkdirSync(paths.pids, { recursive: true });
  mkdirSync(paths.logs, { recursive: true });
  const out = openSync(logFile(spec.name), 'a');
  writeFileSync(out, `\n---- ${new Date().toISOString()} starting ${spec.command} ${spec.args.join(' ')}\n`);
  const child = spawn(spec.command, spec.args, {
    cwd: spec.cwd,
    env: { ...process.env, ...spec.env },
    detached: true,
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  if (child.pid === undefined) throw new Error(`could not start ${spec.name} (${spec.command})`);
  child.unref();
  writeFileSync(pidFile(spec.name), `${child.pid}\n${spec.command}\n${fingerprint(spec)}\n`);
  return child.pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Stops the named process if it is ours: SIGTERM, then SIGKILL after the grace period. */
export async function stopProcess(name: string, graceMs = 10_000): Promise<boolean> {
  const pid = runningPid(name);
  rmSync(pidFile(name), { force: true });
  if (pid === undefined) return false;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return false;
  }
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await sleep(100);
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* it ended between the check and the signal */
    }
    while (alive(pid)) await sleep(50);
  }
  return true;
}

export function logTail(name: string, lines = 25): string {
  try {
    return readFileSync(logFile(name), 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
