/**
 * The promotion decision: PURE. The fleet file, the promotion in flight, the per-cluster
 * records and the clock in; the one next thing to do out. The durable orchestration
 * (lib/fleet/orchestrate.ts) calls it inside a step and only carries the answer out, as the
 * DaemonSet controller's rolling update decides first and then acts once.
 *
 * Assumptions / invariants:
 * - A commit reaches wave n+1 only after every cluster of wave n has applied it, its pass
 *   reports every rollout complete and healthy, and the wave then stayed so for the wave's soak.
 * - A failed pass (a stalled or rolled-back rollout, a refused apply, an untrusted head) for the
 *   commit in flight stops it where it is: nothing more is promoted, later waves keep what they run.
 * - A cluster that cannot be reached is never promoted and never counted healthy: the
 *   promotion waits on it and says so.
 * - A cluster inside a maintenance window is skipped for now and re-queued: the promotion
 *   goes on with the wave's other clusters and comes back to it when the window closes.
 * - A newer head supersedes a stopped or in-flight promotion and starts at the first wave.
 * - A held promotion does nothing until resumed (a newer head included).
 */
import { Fleet, inMaintenance, MaintenanceWindow } from './fleet-file';

/** What a cluster's last pass came to (recorded by the pass in the cluster's promotion record). */
export interface PassOutcome {
  commit: string;
  /** When a pass first came to this outcome: a pass that finds the same is not recorded again. */
  at: string;
  /** healthy: applied and every rollout complete; progressing: applied, rollouts under way; failed: stopped with a reason; unreachable: the cluster did not answer. */
  result: 'healthy' | 'progressing' | 'failed' | 'unreachable';
  /** The DaemonSet (ns/name) the failure is about, when it is about one. */
  daemonSet?: string;
  reason?: string;
}

/** Per cluster, what S3 says (lib/fleet/records.ts) and whether it could be read. */
export interface ClusterRecord {
  /** The commit promoted to the cluster: what its passes reconcile. */
  promoted?: { commit: string; at: string; by: string; reason?: string };
  lastPass?: PassOutcome;
  /** Set when the cluster's record or its pass could not be reached, with why. */
  unreachable?: string;
}

export interface Promotion {
  id: string;
  commit: string;
  /** The branch head when the promotion started: a different head supersedes it. */
  sourceHead: string;
  startedAt: string;
  by: string;
  reason?: string;
  wave: number;
  /** When every cluster of the current wave was first seen healthy (the soak's start). */
  healthySince?: string;
  status: 'in-flight' | 'stopped' | 'done' | 'superseded';
  stopped?: { wave: number; cluster: string; daemonSet?: string; reason: string; at: string };
  held?: { by: string; reason?: string; at: string };
  /**
   * The durable execution that drives the promotion, and the branch head it read when it took
   * over: the execution started last claims it at its first look, and an older one that finds
   * another owner ends. Absent (a record written by hand, or before executions owned it): the
   * next look claims it.
   */
  owner?: PromotionOwner;
}

export interface PromotionOwner {
  execution: string;
  commit: string;
  since: string;
  by: string;
}

export type Decision =
  | { kind: 'idle'; reason: string }
  | { kind: 'held'; by: string; reason?: string }
  | { kind: 'start'; commit: string; supersedes?: string }
  | { kind: 'reconcile'; wave: number; commit: string; clusters: string[]; waiting: string[] }
  /** Look again in `seconds`, first running the passes of `recheck` (clusters rolling out, unreachable, or at the soak's end) to see how they are. */
  | { kind: 'wait'; wave: number; seconds: number; reasons: string[]; recheck: string[]; healthySince?: string }
  | { kind: 'advance'; from: number; to: number }
  | { kind: 'done'; commit: string }
  | { kind: 'stop'; wave: number; cluster: string; daemonSet?: string; reason: string };

export interface DecideOptions {
  /** How long to wait before looking again at clusters that are rolling out or unreachable. */
  pollSeconds?: number;
}

const DEFAULT_POLL_SECONDS = 30;

/** The end of the maintenance window `at` is inside, if any (a weekly one: today's, or tomorrow's for one crossing midnight). */
export function windowEnd(window: MaintenanceWindow, at: Date): Date {
  if ('end' in window) return window.end;
  const end = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate(), 0, window.weekly.toMinute));
  return end > at ? end : new Date(end.getTime() + 86_400_000);
}

function secondsUntil(later: Date, now: Date): number {
  return Math.max(1, Math.ceil((later.getTime() - now.getTime()) / 1000));
}

/** Has the cluster applied `commit` and did its last pass for it end healthy? */
function isClusterHealthyAt(record: ClusterRecord | undefined, commit: string): boolean {
  return record?.promoted?.commit === commit && record.lastPass?.commit === commit && record.lastPass.result === 'healthy' && !record.unreachable;
}

/**
 * The next step of the fleet's promotion. `head` is the branch's newest trusted commit
 * (undefined when Git could not be read: nothing new starts then).
 */
export function decidePromotion(
  fleet: Fleet,
  promotion: Promotion | undefined,
  head: string | undefined,
  clusters: Record<string, ClusterRecord>,
  now: Date,
  options: DecideOptions = {},
): Decision {
  const poll = options.pollSeconds ?? DEFAULT_POLL_SECONDS;
  if (promotion?.held) return { kind: 'held', by: promotion.held.by, reason: promotion.held.reason };
  if (head && (!promotion || (promotion.sourceHead !== head && promotion.commit !== head))) {
    return { kind: 'start', commit: head, ...(promotion && promotion.status !== 'done' ? { supersedes: promotion.commit } : {}) };
  }
  if (!promotion) return { kind: 'idle', reason: 'no commit to promote (the branch could not be read)' };
  if (promotion.status === 'stopped') {
    const s = promotion.stopped;
    return { kind: 'idle', reason: `${promotion.commit.slice(0, 7)} stopped in wave ${fleet.waves[s?.wave ?? promotion.wave]?.name}${s ? ` at ${s.cluster}${s.daemonSet ? ` (${s.daemonSet})` : ''}: ${s.reason}` : ''}; waiting for a newer commit` };
  }
  if (promotion.status === 'done') return { kind: 'idle', reason: `${promotion.commit.slice(0, 7)} runs on every wave` };
  if (promotion.status === 'superseded') return { kind: 'idle', reason: `${promotion.commit.slice(0, 7)} was superseded` };

  const w = promotion.wave;
  const wave = fleet.waves[w];
  if (!wave) return { kind: 'done', commit: promotion.commit };
  const commit = promotion.commit;

  // A failure of the commit in flight, in this wave, stops it here.
  for (const name of wave.clusters) {
    const pass = clusters[name]?.lastPass;
    if (clusters[name]?.promoted?.commit === commit && pass?.commit === commit && pass.result === 'failed') {
      return { kind: 'stop', wave: w, cluster: name, ...(pass.daemonSet ? { daemonSet: pass.daemonSet } : {}), reason: pass.reason ?? 'the pass failed' };
    }
  }

  const reasons: string[] = [];
  const unreachable = wave.clusters.filter((n) => clusters[n]?.unreachable || (clusters[n]?.lastPass?.commit === commit && clusters[n]?.lastPass?.result === 'unreachable'));
  for (const n of unreachable) reasons.push(`${n} cannot be reached: ${clusters[n]?.unreachable ?? clusters[n]?.lastPass?.reason ?? 'no answer'}`);
  const toPromote = wave.clusters.filter((n) => clusters[n]?.promoted?.commit !== commit && !unreachable.includes(n));
  const changing = wave.clusters.filter((n) => clusters[n]?.promoted?.commit === commit && !isClusterHealthyAt(clusters[n], commit) && !unreachable.includes(n));

  const window = inMaintenance(wave.maintenanceWindows, now);
  const maintenanceEnd = window ? windowEnd(window, now) : undefined;
  if (window && toPromote.length > 0) reasons.push(`${toPromote.join(', ')} skipped: wave ${wave.name} is in a maintenance window until ${maintenanceEnd!.toISOString()}; re-queued`);

  const budget = Math.max(0, Math.min(wave.maxConcurrent - changing.length, toPromote.length));
  if (!window && budget > 0) {
    return { kind: 'reconcile', wave: w, commit, clusters: toPromote.slice(0, budget), waiting: toPromote.slice(budget) };
  }
  for (const n of changing) reasons.push(`${n} is rolling ${commit.slice(0, 7)} out`);

  if (toPromote.length > 0 || changing.length > 0 || unreachable.length > 0) {
    const seconds = maintenanceEnd && changing.length === 0 && unreachable.length === 0 ? secondsUntil(maintenanceEnd, now) : poll;
    // Any cluster not healthy ends a soak that had begun: it starts again once all are.
    return { kind: 'wait', wave: w, seconds, reasons, recheck: [...changing, ...unreachable] };
  }

  // Every cluster of the wave is healthy at the commit: the soak.
  const since = promotion.healthySince ? new Date(promotion.healthySince) : now;
  const remaining = wave.soakSeconds - (now.getTime() - since.getTime()) / 1000;
  if (remaining > 0) {
    return { kind: 'wait', wave: w, seconds: Math.ceil(remaining), reasons: [`wave ${wave.name} healthy since ${since.toISOString()}; soaking ${Math.ceil(remaining)}s more`], recheck: wave.clusters, healthySince: since.toISOString() };
  }
  if (w + 1 >= fleet.waves.length) return { kind: 'done', commit };
  return { kind: 'advance', from: w, to: w + 1 };
}
