/**
 * dsgitops: the same library calls as the Lambda handlers, for people at a terminal.
 * Results go to stdout (a table, or JSON with --json); progress and logs go to stderr.
 */
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig } from '../lib/config';
import { createDeps, Deps } from '../lib/deps';
import { ConfigError, DsGitopsError, errorMessage, InvalidRequestError } from '../lib/errors';
import { historyEvent, parseEvent, reconcileEvent, rollbackEvent, targetEvent } from '../lib/events';
import { formatHistory, history } from '../lib/history';
import { humanLogger, jsonLogger } from '../lib/log';
import { pause, resume } from '../lib/pause';
import { unpin } from '../lib/pins';
import { reconcile } from '../lib/reconcile';
import { formatReconcileReport } from '../lib/report';
import { autoRollback, rollback } from '../lib/rollback';
import { formatStatus, status } from '../lib/status';

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

options for every command:
  --json                  machine-readable result on stdout
  --verbose               more detail on stderr
  -h, --help              this text

configuration comes from the environment: GIT_URL, GIT_REF, GIT_PATH, GIT_TOKEN, S3_BUCKET,
S3_PREFIX, S3_ENDPOINT, AWS_REGION, CLUSTER_NAME, KUBECONFIG, ALLOWED_NAMESPACES, SELF_HEAL,
PRUNE, PROGRESS_DEADLINE_SECONDS, AUTO_ROLLBACK (see README.md).
`;

export interface CliIO {
  out: (text: string) => void;
  err: (text: string) => void;
}

const stdio: CliIO = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

function target(arg: string | undefined, command: string): { namespace: string; name: string } {
  const m = arg ? /^([^/]+)\/([^/]+)$/.exec(arg) : null;
  if (!m) throw new InvalidRequestError(`${command} needs the DaemonSet as NAMESPACE/NAME, for example: dsgitops ${command} kube-system/fluentd`);
  return { namespace: m[1], name: m[2] };
}

function toInt(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidRequestError(`${flag} takes a positive whole number, not "${v}"`);
  return n;
}

export async function runCli(argv: string[], io: CliIO = stdio, makeDeps?: (budgetMs: number, json: boolean, verbose: boolean) => Deps): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
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
      },
    });
  } catch (err) {
    io.err(`dsgitops: ${errorMessage(err)}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, arg] = positionals;
  if (values.help || !command) {
    io.out(USAGE);
    return command || values.help ? 0 : 2;
  }
  const json = Boolean(values.json);
  const print = (result: unknown, text: string) => io.out(json ? `${JSON.stringify(result, null, 2)}\n` : text);
  try {
    const waitSeconds = toInt(values['wait-seconds'], '--wait-seconds') ?? 600;
    const deps = makeDeps
      ? makeDeps(waitSeconds * 1000, json, Boolean(values.verbose))
      : createDeps(loadConfig(), {
        budgetMs: waitSeconds * 1000 + 60_000,
        logger: json ? jsonLogger() : humanLogger((l) => io.err(l), Boolean(values.verbose)),
        onProgress: (line) => io.err(`  ${line}\n`),
      });
    switch (command) {
      case 'reconcile':
      case 'plan': {
        const dryRun = command === 'plan' || Boolean(values['dry-run']);
        const request = parseEvent(reconcileEvent, { dryRun, only: values.only, wait: !values['no-wait'] }, command, '--only kube-system/fluentd');
        const report = await reconcile(deps, request, autoRollback);
        print(report, formatReconcileReport(report, { diffs: dryRun }));
        return report.result === 'failed' ? 1 : 0;
      }
      case 'status': {
        const report = await status(deps);
        print(report, formatStatus(report));
        return 0;
      }
      case 'history': {
        const t = target(arg, 'history');
        const request = parseEvent(historyEvent, { ...t, limit: toInt(values.limit, '--limit') }, 'history', 'NS/NAME --limit 10');
        const report = await history(deps, request);
        print(report, formatHistory(report));
        return 0;
      }
      case 'rollback': {
        const t = target(arg, 'rollback');
        const request = parseEvent(rollbackEvent, {
          ...t,
          toRevision: toInt(values['to-revision'], '--to-revision'),
          reason: values.reason,
          recreate: values.recreate,
          wait: !values['no-wait'],
        }, 'rollback', 'NS/NAME --to-revision 3');
        const report = await rollback(deps, { ...request, by: userInfo().username });
        print(report, `${report.message}${report.rollout ? `\nrollout: ${report.rollout.phase}: ${report.rollout.message ?? ''}` : ''}\n`);
        return report.rollout?.phase === 'stalled' ? 1 : 0;
      }
      case 'unpin': {
        const t = target(arg, 'unpin');
        const request = parseEvent(targetEvent, { ...t, reason: values.reason }, 'unpin', 'NS/NAME');
        const report = await unpin(deps, request);
        print(report, `${report.message}\n`);
        return 0;
      }
      case 'pause':
      case 'resume': {
        const t = target(arg, command);
        const request = parseEvent(targetEvent, { ...t, reason: values.reason }, command, 'NS/NAME');
        const report = await (command === 'pause' ? pause : resume)(deps, { ...request, by: userInfo().username });
        print(report, `${report.message}\n`);
        return 0;
      }
      default:
        io.err(`dsgitops: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    const e = err instanceof DsGitopsError ? err : undefined;
    if (json) io.out(`${JSON.stringify(e ? e.toJSON() : { error: 'Error', message: errorMessage(err) }, null, 2)}\n`);
    io.err(`error: ${errorMessage(err)}\n`);
    return err instanceof ConfigError || err instanceof InvalidRequestError ? 2 : 1;
  }
}
