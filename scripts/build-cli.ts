/**
 * Builds the dsgitops command with esbuild into two CommonJS bundles that bin/dsgitops.cjs runs:
 * dist/dsgitops.cjs (bin/dsgitops.ts: the command line, --help, usage errors) and
 * dist/commands.cjs (bin/commands.ts and the library, the Kubernetes client, the AWS SDK), which
 * the first loads only once it has a command to run. `npm ci` runs this (the prepare script), so
 * the command starts without compiling TypeScript.
 *
 *   npm run build
 */
import { mkdirSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import type { Plugin } from 'esbuild';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const lambdaBundlePlugins = require('../deploy/esbuild-plugins.js') as Plugin[];

const root = join(__dirname, '..');

const dist = join(root, 'dist');

/** The files bin/dsgitops.cjs runs: the entry first. */
export const cliBundles = [join(dist, 'dsgitops.cjs'), join(dist, 'commands.cjs')];

/** What the bundle is built from: the CLI and library sources, the locked dependencies, this script. */
function sources(): string[] {
  const ts = ['bin', 'lib'].flatMap((dir) => readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(root, dir, f)));
  return [...ts, join(root, 'package-lock.json'), __filename];
}

/** Why the bundles must be (re)built, or undefined when they are newer than every source. */
export function bundlesOutOfDate(): string | undefined {
  let built = Infinity;
  for (const bundle of cliBundles) {
    try {
      built = Math.min(built, statSync(bundle).mtimeMs);
    } catch {
      return `${relative(root, bundle)} does not exist`;
    }
  }
  const newer = sources().find((f) => statSync(f).mtimeMs > built);
  return newer ? `${relative(root, newer)} is newer than the bundles in dist/` : undefined;
}

/**
 * bin/cli.ts requires ./commands once it has a command to run. In the build that is the other
 * bundle, read with a V8 code cache (bin/code-cache.ts) so that every start after the first
 * skips compiling its 3 MiB.
 */
const commandsApart: Plugin = {
  name: 'commands-apart',
  setup(build) {
    build.onResolve({ filter: /^\.\/commands$/ }, (args) =>
      (args.importer === join(root, 'bin', 'cli.ts') ? { path: 'commands', namespace: 'commands-bundle' } : undefined));
    build.onLoad({ filter: /.*/, namespace: 'commands-bundle' }, () => ({
      // The command word names the use, so that the cache comes to hold every command's code
      // (a value of an option before the command would only name another use: never wrong code).
      contents: `const { requireWithCodeCache } = require('./code-cache');
const use = process.argv.slice(2).find((a) => !a.startsWith('-')) || '';
module.exports = requireWithCodeCache(require('node:path').join(__dirname, ${JSON.stringify(basename(cliBundles[1]))}), use);`,
      resolveDir: join(root, 'bin'),
      loader: 'js',
    }));
  },
};

/**
 * The bundle with every character outside ASCII written as a \\u escape. esbuild escapes them
 * in strings but leaves some in regular expression literals, and one such character makes V8
 * hold the whole 3 MB source as a two-byte string: slower to read and to check against the
 * code cache at every start. The escape means the same character in strings, templates and
 * regular expressions alike.
 */
function asciiOnly(code: string): string {
  return code.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export async function buildCli(): Promise<{ bytes: number }> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: { dsgitops: join(root, 'bin', 'dsgitops.ts'), commands: join(root, 'bin', 'commands.ts') },
    outdir: dist,
    outExtension: { '.js': '.cjs' },
    plugins: [commandsApart, ...lambdaBundlePlugins],
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    // Whitespace and syntax only: identifiers stay readable in stack traces, and keepNames
    // keeps class names (error names are reported as `error` in --json output) exact.
    minifyWhitespace: true,
    minifySyntax: true,
    keepNames: true,
    legalComments: 'none',
    banner: { js: '// Built by scripts/build-cli.ts (npm run build); do not edit.' },
    write: false,
    logLevel: 'warning',
  });
  // Each written beside and renamed into place: a command started meanwhile reads whole files.
  mkdirSync(dist, { recursive: true });
  const byName = new Map(result.outputFiles.map((f) => [basename(f.path), asciiOnly(f.text)]));
  for (const bundle of [...cliBundles].reverse()) {
    const contents = byName.get(basename(bundle));
    if (!contents) throw new Error(`esbuild wrote no ${basename(bundle)}`);
    const partial = `${bundle}.${process.pid}.tmp`;
    writeFileSync(partial, contents);
    renameSync(partial, bundle);
  }
  return { bytes: result.outputFiles.reduce((n, f) => n + f.contents.byteLength, 0) };
}

if (require.main === module) {
  const t0 = Date.now();
  buildCli().then(
    ({ bytes }) => console.log(`built ${cliBundles.map((b) => relative(root, b)).join(' and ')} (${(bytes / (1 << 20)).toFixed(1)} MiB) in ${Date.now() - t0} ms`),
    (err: Error & { code?: string }) => {
      if (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND') {
        // An install without the dev dependencies (npm ci --omit=dev) has no esbuild: the command
        // still works, through tsx, and says so.
        console.error(`not building the dsgitops command: ${err.message}; it will run its TypeScript through tsx`);
        return;
      }
      console.error(`building the dsgitops command failed: ${err.message}`);
      process.exit(1);
    },
  );
}
