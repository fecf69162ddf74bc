/**
 * One cluster's pass in a fleet (FLEET_FILE): the ordinary reconcile pass, at the commit
 * promoted to that cluster rather than the branch head, with that cluster's manifests path
 * and access from the fleet file as it stands at that commit; its outcome is recorded in the
 * cluster's promotion record, where the promotion reads it. Scheduled passes run this too,
 * so drift keeps being corrected against the promoted commit.
 *
 *   read promoted commit -> fleet file at that commit -> the cluster's config -> reconcile -> record outcome (when it changed)
 */
import { join } from 'node:path';
import type { Config } from '../config';
import { connect, createDeps } from '../deps';
import { ConfigError, DsGitopsError, errorMessage } from '../errors';
import type { Logger } from '../log';
import { reconcile } from '../reconcile';
import { failureSummary, ReconcileReport } from '../report';
import { autoRollback } from '../rollback';
import { checkout } from '../source/git';
import type { ObjectStore } from '../store/object-store';
import { s3ObjectStore } from '../store/object-store';
import { PromotionStore } from '../store/promotion-store';
import { clusterAccess } from './cluster-access';
import type { PassOutcome } from './decide';
import { clusterScope } from './credentials';
import { readFleetFile } from './fleet-source';
import type { Clock } from '../clock';
import { systemClock } from '../clock';

export interface ClusterPassOptions {
  logger?: Logger;
  budgetMs?: number;
  clock?: Clock;
  /** The S3 adapter of the promotion records and of the pass itself (a counting one in the benchmark); default: the real one. */
  objects?: ObjectStore;
  /** Watch the rollouts until they end (default), or take one look. */
  wait?: boolean;
}

export interface ClusterPassResult {
  cluster: string;
  /** The commit the pass reconciled (the one promoted to the cluster). */
  commit?: string;
  outcome?: PassOutcome;
  /** Why nothing was reconciled (no commit promoted to the cluster yet). */
  skipped?: string;
  report?: Pick<ReconcileReport, 'runId' | 'result' | 'summary' | 'startedAt' | 'finishedAt' | 'error'>;
}

/** Reasons of a failed pass that mean the cluster did not answer, not that the commit is bad. */
const UNREACHABLE_REASONS = new Set(['ClusterUnavailable', 'CredentialsRejected']);




/** What a pass's report says about the commit in that cluster, as the promotion judges it. */
export function outcomeOfPass(report: ReconcileReport, commit: string, at: string): PassOutcome {
  if (report.error && UNREACHABLE_REASONS.has(report.error.reason)) return { commit, at, result: 'unreachable', reason: report.error.message };
  if (report.source?.verification && !report.source.verification.trusted) return { commit, at, result: 'failed', reason: `the commit is not trusted: ${report.source.verification.problem ?? ''}`.trim() };
  if (report.result === 'failed') {
    const bad = report.daemonSets.find((d) => d.action === 'failed' || d.action === 'invalid' || d.rollout?.phase === 'stalled');
    const reason = bad
      ? `${bad.rollout?.phase === 'stalled' ? `stalled at revision ${bad.rollout.revision}${bad.rollout.message ? `: ${bad.rollout.message}` : ''}` : bad.error?.message ?? bad.message}${bad.message && bad.rollout?.phase === 'stalled' ? `; ${bad.message}` : ''}`
      : failureSummary(report);
    return { commit, at, result: 'failed', ...(bad ? { daemonSet: bad.key } : {}), reason };
  }
  if (report.result === 'skipped') return { commit, at, result: 'progressing', reason: `another run holds the lease (${report.lease?.holder ?? 'unknown'})` };
  if (report.source?.commit?.sha !== commit) return { commit, at, result: 'progressing', reason: `the pass did not read ${commit.slice(0, 7)}${report.error ? `: ${report.error.message}` : ''}` };
  const busy = report.daemonSets.find((d) => d.rollout && d.rollout.phase !== 'complete');
  if (busy) return { commit, at, result: 'progressing', daemonSet: busy.key, reason: `${busy.key} is ${busy.rollout!.phase}` };
  return { commit, at, result: 'healthy' };
}

/** Does the recorded outcome already say what this pass found? Its `at` is when the cluster came to it, so it is not compared. */
export function isSameOutcome(recorded: PassOutcome | undefined, outcome: PassOutcome): boolean {
  return recorded !== undefined && recorded.commit === outcome.commit && recorded.result === outcome.result && recorded.daemonSet === outcome.daemonSet && recorded.reason === outcome.reason;
}

/** Runs one fleet cluster's pass at its promoted commit and records the outcome when it changed. */
export async function fleetClusterPass(base: Config, cluster: string, options: ClusterPassOptions = {}): Promise<ClusterPassResult> {
  return (await fleetClusterPassWithReport(base, cluster, options)).result;
}

/** The same, with the pass's whole report (for a person at a terminal; the durable invoke keeps only the summary). */
export async function fleetClusterPassWithReport(base: Config, cluster: string, options: ClusterPassOptions = {}): Promise<{ result: ClusterPassResult; report?: ReconcileReport }> {
  const clock = options.clock ?? systemClock;
  if (!base.fleetFile) throw new ConfigError('FLEET_FILE is not set: a fleet cluster\'s pass needs the fleet file');
  // With FLEET_CLUSTER_ROLE_ARN the pass works as its cluster's role, narrowed to the cluster's prefix, from here on.
  const { s3, eks } = clusterScope(base, cluster);
  const store = new PromotionStore(options.objects ?? s3ObjectStore(s3), base.s3.prefix);
  const record = await store.readCluster(cluster);
  const commit = record.promoted?.commit;
  if (!commit) return { result: { cluster, skipped: `no commit has been promoted to ${cluster} yet` } };
  const at = () => clock.now().toISOString();
  const cacheDir = join(base.git.cacheDir, 'clusters', cluster);
  let config: Config;
  try {
    const tree = await checkout({ ...base.git, ref: commit, cacheDir });
    const fleet = readFleetFile(tree.dir, base.fleetFile, commit.slice(0, 7));
    const entry = fleet.clusters.find((c) => c.name === cluster);
    if (!entry) throw new ConfigError(`cluster ${cluster} is not in ${base.fleetFile} at ${commit.slice(0, 7)}`);
    config = { ...base, s3, git: { ...base.git, ref: commit, path: entry.path, cacheDir }, cluster: clusterAccess(base, entry, eks) };
  } catch (err) {
    // The commit cannot be read or names no way to this cluster: that commit fails here, visibly.
    const retryable = err instanceof DsGitopsError && err.retryable;
    const outcome: PassOutcome = { commit, at: at(), result: retryable ? 'progressing' : 'failed', reason: errorMessage(err) };
    if (!isSameOutcome(record.lastPass, outcome)) await store.recordPass(cluster, outcome);
    return { result: { cluster, commit, outcome } };
  }
  const clients = options.objects ? { ...(await connect(config)), objects: options.objects } : undefined;
  const deps = createDeps(config, { logger: options.logger, budgetMs: options.budgetMs, clock, ...(clients ? { clients } : {}) });
  const report = await reconcile(deps, { wait: options.wait ?? true }, autoRollback);
  const outcome = outcomeOfPass(report, commit, at());
  // A steady cluster's scheduled pass comes to the outcome already recorded: nothing to write (a PUT saved every pass).
  if (!isSameOutcome(record.lastPass, outcome)) await store.recordPass(cluster, outcome);
  const { runId, result, summary, startedAt, finishedAt, error } = report;
  return { result: { cluster, commit, outcome, report: { runId, result, summary, startedAt, finishedAt, ...(error ? { error } : {}) } }, report };
}
