/**
 * dsgitops: the same library calls as the Lambda handlers, for people at a terminal.
 * Results go to stdout (a table, or JSON with --json); progress and logs go to stderr.
 * This file parses the command line and prints the usage; the commands (bin/commands.ts, and
 * the Kubernetes client, the AWS SDK and git behind them) load only once a command is known.
 */
import { parseArgs } from 'node:util';
import type { MakeDeps } from './commands';

/** In the compiled command the commands are a file of their own, read only when one runs. */
function loadCommands(): typeof import('./commands') {
  return require('./commands') as typeof import('./commands');
}

export const USAGE = `usage: dsgitops <command> [options]

commands:
  reconcile [--dry-run] [--only NS/NAME]... [--no-wait] [--wait-seconds N]
                          one pass: Git -> diff -> snapshot -> apply -> track the rollout
  plan [--only NS/NAME]...
                          what a pass would change, as diffs (a dry run: writes nothing)
  status                  every managed DaemonSet: revision, phase, kubectl columns, pin, commit
  history NS/NAME [--limit N]
                          stored revisions, newest first
  rollback NS/NAME [--to-revision N] [--reason TEXT] [--recreate] [--no-wait]
                          apply a stored revision (default: the previous healthy one) and pin it
  unpin NS/NAME [--reason TEXT]
                          release a rollback's pin; the next pass applies Git's version
  pause NS/NAME [--reason TEXT]
                          pause a managed rollout: no pod is deleted until it is resumed
  resume NS/NAME          resume it; the running pass or the next one continues the waves
  repair NS/NAME [--yes] [--rebuild]
                          records of a DaemonSet in S3 that cannot be read, and what restores
                          each (the newest version that parses, or a state rebuilt from the
                          live DaemonSet with --rebuild or when none parses); --yes writes it
  rbac [--namespaces NS,NS|'*'] [--kinds KIND,GROUP/KIND|'*'] [--user NAME] [--name NAME]
                          the Kubernetes RBAC for ALLOWED_NAMESPACES and ALLOWED_KINDS (or the
                          flags): reads cluster-wide, writes only in the allowed namespaces and
                          kinds, never bind or escalate; kubectl apply -f -
  ui [--port N] [--open] [--allow-actions]
                          a local web page of every DaemonSet, its nodes by wave, its rollout
                          over time, revisions and diffs, live; on 127.0.0.1 with a token in
                          the URL it prints; read-only unless --allow-actions
  fleet status            with FLEET_FILE: per wave and cluster the commit it runs, the commit in
                          flight, soak left, why a promotion stopped; the promotions' history
  fleet hold|resume --reason TEXT
                          hold the fleet's promotion where it is / let it go on (recorded with
                          who and why)
  fleet promote COMMIT --to WAVE --reason TEXT
                          promote COMMIT at once to every cluster of the waves up to WAVE; the
                          promotion goes on from there
  status, history, rollback, unpin, pause, resume with FLEET_FILE: --cluster NAME, the fleet
                          file's cluster they act on, as that cluster (its own S3 prefix and session)
  eks-token --cluster NAME [--region REGION]
                          an EKS bearer token as an ExecCredential, as aws eks get-token prints
                          it (signed with this machine's AWS credentials; a kubectl exec plugin)

options for every command:
  --json                  machine-readable result on stdout
  --verbose               more detail on stderr
  -h, --help              this text

configuration comes from the environment: GIT_URL, GIT_REF, GIT_PATH, GIT_TOKEN, S3_BUCKET,
S3_PREFIX, S3_ENDPOINT, AWS_REGION, CLUSTER_NAME, KUBECONFIG or EKS_CLUSTER_NAME,
ALLOWED_NAMESPACES (required: the namespaces it may write, or * for all), SELF_HEAL, PRUNE,
PROGRESS_DEADLINE_SECONDS, AUTO_ROLLBACK (see docs/configuration.md and SECURITY.md).
`;

export interface CliIO {
  out: (text: string) => void;
  err: (text: string) => void;
}

const stdio: CliIO = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

const options = {
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  'dry-run': { type: 'boolean' },
  only: { type: 'string', multiple: true },
  'no-wait': { type: 'boolean' },
  'wait-seconds': { type: 'string' },
  limit: { type: 'string' },
  'to-revision': { type: 'string' },
  reason: { type: 'string' },
  recreate: { type: 'boolean' },
  yes: { type: 'boolean' },
  rebuild: { type: 'boolean' },
  cluster: { type: 'string' },
  namespaces: { type: 'string' },
  kinds: { type: 'string' },
  user: { type: 'string' },
  name: { type: 'string' },
  region: { type: 'string' },
  port: { type: 'string' },
  open: { type: 'boolean' },
  'allow-actions': { type: 'boolean' },
  to: { type: 'string' },
} as const;

function parse(argv: string[]) {
  return parseArgs({ args: argv, allowPositionals: true, options });
}

export type CliValues = ReturnType<typeof parse>['values'];

const commands = ['reconcile', 'plan', 'status', 'history', 'rollback', 'unpin', 'pause', 'resume', 'repair', 'rbac', 'eks-token', 'ui', 'fleet'] as const;
export type Command = (typeof commands)[number];

function isCommand(name: string): name is Command {
  return (commands as readonly string[]).includes(name);
}

export async function runCli(argv: string[], io: CliIO = stdio, makeDeps?: MakeDeps): Promise<number> {
  let parsed;
  try {
    parsed = parse(argv);
  } catch (err) {
    io.err(`dsgitops: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, arg] = positionals;
  if (values.help || !command) {
    io.out(USAGE);
    return command || values.help ? 0 : 2;
  }
  if (!isCommand(command)) {
    io.err(`dsgitops: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  if (command === 'fleet') return loadCommands().runFleetCommand(positionals.slice(1), values, io);
  return loadCommands().runCommand(command, arg, values, io, makeDeps);
}
