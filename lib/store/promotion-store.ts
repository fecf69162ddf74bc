/**
 * The fleet's records in S3 (DESIGN.md, "State in S3"):
 *
 *   <prefix>/<cluster>/promotion.json     the commit promoted to the cluster (by whom, why) and its last pass's outcome
 *   <prefix>/fleet/promotion.json         the promotion in flight: commit, wave, soak start, hold, where it stopped
 *   <prefix>/fleet/history/<time>-<id>.json  one record per event of a promotion (started, promoted, advanced, stopped, held, …)
 *
 * Every write is conditional (If-Match on what was read, If-None-Match for new objects): the
 * orchestration, a cluster's pass and an operator's `fleet hold` can never overwrite each
 * other blindly; a refused write is read again and retried.
 */
import * as z from 'zod/mini';
import '../schema';
import { PreconditionFailedError, RecordUnreadableError } from '../errors';
import type { ClusterRecord, PassOutcome, Promotion } from '../fleet/decide';
import type { ObjectStore } from './object-store';

const passSchema = z.object({
  commit: z.string(),
  at: z.string(),
  result: z.enum(['healthy', 'progressing', 'failed', 'unreachable']),
  daemonSet: z.optional(z.string()),
  reason: z.optional(z.string()),
});
const clusterRecordSchema = z.object({
  promoted: z.optional(z.object({ commit: z.string(), at: z.string(), by: z.string(), reason: z.optional(z.string()) })),
  lastPass: z.optional(passSchema),
});
const promotionSchema = z.object({
  id: z.string(),
  commit: z.string(),
  sourceHead: z.string(),
  startedAt: z.string(),
  by: z.string(),
  reason: z.optional(z.string()),
  wave: z.int(),
  healthySince: z.optional(z.string()),
  status: z.enum(['in-flight', 'stopped', 'done', 'superseded']),
  stopped: z.optional(z.object({ wave: z.int(), cluster: z.string(), daemonSet: z.optional(z.string()), reason: z.string(), at: z.string() })),
  held: z.optional(z.object({ by: z.string(), reason: z.optional(z.string()), at: z.string() })),
  owner: z.optional(z.object({ execution: z.string(), commit: z.string(), since: z.string(), by: z.string() })),
});

export interface HistoryEntry {
  at: string;
  promotion: string;
  commit: string;
  event: 'started' | 'superseded' | 'promoted' | 'advanced' | 'stopped' | 'done' | 'held' | 'resumed' | 'promoted-by-hand' | 'skipped' | 'taken-over';
  wave?: string;
  clusters?: string[];
  by: string;
  reason?: string;
}

const MAX_ATTEMPTS = 5;

function parse<T>(schema: z.ZodMiniType<T>, key: string, body: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (err) {
    throw new RecordUnreadableError(key, `not JSON (${(err as Error).message})`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new RecordUnreadableError(key, parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; '));
  return parsed.data;
}

export class PromotionStore {
  constructor(private readonly objects: ObjectStore, private readonly prefix: string) {}

  private root(): string {
    return this.prefix ? `${this.prefix}/` : '';
  }

  clusterKey(cluster: string): string {
    return `${this.root()}${cluster}/promotion.json`;
  }

  promotionKey(): string {
    return `${this.root()}fleet/promotion.json`;
  }

  historyPrefix(): string {
    return `${this.root()}fleet/history/`;
  }

  async readCluster(cluster: string): Promise<ClusterRecord> {
    const key = this.clusterKey(cluster);
    const got = await this.objects.get(key);
    return got ? parse(clusterRecordSchema, key, got.body) : {};
  }

  /** Every named cluster's record; one that cannot be read is marked unreachable with why (the decision neither promotes it nor counts it healthy). */
  async readClusters(names: string[]): Promise<Record<string, ClusterRecord>> {
    const records: Record<string, ClusterRecord> = {};
    await Promise.all(names.map(async (name) => {
      try {
        records[name] = await this.readCluster(name);
      } catch (err) {
        records[name] = { unreachable: (err as Error).message };
      }
    }));
    return records;
  }

  /**
   * An object unless it is still the version `etag` names (undefined: it was absent): one
   * conditional GET (If-None-Match) where the store can make one, else one GET compared by ETag.
   */
  private async readIfChanged(key: string, etag: string | undefined): Promise<{ unchanged: true } | { unchanged: false; body?: string; etag?: string }> {
    const got = etag && this.objects.getIfNoneMatch ? await this.objects.getIfNoneMatch(key, etag) : await this.objects.get(key);
    if (got === 'not-modified') return { unchanged: true };
    if (!got) return etag ? { unchanged: false } : { unchanged: true };
    if (got.etag === etag) return { unchanged: true };
    return { unchanged: false, body: got.body, etag: got.etag };
  }

  /** The promotion record unless it is still the version `etag` names (the page of `dsgitops ui` follows it so). */
  async readPromotionIfChanged(etag: string | undefined): Promise<{ unchanged: true } | { unchanged: false; promotion?: Promotion; etag?: string }> {
    const key = this.promotionKey();
    const r = await this.readIfChanged(key, etag);
    return r.unchanged || r.body === undefined ? r : { unchanged: false, promotion: parse(promotionSchema, key, r.body), etag: r.etag };
  }

  /** A cluster's record unless it is still the version `etag` names. */
  async readClusterIfChanged(cluster: string, etag: string | undefined): Promise<{ unchanged: true } | { unchanged: false; record: ClusterRecord; etag?: string }> {
    const key = this.clusterKey(cluster);
    const r = await this.readIfChanged(key, etag);
    if (r.unchanged) return r;
    return { unchanged: false, record: r.body === undefined ? {} : parse(clusterRecordSchema, key, r.body), ...(r.etag ? { etag: r.etag } : {}) };
  }

  /** Read-modify-write of a cluster's record under If-Match, retried when another writer came between. */
  private async updateCluster(cluster: string, change: (r: ClusterRecord) => ClusterRecord): Promise<ClusterRecord> {
    const key = this.clusterKey(cluster);
    for (let attempt = 1; ; attempt++) {
      const got = await this.objects.get(key);
      const next = change(got ? parse(clusterRecordSchema, key, got.body) : {});
      try {
        await this.objects.put(key, `${JSON.stringify(next, null, 2)}\n`, got ? { ifMatch: got.etag } : { ifNoneMatch: '*' });
        return next;
      } catch (err) {
        if (!(err instanceof PreconditionFailedError) || attempt >= MAX_ATTEMPTS) throw err;
      }
    }
  }

  /** Records `commit` as promoted to the cluster: its passes reconcile that commit from now on. */
  promoteCluster(cluster: string, promoted: { commit: string; at: string; by: string; reason?: string }): Promise<ClusterRecord> {
    return this.updateCluster(cluster, (r) => ({ ...r, promoted }));
  }

  recordPass(cluster: string, outcome: PassOutcome): Promise<ClusterRecord> {
    return this.updateCluster(cluster, (r) => ({ ...r, lastPass: outcome }));
  }

  async readPromotion(): Promise<{ promotion?: Promotion; etag?: string }> {
    const key = this.promotionKey();
    const got = await this.objects.get(key);
    return got ? { promotion: parse(promotionSchema, key, got.body), etag: got.etag } : {};
  }

  /** Writes the promotion only over the version read (`etag`), or only if there is none (no etag). */
  async writePromotion(promotion: Promotion, etag: string | undefined): Promise<string> {
    return this.objects.put(this.promotionKey(), `${JSON.stringify(promotion, null, 2)}\n`, etag ? { ifMatch: etag } : { ifNoneMatch: '*' });
  }

  /** Changes the promotion under If-Match, retried when another writer came between; `change` returning undefined leaves it. */
  async updatePromotion(change: (p: Promotion | undefined) => Promotion | undefined): Promise<Promotion | undefined> {
    for (let attempt = 1; ; attempt++) {
      const { promotion, etag } = await this.readPromotion();
      const next = change(promotion);
      if (!next) return promotion;
      try {
        await this.writePromotion(next, etag);
        return next;
      } catch (err) {
        if (!(err instanceof PreconditionFailedError) || attempt >= MAX_ATTEMPTS) throw err;
      }
    }
  }

  /** Appends one event to the history; a replayed step writing the same event again finds it there and writes nothing. */
  async appendHistory(entry: HistoryEntry, id: string): Promise<void> {
    const key = `${this.historyPrefix()}${entry.at.replace(/[:.]/g, '-')}-${id}.json`;
    try {
      await this.objects.put(key, `${JSON.stringify(entry)}\n`, { ifNoneMatch: '*' });
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
    }
  }

  /**
   * The newest `limit` history entries, newest first. An entry is never changed once written:
   * with `known` (entries by key, from an earlier call) only the new ones are read.
   */
  async history(limit = 50, known?: Map<string, HistoryEntry>): Promise<HistoryEntry[]> {
    const keys = (await this.objects.list(this.historyPrefix())).slice(-limit).reverse();
    const out: HistoryEntry[] = [];
    for (const key of keys) {
      const had = known?.get(key);
      if (had) {
        out.push(had);
        continue;
      }
      const got = await this.objects.get(key);
      if (!got) continue;
      const entry = JSON.parse(got.body) as HistoryEntry;
      known?.set(key, entry);
      out.push(entry);
    }
    if (known) for (const key of known.keys()) if (!keys.includes(key)) known.delete(key);
    return out;
  }
}
