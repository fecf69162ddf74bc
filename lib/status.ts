/**
 * Per-DaemonSet rollout status: what S3 records joined with one LIST of the cluster.
 */
import type { Deps } from './deps';
import { RecordUnreadableError } from './errors';
import { MANAGED_SELECTOR } from './labels';
import { liveRevision } from './plan/plan';
import { table } from './report';
import { consistentRow, countsOf, evaluateNative } from './rollout/status';
import type { GitCommit } from './source/git';
import type { Pin, RolloutCounts, RolloutPhase } from './store/records';
import { formatGateLines, gateStatus, GateStatus } from './rollout/gate-status';

export type { GateStatus };
import { mapLimit } from './util';

export interface StatusEntry extends Partial<RolloutCounts> {
  key: string;
  namespace: string;
  name: string;
  inCluster: boolean;
  revision?: number;
  phase?: RolloutPhase;
  mode?: 'native' | 'managed';
  message?: string;
  lastHealthyRevision?: number;
  pin?: Pin;
  commit?: GitCommit;
  paused?: boolean;
  /** Managed rollouts with gates: each gate's verdict, its last measurements and how many were taken (rollout/gate-status.ts). */
  gates?: GateStatus[];
  /** The revision a rollback replaced, when its rollout had gates: how it ended and what its gates said. */
  rolledBack?: { revision: number; phase: RolloutPhase; message?: string; gates: GateStatus[] };
  /** Its state.json cannot be read: the key and the repair. */
  unreadable?: { key: string; message: string };
}

export interface StatusReport {
  kind: 'StatusReport';
  cluster: string;
  daemonSets: StatusEntry[];
}

export async function status(deps: Deps): Promise<StatusReport> {
  const [listed, tracked] = await Promise.all([deps.cluster.listManagedDaemonSets(MANAGED_SELECTOR), deps.store.listTracked()]);
  const live = new Map(listed.items.map((d) => [`${d.metadata.namespace}/${d.metadata.name}`, d]));
  const keys = [...new Set([...live.keys(), ...tracked.map((t) => `${t.namespace}/${t.name}`)])].sort();
  const entries = await mapLimit(keys, 16, async (key): Promise<StatusEntry> => {
    const [namespace, name] = key.split('/');
    let state;
    try {
      state = (await deps.store.getState(namespace, name))?.value;
    } catch (err) {
      // One unreadable record hides no other DaemonSet's status.
      if (!(err instanceof RecordUnreadableError)) throw err;
      const ds = live.get(key);
      return { key, namespace, name, inCluster: Boolean(ds), revision: liveRevision(ds), ...(ds ? countsOf(ds) : {}), message: `record unreadable: dsgitops repair ${key}`, unreadable: { key: err.key, message: err.message } };
    }
    const ds = live.get(key);
    const revision = state?.currentRevision ?? liveRevision(ds);
    const rolledBack = state?.rolledBack ? { revision: state.rolledBack.revision, phase: state.rolledBack.phase, ...(state.rolledBack.message ? { message: state.rolledBack.message } : {}), gates: gateStatus(state.rolledBack.gates) ?? [] } : undefined;
    const entry: StatusEntry = { key, namespace, name, inCluster: Boolean(ds), revision, lastHealthyRevision: state?.lastHealthyRevision, pin: state?.pin, commit: state?.commit, ...(rolledBack ? { rolledBack } : {}) };
    if (!ds) return { ...entry, message: state?.deleted ? `pruned at ${state.deleted.at}` : 'not in the cluster' };
    const counts = countsOf(ds);
    const previous = state?.rollout?.revision === revision ? state?.rollout : undefined;
    if (previous?.mode === 'managed') {
      const gates = gateStatus(previous.managed?.gates);
      return consistentRow({ ...entry, ...counts, phase: previous.phase, mode: 'managed' as const, message: previous.message, paused: Boolean(previous.managed?.paused), ...(gates ? { gates } : {}) });
    }
    const r = evaluateNative(previous, ds, revision ?? 0, deps.clock.now(), deps.config.policy.progressDeadlineSeconds);
    return { ...entry, ...counts, phase: r.phase, mode: 'native', message: r.message };
  });
  return { kind: 'StatusReport', cluster: deps.config.cluster.name, daemonSets: entries };
}

export function formatStatus(s: StatusReport): string {
  if (s.daemonSets.length === 0) return `cluster ${s.cluster}: no DaemonSets managed by daemonset-gitops\n`;
  return `${table(
    ['DAEMONSET', 'REVISION', 'DESIRED', 'CURRENT', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'PHASE', 'PIN', 'COMMIT'],
    s.daemonSets.map((d) => [
      d.key,
      d.revision === undefined ? '-' : String(d.revision),
      String(d.desired ?? '-'),
      String(d.current ?? '-'),
      String(d.ready ?? '-'),
      String(d.upToDate ?? '-'),
      String(d.available ?? '-'),
      d.unreadable ? (d.message ?? 'record unreadable') : d.inCluster ? `${d.phase}${d.mode === 'managed' ? ' (managed)' : ''}${d.paused ? ' paused' : ''}` : d.message ?? 'not in the cluster',
      d.pin ? `revision ${d.pin.revision}: ${d.pin.reason}` : '-',
      d.commit ? `${d.commit.sha.slice(0, 7)} ${d.commit.subject}` : '-',
    ]),
  )}\n${formatGates(s.daemonSets)}`;
}

/** One line per gate of each managed rollout (its last measurement and verdict), and of the revision a rollback replaced. */
function formatGates(entries: readonly StatusEntry[]): string {
  const lines = entries.flatMap((d) => [
    ...formatGateLines(d.key, d.gates),
    ...(d.rolledBack ? [`${d.key} revision ${d.rolledBack.revision}, rolled back (${d.rolledBack.phase}${d.rolledBack.message ? `: ${d.rolledBack.message}` : ''}):`, ...formatGateLines(`  revision ${d.rolledBack.revision}`, d.rolledBack.gates)] : []),
  ]);
  return lines.length ? `\n${lines.join('\n')}\n` : '';
}
