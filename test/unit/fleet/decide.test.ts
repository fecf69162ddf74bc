import { ClusterRecord, decidePromotion, Promotion } from '../../../lib/fleet/decide';
import { parseFleetFile } from '../../../lib/fleet/fleet-file';

const fleet = parseFleetFile(`
clusters: [{ name: staging }, { name: prod-a }, { name: prod-b }, { name: prod-c }]
waves:
  - { name: canary, clusters: [staging], soak: 10m }
  - name: prod
    clusters: [prod-a, prod-b, prod-c]
    soak: 1h
    maxConcurrent: 2
    maintenanceWindows: [{ start: "2026-12-06T12:00:00Z", end: "2026-12-06T14:00:00Z" }]
`, 'fleet.yaml');

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const NOW = new Date('2026-12-06T10:00:00Z');
const minutesAgo = (m: number) => new Date(NOW.getTime() - m * 60_000).toISOString();

function promotion(over: Partial<Promotion> = {}): Promotion {
  return { id: 'p1', commit: B, sourceHead: B, startedAt: minutesAgo(60), by: 'schedule', wave: 0, status: 'in-flight', ...over };
}
const at = (commit: string, result: 'healthy' | 'progressing' | 'failed' | 'unreachable' = 'healthy', extra: Partial<ClusterRecord> = {}): ClusterRecord => ({
  promoted: { commit, at: minutesAgo(30), by: 'promotion p1' },
  lastPass: { commit, at: minutesAgo(1), result },
  ...extra,
});
const oldEverywhere: Record<string, ClusterRecord> = { staging: at(A), 'prod-a': at(A), 'prod-b': at(A), 'prod-c': at(A) };

describe('decidePromotion', () => {
  it('starts a new head at the first wave', () => {
    expect(decidePromotion(fleet, undefined, B, oldEverywhere, NOW)).toEqual({ kind: 'start', commit: B });
  });

  it('promotes the first wave\'s clusters to the commit in flight', () => {
    expect(decidePromotion(fleet, promotion(), B, oldEverywhere, NOW)).toEqual({ kind: 'reconcile', wave: 0, commit: B, clusters: ['staging'], waiting: [] });
  });

  it('waits while the wave rolls the commit out, without starting the soak', () => {
    const d = decidePromotion(fleet, promotion(), B, { ...oldEverywhere, staging: at(B, 'progressing') }, NOW);
    expect(d).toMatchObject({ kind: 'wait', wave: 0, reasons: ['staging is rolling bbbbbbb out'], recheck: ['staging'] });
    expect(d).not.toHaveProperty('healthySince');
  });

  it('soaks a healthy wave before promoting, then advances once the soak has passed', () => {
    const healthy = { ...oldEverywhere, staging: at(B) };
    expect(decidePromotion(fleet, promotion(), B, healthy, NOW)).toMatchObject({ kind: 'wait', wave: 0, seconds: 600, healthySince: NOW.toISOString(), recheck: ['staging'] });
    expect(decidePromotion(fleet, promotion({ healthySince: minutesAgo(9) }), B, healthy, NOW)).toMatchObject({ kind: 'wait', seconds: 60 });
    expect(decidePromotion(fleet, promotion({ healthySince: minutesAgo(10) }), B, healthy, NOW)).toEqual({ kind: 'advance', from: 0, to: 1 });
  });

  it('changes at most maxConcurrent clusters of a wave at once', () => {
    const d = decidePromotion(fleet, promotion({ wave: 1 }), B, { ...oldEverywhere, staging: at(B) }, NOW);
    expect(d).toEqual({ kind: 'reconcile', wave: 1, commit: B, clusters: ['prod-a', 'prod-b'], waiting: ['prod-c'] });
    const oneBusy = decidePromotion(fleet, promotion({ wave: 1 }), B, { ...oldEverywhere, staging: at(B), 'prod-a': at(B, 'progressing') }, NOW);
    expect(oneBusy).toEqual({ kind: 'reconcile', wave: 1, commit: B, clusters: ['prod-b'], waiting: ['prod-c'] });
    const twoBusy = decidePromotion(fleet, promotion({ wave: 1 }), B, { ...oldEverywhere, staging: at(B), 'prod-a': at(B, 'progressing'), 'prod-b': at(B, 'progressing') }, NOW);
    expect(twoBusy.kind).toBe('wait');
  });

  it('is done when the last wave has soaked', () => {
    const all = { staging: at(B), 'prod-a': at(B), 'prod-b': at(B), 'prod-c': at(B) };
    expect(decidePromotion(fleet, promotion({ wave: 1, healthySince: minutesAgo(60) }), B, all, NOW)).toEqual({ kind: 'done', commit: B });
    expect(decidePromotion(fleet, promotion({ wave: 1, healthySince: minutesAgo(59) }), B, all, NOW).kind).toBe('wait');
  });

  it('stops a commit whose pass failed (a stall, a rollback) where it is, naming the cluster, the DaemonSet and the reason', () => {
    const failed = { ...oldEverywhere, staging: { ...at(B, 'failed'), lastPass: { commit: B, at: minutesAgo(1), result: 'failed' as const, daemonSet: 'kube-system/cni', reason: 'stalled: node kwok-node-1 NotReady; rolled back to revision 3' } } };
    expect(decidePromotion(fleet, promotion(), B, failed, NOW)).toEqual({ kind: 'stop', wave: 0, cluster: 'staging', daemonSet: 'kube-system/cni', reason: 'stalled: node kwok-node-1 NotReady; rolled back to revision 3' });
    // Stopped, it stays stopped: later waves are not promoted.
    expect(decidePromotion(fleet, promotion({ status: 'stopped', stopped: { wave: 0, cluster: 'staging', reason: 'stalled', at: minutesAgo(1) } }), B, failed, NOW)).toMatchObject({ kind: 'idle' });
  });

  it('stops on a failure during the soak too', () => {
    const d = decidePromotion(fleet, promotion({ healthySince: minutesAgo(5) }), B, { ...oldEverywhere, staging: at(B, 'failed') }, NOW);
    expect(d).toMatchObject({ kind: 'stop', cluster: 'staging' });
  });

  it('lets a newer commit supersede a stopped or in-flight one, from the first wave', () => {
    const C = 'c'.repeat(40);
    expect(decidePromotion(fleet, promotion({ wave: 1 }), C, oldEverywhere, NOW)).toEqual({ kind: 'start', commit: C, supersedes: B });
    expect(decidePromotion(fleet, promotion({ status: 'stopped' }), C, oldEverywhere, NOW)).toEqual({ kind: 'start', commit: C, supersedes: B });
    expect(decidePromotion(fleet, promotion({ status: 'done' }), C, oldEverywhere, NOW)).toEqual({ kind: 'start', commit: C });
  });

  it('keeps a commit promoted by hand while the branch head has not moved', () => {
    const manual = promotion({ commit: A, sourceHead: B, wave: 1, by: 'alice' });
    expect(decidePromotion(fleet, manual, B, { staging: at(A), 'prod-a': at(B), 'prod-b': at(B), 'prod-c': at(B) }, NOW).kind).toBe('reconcile');
  });

  it('does nothing while held, not even for a newer commit, and goes on where it was once resumed', () => {
    const held = promotion({ held: { by: 'alice', reason: 'incident 42', at: minutesAgo(2) } });
    expect(decidePromotion(fleet, held, 'c'.repeat(40), oldEverywhere, NOW)).toEqual({ kind: 'held', by: 'alice', reason: 'incident 42' });
    const { held: _, ...resumed } = held;
    expect(decidePromotion(fleet, resumed, B, oldEverywhere, NOW)).toMatchObject({ kind: 'reconcile', clusters: ['staging'] });
  });

  it('skips a wave inside a maintenance window and re-queues it for the window\'s end', () => {
    const inWindow = new Date('2026-12-06T13:00:00Z');
    const d = decidePromotion(fleet, promotion({ wave: 1 }), B, { ...oldEverywhere, staging: at(B) }, inWindow);
    expect(d).toEqual({ kind: 'wait', wave: 1, seconds: 3600, reasons: ['prod-a, prod-b, prod-c skipped: wave prod is in a maintenance window until 2026-12-06T14:00:00.000Z; re-queued'], recheck: [] });
    expect(decidePromotion(fleet, promotion({ wave: 1 }), B, { ...oldEverywhere, staging: at(B) }, new Date('2026-12-06T14:00:00Z')).kind).toBe('reconcile');
  });

  it('neither promotes nor passes a cluster that cannot be reached, and says why it waits', () => {
    const records = { ...oldEverywhere, staging: at(B), 'prod-a': { ...at(A), unreachable: 'connect ETIMEDOUT' } };
    const d = decidePromotion(fleet, promotion({ wave: 1 }), B, records, NOW);
    expect(d).toEqual({ kind: 'reconcile', wave: 1, commit: B, clusters: ['prod-b', 'prod-c'], waiting: [] });
    const rest = { ...records, 'prod-b': at(B), 'prod-c': at(B) };
    const stuck = decidePromotion(fleet, promotion({ wave: 1, healthySince: minutesAgo(120) }), B, rest, NOW);
    expect(stuck).toEqual({ kind: 'wait', wave: 1, seconds: 30, reasons: ['prod-a cannot be reached: connect ETIMEDOUT'], recheck: ['prod-a'] });
    // Its pass for the commit could not reach it either: still waiting, not failed, not done.
    const passUnreachable = { ...rest, 'prod-a': at(B, 'unreachable') };
    expect(decidePromotion(fleet, promotion({ wave: 1, healthySince: minutesAgo(120) }), B, passUnreachable, NOW).kind).toBe('wait');
  });

  it('starts nothing when the branch cannot be read', () => {
    expect(decidePromotion(fleet, undefined, undefined, oldEverywhere, NOW).kind).toBe('idle');
  });
});
