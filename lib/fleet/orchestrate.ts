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
 * One execution at a time drives the fleet: the promotion record names its owner (the durable
 * execution and the head it read then). An execution claims it at its first look (a conditional
 * write, so of two starting together one claims and the other looks again); the execution
 * started last owns it, since a push of a newer commit starts an execution of its own. Every
 * later look, and the check after every wait, reads the owner first: an execution that finds
 * another one there records `taken-over` and ends without invoking a pass. A replay of the
 * owner keeps its identity (the execution's ARN), so it goes on driving.
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
import { ClusterRecord, Decision, decidePromotion, Promotion, PromotionOwner } from './decide';
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

/** An execution that found another one owning the promotion: it ended without driving the fleet. */
export interface TakenOver {
  kind: 'taken-over';
  by: PromotionOwner;
}

export interface PromotionResult {
  decision: Decision | TakenOver;
  rounds: number;
  promotion?: Pick<Promotion, 'id' | 'commit' | 'wave' | 'status'>;
}

/** One look's checkpointed answer: the decision and what the round needs to carry it out. */
interface Look {
  decision: Decision | TakenOver;
  waveName?: string;
  maxConcurrent: number;
  promotion?: Pick<Promotion, 'id' | 'commit' | 'wave' | 'status'>;
}

/** Enough rounds for a promotion of days at a poll of minutes; an execution that uses them all ends and the next one goes on. */
export const MAX_ROUNDS = 500;

function history(store: PromotionStore, entry: HistoryEntry, id: string): Promise<void> {
  return store.appendHistory(entry, id);
}

/** Who this execution is: the durable execution's ARN, the same in every replay of it. */
export interface Me {
  execution: string;
  /** The first look claims the promotion whoever owns it; later ones end if another execution has. */
  claim: boolean;
}

/** Another execution owns the promotion: record that this one ends (once, whatever the replays), and say by whom. */
async function takenOver(store: PromotionStore, promotion: Promotion | undefined, me: Me, clock: Clock, round: string): Promise<TakenOver | null> {
  const owner = promotion?.owner;
  if (me.claim || !owner || owner.execution === me.execution) return null;
  await history(store, { at: clock.now().toISOString(), promotion: promotion!.id, commit: promotion!.commit, event: 'taken-over', by: me.execution, reason: `execution ${owner.execution} (started by ${owner.by}, head ${owner.commit.slice(0, 7)}) drives the promotion since ${owner.since}; this execution ends` }, `${round}-taken-over`);
  return { kind: 'taken-over', by: owner };
}

/** The check after a wait, before the passes it was waiting for: does this execution still own the promotion? */
async function stillOwner(deps: PromotionDeps, me: Me, round: string): Promise<TakenOver | null> {
  const { promotion } = await deps.store.readPromotion();
  return takenOver(deps.store, promotion, me, deps.clock, round);
}

/** The look step: read everything, decide, and record the decision's own writes (promotion record, cluster promotions, history). */
async function look(deps: PromotionDeps, request: PromotionRequest, round: string, me: Me): Promise<Look> {
  const { store } = deps;
  const read = await deps.readHead();
  const { promotion, etag } = await store.readPromotion();
  const other = await takenOver(store, promotion, me, deps.clock, round);
  if (other) return { decision: other, maxConcurrent: 1 };
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
  // This execution owns what it writes; the first look claims the record even when it changes nothing else.
  const owner: PromotionOwner = next?.owner?.execution === me.execution ? next.owner : { execution: me.execution, commit: head ?? next?.commit ?? '', since: at, by };
  if (next) next = { ...next, owner };
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
    const execution = ctx.executionContext.durableExecutionArn;
    let last: Look | undefined;
    for (let round = 1; round <= MAX_ROUNDS; round++) {
      last = await ctx.step(`look-${round}`, () => look(deps, req, `r${round}`, { execution, claim: round === 1 }));
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
          {
            // A newer execution may have taken over while this one waited: then no pass of this one runs.
            const other = await ctx.step(`owner-${round}`, () => stillOwner(deps, { execution, claim: false }, `r${round}`));
            if (other) return { decision: other, rounds: round, ...(last.promotion ? { promotion: last.promotion } : {}) };
          }
          await runPasses(ctx, deps, `recheck-${last.waveName}-round-${round}`, d.recheck, last.maxConcurrent);
          continue;
        default:
          return { decision: d, rounds: round, ...(last.promotion ? { promotion: last.promotion } : {}) };
      }
    }
    return { decision: last!.decision, rounds: MAX_ROUNDS, ...(last?.promotion ? { promotion: last.promotion } : {}) };
  };
}
