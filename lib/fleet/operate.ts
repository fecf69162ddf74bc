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
import type { PromotionStore } from '../store/promotion-store';
import { readFleetFile, readFleetHead } from './fleet-source';
import type { Promotion } from './decide';
import { describeDecision, fleetStatusOf, FleetStatusReport } from './status';
import type { Fleet } from './fleet-file';
import { join } from 'node:path';

export type { FleetStatusCluster, FleetStatusReport } from './status';

export async function fleetStatus(config: Config, store: PromotionStore, clock: Clock, options: { historyLimit?: number } = {}): Promise<FleetStatusReport> {
  const read = await readFleetHead(config, clock);
  if (!('fleet' in read)) throw new InvalidRequestError(`the branch head cannot be used: ${read.untrusted}`);
  const { fleet, head } = read;
  const { promotion } = await store.readPromotion();
  const records = await store.readClusters(fleet.clusters.map((c) => c.name));
  return fleetStatusOf({ fleet, head, promotion, records, history: await store.history(options.historyLimit ?? 20) }, clock.now());
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
 * `fleet hold` / `fleet resume` as an operator takes them (the CLI, the page of `dsgitops ui`):
 * a reason is required; with PROMOTE_FUNCTION_NAME (the deployed promotion) resume starts it at once.
 */
export async function holdOrResume(config: Config, store: PromotionStore, clock: Clock, action: 'hold' | 'resume', actor: Actor): Promise<{ promotion: Promotion; started?: string }> {
  if (!actor.reason) throw new InvalidRequestError(`fleet ${action} needs a reason: it is recorded with who ${action === 'hold' ? 'held' : 'resumed'} the promotion`);
  const promotion = await (action === 'hold' ? holdPromotion : resumePromotion)(store, clock, actor);
  if (action !== 'resume' || !config.promoteFunction) return { promotion };
  const { executionName, lambdaPromotionStarter } = await import('./start');
  await lambdaPromotionStarter(config.promoteFunction, config.s3.region)({ by: actor.by, reason: `resumed: ${actor.reason}` }, executionName('resume', promotion.id, String(clock.now().getTime())));
  return { promotion, started: config.promoteFunction };
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
