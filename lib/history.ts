/**
 * Revision history from S3 alone: it works when the DaemonSet no longer exists, when the
 * cluster was rebuilt, and beyond the cluster's revisionHistoryLimit.
 */
import type { Deps } from './deps';
import { NotFoundError } from './errors';
import { imagesOf, DaemonSetManifest } from './source/manifest';
import type { Cause, Outcome, Pin } from './store/records';
import { mapLimit } from './util';
import { table } from './report';
import { formatGateLines, gateStatus, GateStatus } from './rollout/gate-status';

export interface HistoryEntry {
  revision: number;
  current: boolean;
  cause: Cause;
  causeText: string;
  rollbackTo?: number;
  reason?: string;
  commit?: { sha: string; subject: string; author: string; time: string };
  source?: { file: string; document: number };
  createdAt: string;
  appliedAt?: string;
  outcome: Outcome;
  outcomeReason?: string;
  images: string[];
  digest: string;
  /** The configuration it runs with: the versioned copies of its ConfigMaps and Secrets (`ConfigMap name-0123456789`). */
  config?: string[];
  /** A managed rollout with gates that ended (stalled, complete, rolled back): each gate's verdict and last measurements. */
  gates?: GateStatus[];
}

export interface HistoryReport {
  kind: 'HistoryReport';
  cluster: string;
  namespace: string;
  name: string;
  currentRevision?: number;
  pin?: Pin;
  total: number;
  revisions: HistoryEntry[];
}

/** "1-4, 7" for a sorted list of revision numbers. */
export function describeRevisions(numbers: number[]): string {
  if (numbers.length === 0) return 'none';
  const parts: string[] = [];
  let start = numbers[0];
  let prev = numbers[0];
  for (const n of [...numbers.slice(1), NaN]) {
    if (n === prev + 1) {
      prev = n;
      continue;
    }
    parts.push(start === prev ? String(start) : `${start}-${prev}`);
    start = n;
    prev = n;
  }
  return parts.join(', ');
}

export async function history(deps: Deps, req: { namespace: string; name: string; limit?: number }): Promise<HistoryReport> {
  const { store } = deps;
  const numbers = await store.listRevisionNumbers(req.namespace, req.name);
  if (numbers.length === 0) {
    throw new NotFoundError(`no revisions of ${req.namespace}/${req.name} are stored for cluster ${deps.config.cluster.name} (check the namespace, the name and CLUSTER_NAME)`);
  }
  const state = (await store.getState(req.namespace, req.name))?.value;
  const newestFirst = [...numbers].reverse().slice(0, req.limit ?? 50);
  const snapshots = await mapLimit(newestFirst, 8, (n) => store.getRevision(req.namespace, req.name, n));
  const revisions: HistoryEntry[] = [];
  for (const s of snapshots) {
    if (!s) continue;
    const r = s.value;
    revisions.push({
      revision: r.revision,
      current: r.revision === state?.currentRevision,
      cause: r.cause,
      causeText: r.cause === 'rollback' ? `rollback to ${r.rollbackTo}` : r.cause,
      rollbackTo: r.rollbackTo,
      reason: r.reason,
      commit: r.commit ? { sha: r.commit.sha, subject: r.commit.subject, author: r.commit.author, time: r.commit.time } : undefined,
      source: r.source,
      createdAt: r.createdAt,
      appliedAt: r.appliedAt,
      outcome: r.outcome,
      outcomeReason: r.outcomeReason,
      images: imagesOf(r.manifest as unknown as DaemonSetManifest),
      digest: r.digest,
      ...(r.config?.length ? { config: r.config.map((e) => `${e.kind} ${e.copyName}`) } : {}),
      ...(gateStatus(r.gates) ? { gates: gateStatus(r.gates) } : {}),
    });
  }
  return {
    kind: 'HistoryReport',
    cluster: deps.config.cluster.name,
    namespace: req.namespace,
    name: req.name,
    currentRevision: state?.currentRevision,
    pin: state?.pin,
    total: numbers.length,
    revisions,
  };
}

export function formatHistory(h: HistoryReport): string {
  const lines = [`${h.namespace}/${h.name} in cluster ${h.cluster}: ${h.total} revision${h.total === 1 ? '' : 's'}${h.pin ? `, pinned to revision ${h.pin.revision} (${h.pin.reason})` : ''}`, ''];
  // The CONFIG column only when some revision runs with versioned configuration.
  const withConfig = h.revisions.some((r) => r.config);
  lines.push(table(
    ['REVISION', 'COMMIT', 'CAUSE', 'APPLIED AT', 'OUTCOME', 'IMAGES', ...(withConfig ? ['CONFIG'] : [])],
    h.revisions.map((r) => [
      `${r.revision}${r.current ? '*' : ''}`,
      r.commit ? `${r.commit.sha.slice(0, 7)} ${truncate(r.commit.subject, 40)}` : '-',
      r.causeText,
      r.appliedAt ? r.appliedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '(not applied)',
      r.outcome,
      r.images.join(', '),
      ...(withConfig ? [r.config?.join(', ') ?? '-'] : []),
    ]),
  ));
  lines.push('', '* the revision in the cluster');
  // What the gates said about each revision whose rollout had them: which gate failed, with which value.
  const gateLines = h.revisions.flatMap((r) => (r.gates ? [`revision ${r.revision} (${r.outcome}${r.outcomeReason ? `: ${r.outcomeReason}` : ''}):`, ...formatGateLines('', r.gates).map((l) => `  ${l}`)] : []));
  if (gateLines.length) lines.push('', ...gateLines);
  return `${lines.join('\n')}\n`;
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}
