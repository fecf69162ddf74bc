/**
 * What a reconcile pass returns: the handler's result, `--json` on the CLI, and, formatted,
 * the table people read.
 */
import type { LeaseHolder } from './errors';
import { consistentRow } from './rollout/status';
import { formatGateLines, gateStatus, GateStatus } from './rollout/gate-status';
import type { PlanAction } from './plan/plan';
import type { ObjectAction } from './bundle/plan';
import type { GitCommit } from './source/git';
import type { Verification } from './source/verify-commit';
import type { ManifestProblem, SourceLocation } from './source/manifest';
import type { Cause, Pin, RolloutCounts, RolloutPhase, RolloutState } from './store/records';

export interface RolloutReport extends Partial<RolloutCounts> {
  phase: RolloutPhase;
  mode: 'native' | 'managed';
  revision: number;
  onDelete?: boolean;
  message?: string;
  /** A managed rollout with gates: each gate's verdict and its last measurements (value, condition, outcome). */
  gates?: GateStatus[];
}

export interface DaemonSetReport {
  key: string;
  namespace: string;
  name: string;
  action: PlanAction | 'pruned' | 'failed';
  cause?: Cause;
  applied: boolean;
  /** The revision in the cluster after this pass. */
  revision?: number;
  previousRevision?: number;
  source?: SourceLocation;
  message: string;
  diff?: string;
  problems?: ManifestProblem[];
  rollout?: RolloutReport;
  pin?: Pin;
  error?: { reason: string; message: string };
  /** Why the pass held this DaemonSet's change back, when it did. */
  held?: string;
}

/** A rollout as a row shows it (never `complete` with fewer available than desired: see consistentRow). */
export function toRolloutReport(r: RolloutState): RolloutReport {
  const gates = gateStatus(r.managed?.gates);
  return consistentRow({ ...r.counts, phase: r.phase, mode: r.mode, revision: r.revision, onDelete: r.onDelete, message: r.message, ...(gates ? { gates } : {}) });
}

/** One object of the bundle other than a DaemonSet: what the pass did with it. */
export interface ObjectReport {
  /** `Kind namespace/name`, or `Kind name` when cluster-scoped. */
  id: string;
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
  action: ObjectAction;
  applied: boolean;
  source: SourceLocation;
  message: string;
  /** What an apply changes (plan): a unified diff of the fields Git sets; a Secret's values never shown. */
  diff?: string;
  error?: { reason: string; message: string };
}

/** An object of the inventory that Git's source no longer holds (lib/bundle/prune.ts). */
export interface OrphanReport {
  id: string;
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
  /** orphaned: left in the cluster (PRUNE=false, or kept, with why); pruned: deleted in this pass; failed: its delete failed. */
  action: 'orphaned' | 'pruned' | 'failed';
  pruned: boolean;
  /** The file it was last applied from. */
  lastSource?: string;
  message: string;
  error?: { reason: string; message: string };
}

export type PassResult = 'succeeded' | 'failed' | 'skipped';

export interface ReconcileReport {
  kind: 'ReconcileReport';
  runId: string;
  cluster: string;
  dryRun: boolean;
  result: PassResult;
  startedAt: string;
  finishedAt: string;
  /** Set when another run held the lease and this one did nothing. */
  lease?: LeaseHolder;
  source?: { url: string; ref: string; path: string; commit?: GitCommit; verification?: Verification };
  summary: Record<string, number>;
  daemonSets: DaemonSetReport[];
  /** The other objects of the source (ALLOWED_KINDS), in the order they are applied; absent when there are none. */
  objects?: ObjectReport[];
  /** Versioned config copies this pass deleted, no kept revision needing them (docs/bundles.md). */
  prunedCopies?: string[];
  /** The objects a pass applied earlier (its inventory) that Git's source no longer holds, in the order they are deleted; absent when there are none. */
  orphans?: OrphanReport[];
  /** Problems in Git that belong to no single DaemonSet (unreadable files, other kinds). */
  problems: ManifestProblem[];
  kubernetesRequests: number;
  error?: { reason: string; message: string };
  /** Set when a rollback took the lease over while this pass watched rollouts: it stopped watching there. */
  preempted?: string;
  /** DaemonSets whose change was not started because the pass's time ran out (a Lambda invocation's remaining time); the next pass applies them. */
  deferred?: string[];
  /** Why the pass stopped starting work before it was done (its deadline), and what the next pass does about it. */
  stopped?: { reason: 'DeadlineReached'; message: string };
  /** This pass took the cluster's lease (it had something to write). */
  leaseTaken?: boolean;
  /** The pass run after this one for a push that arrived while this one held the lease. */
  followUp?: ReconcileReport;
}

/**
 * The entry of a DaemonSet whose record in S3 cannot be read: it is `failed`, with the key
 * and the repair in its error, and the pass touches nothing of it.
 */
export function unreadableRecordEntry(key: string, error: { reason: string; message: string; key: string }, revision: number | undefined): DaemonSetReport {
  const [namespace, name] = key.split('/');
  return {
    key,
    namespace,
    name,
    action: 'failed',
    applied: false,
    revision,
    message: `left alone: its record ${error.key} cannot be read`,
    error: { reason: error.reason, message: error.message },
  };
}

export function summarize(items: DaemonSetReport[]): Record<string, number> {
  const out: Record<string, number> = { total: items.length };
  for (const i of items) out[i.action] = (out[i.action] ?? 0) + 1;
  return out;
}

/** Whether the pass failed: a step failed, or a DaemonSet could not be applied or was invalid. */
export function passFailed(items: DaemonSetReport[], problems: ManifestProblem[]): boolean {
  return items.some((i) => i.action === 'failed' || i.action === 'invalid' || i.rollout?.phase === 'stalled') ||
    problems.some((p) => p.severity === 'error');
}

/** One line that says why a pass failed: its error, or the DaemonSets that failed and why. */
export function failureSummary(r: ReconcileReport): string {
  const parts: string[] = [];
  if (r.error) parts.push(`${r.error.reason}: ${r.error.message}`);
  for (const d of r.daemonSets) {
    if (d.action === 'failed' || d.action === 'invalid') parts.push(`${d.key} ${d.action}${d.error ? ` (${d.error.reason}: ${d.error.message})` : ''}`);
    else if (d.rollout?.phase === 'stalled') parts.push(`${d.key} stalled at revision ${d.rollout.revision}`);
  }
  for (const o of [...(r.objects ?? []), ...(r.orphans ?? [])]) if (o.action === 'failed') parts.push(`${o.id} failed (${o.error?.message ?? o.message})`);
  const errors = r.problems.filter((p) => p.severity === 'error');
  if (errors.length > 0) parts.push(`${errors.length} manifest problem${errors.length === 1 ? '' : 's'} (${errors.map((p) => p.file).join(', ')})`);
  return `reconcile pass ${r.runId} of cluster ${r.cluster} failed: ${parts.join('; ') || 'see the report in the log'}`;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : pad(c, widths[i]))).join('   ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function formatReconcileReport(r: ReconcileReport, options: { diffs?: boolean } = {}): string {
  const out: string[] = [];
  const commit = r.source?.commit;
  if (r.result === 'skipped' && r.lease) {
    out.push(`skipped: another run holds the lease (${r.lease.holder}, ${r.lease.operation}, until ${r.lease.expiresAt})`);
    return `${out.join('\n')}\n`;
  }
  out.push(`${r.dryRun ? 'plan' : 'reconcile'} of cluster ${r.cluster}${commit ? ` at ${commit.sha.slice(0, 7)} "${commit.subject}"` : ''}: ${r.result}`);
  if (r.error) out.push(`error: ${r.error.message}`);
  if (r.preempted) out.push(`stopped watching rollouts: ${r.preempted}`);
  if (r.deferred) out.push(`time ran out before changing ${r.deferred.join(', ')}: the next pass applies ${r.deferred.length === 1 ? 'it' : 'them'}`);
  if (r.daemonSets.length > 0) {
    out.push('');
    out.push(table(
      ['DAEMONSET', 'ACTION', 'REVISION', 'DESIRED', 'CURRENT', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'PHASE', 'MESSAGE'],
      r.daemonSets.map((d) => [
        d.key,
        d.action + (d.cause && d.applied && d.action !== 'create' ? ` (${d.cause})` : ''),
        d.revision === undefined ? '-' : String(d.revision),
        String(d.rollout?.desired ?? '-'),
        String(d.rollout?.current ?? '-'),
        String(d.rollout?.ready ?? '-'),
        String(d.rollout?.upToDate ?? '-'),
        String(d.rollout?.available ?? '-'),
        d.rollout ? d.rollout.phase + (d.rollout.onDelete ? ' (OnDelete)' : '') : '-',
        d.error?.message ?? d.message,
      ]),
    ));
  }
  const gateLines = r.daemonSets.flatMap((d) => formatGateLines(d.key, d.rollout?.gates));
  if (gateLines.length) out.push('', ...gateLines);
  if (r.objects?.length) {
    out.push('');
    out.push(table(['OBJECT', 'ACTION', 'MESSAGE'], r.objects.map((o) => [o.id, o.action, o.error?.message ?? o.message])));
  }
  if (r.orphans?.length) {
    out.push('');
    out.push(table(['NOT IN GIT', 'ACTION', 'MESSAGE'], r.orphans.map((o) => [o.id, o.action, o.error?.message ?? o.message])));
  }
  if (r.problems.length > 0) {
    out.push('');
    out.push('problems in Git:');
    for (const p of r.problems) out.push(`  ${p.severity === 'error' ? 'error' : p.severity}: ${p.file}${p.document ? ` (document ${p.document})` : ''}: ${p.message}`);
  }
  if (options.diffs) {
    for (const d of [...(r.objects ?? []), ...r.daemonSets]) {
      if (d.diff) {
        out.push('');
        out.push(d.diff.trimEnd());
      }
    }
  }
  return `${out.join('\n')}\n`;
}
