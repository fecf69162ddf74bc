// The Lambda layers of every function: the git layer named by GIT_LAYER_ARN, if any.
// (The Node.js runtime has no git binary; without a layer, deploy a container image that has it.)
module.exports = () => (process.env.GIT_LAYER_ARN ? [process.env.GIT_LAYER_ARN] : []);
