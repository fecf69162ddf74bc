import type { ClusterRecord, Promotion } from '../../lib/fleet/decide';
import { parseFleetFile } from '../../lib/fleet/fleet-file';
import type { HistoryEntry } from '../../lib/store/promotion-store';
import { FleetClusterRow, fleetView } from '../../lib/ui/fleet-view';

// Two waves: canary [staging] soaking 10 minutes; prod [prod-a, prod-b] soaking an hour, closed
// for maintenance on 2026-12-06 from 12:00 to 14:00 UTC.
const fleet = parseFleetFile(`
clusters: [{ name: staging }, { name: prod-a }, { name: prod-b }]
waves:
  - { name: canary, clusters: [staging], soak: 10m }
  - name: prod
    clusters: [prod-a, prod-b]
    soak: 1h
    maintenanceWindows: [{ start: "2026-12-06T12:00:00Z", end: "2026-12-06T14:00:00Z" }]
`, 'fleet.yaml');

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const NOW = new Date('2026-12-06T10:00:00Z');
const IN_WINDOW = new Date('2026-12-06T13:00:00Z');
const ago = (m: number, from = NOW) => new Date(from.getTime() - m * 60_000).toISOString();

const promotion = (over: Partial<Promotion> = {}): Promotion => ({ id: 'p-b', commit: B, sourceHead: B, startedAt: ago(30), by: 'push', wave: 0, status: 'in-flight', ...over });
const runs = (commit: string, result: 'healthy' | 'progressing' | 'failed' | 'unreachable', extra: { reason?: string; daemonSet?: string } = {}): ClusterRecord => ({
  promoted: { commit, at: ago(20), by: 'promotion p-b' },
  lastPass: { commit, at: ago(1), result, ...extra },
});
const prodAtA = { 'prod-a': runs(A, 'healthy'), 'prod-b': runs(A, 'healthy') };

/** The few fields of a cluster's row a person reads first. */
const brief = (c: FleetClusterRow) => ({ name: c.name, state: c.state, runs: c.runs?.short, inFlight: c.inFlight?.short, reason: c.reason, daemonSet: c.daemonSet });

describe('fleetView: each cluster of each wave, as the page draws it', () => {
  const cases: { name: string; promotion?: Promotion; records: Record<string, ClusterRecord>; now?: Date; waves: { name: string; current: boolean; soakRemainingSeconds?: number; maintenanceUntil?: string; clusters: ReturnType<typeof brief>[] }[] }[] = [
    {
      name: 'a commit rolling out in the canary: staging rolls it, prod still runs the old one',
      promotion: promotion(),
      records: { staging: runs(B, 'progressing', { daemonSet: 'logging/agent', reason: 'logging/agent is progressing' }), ...prodAtA },
      waves: [
        { name: 'canary', current: true, clusters: [{ name: 'staging', state: 'rolling-out', runs: 'bbbbbbb', inFlight: 'bbbbbbb', reason: 'logging/agent is progressing', daemonSet: 'logging/agent' }] },
        { name: 'prod', current: false, clusters: [
          { name: 'prod-a', state: 'healthy', runs: 'aaaaaaa', inFlight: undefined, reason: undefined, daemonSet: undefined },
          { name: 'prod-b', state: 'healthy', runs: 'aaaaaaa', inFlight: undefined, reason: undefined, daemonSet: undefined },
        ] },
      ],
    },
    {
      name: 'a healthy canary soaking: 4 of its 10 minutes passed, 360 s left',
      promotion: promotion({ healthySince: ago(4) }),
      records: { staging: runs(B, 'healthy'), ...prodAtA },
      waves: [
        { name: 'canary', current: true, soakRemainingSeconds: 360, clusters: [{ name: 'staging', state: 'healthy', runs: 'bbbbbbb', inFlight: undefined, reason: undefined, daemonSet: undefined }] },
        { name: 'prod', current: false, clusters: [
          { name: 'prod-a', state: 'healthy', runs: 'aaaaaaa', inFlight: undefined, reason: undefined, daemonSet: undefined },
          { name: 'prod-b', state: 'healthy', runs: 'aaaaaaa', inFlight: undefined, reason: undefined, daemonSet: undefined },
        ] },
      ],
    },
    {
      name: 'prod in its maintenance window: prod-a, not yet promoted, waits; prod-b cannot be read',
      now: IN_WINDOW,
      promotion: promotion({ wave: 1 }),
      records: { staging: runs(B, 'healthy'), 'prod-a': runs(A, 'healthy'), 'prod-b': { unreachable: 'AccessDenied' } },
      waves: [
        { name: 'canary', current: false, clusters: [{ name: 'staging', state: 'healthy', runs: 'bbbbbbb', inFlight: undefined, reason: undefined, daemonSet: undefined }] },
        { name: 'prod', current: true, maintenanceUntil: '2026-12-06T14:00:00.000Z', clusters: [
          { name: 'prod-a', state: 'maintenance', runs: 'aaaaaaa', inFlight: 'bbbbbbb', reason: 'in a maintenance window until 2026-12-06T14:00:00.000Z; not changed until then', daemonSet: undefined },
          { name: 'prod-b', state: 'unreachable', runs: undefined, inFlight: 'bbbbbbb', reason: 'its record cannot be read: AccessDenied', daemonSet: undefined },
        ] },
      ],
    },
    {
      name: 'a commit stopped in the canary: staging failed on its DaemonSet; a cluster never promoted to; one whose pass found no API server',
      promotion: promotion({ status: 'stopped', stopped: { wave: 0, cluster: 'staging', daemonSet: 'logging/agent', reason: 'stalled at revision 3: node w-1 broken by the update', at: ago(2) } }),
      records: {
        staging: runs(B, 'failed', { daemonSet: 'logging/agent', reason: 'stalled at revision 3: node w-1 broken by the update' }),
        'prod-b': runs(A, 'unreachable', { reason: 'connect ECONNREFUSED' }),
      },
      waves: [
        { name: 'canary', current: false, clusters: [{ name: 'staging', state: 'failed', runs: 'bbbbbbb', inFlight: undefined, reason: 'stalled at revision 3: node w-1 broken by the update', daemonSet: 'logging/agent' }] },
        { name: 'prod', current: false, clusters: [
          { name: 'prod-a', state: 'not-promoted', runs: undefined, inFlight: undefined, reason: 'no commit has been promoted to it yet', daemonSet: undefined },
          { name: 'prod-b', state: 'unreachable', runs: 'aaaaaaa', inFlight: undefined, reason: 'connect ECONNREFUSED', daemonSet: undefined },
        ] },
      ],
    },
    {
      name: 'a cluster promoted to whose pass at the new commit has not ended yet is rolling out, not healthy at the old one',
      promotion: promotion(),
      records: { staging: { promoted: { commit: B, at: ago(1), by: 'promotion p-b' }, lastPass: { commit: A, at: ago(5), result: 'healthy' } }, ...prodAtA },
      waves: [
        { name: 'canary', current: true, clusters: [{ name: 'staging', state: 'rolling-out', runs: 'bbbbbbb', inFlight: 'bbbbbbb', reason: 'bbbbbbb promoted; no pass at it has ended yet', daemonSet: undefined }] },
        { name: 'prod', current: false, clusters: [
          { name: 'prod-a', state: 'healthy', runs: 'aaaaaaa', inFlight: undefined, reason: undefined, daemonSet: undefined },
          { name: 'prod-b', state: 'healthy', runs: 'aaaaaaa', inFlight: undefined, reason: undefined, daemonSet: undefined },
        ] },
      ],
    },
  ];

  it.each(cases)('$name', ({ promotion: p, records, now = NOW, waves }) => {
    const view = fleetView({ fleet, head: B, promotion: p, records, history: [], cluster: 'staging' }, now);
    expect(view.waves.map((w) => ({ name: w.name, current: w.current, ...(w.soakRemainingSeconds !== undefined ? { soakRemainingSeconds: w.soakRemainingSeconds } : {}), ...(w.maintenanceUntil ? { maintenanceUntil: w.maintenanceUntil } : {}), clusters: w.clusters.map(brief) }))).toEqual(waves);
  });

  it('links only the cluster the page serves to its own view', () => {
    const view = fleetView({ fleet, head: B, promotion: promotion(), records: prodAtA, history: [], cluster: 'prod-a' }, NOW);
    expect(view.waves.flatMap((w) => w.clusters.filter((c) => c.servedHere).map((c) => c.name))).toEqual(['prod-a']);
  });

  it('says where and why a promotion stopped, and offers hold', () => {
    const view = fleetView({ fleet, head: B, promotion: promotion({ status: 'stopped', stopped: { wave: 0, cluster: 'staging', daemonSet: 'logging/agent', reason: 'stalled', at: ago(2) } }), records: {}, history: [], cluster: 'staging' }, NOW);
    expect(view.stopped).toEqual({ wave: 'canary', cluster: 'staging', daemonSet: 'logging/agent', reason: 'stalled', at: '2026-12-06T09:58:00.000Z' });
    expect(view.action).toBe('hold');
    expect(view.next).toBe('bbbbbbb stopped in wave canary at staging (logging/agent): stalled; waiting for a newer commit');
  });

  it('shows a held promotion with who and why, and offers resume', () => {
    const held = { by: 'alice', reason: 'incident 42', at: ago(3) };
    const view = fleetView({ fleet, head: B, promotion: promotion({ held }), records: prodAtA, history: [], cluster: 'staging' }, NOW);
    expect(view.held).toEqual(held);
    expect(view.action).toBe('resume');
    expect(view.next).toBe('held by alice: incident 42');
    expect(view.promotion).toEqual({ id: 'p-b', commit: { sha: B, short: 'bbbbbbb' }, status: 'in-flight', wave: 'canary', by: 'push', startedAt: '2026-12-06T09:30:00.000Z' });
  });

  it('offers no action before any promotion', () => {
    const view = fleetView({ fleet, head: A, promotion: undefined, records: {}, history: [], cluster: 'staging' }, NOW);
    expect(view.action).toBeUndefined();
    expect(view.promotion).toBeUndefined();
    expect(view.next).toBe('start aaaaaaa at wave canary');
  });

  it('marks the history entries a person made (hold, resume, promote by hand), with who and why', () => {
    const history: HistoryEntry[] = [
      { at: ago(1), promotion: 'p-b', commit: B, event: 'resumed', by: 'bob', reason: 'incident over' },
      { at: ago(2), promotion: 'p-b', commit: B, event: 'held', by: 'alice', reason: 'incident 42' },
      { at: ago(3), promotion: 'p-b', commit: B, event: 'promoted', wave: 'canary', clusters: ['staging'], by: 'promotion' },
      { at: ago(4), promotion: 'p-h', commit: A, event: 'promoted-by-hand', wave: 'prod', clusters: ['staging', 'prod-a', 'prod-b'], by: 'carol', reason: 'CVE hotfix' },
    ];
    const view = fleetView({ fleet, head: B, promotion: promotion(), records: prodAtA, history, cluster: 'staging' }, NOW);
    expect(view.history.map((h) => [h.event, h.by, h.reason, h.commit, h.byHand])).toEqual([
      ['resumed', 'bob', 'incident over', 'bbbbbbb', true],
      ['held', 'alice', 'incident 42', 'bbbbbbb', true],
      ['promoted', 'promotion', undefined, 'bbbbbbb', false],
      ['promoted-by-hand', 'carol', 'CVE hotfix', 'aaaaaaa', true],
    ]);
  });

  it('gives every state a glyph and a word, none twice', () => {
    const view = fleetView({ fleet, head: B, promotion: undefined, records: {}, history: [], cluster: 'staging' }, NOW);
    const glyphs = Object.values(view.legend).map((l) => l.glyph);
    const words = Object.values(view.legend).map((l) => l.label);
    expect(new Set(glyphs).size).toBe(6);
    expect(new Set(words).size).toBe(6);
  });
});
