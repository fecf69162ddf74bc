/**
 * Every shell command the README and docs/ show is covered (test/doc-commands.ts): run as written
 * by test/integration/doc-commands.test.ts, run by a named test or CI script that still holds its
 * invocation, or named as not runnable here with the reason. A `dsgitops` command's subcommand
 * and flags are checked against the CLI's own usage text (what `dsgitops --help` prints), an
 * `npm run` command's script against package.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { USAGE } from '../../bin/cli';
import { Coverage, DOC_COMMANDS } from '../doc-commands';
import { DocCommand, docPages, normalise, readPage, shellCommands } from '../support/markdown';

const root = resolve(__dirname, '..', '..');
const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

function allCommands(): DocCommand[] {
  return docPages(root).flatMap((page) => shellCommands(page, readPage(root, page)));
}

/** Commands with no entry in the registry, as `page:line: command`. */
export function uncovered(commands: DocCommand[], registry: Record<string, Coverage>): string[] {
  return commands.filter((c) => !(normalise(c.command) in registry)).map((c) => `${c.page}:${c.line}: ${c.command}`);
}

/** The usage text of each dsgitops subcommand, from the CLI's own help. */
function usageByCommand(): Map<string, string> {
  const out = new Map<string, string>();
  let current: string | undefined;
  for (const line of USAGE.split('\n')) {
    const m = /^ {2}([a-z][\w-]*)\b/.exec(line);
    if (m) current = m[1];
    else if (!/^ {3,}/.test(line)) current = undefined;
    if (current) out.set(current, `${out.get(current) ?? ''}\n${line}`);
  }
  return out;
}

const GLOBAL_FLAGS = ['--json', '--verbose', '--help', '-h'];

/** What is wrong with a documented dsgitops or npm run command, checked against --help and package.json. */
export function commandProblems(command: string, usage = usageByCommand(), npmScripts = scripts): string[] {
  const problems: string[] = [];
  for (const segment of command.split(/\s*(?:\||&&|;)\s*/)) {
    const words = segment.trim().split(/\s+/);
    const at = words.indexOf('dsgitops');
    if (at >= 0) {
      const sub = words[at + 1];
      const text = sub ? usage.get(sub) : undefined;
      if (!text) problems.push(`dsgitops ${sub ?? ''}: no such command in dsgitops --help`);
      else {
        for (const flag of words.slice(at + 2).map((w) => w.replace(/^\[|\]$/g, '')).filter((w) => /^--?[a-z]/.test(w))) {
          const name = flag.split('=')[0];
          if (!GLOBAL_FLAGS.includes(name) && !new RegExp(`${name.replace(/[-]/g, '\\-')}\\b`).test(text)) problems.push(`dsgitops ${sub} ${name}: dsgitops --help names no such flag for ${sub}`);
        }
      }
    }
    const npm = words.indexOf('npm');
    if (npm >= 0 && words[npm + 1] === 'run' && !(words[npm + 2] in npmScripts)) problems.push(`npm run ${words[npm + 2]}: no such script in package.json`);
  }
  return problems;
}

describe('the extractor of documented commands', () => {
  const fixture = [
    '# A page',
    '',
    '```sh',
    'npm ci && npm start    # a comment after the command',
    '# a comment line',
    'export A=1 \\',
    '  B=2',
    "echo '# not a comment'",
    '```',
    '',
    '```console',
    '$ kubectl get ds',
    'NAME   DESIRED',
    'agent  3',
    '```',
    '',
    '```',
    'npx dsgitops status',
    '```',
    '',
    '```',
    'base/   kustomization.yaml',
    '```',
    '',
    '```yaml',
    'kind: DaemonSet',
    '```',
  ].join('\n');

  it('takes shell, console and shell-looking unlabelled blocks; joins continuations; drops comments, prompts and output', () => {
    expect(shellCommands('docs/x.md', fixture)).toEqual([
      { page: 'docs/x.md', line: 4, command: 'npm ci && npm start' },
      { page: 'docs/x.md', line: 6, command: 'export A=1 B=2' },
      { page: 'docs/x.md', line: 8, command: "echo '# not a comment'" },
      { page: 'docs/x.md', line: 12, command: 'kubectl get ds' },
      { page: 'docs/x.md', line: 18, command: 'npx dsgitops status' },
    ]);
  });

  it('fails a command added to a page without an entry in the registry', () => {
    const registry: Record<string, Coverage> = { 'npm ci && npm start': { run: true }, 'export A=1 B=2': { run: true }, "echo '# not a comment'": { run: true }, 'kubectl get ds': { notRunnable: 'x' } };
    expect(uncovered(shellCommands('docs/x.md', fixture), registry)).toEqual(['docs/x.md:18: npx dsgitops status']);
    const withNew = fixture.replace('npx dsgitops status', 'npx dsgitops status\nnpx dsgitops plan --everything');
    expect(uncovered(shellCommands('docs/x.md', withNew), { ...registry, 'npx dsgitops status': { run: true } })).toEqual(['docs/x.md:19: npx dsgitops plan --everything']);
  });

  it('checks dsgitops commands against the CLI usage and npm scripts against package.json', () => {
    expect(commandProblems('npx dsgitops rollback logging/a --reason "x" --to-revision 3')).toEqual([]);
    expect(commandProblems('npx dsgitops rollback logging/a --revision 3')).toEqual(['dsgitops rollback --revision: dsgitops --help names no such flag for rollback']);
    expect(commandProblems('dsgitops fleet promote abc --to prod --reason x')).toEqual([]);
    expect(commandProblems('npx dsgitops rewind logging/a')).toEqual(['dsgitops rewind: no such command in dsgitops --help']);
    expect(commandProblems('npx dsgitops ui [--port N] [--open] [--allow-actions]')).toEqual([]);
    expect(commandProblems('npx dsgitops status --json')).toEqual([]);
    expect(commandProblems('npm run stack:up && npm run stack:upp')).toEqual(['npm run stack:upp: no such script in package.json']);
  });
});

describe('every command of the README and docs/ is covered', () => {
  const commands = allCommands();

  it('finds the commands of the README and the docs', () => {
    expect(commands.map((c) => c.command)).toEqual(expect.arrayContaining(['npm test', 'npx dsgitops status', 'npx serverless deploy']));
    expect(commands.length).toBeGreaterThan(40);
  });

  it('has an entry for every command shown', () => {
    expect(uncovered(commands, DOC_COMMANDS)).toEqual([]);
  });

  it('has no entry for a command no page shows any more', () => {
    const shown = new Set(commands.map((c) => normalise(c.command)));
    expect(Object.keys(DOC_COMMANDS).filter((k) => !shown.has(k))).toEqual([]);
  });

  it.each(commands.map((c) => [`${c.page}:${c.line}`, c.command]))('%s: %s names commands, flags and scripts that exist', (_where, command) => {
    expect(commandProblems(command)).toEqual([]);
  });

  const byTests = Object.entries(DOC_COMMANDS).filter((e): e is [string, Extract<Coverage, { tests: string[] }>] => 'tests' in e[1]);
  it.each(byTests)('%s: the tests that cover it exist and hold its invocation', (_command, { tests, invokes }) => {
    for (const file of tests) expect(existsSync(join(root, file))).toBe(true);
    const text = tests.map((f) => readFileSync(join(root, f), 'utf8')).join('\n');
    for (const invocation of invokes) expect({ invocation, found: text.includes(invocation) }).toEqual({ invocation, found: true });
  });

  it('runs the rest by test/integration/doc-commands.test.ts, and lists what cannot run here', () => {
    const run = Object.keys(DOC_COMMANDS).filter((k) => 'run' in DOC_COMMANDS[k]);
    expect(run).toEqual(expect.arrayContaining(['npx dsgitops status', 'npx dsgitops plan']));
    expect(readFileSync(join(root, 'test/integration/doc-commands.test.ts'), 'utf8')).toContain('DOC_COMMANDS');
    const notRunnable = Object.entries(DOC_COMMANDS).flatMap(([k, c]) => ('notRunnable' in c ? [`  ${k}\n      ${c.notRunnable}`] : []));
    for (const c of Object.values(DOC_COMMANDS)) if ('notRunnable' in c) expect(c.notRunnable.length).toBeGreaterThan(10);
    console.log(`documented commands not runnable here (${notRunnable.length} of ${Object.keys(DOC_COMMANDS).length}):\n${notRunnable.join('\n')}`);
  });
});
