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
import type { Pin, RolloutCounts, RolloutPhase, RolloutState } from './store/records';
import { formatValue } from './rollout/gates';
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
  /** Managed rollouts with gates: each gate's last measurement and how many were taken (rollout/gates.ts). */
  gates?: GateStatus[];
  /** Its state.json cannot be read: the key and the repair. */
  unreadable?: { key: string; message: string };
}

export interface GateStatus {
  gate: string;
  measurements: number;
  last: { at: string; round: 'canary' | 'waves'; nodes: string[]; value?: number; baseline?: number; condition: string; outcome: 'success' | 'failure' | 'inconclusive'; note?: string };
}

/** Each gate's last measurement of the rollout, in the order the gates first measured. */
export function gateStatus(rollout: RolloutState | undefined): GateStatus[] | undefined {
  const ms = rollout?.managed?.gates?.measurements ?? [];
  if (ms.length === 0) return undefined;
  const byGate = new Map<string, GateStatus>();
  for (const m of ms) {
    const { gate, acknowledged: _ack, ...last } = m;
    byGate.set(gate, { gate, measurements: (byGate.get(gate)?.measurements ?? 0) + 1, last });
  }
  return [...byGate.values()];
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
    const entry: StatusEntry = { key, namespace, name, inCluster: Boolean(ds), revision, lastHealthyRevision: state?.lastHealthyRevision, pin: state?.pin, commit: state?.commit };
    if (!ds) return { ...entry, message: state?.deleted ? `pruned at ${state.deleted.at}` : 'not in the cluster' };
    const counts = countsOf(ds);
    const previous = state?.rollout?.revision === revision ? state?.rollout : undefined;
    if (previous?.mode === 'managed') {
      const gates = gateStatus(previous);
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

/** One line per gate of each managed rollout: its last value, condition and verdict. */
function formatGates(entries: readonly StatusEntry[]): string {
  const lines = entries.flatMap((d) => (d.gates ?? []).map((g) => {
    const l = g.last;
    const value = l.value === undefined ? 'no value' : `value ${formatValue(l.value)}${l.baseline !== undefined ? ` (baseline ${formatValue(l.baseline)})` : ''}`;
    return `${d.key} gate ${g.gate}: ${g.measurements} ${g.measurements === 1 ? 'measurement' : 'measurements'}; last (${l.round}, ${l.at}) on ${l.nodes.join(',')}: ${value}, ${l.condition}: ${l.outcome}${l.note ? ` (${l.note})` : ''}`;
  }));
  return lines.length ? `\n${lines.join('\n')}\n` : '';
}
