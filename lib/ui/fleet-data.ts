/**
 * The fleet's records for the page of `dsgitops ui` (FLEET_FILE set): read from S3 and Git,
 * kept, and read again only when they may have changed. The view model (fleet-view.ts) turns
 * them into what the page draws.
 *
 * Assumptions / what it costs:
 * - S3 has no watch. The promotion record (`<prefix>/fleet/promotion.json`) is followed with one
 *   conditional GET (If-None-Match on its ETag; S3 answers 304 without a body) per `check()`,
 *   which the server makes every few seconds while a page is open; nothing else is read then.
 * - Each cluster's record (`<prefix>/<cluster>/promotion.json`) is read again, conditionally
 *   too, only after `invalidate()` (the page's slow interval, a pass of the page's own cluster,
 *   an action) or when the promotion record changed.
 * - Every history event is written beside a change of the promotion record or of a cluster's
 *   record (lib/fleet/orchestrate.ts, operate.ts), so the history is listed again only when
 *   one of them changed, and only entries not read before are fetched (they never change).
 * - The fleet file and the branch head come from Git (a fetch): at the first look, when the
 *   promotion names a head the page has not seen, and otherwise at most every HEAD_MAX_AGE_MS.
 */
import type { Clock } from '../clock';
import type { ClusterRecord, Promotion } from '../fleet/decide';
import type { Fleet } from '../fleet/fleet-file';
import { errorMessage } from '../errors';
import type { HistoryEntry, PromotionStore } from '../store/promotion-store';
import { FleetPage, fleetView } from './fleet-view';

/** The branch head and the fleet file in it, as `fleet status` reads them. */
export type ReadFleetHead = () => Promise<{ head: string; fleet: Fleet } | { untrusted: string }>;

export const HEAD_MAX_AGE_MS = 5 * 60_000;
export const HISTORY_SHOWN = 20;

export interface FleetProblem {
  configured: true;
  problem: string;
}

interface Read {
  head?: { head?: string; fleet?: Fleet; problem?: string; at: number };
  promotion?: Promotion;
  promotionEtag?: string;
  records: Record<string, ClusterRecord>;
  recordEtags: Record<string, string | undefined>;
  history: HistoryEntry[];
}

export class FleetData {
  private read?: Read;
  private loading?: Promise<Read>;
  /** Set by invalidate(): the clusters' records are looked at again at the next view. */
  private stale = true;
  /** The promotion record changed since the history was listed. */
  private promotionChanged = false;
  private readonly known = new Map<string, HistoryEntry>();

  constructor(
    private readonly store: PromotionStore,
    private readonly readHead: ReadFleetHead,
    private readonly clock: Clock,
    /** The cluster the page serves (CLUSTER_NAME). */
    private readonly cluster: string,
  ) {}

  /** The clusters' records may have changed: the next view looks (conditionally). */
  invalidate(): void {
    this.stale = true;
  }

  /** The page's fleet view, from what was read (reading what may have changed first). */
  async view(): Promise<FleetPage | FleetProblem> {
    const read = await this.load();
    if (!read.head?.fleet) return { configured: true, problem: `the fleet file cannot be read at the branch head: ${read.head?.problem ?? 'not read yet'}` };
    return fleetView({ fleet: read.head.fleet, head: read.head.head, promotion: read.promotion, records: read.records, history: read.history, cluster: this.cluster }, this.clock.now());
  }

  /** One conditional GET of the promotion record; true when it changed since the last read (the next view reads the rest). */
  async check(): Promise<boolean> {
    const read = this.read;
    if (!read || this.loading) return false;
    const got = await this.store.readPromotionIfChanged(read.promotionEtag);
    if (got.unchanged) return false;
    read.promotion = got.promotion;
    read.promotionEtag = got.etag;
    this.promotionChanged = true;
    this.stale = true;
    return true;
  }

  private load(): Promise<Read> {
    if (this.read && !this.stale) return Promise.resolve(this.read);
    this.loading ??= this.reload().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async reload(): Promise<Read> {
    this.stale = false;
    const before = this.read;
    const read: Read = before ?? { records: {}, recordEtags: {}, history: [] };
    let changed = !before || this.promotionChanged;
    this.promotionChanged = false;
    if (before) {
      const got = await this.store.readPromotionIfChanged(read.promotionEtag);
      if (!got.unchanged) {
        read.promotion = got.promotion;
        read.promotionEtag = got.etag;
        changed = true;
      }
    } else {
      const got = await this.store.readPromotion();
      read.promotion = got.promotion;
      read.promotionEtag = got.etag;
    }
    const now = this.clock.now().getTime();
    const head = read.head;
    const newHead = read.promotion && head?.head !== undefined && read.promotion.sourceHead !== head.head && read.promotion.commit !== head.head;
    if (!head || newHead || now - head.at > HEAD_MAX_AGE_MS || !head.fleet) {
      try {
        const got = await this.readHead();
        read.head = 'fleet' in got ? { head: got.head, fleet: got.fleet, at: now } : { ...(head?.fleet ? { fleet: head.fleet } : {}), problem: `the branch head ${got.untrusted}`, at: now };
      } catch (err) {
        read.head = { ...(head?.fleet ? { fleet: head.fleet, head: head.head } : {}), problem: errorMessage(err), at: now };
      }
    }
    const names = read.head?.fleet?.clusters.map((c) => c.name) ?? [];
    await Promise.all(names.map(async (name) => {
      try {
        const got = await this.store.readClusterIfChanged(name, read.recordEtags[name]);
        if (got.unchanged && read.records[name] && !read.records[name].unreachable) return;
        if (got.unchanged) {
          // Absent, as before (or unreadable before and absent now).
          read.records[name] = read.records[name]?.unreachable ? {} : (read.records[name] ?? {});
          return;
        }
        read.records[name] = got.record;
        read.recordEtags[name] = got.etag;
        changed = true;
      } catch (err) {
        read.records[name] = { unreachable: errorMessage(err) };
        read.recordEtags[name] = undefined;
        changed = true;
      }
    }));
    for (const name of Object.keys(read.records)) if (!names.includes(name)) delete read.records[name];
    if (changed) read.history = await this.store.history(HISTORY_SHOWN, this.known);
    this.read = read;
    return read;
  }
}
