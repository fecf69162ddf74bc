/**
 * Tests run the dsgitops command as users do: bin/dsgitops.cjs and the bundles `npm ci` builds.
 * When a source is newer than the bundles (someone edited lib/ since), they are built again
 * first, so a test never exercises a stale build.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { bundlesOutOfDate } from '../../scripts/build-cli';
import { repoRoot } from '../../stack/paths';

export const cliCommand = join(repoRoot, 'bin', 'dsgitops.cjs');

export function ensureCliBuilt(): void {
  if (!bundlesOutOfDate()) return;
  execFileSync(join(repoRoot, 'node_modules', '.bin', 'tsx'), [join(repoRoot, 'scripts', 'build-cli.ts')], { cwd: repoRoot, stdio: 'pipe' });
}
