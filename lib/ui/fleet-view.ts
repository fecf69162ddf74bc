/**
 * The fleet on the page of `dsgitops ui`: PURE. The fleet's records (fleet file, head,
 * promotion, every cluster's record, history) and the clock in; what the page draws out: each
 * wave with its clusters, the commit each runs and the one in flight, a state with a glyph and
 * a word as well as a colour, the soak left, where and why a promotion stopped, and the history
 * with who and why. What runs where, the soak and what happens next come from `fleetStatusOf`
 * (lib/fleet/status.ts), the report `dsgitops fleet status` prints, which asks `decidePromotion`:
 * nothing here decides anything about the promotion.
 */
import { describeDecision, FleetRecords, fleetStatusOf, FleetStatusCluster, FleetStatusWave } from '../fleet/status';

/** A cluster's state on the page, most telling first when several hold. */
export type FleetClusterState = 'unreachable' | 'failed' | 'maintenance' | 'rolling-out' | 'healthy' | 'not-promoted';

export const FLEET_LEGEND: Record<FleetClusterState, { glyph: string; label: string }> = {
  healthy: { glyph: '●', label: 'healthy' },
  'rolling-out': { glyph: '◐', label: 'rolling out' },
  failed: { glyph: '✕', label: 'failed' },
  unreachable: { glyph: '?', label: 'unreachable' },
  maintenance: { glyph: '◷', label: 'maintenance window' },
  'not-promoted': { glyph: '○', label: 'nothing promoted yet' },
};

export interface CommitRef {
  sha: string;
  short: string;
}

export interface FleetClusterRow {
  name: string;
  state: FleetClusterState;
  /** The commit promoted to the cluster: what its passes reconcile. */
  runs?: CommitRef;
  /** The promotion's commit on its way to this cluster. */
  inFlight?: CommitRef;
  lastPass?: { result: string; at: string; commit: string };
  /** Why the state is what it is (the pass's reason, the window's end, why it cannot be reached). */
  reason?: string;
  daemonSet?: string;
  /** The page serves this cluster: its DaemonSets are the page's own view. */
  servedHere: boolean;
}

export interface FleetWaveRow {
  name: string;
  /** The wave the promotion in flight is at. */
  current: boolean;
  soakSeconds: number;
  soakRemainingSeconds?: number;
  maintenanceUntil?: string;
  clusters: FleetClusterRow[];
}

export interface FleetHistoryRow {
  at: string;
  event: string;
  wave?: string;
  clusters?: string[];
  commit: string;
  by: string;
  reason?: string;
  /** A person's act (held, resumed, promoted by hand), not the promotion's own step. */
  byHand: boolean;
}

export interface FleetPage {
  configured: true;
  at: string;
  /** The cluster this page serves (CLUSTER_NAME). */
  cluster: string;
  head?: CommitRef;
  promotion?: { id: string; commit: CommitRef; status: string; wave?: string; by: string; reason?: string; startedAt: string };
  held?: { by: string; reason?: string; at: string };
  stopped?: { wave?: string; cluster: string; daemonSet?: string; reason: string; at: string };
  /** What the promotion does next, in the words of `fleet status`. */
  next: string;
  waves: FleetWaveRow[];
  history: FleetHistoryRow[];
  legend: typeof FLEET_LEGEND;
  /** Which of hold / resume applies now (the page offers it only with --allow-actions). */
  action?: 'hold' | 'resume';
}

const ref = (sha: string | undefined): CommitRef | undefined => (sha ? { sha, short: sha.slice(0, 7) } : undefined);

const BY_HAND = new Set(['held', 'resumed', 'promoted-by-hand']);

/** A cluster's state from its row of the status report and its wave. */
export function clusterState(c: FleetStatusCluster, wave: Pick<FleetStatusWave, 'maintenanceUntil'>): { state: FleetClusterState; reason?: string; daemonSet?: string } {
  if (c.unreachable) return { state: 'unreachable', reason: `its record cannot be read: ${c.unreachable}` };
  const pass = c.lastPass;
  let own: { state: FleetClusterState; reason?: string; daemonSet?: string };
  if (!c.runs) own = { state: 'not-promoted', reason: 'no commit has been promoted to it yet' };
  else if (!pass || pass.commit !== c.runs) own = { state: 'rolling-out', reason: `${c.runs.slice(0, 7)} promoted; no pass at it has ended yet` };
  else if (pass.result === 'healthy') own = { state: 'healthy' };
  else if (pass.result === 'progressing') own = { state: 'rolling-out', ...(pass.reason ? { reason: pass.reason } : {}) };
  else own = { state: pass.result, reason: pass.reason ?? (pass.result === 'failed' ? 'the pass failed' : 'no answer') };
  if (pass?.daemonSet && (own.state === 'failed' || own.state === 'rolling-out')) own.daemonSet = pass.daemonSet;
  // A window says why nothing changes here now; a failure or a cluster out of reach says more.
  if (wave.maintenanceUntil && own.state !== 'failed' && own.state !== 'unreachable') {
    return { state: 'maintenance', reason: `in a maintenance window until ${wave.maintenanceUntil}; not changed until then${own.reason ? ` (${own.reason})` : ''}` };
  }
  return own;
}

export function fleetView(input: FleetRecords & { cluster: string }, now: Date): FleetPage {
  const report = fleetStatusOf(input, now);
  const p = report.promotion;
  const inFlightWave = p?.status === 'in-flight' ? p.wave : undefined;
  const waves = report.waves.map((w, i): FleetWaveRow => ({
    name: w.name,
    current: inFlightWave === i,
    soakSeconds: w.soakSeconds,
    ...(w.soakRemainingSeconds !== undefined ? { soakRemainingSeconds: w.soakRemainingSeconds } : {}),
    ...(w.maintenanceUntil ? { maintenanceUntil: w.maintenanceUntil } : {}),
    clusters: w.clusters.map((c): FleetClusterRow => {
      const s = clusterState(c, w);
      return {
        name: c.name,
        state: s.state,
        ...(c.runs ? { runs: ref(c.runs) } : {}),
        ...(c.inFlight ? { inFlight: ref(c.inFlight) } : {}),
        ...(c.lastPass ? { lastPass: { result: c.lastPass.result, at: c.lastPass.at, commit: c.lastPass.commit.slice(0, 7) } } : {}),
        ...(s.reason ? { reason: s.reason } : {}),
        ...(s.daemonSet ? { daemonSet: s.daemonSet } : {}),
        servedHere: c.name === input.cluster,
      };
    }),
  }));
  return {
    configured: true,
    at: now.toISOString(),
    cluster: input.cluster,
    ...(report.head ? { head: ref(report.head) } : {}),
    ...(p ? { promotion: { id: p.id, commit: ref(p.commit)!, status: p.status, ...(report.waves[p.wave] ? { wave: report.waves[p.wave].name } : {}), by: p.by, ...(p.reason ? { reason: p.reason } : {}), startedAt: p.startedAt } } : {}),
    ...(p?.held ? { held: p.held } : {}),
    ...(p?.stopped ? { stopped: { ...(report.waves[p.stopped.wave] ? { wave: report.waves[p.stopped.wave].name } : {}), cluster: p.stopped.cluster, ...(p.stopped.daemonSet ? { daemonSet: p.stopped.daemonSet } : {}), reason: p.stopped.reason, at: p.stopped.at } } : {}),
    next: describeDecision(report.next, report),
    waves,
    history: report.history.map((h) => ({ at: h.at, event: h.event, ...(h.wave ? { wave: h.wave } : {}), ...(h.clusters ? { clusters: h.clusters } : {}), commit: h.commit.slice(0, 7), by: h.by, ...(h.reason ? { reason: h.reason } : {}), byHand: BY_HAND.has(h.event) })),
    legend: FLEET_LEGEND,
    ...(p ? { action: p.held ? 'resume' as const : 'hold' as const } : {}),
  };
}
