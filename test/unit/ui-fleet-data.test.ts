import { parseFleetFile } from '../../lib/fleet/fleet-file';
import { holdPromotion } from '../../lib/fleet/operate';
import { PromotionStore } from '../../lib/store/promotion-store';
import { FleetData } from '../../lib/ui/fleet-data';
import { CountingObjectStore } from '../support/counting-store';
import { MemoryObjectStore } from '../support/memory-object-store';

const fleet = parseFleetFile('clusters: [{ name: staging }, { name: prod }]\nwaves: [{ name: canary, clusters: [staging] }, { name: main, clusters: [prod] }]\n', 'fleet.yaml');
const B = 'b'.repeat(40);
const clock = { now: () => new Date('2026-12-06T10:00:00Z') };

async function world() {
  const counted = new CountingObjectStore(new MemoryObjectStore());
  const store = new PromotionStore(counted, 'pfx');
  await store.writePromotion({ id: 'p1', commit: B, sourceHead: B, startedAt: '2026-12-06T09:00:00Z', by: 'push', wave: 0, status: 'in-flight' }, undefined);
  await store.promoteCluster('staging', { commit: B, at: '2026-12-06T09:00:01Z', by: 'promotion p1' });
  await store.appendHistory({ at: '2026-12-06T09:00:01Z', promotion: 'p1', commit: B, event: 'promoted', wave: 'canary', clusters: ['staging'], by: 'promotion' }, 'r1');
  const setUp = counted.read.length;
  let heads = 0;
  const data = new FleetData(store, async () => {
    heads++;
    return { head: B, fleet };
  }, clock, 'staging');
  return { counted, store, data, setUp, heads: () => heads, since: (n: number) => counted.read.slice(n) };
}

describe('FleetData: what the page reads of the fleet, and when', () => {
  it('reads everything once, then follows the promotion record alone with one look per check', async () => {
    const w = await world();
    const first = await w.data.view();
    expect('waves' in first && first.waves[0].clusters[0]).toMatchObject({ name: 'staging', state: 'rolling-out' });
    expect(w.since(w.setUp)).toEqual(['pfx/fleet/promotion.json', 'pfx/staging/promotion.json', 'pfx/prod/promotion.json', 'pfx/fleet/history/', 'pfx/fleet/history/2026-12-06T09-00-01Z-r1.json']);
    expect(w.heads()).toBe(1);

    // Nothing changed: each check is one read of the promotion record; a view reads nothing.
    const n = w.counted.read.length;
    expect(await w.data.check()).toBe(false);
    expect(await w.data.check()).toBe(false);
    await w.data.view();
    expect(w.since(n)).toEqual(['pfx/fleet/promotion.json', 'pfx/fleet/promotion.json']);

    // A hold elsewhere: the next check sees it; the next view looks at the clusters' records and reads only the new history entry.
    await holdPromotion(w.store, clock, { by: 'alice', reason: 'incident 42' });
    const m = w.counted.read.length;
    expect(await w.data.check()).toBe(true);
    const held = await w.data.view();
    expect('held' in held && held.held).toMatchObject({ by: 'alice', reason: 'incident 42' });
    expect('history' in held && held.history.map((h) => [h.event, h.by, h.reason])).toEqual([['held', 'alice', 'incident 42'], ['promoted', 'promotion', undefined]]);
    const after = w.since(m);
    expect(after[0]).toBe('pfx/fleet/promotion.json');
    expect(after.filter((k) => k === 'pfx/fleet/history/')).toHaveLength(1);
    expect(after.filter((k) => k.startsWith('pfx/fleet/history/2'))).toHaveLength(1);
    expect(w.heads()).toBe(1);
  });

  it('looks at the clusters\' records again after invalidate(), and lists the history only when one changed', async () => {
    const w = await world();
    await w.data.view();
    const n = w.counted.read.length;
    w.data.invalidate();
    await w.data.view();
    expect(w.since(n)).toEqual(['pfx/fleet/promotion.json', 'pfx/staging/promotion.json', 'pfx/prod/promotion.json']);
    await w.store.recordPass('staging', { commit: B, at: '2026-12-06T09:05:00Z', result: 'healthy' });
    w.data.invalidate();
    const view = await w.data.view();
    expect('waves' in view && view.waves[0].clusters[0].state).toBe('healthy');
    expect(w.since(n).filter((k) => k === 'pfx/fleet/history/')).toHaveLength(1);
  });
});
