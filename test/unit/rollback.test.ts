import fc from 'fast-check';
import { previousHealthy } from '../../lib/rollback';
import { OUTCOMES, Outcome, RevisionSnapshot } from '../../lib/store/records';

function snapshot(revision: number, digest: string, outcome: Outcome = 'healthy'): RevisionSnapshot {
  return {
    schema: 1,
    cluster: 'prod-eu-1',
    namespace: 'kube-system',
    name: 'fluentd',
    revision,
    cause: revision === 1 ? 'create' : 'git-change',
    manifest: { kind: 'DaemonSet' },
    digest,
    rolloutMode: 'native',
    replaced: null,
    runId: `run-${revision}`,
    createdAt: '2025-03-01T10:00:00.000Z',
    outcome,
    outcomeAt: '2025-03-01T10:05:00.000Z',
  };
}

describe('previousHealthy', () => {
  it('picks the newest healthy revision before the current one', () => {
    const revisions = [snapshot(1, 'sha256:a'), snapshot(2, 'sha256:b'), snapshot(3, 'sha256:c', 'stalled')];

    expect(previousHealthy(revisions, 3)?.revision).toBe(2);
  });

  it('skips a revision with the same manifest as the current one (the current one restored it)', () => {
    const revisions = [snapshot(1, 'sha256:a'), snapshot(2, 'sha256:b'), snapshot(3, 'sha256:c', 'stalled'), snapshot(4, 'sha256:b', 'progressing')];

    expect(previousHealthy(revisions, 4)?.revision).toBe(1);
  });

  it('skips the earlier revisions with the current manifest, whichever they are', () => {
    const revisions = [snapshot(1, 'sha256:a'), snapshot(2, 'sha256:b'), snapshot(3, 'sha256:b'), snapshot(4, 'sha256:b', 'stalled')];

    expect(previousHealthy(revisions, 4)?.revision).toBe(1);
  });

  it.each(OUTCOMES.filter((o) => o !== 'healthy'))('does not roll back to a revision whose outcome was %s', (outcome) => {
    const revisions = [snapshot(1, 'sha256:a'), snapshot(2, 'sha256:b', outcome), snapshot(3, 'sha256:c', 'stalled')];

    expect(previousHealthy(revisions, 3)?.revision).toBe(1);
  });

  it('does not pick a revision newer than the current one', () => {
    const revisions = [snapshot(1, 'sha256:a'), snapshot(2, 'sha256:b'), snapshot(3, 'sha256:c')];

    expect(previousHealthy(revisions, 2)?.revision).toBe(1);
  });

  it('finds nothing when no earlier revision was healthy', () => {
    const revisions = [snapshot(1, 'sha256:a', 'failed'), snapshot(2, 'sha256:b', 'stalled')];

    expect(previousHealthy(revisions, 2)).toBeUndefined();
  });

  it('finds nothing for the first revision', () => {
    expect(previousHealthy([snapshot(1, 'sha256:a')], 1)).toBeUndefined();
  });

  it('picks the newest healthy revision when nothing is current', () => {
    const revisions = [snapshot(1, 'sha256:a'), snapshot(2, 'sha256:b'), snapshot(3, 'sha256:c', 'failed')];

    expect(previousHealthy(revisions, undefined)?.revision).toBe(2);
  });

  it('gives the same answer whatever order the revisions are listed in', () => {
    const history = fc.array(fc.tuple(fc.constantFrom('sha256:a', 'sha256:b', 'sha256:c'), fc.constantFrom(...OUTCOMES)), { minLength: 1, maxLength: 12 })
      .map((rows) => rows.map(([digest, outcome], i) => snapshot(i + 1, digest, outcome)));
    fc.assert(
      fc.property(history, fc.nat(), fc.func(fc.integer()), (revisions, currentIndex, rank) => {
        const current = revisions[currentIndex % revisions.length].revision;
        const shuffled = [...revisions].sort((a, b) => rank(a.revision) - rank(b.revision));
        const picked = previousHealthy(revisions, current);
        expect(previousHealthy(shuffled, current)?.revision).toBe(picked?.revision);
        if (picked) {
          expect(picked.revision).toBeLessThan(current);
          expect(picked.outcome).toBe('healthy');
          expect(picked.digest).not.toBe(revisions[current - 1].digest);
        }
      }),
    );
  });
});
