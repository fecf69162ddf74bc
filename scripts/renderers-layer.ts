/**
 * The renderers' Lambda layer: kustomize and helm as the stack builds them (static, CGO_ENABLED=0,
 * so they run on Lambda's Amazon Linux), zipped as `bin/kustomize` and `bin/helm`. Lambda unpacks
 * a layer under /opt and puts /opt/bin on the PATH, where lib/source/render.ts finds them. The zip
 * is kept in the build cache, keyed by the two programs' own cache keys.
 *
 *   npx tsx scripts/renderers-layer.ts      prints the zip's path (building what is missing)
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { builds, cacheKey, ensureBuilt, binaryPath } from '../stack/build';
import { cacheDir } from '../stack/paths';

const PROGRAMS = ['kustomize', 'helm'];

export async function ensureRenderersLayer(): Promise<string> {
  const specs = builds.filter((b) => PROGRAMS.includes(b.name));
  for (const spec of specs) await ensureBuilt(spec);
  const zip = join(cacheDir, 'layers', `renderers-${specs.map((s) => cacheKey(s)).join('-')}.zip`);
  if (existsSync(zip)) return zip;
  const staging = `${zip}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, 'bin'), { recursive: true });
  for (const name of PROGRAMS) copyFileSync(binaryPath(name), join(staging, 'bin', name));
  // -X: no extra file attributes, so the same programs zip to the same bytes.
  execFileSync('zip', ['-q', '-r', '-X', '-9', `${zip}.part`, 'bin'], { cwd: staging });
  renameSync(`${zip}.part`, zip);
  rmSync(staging, { recursive: true, force: true });
  return zip;
}

if (require.main === module) {
  ensureRenderersLayer().then((zip) => console.log(zip), (err: Error) => {
    console.error(`renderers layer: ${err.message}`);
    process.exit(1);
  });
}
