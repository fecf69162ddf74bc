/**
 * The LIST+WATCH cache's bookkeeping, against a scripted ListWatch: the API server cannot
 * be made to compact its history (410 Gone) or drop a watch on cue, so these cases are
 * played by a script of what it would send.
 */
import { changedSince, ListWatch, versionsOf, waitUntil, WatchCache } from '../../lib/cluster/watch-cache';

interface Obj { metadata: { name: string; namespace?: string; resourceVersion?: string } }

const obj = (name: string, rv: string): Obj => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });

/** A ListWatch whose watches are driven by the test: `watches[i]` is the i-th watch opened. */
function scripted(lists: { items: Obj[]; resourceVersion: string }[] | (() => never)) {
  const listCalls: number[] = [];
  const watches: { from: string; send: (type: string, o: unknown) => void; end: (err?: unknown) => void; closed: boolean }[] = [];
  const lw: ListWatch<Obj> = {
    list: async () => {
      listCalls.push(Date.now());
      if (typeof lists === 'function') return lists();
      return lists[Math.min(listCalls.length - 1, lists.length - 1)];
    },
    watch: (from, onEvent, onEnd) => {
      const w = { from, send: onEvent, end: onEnd, closed: false };
      watches.push(w);
      return () => {
        w.closed = true;
      };
    },
  };
  return { lw, listCalls, watches };
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const fast = { backoffMs: [5], resumeAttempts: 2 };

describe('WatchCache', () => {
  it('follows events, and resumes from the last resourceVersion when the server ends a watch, without listing again', async () => {
    const s = scripted([{ items: [obj('a', '1')], resourceVersion: '10' }]);
    const cache = await WatchCache.start(s.lw, fast);
    await tick();
    expect(s.watches[0].from).toBe('10');
    s.watches[0].send('ADDED', obj('b', '11'));
    s.watches[0].send('MODIFIED', obj('a', '12'));
    s.watches[0].send('DELETED', obj('b', '13'));
    s.watches[0].send('BOOKMARK', { metadata: { resourceVersion: '14' } });
    expect(cache.items().map((o) => `${o.metadata.name}@${o.metadata.resourceVersion}`)).toEqual(['a@12']);
    // A watch that lasted its time and ended: resumed at once from the bookmark's version.
    await new Promise((r) => setTimeout(r, 1_050));
    s.watches[0].end();
    await tick();
    expect(s.watches).toHaveLength(2);
    expect(s.watches[1].from).toBe('14');
    expect(s.listCalls).toHaveLength(1);
    cache.stop();
    expect(s.watches[1].closed).toBe(true);
  });

  it('lists again when the server says the resourceVersion is gone (410), and replaces what it held', async () => {
    const s = scripted([{ items: [obj('a', '1'), obj('b', '2')], resourceVersion: '10' }, { items: [obj('c', '30')], resourceVersion: '31' }]);
    const cache = await WatchCache.start(s.lw, fast);
    await tick();
    const before = cache.version;
    s.watches[0].send('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
    await new Promise((r) => setTimeout(r, 20));
    expect(s.listCalls).toHaveLength(2);
    expect(cache.items().map((o) => o.metadata.name)).toEqual(['c']);
    expect(cache.version).toBeGreaterThan(before);
    expect(s.watches[1].from).toBe('31');
    cache.stop();
  });

  it('after repeated watch failures lists again; when that list fails the cache reports the failure and wakes its readers', async () => {
    let calls = 0;
    const s = scripted(() => {
      calls++;
      if (calls === 1) return { items: [obj('a', '1')], resourceVersion: '10' } as never;
      throw new Error('list pods in ns: connection refused');
    });
    const cache = await WatchCache.start(s.lw, fast);
    const woke = waitUntil([cache], () => false, 5_000);
    await tick();
    s.watches[0].end(new Error('socket hang up'));
    await new Promise((r) => setTimeout(r, 20));
    s.watches[1].end(new Error('socket hang up'));
    expect(await woke).toBe(true);
    expect(cache.failure?.message).toMatch(/connection refused/);
    cache.stop();
  });
});

describe('waitUntil', () => {
  it('sees a burst of changes as one wake, after it settles', async () => {
    const s = scripted([{ items: [], resourceVersion: '1' }]);
    const cache = await WatchCache.start(s.lw, fast);
    await tick();
    const seen = versionsOf([cache]);
    let versionAtWake = -1;
    const waiting = waitUntil([cache], () => changedSince([cache], seen), 2_000, 50).then((r) => {
      versionAtWake = cache.version;
      return r;
    });
    for (let i = 0; i < 5; i++) s.watches[0].send('ADDED', obj(`p${i}`, String(2 + i)));
    await new Promise((r) => setTimeout(r, 10));
    for (let i = 5; i < 8; i++) s.watches[0].send('ADDED', obj(`p${i}`, String(2 + i)));
    expect(await waiting).toBe(true);
    expect(versionAtWake).toBe(seen[0] + 8);
    cache.stop();
  });

  it('gives up at its timeout when nothing changes', async () => {
    const s = scripted([{ items: [], resourceVersion: '1' }]);
    const cache = await WatchCache.start(s.lw, fast);
    const started = Date.now();
    expect(await waitUntil([cache], () => changedSince([cache], versionsOf([cache])), 100)).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    cache.stop();
  });
});
