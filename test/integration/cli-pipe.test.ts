/**
 * The command's output reaches a reader slower than the command, whole: piped, as
 * `dsgitops rbac | kubectl apply -f -` and `dsgitops status --json | jq` are, the process used to
 * exit 0 with only the first 64 KiB in the pipe (process.exit drops what the pipe has not taken).
 */
import { spawn } from 'node:child_process';
import { cliCommand, ensureCliBuilt } from '../support/cli-build';

describe('dsgitops through a pipe', () => {
  beforeAll(() => ensureCliBuilt());

  it('dsgitops rbac for 2,000 namespaces, read a second late: every namespace arrives, and the exit status', async () => {
    const namespaces = Array.from({ length: 2000 }, (_, i) => `agents-${i}`);
    const child = spawn(process.execPath, [cliCommand, 'rbac', '--namespaces', namespaces.join(',')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdout.pause();
    // The reader is late on purpose: the command writes far more than the pipe holds meanwhile.
    await new Promise((r) => setTimeout(r, 1000));
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stdout.resume();
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect({ code, err }).toEqual({ code: 0, err: '' });
    expect(out.length).toBeGreaterThan(1024 * 1024);
    const present = new Set([...out.matchAll(/^ {2}namespace: (agents-\d+)$/gm)].map((m) => m[1]));
    expect(namespaces.filter((ns) => !present.has(ns))).toEqual([]);
    expect(out.endsWith('\n')).toBe(true);
  }, 60_000);
});
