/** Entry point of the dsgitops command. */
import { runCli } from './cli';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

runCli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`dsgitops: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
