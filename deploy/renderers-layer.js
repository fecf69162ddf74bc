// The renderers' layer (kustomize and helm under /opt/bin; scripts/renderers-layer.ts builds it into
// the build cache) and the functions it is attached to: only reconcile renders. A rollback applies
// stored rendered revisions and never renders; the other functions keep their small zips and cold
// starts. Container images cannot take layers: the image carries the same programs under /opt/bin
// (scripts/image-context.ts, deploy/Dockerfile).
const { execFileSync } = require('node:child_process');
const { join } = require('node:path');

module.exports = async ({ resolveVariable }) => {
  const artifact = await resolveVariable("param:artifact, 'zip'");
  const root = join(__dirname, '..');
  const zip = execFileSync(join(root, 'node_modules', '.bin', 'tsx'), [join(root, 'scripts', 'renderers-layer.ts')], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  return { artifact: zip, attach: artifact === 'zip' ? [{ Ref: 'RenderersLambdaLayer' }] : null };
};
