/**
 * The build context of the container-image artifact (deploy/Dockerfile): the sources the image's
 * bundles are built from, and the renderers — kustomize and helm as the renderers' Lambda layer
 * holds them (scripts/renderers-layer.ts, the same bytes) — under `renderers/bin/`, which the
 * Dockerfile copies to /opt/bin, where lib/source/render.ts finds them as it does in the layer.
 * Docker cannot read the build cache (outside the repository), so the context is a folder of its
 * own, made afresh each time under dist/ (never committed).
 *
 *   npx tsx scripts/image-context.ts      prints the context's path (building the renderers if missing)
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../stack/paths';
import { ensureRenderersLayer } from './renderers-layer';

/** What the Dockerfile's build stage reads, relative to the repository (and to the context). */
export const IMAGE_SOURCES = ['package.json', 'package-lock.json', 'tsconfig.json', 'handlers', 'lib', 'deploy/esbuild-plugins.js'];

/** Where the context is made. */
export const imageContextDir = join(repoRoot, 'dist', 'image-context');

export async function prepareImageContext(dir: string = imageContextDir): Promise<string> {
  const layer = await ensureRenderersLayer();
  const staging = `${dir}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, 'deploy'), { recursive: true });
  for (const source of IMAGE_SOURCES) cpSync(join(repoRoot, source), join(staging, source), { recursive: true });
  copyFileSync(join(repoRoot, 'deploy', 'Dockerfile'), join(staging, 'Dockerfile'));
  // The layer's own bytes (bin/kustomize, bin/helm), so the image renders with exactly what the zip's layer carries.
  mkdirSync(join(staging, 'renderers'));
  execFileSync('unzip', ['-q', layer, 'bin/*', '-d', join(staging, 'renderers')]);
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  return dir;
}

if (require.main === module) {
  prepareImageContext().then((dir) => console.log(dir), (err: Error) => {
    console.error(`image build context: ${err.message}`);
    process.exit(1);
  });
}
