/**
 * The dsgitops commands: each builds its request, calls the library as the handlers do, and
 * prints the result. Loaded only once a command is known, so `dsgitops --help` and usage
 * errors answer without loading the Kubernetes client, the AWS SDK or git.
 */
import { userInfo } from 'node:os';
import type { CliIO, CliValues, Command } from './cli';
import { Config, eksTokenEnvironment, loadConfig, parseAllowedNamespaces, rbacEnvironment } from '../lib/config';
import { DEFAULT_RBAC_NAME, DEFAULT_RBAC_USER, rbacYaml } from '../lib/rbac';
import { parseAllowedKinds } from '../lib/bundle/kinds';
import { defaultCredentials } from '../lib/cluster/eks';
import { execCredentialJson, signEksToken } from '../lib/cluster/eks-token';
import { connect, createDeps, Deps } from '../lib/deps';
import { ConfigError, DsGitopsError, errorMessage, InvalidRequestError } from '../lib/errors';
import { historyEvent, parseEvent, reconcileEvent, rollbackEvent, targetEvent } from '../lib/events';
import { formatHistory, history } from '../lib/history';
import { humanLogger, jsonLogger } from '../lib/log';
import { pause, resume } from '../lib/pause';
import { unpin } from '../lib/pins';
import { reconcile } from '../lib/reconcile';
import { formatReconcileReport } from '../lib/report';
import { autoRollback, rollback } from '../lib/rollback';
import { formatRepair, repair } from '../lib/repair';
import { formatStatus, status } from '../lib/status';
import { runUi } from './ui';

export type MakeDeps = (budgetMs: number, json: boolean, verbose: boolean) => Deps;

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

/**
 * Runs one command and returns its exit code: 0 done, 1 failed (the error on stderr, and as
 * JSON on stdout with --json), 2 the configuration or the request is invalid.
 */
export async function runCommand(command: Command, arg: string | undefined, values: CliValues, io: CliIO, makeDeps?: MakeDeps): Promise<number> {
  try {
    return await run(command, arg, values, io, makeDeps);
  } catch (err) {
    const e = err instanceof DsGitopsError ? err : undefined;
    if (values.json) io.out(`${JSON.stringify(e ? e.toJSON() : { error: 'Error', message: errorMessage(err) }, null, 2)}\n`);
    io.err(`error: ${errorMessage(err)}\n`);
    return err instanceof ConfigError || err instanceof InvalidRequestError ? 2 : 1;
  }
}

/** `dsgitops fleet status|hold|resume|promote`: reads and writes the fleet's records in S3; talks to no cluster. */
export async function runFleetCommand(args: string[], values: CliValues, io: CliIO): Promise<number> {
  try {
    const [sub, commit] = args;
    const { fleetStatus, formatFleetStatus, holdOrResume, promoteByHand } = await import('../lib/fleet/operate');
    const { PromotionStore } = await import('../lib/store/promotion-store');
    const { s3ObjectStore } = await import('../lib/store/object-store');
    const { systemClock } = await import('../lib/clock');
    const config = loadConfig();
    if (!config.fleetFile) throw new ConfigError('FLEET_FILE is not set: the fleet commands need the fleet file\'s path in the repository (e.g. fleet.yaml)');
    const store = new PromotionStore(s3ObjectStore(config.s3), config.s3.prefix);
    const json = Boolean(values.json);
    const print = (result: unknown, text: string) => io.out(json ? `${JSON.stringify(result, null, 2)}\n` : text);
    const actor = { by: userInfo().username, ...(values.reason ? { reason: values.reason } : {}) };
    switch (sub) {
      case 'status': {
        const report = await fleetStatus(config, store, systemClock, { historyLimit: toInt(values.limit, '--limit') });
        print(report, formatFleetStatus(report));
        return 0;
      }
      case 'hold':
      case 'resume': {
        if (!values.reason) throw new InvalidRequestError(`fleet ${sub} needs --reason TEXT: it is recorded with who ${sub === 'hold' ? 'held' : 'resumed'} the promotion`);
        const { promotion: p, started } = await holdOrResume(config, store, systemClock, sub, actor);
        print(p, `promotion ${p.id} of ${p.commit.slice(0, 7)} ${sub === 'hold' ? `held by ${actor.by}` : `resumed by ${actor.by}: ${started ? `${started} started, going on` : 'the next promotion run goes on'} from wave ${p.wave}`}\n`);
        return 0;
      }
      case 'promote': {
        if (!commit || !values.to) throw new InvalidRequestError('usage: dsgitops fleet promote COMMIT --to WAVE --reason TEXT');
        const p = await promoteByHand(config, store, systemClock, commit, values.to, actor);
        print(p, `${p.commit.slice(0, 7)} promoted by ${actor.by} to every cluster up to wave ${values.to}; the promotion goes on from there\n`);
        return 0;
      }
      default:
        throw new InvalidRequestError(`fleet ${sub ?? ''}: expected status, hold, resume or promote`);
    }
  } catch (err) {
    const e = err instanceof DsGitopsError ? err : undefined;
    if (values.json) io.out(`${JSON.stringify(e ? e.toJSON() : { error: 'Error', message: errorMessage(err) }, null, 2)}\n`);
    io.err(`error: ${errorMessage(err)}\n`);
    return err instanceof ConfigError || err instanceof InvalidRequestError ? 2 : 1;
  }
}

/** An EKS token for kubectl or a check by hand: needs AWS credentials and nothing of the reconciler's configuration. */
async function eksToken(values: CliValues, io: CliIO): Promise<number> {
  const env = eksTokenEnvironment();
  const clusterName = values.cluster;
  const region = values.region ?? env.region;
  if (!clusterName) throw new InvalidRequestError('eks-token needs the cluster: dsgitops eks-token --cluster NAME [--region REGION]');
  if (!region) throw new InvalidRequestError('eks-token needs a region: pass --region REGION or set AWS_REGION');
  const token = await signEksToken({ clusterName, region, credentials: defaultCredentials(), now: new Date() });
  io.out(execCredentialJson(token, env.execInfo));
  return 0;
}

/** The RBAC for a namespace policy: needs no cluster and nothing else of the configuration. */
function rbac(values: CliValues, io: CliIO): number {
  const problems: string[] = [];
  const setting = values.namespaces !== undefined ? '--namespaces' : 'ALLOWED_NAMESPACES';
  const stated = values.namespaces ?? rbacEnvironment().allowedNamespaces;
  if (stated === undefined) problems.push('ALLOWED_NAMESPACES (or --namespaces) is required: the namespaces the reconciler may write, comma-separated, or \'*\' for every namespace, kube-system included (see SECURITY.md)');
  const allowedNamespaces = stated === undefined ? [] : parseAllowedNamespaces(stated, setting, problems);
  const kindsRaw = values.kinds ?? rbacEnvironment().allowedKinds;
  const allowedKinds = kindsRaw === undefined ? undefined : parseAllowedKinds(kindsRaw, values.kinds !== undefined ? '--kinds' : 'ALLOWED_KINDS', problems);
  const name = values.name ?? DEFAULT_RBAC_NAME;
  const user = values.user ?? DEFAULT_RBAC_USER;
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) problems.push(`--name ${name} is not a Kubernetes object name`);
  if (!user.trim()) problems.push('--user is empty: name the user the reconciler authenticates as');
  if (problems.length > 0) throw new InvalidRequestError(problems.join('; '));
  io.out(rbacYaml({ allowedNamespaces, user, name, allowedKinds }));
  return 0;
}

/** The commands that act on one cluster's DaemonSets, and in a fleet take --cluster. */
const PER_CLUSTER = new Set<Command>(['status', 'history', 'rollback', 'unpin', 'pause', 'resume']);

async function configForCommand(command: Command, cluster: string | undefined): Promise<Config> {
  const config = loadConfig();
  if (PER_CLUSTER.has(command)) {
    const { configForCluster } = await import('../lib/fleet/cluster-target');
    return configForCluster(config, cluster, command);
  }
  return config;
}

async function run(command: Command, arg: string | undefined, values: CliValues, io: CliIO, makeDeps?: MakeDeps): Promise<number> {
  if (command === 'eks-token') return eksToken(values, io);
  if (command === 'rbac') return rbac(values, io);
  if (command === 'ui') return runUi(values, io, makeDeps);
  if (command === 'fleet') return runFleetCommand(arg === undefined ? [] : [arg], values, io);
  const json = Boolean(values.json);
  const print = (result: unknown, text: string) => io.out(json ? `${JSON.stringify(result, null, 2)}\n` : text);
  const waitSeconds = toInt(values['wait-seconds'], '--wait-seconds') ?? 600;
  // In a fleet, the per-DaemonSet commands act on the cluster --cluster names, as that cluster (lib/fleet/cluster-target.ts).
  const config = makeDeps ? undefined : await configForCommand(command, values.cluster);
  const deps = makeDeps
    ? makeDeps(waitSeconds * 1000, json, Boolean(values.verbose))
    : createDeps(config!, {
      clients: await connect(config!, { cluster: command !== 'history' }),
      budgetMs: waitSeconds * 1000 + 60_000,
      logger: json ? jsonLogger() : humanLogger((l) => io.err(l), Boolean(values.verbose)),
      onProgress: (line) => io.err(`  ${line}\n`),
    });
  switch (command) {
    case 'reconcile':
    case 'plan': {
      const dryRun = command === 'plan' || Boolean(values['dry-run']);
      const request = parseEvent(reconcileEvent, { dryRun, only: values.only, wait: !values['no-wait'] }, command, '--only kube-system/fluentd');
      if (deps.config.fleetFile && !dryRun) {
        // A fleet's cluster: the pass at the commit promoted to it (docs/fleet.md).
        const { fleetClusterPassWithReport } = await import('../lib/fleet/cluster-pass');
        const fleet = await fleetClusterPassWithReport(deps.config, deps.config.cluster.name, { logger: deps.logger, budgetMs: deps.deadline - deps.clock.now().getTime(), wait: request.wait });
        if (!fleet.report) {
          print(fleet.result, `${fleet.result.skipped ?? `${fleet.result.cluster}: ${fleet.result.outcome?.result}: ${fleet.result.outcome?.reason ?? ''}`}\n`);
          return fleet.result.outcome?.result === 'failed' ? 1 : 0;
        }
        print(fleet.report, formatReconcileReport(fleet.report));
        return fleet.report.result === 'failed' ? 1 : 0;
      }
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
    case 'repair': {
      const t = target(arg, 'repair');
      const report = await repair(deps, { ...t, yes: Boolean(values.yes), rebuild: Boolean(values.rebuild) });
      print(report, formatRepair(report));
      return report.records.some((r) => r.fix === 'none' || (report.applied && !r.written)) ? 1 : 0;
    }
    case 'pause':
    case 'resume': {
      const t = target(arg, command);
      const request = parseEvent(targetEvent, { ...t, reason: values.reason }, command, 'NS/NAME');
      const report = await (command === 'pause' ? pause : resume)(deps, { ...request, by: userInfo().username });
      print(report, `${report.message}\n`);
      return 0;
    }
  }
}
