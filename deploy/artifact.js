// How the functions are deployed, chosen with the serverless parameter `artifact`:
//
//   npx serverless deploy                          zip packages on the nodejs24.x runtime (default);
//                                                  git fetches with isomorphic-git
//   npx serverless deploy --param="artifact=image" one container image (deploy/Dockerfile: AWS's
//                                                  Lambda Node.js 24 base image with git installed)
//
// The image is built for the functions' architecture (LAMBDA_ARCHITECTURE, deploy/stack.js).
//
// A function has either a handler (zip) or an image, never both: each function's entry in
// serverless.yml takes both from here, and the unused one resolves to null.
const FUNCTIONS = ['reconcile', 'rollback', 'history', 'unpin', 'pause', 'resume', 'status', 'webhook'];

module.exports = async ({ resolveVariable }) => {
  const artifact = await resolveVariable("param:artifact, 'zip'");
  if (artifact !== 'zip' && artifact !== 'image') {
    throw new Error(`serverless parameter artifact=${artifact}: use zip (the default) or image`);
  }
  const handler = {};
  const image = {};
  for (const fn of FUNCTIONS) {
    handler[fn] = artifact === 'zip' ? `handlers/${fn}.handler` : null;
    image[fn] = artifact === 'image' ? { name: 'dsgitops', command: [`handlers/${fn}.handler`] } : null;
  }
  return { handler, image, ecr: artifact === 'image' ? { images: { dsgitops: { path: './', file: 'deploy/Dockerfile', platform: process.env.LAMBDA_ARCHITECTURE === 'arm64' ? 'linux/arm64' : 'linux/amd64' } } } : null };
};
