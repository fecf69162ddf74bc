/**
 * A LIST+WATCH cache of one kind of object, as client-go's reflector and informer keep
 * one: list once, then watch from the list's resourceVersion; when a watch ends (the
 * server's timeout, a dropped connection) watch again from the last resourceVersion seen;
 * when the server says that version is gone (410), list again. Readers take the current
 * items and wait for the next change; they never cause a request.
 *
 * This file knows nothing of the client library: `client.ts` hands it a `ListWatch`.
 */

/** One object as the cache keys it. */
export interface Keyed {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

export interface ListWatch<T> {
  list(): Promise<{ items: T[]; resourceVersion: string }>;
  /**
   * Opens one watch from `resourceVersion`. Calls `onEvent` per event and `onEnd` once when
   * the watch ends (no error: the server ended it). Returns a function that closes it.
   */
  watch(resourceVersion: string, onEvent: (type: string, object: unknown) => void, onEnd: (err?: unknown) => void): () => void;
}

/** What a reader of a cache sees. */
export interface Cache<T> {
  /** The objects as last seen, in no particular order. */
  items(): T[];
  /** Grows by at least one each time the cache changes. */
  readonly version: number;
  /** Set once the cache cannot follow the cluster any more (a relist failed): it is stale from then on. */
  readonly failure: Error | undefined;
  /** Calls `onChange` after every change (and on failure). Returns the unsubscribe. */
  subscribe(onChange: () => void): () => void;
  /** Closes the watch. */
  stop(): void;
}

export interface WatchCacheOptions {
  /** Waits between attempts after a watch fails; grows to the last entry. */
  backoffMs?: number[];
  /** After this many failed watches in a row, list again instead of resuming. */
  resumeAttempts?: number;
}

const DEFAULT_BACKOFF_MS = [200, 500, 1_000, 2_000, 5_000];
const DEFAULT_RESUME_ATTEMPTS = 3;
const QUICK_END_MS = 1_000;

type WatchEnd = { kind: 'ended'; ms: number } | { kind: 'gone' } | { kind: 'failed'; error: unknown };

function keyOf(o: Keyed): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/** The HTTP status a failed watch carries: an ERROR event's Status, or a non-200 answer. */
function statusCode(x: unknown): number | undefined {
  const o = x as { code?: unknown; statusCode?: unknown; status?: unknown } | undefined;
  for (const v of [o?.code, o?.statusCode, o?.status]) if (typeof v === 'number') return v;
  return undefined;
}

export class WatchCache<T extends Keyed> implements Cache<T> {
  private readonly store = new Map<string, T>();
  private resourceVersion = '';
  private changes = 0;
  private listeners = new Set<() => void>();
  private stopped = false;
  private close: (() => void) | undefined;
  private wake: (() => void) | undefined;
  private failed: Error | undefined;
  private readonly backoffMs: number[];
  private readonly resumeAttempts: number;

  private constructor(private readonly lw: ListWatch<T>, options: WatchCacheOptions) {
    this.backoffMs = options.backoffMs ?? DEFAULT_BACKOFF_MS;
    this.resumeAttempts = options.resumeAttempts ?? DEFAULT_RESUME_ATTEMPTS;
  }

  /** Lists (a failure here is thrown), then keeps watching until `stop()`. */
  static async start<T extends Keyed>(lw: ListWatch<T>, options: WatchCacheOptions = {}): Promise<WatchCache<T>> {
    const cache = new WatchCache(lw, options);
    await cache.relist();
    void cache.follow();
    return cache;
  }

  items(): T[] {
    return [...this.store.values()];
  }

  get version(): number {
    return this.changes;
  }

  get failure(): Error | undefined {
    return this.failed;
  }

  subscribe(onChange: () => void): () => void {
    this.listeners.add(onChange);
    return () => this.listeners.delete(onChange);
  }

  stop(): void {
    this.stopped = true;
    this.close?.();
    this.wake?.();
    this.listeners.clear();
  }

  private changed(): void {
    this.changes++;
    for (const l of [...this.listeners]) l();
  }

  private async relist(): Promise<void> {
    const list = await this.lw.list();
    this.store.clear();
    for (const item of list.items) this.store.set(keyOf(item), item);
    this.resourceVersion = list.resourceVersion;
    this.changed();
  }

  /**
   * Assumptions / invariants:
   * - Events arrive in resourceVersion order and each carries the object's new
   *   resourceVersion, so resuming from the last one seen misses nothing and repeats nothing.
   * - A watch the server ends normally is resumed at once; one that fails is resumed after a
   *   growing pause, and after `resumeAttempts` failures in a row the cache lists again.
   * - A relist that fails (after the client's own retries) ends the cache: it records the
   *   failure and tells its readers, who must not decide from it any more.
   */
  private async follow(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      const end = await this.watchOnce();
      if (this.stopped) return;
      if (end.kind === 'ended' && end.ms >= QUICK_END_MS) {
        failures = 0;
        continue;
      }
      // A watch that the server ends at once is treated as a failure, so it is not reopened in a tight loop.
      if (end.kind !== 'gone') failures++;
      if (failures > 0) await this.pause(this.backoffMs[Math.min(failures - 1, this.backoffMs.length - 1)]);
      if (this.stopped) return;
      if (end.kind === 'gone' || failures >= this.resumeAttempts) {
        try {
          await this.relist();
          failures = 0;
        } catch (err) {
          this.failed = err instanceof Error ? err : new Error(String(err));
          this.changed();
          return;
        }
      }
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private watchOnce(): Promise<WatchEnd> {
    return new Promise((resolve) => {
      const opened = Date.now();
      let ended = false;
      let close: (() => void) | undefined;
      const end = (e: WatchEnd) => {
        if (ended) return;
        ended = true;
        this.close = undefined;
        close?.();
        resolve(e);
      };
      close = this.lw.watch(
        this.resourceVersion,
        (type, object) => {
          if (ended || this.stopped) return;
          if (type === 'ERROR') {
            end(statusCode(object) === 410 ? { kind: 'gone' } : { kind: 'failed', error: object });
            return;
          }
          const o = object as T;
          const rv = o?.metadata?.resourceVersion;
          if (rv) this.resourceVersion = rv;
          if (type === 'BOOKMARK') return;
          if (type === 'DELETED') this.store.delete(keyOf(o));
          else if (type === 'ADDED' || type === 'MODIFIED') this.store.set(keyOf(o), o);
          else return;
          this.changed();
        },
        (err) => {
          if (err === undefined || err === null) end({ kind: 'ended', ms: Date.now() - opened });
          else end(statusCode(err) === 410 ? { kind: 'gone' } : { kind: 'failed', error: err });
        },
      );
      if (ended) close();
      else this.close = () => end({ kind: 'ended', ms: Date.now() - opened });
    });
  }
}

/**
 * Waits until `until()` holds, checking now and after each change of the caches, then lets
 * `settleMs` more pass so that a burst of changes is seen as one. Resolves true then, false
 * when `timeoutMs` passes first. A cache that fails ends the wait at once (true).
 */
export function waitUntil(caches: readonly Cache<unknown>[], until: () => boolean, timeoutMs: number, settleMs = 0): Promise<boolean> {
  return new Promise((resolve) => {
    let settling = false;
    let done = false;
    const unsubscribe = caches.map((c) => c.subscribe(check));
    // Once settling, the answer is yes: the deadline only cuts the settling short.
    const deadline = setTimeout(() => finish(settling), Math.max(0, timeoutMs));
    let settle: ReturnType<typeof setTimeout> | undefined;
    function finish(result: boolean) {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      if (settle) clearTimeout(settle);
      for (const u of unsubscribe) u();
      resolve(result);
    }
    function check() {
      if (done || settling) return;
      if (caches.some((c) => c.failure)) return finish(true);
      if (!until()) return;
      if (settleMs <= 0) return finish(true);
      settling = true;
      settle = setTimeout(() => finish(true), settleMs);
    }
    check();
  });
}

/** The caches' versions now, to ask later whether anything changed since. */
export function versionsOf(caches: readonly Cache<unknown>[]): number[] {
  return caches.map((c) => c.version);
}

export function changedSince(caches: readonly Cache<unknown>[], versions: readonly number[]): boolean {
  return caches.some((c, i) => c.version !== versions[i]);
}
