/**
 * The promotion as a Lambda durable function (@aws/durable-execution-sdk-js). Each round:
 *
 *   look (step: read head, fleet file, promotion and cluster records; decide; record the decision)
 *     -> reconcile: a bounded map of durable invokes of the per-cluster pass (maxConcurrent of the wave)
 *     -> wait: a durable wait (the soak, a maintenance window, a rollout under way), then the
 *              passes of the clusters to look at again, as durable invokes
 *     -> start / advance: the next round
 *     -> done / stop / held / idle: the execution ends
 *
 * The function is replayed from its checkpoint log after any crash or wait: outside steps
 * it does nothing but branch on checkpointed results, so a replay reaches the same point
 * without reading S3, Git or the clock again, and an invoke that completed before a crash is
 * never run twice. A wait costs nothing while it waits, so a promotion that takes days needs
 * no 15-minute workaround.
 */
import type { DurableContext } from '@aws/durable-execution-sdk-js';
import type { Clock } from '../clock';
import { errorMessage } from '../errors';
import type { HistoryEntry, PromotionStore } from '../store/promotion-store';
import type { ClusterPassResult } from './cluster-pass';
import { ClusterRecord, Decision, decidePromotion, Promotion } from './decide';
import type { Fleet } from './fleet-file';

export interface PromotionRequest {
  /** Who started this execution (a schedule, a push, an operator), for the history. */
  by?: string;
  reason?: string;
}

export interface PromotionDeps {
  store: PromotionStore;
  clock: Clock;
  /** The branch head and the fleet file in it. */
  readHead(): Promise<{ head: string; fleet: Fleet } | { untrusted: string }>;
  /** The function id of the per-cluster pass (handlers/fleet-pass.ts), for durable invokes. */
  clusterPassFunction: string;
  pollSeconds?: number;
}

export interface PromotionResult {
  decision: Decision;
  rounds: number;
  promotion?: Pick<Promotion, 'id' | 'commit' | 'wave' | 'status'>;
}

/** One look's checkpointed answer: the decision and what the round needs to carry it out. */
interface Look {
  decision: Decision;
  waveName?: string;
  maxConcurrent: number;
  promotion?: Pick<Promotion, 'id' | 'commit' | 'wave' | 'status'>;
}

/** Enough rounds for a promotion of days at a poll of minutes; an execution that uses them all ends and the next one goes on. */
export const MAX_ROUNDS = 500;

function history(store: PromotionStore, entry: HistoryEntry, id: string): Promise<void> {
  return store.appendHistory(entry, id);
}

/** The look step: read everything, decide, and record the decision's own writes (promotion record, cluster promotions, history). */
async function look(deps: PromotionDeps, request: PromotionRequest, round: string): Promise<Look> {
  const { store } = deps;
  const read = await deps.readHead();
  const { promotion, etag } = await store.readPromotion();
  if ('untrusted' in read && !promotion) return { decision: { kind: 'idle', reason: `the branch head ${read.untrusted}` }, maxConcurrent: 1 };
  const fleet = 'fleet' in read ? read.fleet : undefined;
  if (!fleet) return { decision: { kind: 'idle', reason: `the branch head ${'untrusted' in read ? read.untrusted : 'cannot be read'}` }, maxConcurrent: 1 };
  const head = 'head' in read ? read.head : undefined;
  const records: Record<string, ClusterRecord> = {};
  await Promise.all(fleet.clusters.map(async (c) => {
    try {
      records[c.name] = await store.readCluster(c.name);
    } catch (err) {
      records[c.name] = { unreachable: errorMessage(err) };
    }
  }));
  const now = deps.clock.now();
  const at = now.toISOString();
  const decision = decidePromotion(fleet, promotion, head, records, now, { pollSeconds: deps.pollSeconds });
  const by = request.by ?? 'promotion';
  const summary = (p: Promotion | undefined) => (p ? { id: p.id, commit: p.commit, wave: p.wave, status: p.status } : undefined);
  let next: Promotion | undefined = promotion;
  const events: HistoryEntry[] = [];
  switch (decision.kind) {
    case 'start': {
      next = { id: `${at.replace(/[-:.TZ]/g, '').slice(0, 14)}-${decision.commit.slice(0, 7)}`, commit: decision.commit, sourceHead: decision.commit, startedAt: at, by, ...(request.reason ? { reason: request.reason } : {}), wave: 0, status: 'in-flight' };
      if (promotion && decision.supersedes) events.push({ at, promotion: promotion.id, commit: promotion.commit, event: 'superseded', by, reason: `by ${decision.commit.slice(0, 7)}` });
      events.push({ at, promotion: next.id, commit: next.commit, event: 'started', wave: fleet.waves[0].name, by });
      break;
    }
    case 'advance':
      next = { ...promotion!, wave: decision.to, healthySince: undefined };
      events.push({ at, promotion: promotion!.id, commit: promotion!.commit, event: 'advanced', wave: fleet.waves[decision.to].name, by, reason: `wave ${fleet.waves[decision.from].name} healthy for its soak` });
      break;
    case 'stop':
      next = { ...promotion!, status: 'stopped', stopped: { wave: decision.wave, cluster: decision.cluster, ...(decision.daemonSet ? { daemonSet: decision.daemonSet } : {}), reason: decision.reason, at } };
      events.push({ at, promotion: promotion!.id, commit: promotion!.commit, event: 'stopped', wave: fleet.waves[decision.wave].name, clusters: [decision.cluster], by, reason: `${decision.daemonSet ? `${decision.daemonSet}: ` : ''}${decision.reason}` });
      break;
    case 'done':
      next = { ...promotion!, status: 'done', healthySince: undefined };
      events.push({ at, promotion: promotion!.id, commit: promotion!.commit, event: 'done', by });
      break;
    case 'wait':
      next = { ...promotion!, healthySince: decision.healthySince };
      if (!decision.healthySince) delete next.healthySince;
      break;
    case 'reconcile':
      for (const cluster of decision.clusters) {
        await store.promoteCluster(cluster, { commit: decision.commit, at, by: `promotion ${promotion!.id}`, ...(promotion!.reason ? { reason: promotion!.reason } : {}) });
      }
      events.push({ at, promotion: promotion!.id, commit: decision.commit, event: 'promoted', wave: fleet.waves[decision.wave].name, clusters: decision.clusters, by });
      break;
    default:
      break;
  }
  // Written over the version read: a hold or a hand promotion in between makes this step fail and look again.
  if (next !== promotion && JSON.stringify(next) !== JSON.stringify(promotion)) {
    await store.writePromotion(next!, etag);
  }
  for (const [i, e] of events.entries()) await history(store, e, `${round}-${i}`);
  const waveIndex = 'wave' in decision ? decision.wave : decision.kind === 'advance' ? decision.to : next?.wave;
  const wave = waveIndex === undefined ? undefined : fleet.waves[waveIndex];
  return { decision, maxConcurrent: wave?.maxConcurrent ?? 1, ...(wave ? { waveName: wave.name } : {}), promotion: summary(next) };
}

/** Runs the passes of `clusters` as durable invokes, at most `limit` at once. */
async function runPasses(ctx: DurableContext, deps: PromotionDeps, name: string, clusters: string[], limit: number): Promise<void> {
  if (clusters.length === 0) return;
  await ctx.map(name, clusters, (child, cluster) => child.invoke<{ cluster: string }, ClusterPassResult>(`pass-${cluster}`, deps.clusterPassFunction, { cluster }), {
    maxConcurrency: limit,
    itemNamer: (cluster) => cluster,
  });
}

/** The durable promotion: give it to withDurableExecution (handlers/promote.ts). */
export function promotionWorkflow(makeDeps: () => PromotionDeps) {
  return async (request: PromotionRequest | undefined, ctx: DurableContext): Promise<PromotionResult> => {
    const deps = makeDeps();
    const req = request ?? {};
    let last: Look | undefined;
    for (let round = 1; round <= MAX_ROUNDS; round++) {
      last = await ctx.step(`look-${round}`, () => look(deps, req, `r${round}`));
      const d = last.decision;
      switch (d.kind) {
        case 'start':
        case 'advance':
          continue;
        case 'reconcile':
          await runPasses(ctx, deps, `wave-${last.waveName}-round-${round}`, d.clusters, last.maxConcurrent);
          continue;
        case 'wait':
          await ctx.wait(`wait-${round}`, { seconds: Math.max(1, d.seconds) });
          await runPasses(ctx, deps, `recheck-${last.waveName}-round-${round}`, d.recheck, last.maxConcurrent);
          continue;
        default:
          return { decision: d, rounds: round, ...(last.promotion ? { promotion: last.promotion } : {}) };
      }
    }
    return { decision: last!.decision, rounds: MAX_ROUNDS, ...(last?.promotion ? { promotion: last.promotion } : {}) };
  };
}
