/**
 * The commands the README and docs/ show that can run here, run as written against the local
 * stack (test/doc-commands.ts lists them, `run`): first `npm start`, the README's demo, then
 * every `run` command of every page in the order the pages show them, in one bash (so the tour's
 * `set -a; . .stack/env` and `export` hold for the commands after them), stopping at the first
 * that fails. A command that serves (`dsgitops ui`) runs until it prints its URL and is stopped.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseHeader } from '../../bench/report';
import { repoRoot } from '../../stack/paths';
import { DOC_COMMANDS } from '../doc-commands';
import { docPages, normalise, readPage, shellCommands } from '../support/markdown';

/** The environment of a newcomer's shell: the stack's port base, and no cluster configured. */
function newcomerEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const k of ['GIT_URL', 'GIT_TOKEN', 'GIT_PATH', 'S3_BUCKET', 'CLUSTER_NAME', 'KUBECONFIG', 'ALLOWED_NAMESPACES', 'EKS_CLUSTER_NAME']) delete env[k];
  return env;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      process.kill(-child.pid!, 'SIGTERM');
      reject(new Error(`${command} ${args.join(' ')} did not end within ${timeoutMs / 1000} s; its output:\n${out}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, out });
    });
  });
}

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** One bash script that runs each command in turn, marking where each starts. */
function script(commands: { where: string; command: string }[], work: string): string {
  const lines = ['set -eo pipefail'];
  commands.forEach(({ where, command }, i) => {
    const entry = DOC_COMMANDS[normalise(command)];
    if (!entry || !('run' in entry)) return;
    const text = `${command}${entry.append?.[0] ?? ''}`;
    lines.push(`echo ${q(`::: ${where}: ${text}`)}`);
    if (!entry.until) {
      lines.push(text);
      return;
    }
    const log = join(work, `served-${i}.log`);
    lines.push(
      `setsid bash -c ${q(`exec ${text}`)} > ${q(log)} 2>&1 &`,
      'served=$!',
      // Bounded: the server prints its URL once it listens, or it has failed.
      `for _ in $(seq 1 120); do grep -qF ${q(entry.until)} ${q(log)} && break; kill -0 $served 2>/dev/null || break; sleep 0.5; done`,
      `cat ${q(log)}`,
      `if ! grep -qF ${q(entry.until)} ${q(log)}; then echo ${q(`${text}: printed no ${entry.until} within 60 s`)}; kill -- -$served 2>/dev/null; exit 1; fi`,
      'kill -- -$served; wait $served || true',
    );
  });
  lines.push("echo '::: all ran'");
  return lines.join('\n');
}

describe('the commands the README and docs/ show, run as written', () => {
  const env = newcomerEnv({ STACK_PORT_BASE: process.env.STACK_PORT_BASE ?? '' });
  if (!env.STACK_PORT_BASE) delete env.STACK_PORT_BASE;

  it("npm start: the README's demo on the local stack ends well and prints the tour's settings", async () => {
    const { code, out } = await run('npm', ['start'], env, 12 * 60_000);
    expect({ code, tail: out.slice(-3000) }).toEqual({ code: 0, tail: expect.any(String) });
    // The tour's first lines are what the demo prints at its end.
    const tour = shellCommands('README.md', readPage(repoRoot, 'README.md')).map((c) => c.command);
    for (const line of tour.filter((c) => c.startsWith('set -a') || c.startsWith('export GIT_URL='))) expect(out).toContain(line);
  }, 13 * 60_000);

  it('every runnable command of the README and docs/, in the order the pages show them', async () => {
    const work = mkdtempSync(join(tmpdir(), 'doc-commands-'));
    try {
      const commands = docPages(repoRoot).flatMap((page) => shellCommands(page, readPage(repoRoot, page)).map((c) => ({ where: `${c.page}:${c.line}`, command: c.command })));
      const runnable = commands.filter((c) => 'run' in (DOC_COMMANDS[normalise(c.command)] ?? {}));
      expect(runnable.map((c) => c.command)).toEqual(expect.arrayContaining(['npx dsgitops status', 'npx dsgitops plan', 'npm run bench:ui -- --write']));

      const pages = join(work, 'pages');
      const { code, out } = await run('bash', ['-c', script(commands, work)], { ...env, BENCH_PAGES_DIR: pages }, 12 * 60_000);
      expect({ code, tail: out.slice(-4000) }).toEqual({ code: 0, tail: expect.stringContaining('::: all ran') });
      for (const c of runnable) expect(out).toContain(`::: ${c.where}: `);

      // What a newcomer would look for in each answer.
      const after = (where: string): string => out.slice(out.indexOf(`::: ${where}`));
      const at = (command: string): string => runnable.find((c) => c.command === command)!.where;
      expect(after(at('npx dsgitops status'))).toMatch(/fluent-bit/);
      expect(after(at('npx dsgitops history logging/fluent-bit'))).toMatch(/revision|REVISION/);
      expect(after(at('npx dsgitops rollback logging/fluent-bit --reason "try a rollback"'))).toMatch(/pin/i);
      const written = readdirSync(pages);
      expect(written).toEqual(['ui.md']);
      expect(parseHeader(readFileSync(join(pages, 'ui.md'), 'utf8'))).toEqual({ script: 'bench:ui', command: 'npm run bench:ui', placeholder: false });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 13 * 60_000);
});
