/** Entry point of the dsgitops command. */
import { runCli } from './cli';
import { exitAfterOutput } from './exit-after-output';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

runCli(process.argv.slice(2)).then(
  (code) => exitAfterOutput(code),
  (err: Error) => {
    process.stderr.write(`dsgitops: ${err.stack ?? err.message}\n`);
    exitAfterOutput(1);
  },
);
