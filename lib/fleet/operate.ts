/**
 * What operators do with the fleet's promotion, shared by `dsgitops fleet …` and the fleet
 * handler: read its status, hold and resume it, promote a commit to a wave by hand. Each
 * change is a conditional write of the promotion record and one history entry naming who
 * and why.
 */
import type { Clock } from '../clock';
import type { Config } from '../config';
import { InvalidRequestError } from '../errors';
import { table } from '../report';
import { checkout } from '../source/git';
import type { HistoryEntry, PromotionStore } from '../store/promotion-store';
import { readFleetFile, readFleetHead } from './fleet-source';
import { ClusterRecord, Decision, decidePromotion, Promotion } from './decide';
import type { Fleet } from './fleet-file';
import { join } from 'node:path';

export interface FleetStatusCluster {
  name: string;
  /** The commit promoted to it: what its passes reconcile. */
  runs?: string;
  /** The promotion's commit, when it is on its way to this cluster (not there yet, or not yet healthy). */
  inFlight?: string;
  lastPass?: ClusterRecord['lastPass'];
  unreachable?: string;
}

export interface FleetStatusReport {
  kind: 'FleetStatus';
  head?: string;
  untrustedHead?: string;
  promotion?: Promotion;
  waves: { name: string; soakSeconds: number; maxConcurrent: number; soakRemainingSeconds?: number; clusters: FleetStatusCluster[] }[];
  /** What the promotion does next, as the decision sees it now. */
  next: Decision;
  history: HistoryEntry[];
}

export async function fleetStatus(config: Config, store: PromotionStore, clock: Clock, options: { historyLimit?: number } = {}): Promise<FleetStatusReport> {
  const read = await readFleetHead(config, clock);
  if (!('fleet' in read)) throw new InvalidRequestError(`the branch head cannot be used: ${read.untrusted}`);
  const { fleet, head } = read;
  const { promotion } = await store.readPromotion();
  const records: Record<string, ClusterRecord> = {};
  await Promise.all(fleet.clusters.map(async (c) => {
    try {
      records[c.name] = await store.readCluster(c.name);
    } catch (err) {
      records[c.name] = { unreachable: (err as Error).message };
    }
  }));
  const now = clock.now();
  const next = decidePromotion(fleet, promotion, head, records, now);
  const waves = fleet.waves.map((w, i) => {
    const soaking = promotion?.status === 'in-flight' && promotion.wave === i && promotion.healthySince;
    const remaining = soaking ? Math.max(0, Math.ceil(w.soakSeconds - (now.getTime() - new Date(promotion!.healthySince!).getTime()) / 1000)) : undefined;
    return {
      name: w.name,
      soakSeconds: w.soakSeconds,
      maxConcurrent: w.maxConcurrent,
      ...(remaining !== undefined ? { soakRemainingSeconds: remaining } : {}),
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
  return { kind: 'FleetStatus', head, ...(promotion ? { promotion } : {}), waves, next, history: await store.history(options.historyLimit ?? 20) };
}

const short = (sha?: string) => (sha ? sha.slice(0, 7) : '-');

export function formatFleetStatus(r: FleetStatusReport): string {
  const out: string[] = [];
  out.push(`head: ${short(r.head)}`);
  const p = r.promotion;
  if (p) {
    out.push(`promotion ${p.id}: ${short(p.commit)} ${p.status}, wave ${r.waves[p.wave]?.name ?? p.wave}, by ${p.by}${p.reason ? ` (${p.reason})` : ''}`);
    if (p.held) out.push(`HELD by ${p.held.by} at ${p.held.at}${p.held.reason ? `: ${p.held.reason}` : ''}`);
    if (p.stopped) out.push(`STOPPED in wave ${r.waves[p.stopped.wave]?.name} at ${p.stopped.cluster}${p.stopped.daemonSet ? ` (${p.stopped.daemonSet})` : ''}: ${p.stopped.reason}`);
  } else {
    out.push('no promotion yet');
  }
  out.push(`next: ${describeDecision(r.next, r)}`);
  out.push('');
  const rows: string[][] = [];
  for (const w of r.waves) {
    for (const c of w.clusters) {
      rows.push([
        w.name,
        c.name,
        short(c.runs),
        short(c.inFlight),
        c.unreachable ? 'unreachable' : c.lastPass ? `${c.lastPass.result} at ${short(c.lastPass.commit)}` : '-',
        w.soakRemainingSeconds !== undefined ? `${w.soakRemainingSeconds}s` : '-',
        c.unreachable ?? c.lastPass?.reason ?? '',
      ]);
    }
  }
  out.push(table(['WAVE', 'CLUSTER', 'RUNS', 'IN FLIGHT', 'LAST PASS', 'SOAK LEFT', 'REASON'], rows));
  if (r.history.length > 0) {
    out.push('');
    out.push('history (newest first):');
    for (const h of r.history) out.push(`  ${h.at}  ${h.event}${h.wave ? ` ${h.wave}` : ''}${h.clusters ? ` [${h.clusters.join(', ')}]` : ''}  ${short(h.commit)}  by ${h.by}${h.reason ? `: ${h.reason}` : ''}`);
  }
  return `${out.join('\n')}\n`;
}

function describeDecision(d: Decision, r: FleetStatusReport): string {
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

export interface Actor {
  by: string;
  reason?: string;
}

export async function holdPromotion(store: PromotionStore, clock: Clock, actor: Actor): Promise<Promotion> {
  const at = clock.now().toISOString();
  const held = await store.updatePromotion((p) => {
    if (!p) throw new InvalidRequestError('there is no promotion to hold yet');
    return p.held ? undefined : { ...p, held: { by: actor.by, ...(actor.reason ? { reason: actor.reason } : {}), at } };
  });
  await store.appendHistory({ at, promotion: held!.id, commit: held!.commit, event: 'held', by: actor.by, ...(actor.reason ? { reason: actor.reason } : {}) }, 'hold');
  return held!;
}

export async function resumePromotion(store: PromotionStore, clock: Clock, actor: Actor): Promise<Promotion> {
  const at = clock.now().toISOString();
  const resumed = await store.updatePromotion((p) => {
    if (!p) throw new InvalidRequestError('there is no promotion to resume');
    if (!p.held) return undefined;
    const { held: _held, ...rest } = p;
    return rest;
  });
  await store.appendHistory({ at, promotion: resumed!.id, commit: resumed!.commit, event: 'resumed', by: actor.by, ...(actor.reason ? { reason: actor.reason } : {}) }, 'resume');
  return resumed!;
}

/**
 * `promote COMMIT --to WAVE`: the commit is promoted at once to every cluster of the waves up
 * to WAVE, and the promotion goes on from WAVE (its soak, then the later waves) as if it had
 * got there by itself. The commit must hold a valid fleet file naming the same waves.
 */
export async function promoteByHand(config: Config, store: PromotionStore, clock: Clock, commit: string, toWave: string, actor: Actor): Promise<Promotion> {
  if (!/^[0-9a-f]{40}$/i.test(commit)) throw new InvalidRequestError(`promote takes a full 40-character commit id, not "${commit}" (git rev-parse ${commit})`);
  if (!actor.reason) throw new InvalidRequestError('promote by hand needs --reason: why this commit skips the waves before it');
  const read = await readFleetHead(config, clock);
  if (!('fleet' in read)) throw new InvalidRequestError(`the branch head cannot be used: ${read.untrusted}`);
  const tree = await checkout({ ...config.git, ref: commit.toLowerCase(), cacheDir: join(config.git.cacheDir, 'fleet-promote') });
  const fleet: Fleet = readFleetFile(tree.dir, config.fleetFile!, commit.slice(0, 7));
  const w = fleet.waves.findIndex((x) => x.name === toWave);
  if (w < 0) throw new InvalidRequestError(`--to ${toWave}: no such wave in ${config.fleetFile} at ${commit.slice(0, 7)} (waves: ${fleet.waves.map((x) => x.name).join(', ')})`);
  const at = clock.now().toISOString();
  const id = `${at.replace(/[-:.TZ]/g, '').slice(0, 14)}-${commit.slice(0, 7)}-by-hand`;
  const promotion: Promotion = { id, commit: commit.toLowerCase(), sourceHead: read.head, startedAt: at, by: actor.by, reason: actor.reason, wave: w, status: 'in-flight' };
  // A hold stays; so does the execution that owns the promotion, which goes on from WAVE.
  await store.updatePromotion((p) => ({ ...promotion, ...(p?.held ? { held: p.held } : {}), ...(p?.owner ? { owner: p.owner } : {}) }));
  const clusters = fleet.waves.slice(0, w + 1).flatMap((x) => x.clusters);
  for (const c of clusters) await store.promoteCluster(c, { commit: promotion.commit, at, by: actor.by, reason: actor.reason });
  await store.appendHistory({ at, promotion: id, commit: promotion.commit, event: 'promoted-by-hand', wave: toWave, clusters, by: actor.by, reason: actor.reason }, 'by-hand');
  return promotion;
}
