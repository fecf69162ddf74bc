/**
 * The fleet's status: PURE. The fleet file, the branch head, the promotion record, every
 * cluster's record, the history and the clock in; per wave and cluster what runs where, what
 * is in flight, the soak left, the maintenance windows open now, and what the promotion does
 * next (the same `decidePromotion` the durable promotion acts on) out. `dsgitops fleet status`,
 * the `fleet` function and the page of `dsgitops ui` all show this one report.
 */
import { ClusterRecord, Decision, decidePromotion, Promotion, windowEnd } from './decide';
import { Fleet, inMaintenance } from './fleet-file';
import type { HistoryEntry } from '../store/promotion-store';

export interface FleetStatusCluster {
  name: string;
  /** The commit promoted to it: what its passes reconcile. */
  runs?: string;
  /** The promotion's commit, when it is on its way to this cluster (not there yet, or not yet healthy). */
  inFlight?: string;
  lastPass?: ClusterRecord['lastPass'];
  unreachable?: string;
}

export interface FleetStatusWave {
  name: string;
  soakSeconds: number;
  maxConcurrent: number;
  soakRemainingSeconds?: number;
  /** The end of the maintenance window the wave is in now (its clusters are not changed until then). */
  maintenanceUntil?: string;
  clusters: FleetStatusCluster[];
}

export interface FleetStatusReport {
  kind: 'FleetStatus';
  head?: string;
  untrustedHead?: string;
  promotion?: Promotion;
  waves: FleetStatusWave[];
  /** What the promotion does next, as the decision sees it now. */
  next: Decision;
  history: HistoryEntry[];
}

export interface FleetRecords {
  fleet: Fleet;
  head?: string;
  promotion?: Promotion;
  records: Record<string, ClusterRecord>;
  history: HistoryEntry[];
}

export function fleetStatusOf(input: FleetRecords, now: Date): FleetStatusReport {
  const { fleet, head, promotion, records, history } = input;
  const next = decidePromotion(fleet, promotion, head, records, now);
  const waves = fleet.waves.map((w, i): FleetStatusWave => {
    const soaking = promotion?.status === 'in-flight' && promotion.wave === i && promotion.healthySince;
    const remaining = soaking ? Math.max(0, Math.ceil(w.soakSeconds - (now.getTime() - new Date(promotion!.healthySince!).getTime()) / 1000)) : undefined;
    const window = inMaintenance(w.maintenanceWindows, now);
    return {
      name: w.name,
      soakSeconds: w.soakSeconds,
      maxConcurrent: w.maxConcurrent,
      ...(remaining !== undefined ? { soakRemainingSeconds: remaining } : {}),
      ...(window ? { maintenanceUntil: windowEnd(window, now).toISOString() } : {}),
      clusters: w.clusters.map((name): FleetStatusCluster => {
        const r = records[name];
        // In flight: the promotion's current wave, where the commit is not yet applied and healthy.
        const onItsWay = promotion?.status === 'in-flight' && promotion.wave === i && (r?.promoted?.commit !== promotion.commit || r.lastPass?.commit !== promotion.commit || r.lastPass.result !== 'healthy');
        return {
          name,
          ...(r?.promoted ? { runs: r.promoted.commit } : {}),
          ...(onItsWay ? { inFlight: promotion!.commit } : {}),
          ...(r?.lastPass ? { lastPass: r.lastPass } : {}),
          ...(r?.unreachable ? { unreachable: r.unreachable } : {}),
        };
      }),
    };
  });
  return { kind: 'FleetStatus', head, ...(promotion ? { promotion } : {}), waves, next, history };
}

const short = (sha?: string) => (sha ? sha.slice(0, 7) : '-');

/** The decision in words, as `fleet status` prints it under "next:". */
export function describeDecision(d: Decision, r: Pick<FleetStatusReport, 'waves'>): string {
  switch (d.kind) {
    case 'idle': return d.reason;
    case 'held': return `held by ${d.by}${d.reason ? `: ${d.reason}` : ''}`;
    case 'start': return `start ${short(d.commit)} at wave ${r.waves[0]?.name}${d.supersedes ? ` (supersedes ${short(d.supersedes)})` : ''}`;
    case 'reconcile': return `promote ${short(d.commit)} to ${d.clusters.join(', ')}`;
    case 'wait': return `wait ${d.seconds}s: ${d.reasons.join('; ')}`;
    case 'advance': return `advance to wave ${r.waves[d.to]?.name}`;
    case 'done': return `${short(d.commit)} done`;
    case 'stop': return `stop at ${d.cluster}: ${d.reason}`;
  }
}

