/**
 * npm start: with a cluster configured (GIT_URL, S3_BUCKET, CLUSTER_NAME, KUBECONFIG…), one
 * reconcile pass against it; without, the demo on the local stack.
 */
import { hasTargetConfig } from '../lib/config';
import { runCli } from './cli';
import { exitAfterOutput } from './exit-after-output';
import { runDemo } from './demo';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const run = hasTargetConfig() ? runCli(['reconcile', ...process.argv.slice(2)]) : runDemo();
run.then(
  (code) => exitAfterOutput(code),
  (err: Error) => {
    process.stderr.write(`npm start: ${err.message}\n`);
    exitAfterOutput(1);
  },
);
