// How the functions are deployed, chosen with the serverless parameter `artifact`:
//
//   npx serverless deploy                          zip packages on the nodejs24.x runtime (default);
//                                                  git fetches with isomorphic-git
//   npx serverless deploy --param="artifact=image" one container image (deploy/Dockerfile: AWS's
//                                                  Lambda Node.js 24 base image with git installed,
//                                                  and kustomize and helm under /opt/bin)
//
// The image's build context is a folder of its own (scripts/image-context.ts): the sources, and
// the renderers' layer programs, which are x86_64 builds, so the image is linux/amd64 and every
// function runs on x86_64 (LAMBDA_ARCHITECTURE=arm64 is refused with the image).
//
// A function has either a handler (zip) or an image, never both: each function's entry in
// serverless.yml takes both from here, and the unused one resolves to null.
const { execFileSync } = require('node:child_process');
const { join } = require('node:path');

const FUNCTIONS = ['reconcile', 'rollback', 'history', 'unpin', 'pause', 'resume', 'status', 'webhook'];

let context;

/** The image's build context, prepared once per command (the renderers built first if missing). */
function imageContext() {
  const root = join(__dirname, '..');
  return (context ??= execFileSync(join(root, 'node_modules', '.bin', 'tsx'), [join(root, 'scripts', 'image-context.ts')], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim());
}

module.exports = async ({ resolveVariable }) => {
  const artifact = await resolveVariable("param:artifact, 'zip'");
  if (artifact !== 'zip' && artifact !== 'image') {
    throw new Error(`serverless parameter artifact=${artifact}: use zip (the default) or image`);
  }
  if (artifact === 'image' && process.env.LAMBDA_ARCHITECTURE === 'arm64') {
    throw new Error('LAMBDA_ARCHITECTURE=arm64 with artifact=image: the image carries the x86_64 renderers (kustomize and helm) and runs every function on x86_64; unset LAMBDA_ARCHITECTURE, or deploy the zip packages (arm64 for every function but reconcile)');
  }
  const handler = {};
  const image = {};
  for (const fn of FUNCTIONS) {
    handler[fn] = artifact === 'zip' ? `handlers/${fn}.handler` : null;
    image[fn] = artifact === 'image' ? { name: 'dsgitops', command: [`handlers/${fn}.handler`] } : null;
  }
  return { handler, image, ecr: artifact === 'image' ? { images: { dsgitops: { path: imageContext(), file: 'Dockerfile', platform: 'linux/amd64' } } } : null };
};
