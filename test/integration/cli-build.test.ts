/**
 * The dsgitops command runs the JavaScript that `npm ci` builds (the prepare script), not
 * TypeScript through a loader; --help answers without loading the commands bundle; without
 * the bundles it says how to build them.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { USAGE } from '../../bin/cli';
import { bundlesOutOfDate, cliBundles } from '../../scripts/build-cli';
import { repoRoot } from '../../stack/paths';
import { cliCommand, ensureCliBuilt } from '../support/cli-build';
import { runCliProcess } from '../support/reconciler';

jest.setTimeout(120_000);

let dir: string;
beforeAll(() => {
  ensureCliBuilt();
  dir = mkdtempSync(join(tmpdir(), 'dsgitops-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the command with a preload that lists, at exit, every file the process loaded as a module. */
async function runRecordingModules(args: string[], env: Record<string, string> = {}) {
  const recorder = join(dir, 'record-modules.cjs');
  const out = join(dir, `modules-${args.join('-')}.json`);
  writeFileSync(recorder, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(require.cache))));`);
  const run = await runCliProcess(args, { NODE_OPTIONS: `--require ${recorder}`, ...env }, 60_000);
  const modules = (JSON.parse(readFileSync(out, 'utf8')) as string[]).filter((f) => f !== recorder).map((f) => relative(repoRoot, f));
  return { ...run, modules };
}

describe('the dsgitops command', () => {
  it('answers --help from the small bundle, without loading TypeScript or the commands', async () => {
    const run = await runRecordingModules(['--help']);

    expect(run.code).toBe(0);
    expect(run.stdout).toBe(USAGE);
    expect(run.stderr).toBe('');
    expect(run.modules).toEqual(['bin/dsgitops.cjs', 'dist/dsgitops.cjs']);
  });

  it('runs a command from the commands bundle, with the error names its --json output promises', async () => {
    const run = await runRecordingModules(['status', '--json']);

    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout)).toMatchObject({ error: 'ConfigError', reason: 'ConfigInvalid' });
    expect(run.stderr).toContain('GIT_URL is required');
    expect(run.modules).toEqual(['bin/dsgitops.cjs', 'dist/dsgitops.cjs', 'dist/commands.cjs']);
  });

  it('is built again before a test runs it when a source changed since the build', async () => {
    const source = join(repoRoot, 'bin', 'cli.ts');
    const later = new Date(Math.max(...cliBundles.map((f) => statSync(f).mtimeMs)) + 1000);
    utimesSync(source, later, later);
    expect(bundlesOutOfDate()).toBe('bin/cli.ts is newer than the bundles in dist/');

    const run = await runCliProcess(['--help'], {}, 60_000);

    expect(run.code).toBe(0);
    expect(bundlesOutOfDate()).toBeUndefined();
  });

  describe('without the bundles (npm ci --ignore-scripts)', () => {
    function installLike(name: string, withTsx: boolean): string {
      const root = join(dir, name);
      mkdirSync(join(root, 'bin'), { recursive: true });
      copyFileSync(cliCommand, join(root, 'bin', 'dsgitops.cjs'));
      if (withTsx) {
        symlinkSync(join(repoRoot, 'bin', 'dsgitops.ts'), join(root, 'bin', 'dsgitops.ts'));
        symlinkSync(join(repoRoot, 'node_modules'), join(root, 'node_modules'));
      }
      return root;
    }

    function run(root: string, args: string[]) {
      return spawnSync(process.execPath, [join(root, 'bin', 'dsgitops.cjs'), ...args], {
        env: { PATH: process.env.PATH, HOME: process.env.HOME },
        encoding: 'utf8',
        timeout: 60_000,
      });
    }

    it('says how to build them and runs the TypeScript through tsx meanwhile', () => {
      const root = installLike('with-tsx', true);

      const result = run(root, ['--help']);

      expect(result.status).toBe(0);
      expect(result.stdout).toBe(USAGE);
      expect(result.stderr).toContain(`${join(root, 'dist', 'dsgitops.cjs')} is missing`);
      expect(result.stderr).toContain(`build it with: cd ${root} && npm run build`);
    });

    it('says how to build them when there is no tsx either', () => {
      const root = installLike('bare', false);

      const result = run(root, ['--help']);

      expect(result.status).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(`dsgitops: ${join(root, 'dist', 'dsgitops.cjs')} is missing; build it with: cd ${root} && npm run build\n`);
    });
  });
});
