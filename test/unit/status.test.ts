import fc from 'fast-check';
import type { LiveDaemonSet } from '../../lib/cluster/types';
import { consistentRow, countsOf, evaluateNative, isRolloutComplete } from '../../lib/rollout/status';
import { toRolloutReport } from '../../lib/report';
import type { RolloutState } from '../../lib/store/records';

interface Look {
  generation?: number;
  observedGeneration?: number;
  desired?: number;
  upToDate?: number;
  available?: number;
  ready?: number;
  onDelete?: boolean;
}

/** A DaemonSet on 4 nodes, as `kubectl get ds` would show it at one look. */
function ds({ generation = 2, observedGeneration = generation, desired = 4, upToDate = 0, available = 4, ready = available, onDelete = false }: Look = {}): LiveDaemonSet {
  return {
    metadata: { name: 'fluentd', namespace: 'kube-system', generation },
    spec: {
      selector: { matchLabels: { app: 'fluentd' } },
      template: { metadata: { labels: { app: 'fluentd' } }, spec: { containers: [{ name: 'fluentd', image: 'fluent/fluentd:v1.17' }] } },
      updateStrategy: onDelete ? { type: 'OnDelete' } : { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
    },
    status: {
      observedGeneration,
      desiredNumberScheduled: desired,
      currentNumberScheduled: desired,
      numberReady: ready,
      updatedNumberScheduled: upToDate,
      numberAvailable: available,
      numberUnavailable: desired - available,
    },
  };
}

const t0 = new Date('2025-03-01T10:00:00.000Z');
const after = (seconds: number) => new Date(t0.getTime() + seconds * 1000);
const DEADLINE = 600;

describe('countsOf', () => {
  it('reads the DESIRED, CURRENT, READY, UP-TO-DATE and AVAILABLE columns', () => {
    const live = ds({ desired: 5, upToDate: 2, available: 4, ready: 3 });

    expect(countsOf(live)).toEqual({ desired: 5, current: 5, ready: 3, upToDate: 2, available: 4 });
  });

  it('reads a DaemonSet without status as zeros', () => {
    const live = { ...ds(), status: undefined };

    expect(countsOf(live)).toEqual({ desired: 0, current: 0, ready: 0, upToDate: 0, available: 0 });
  });
});

describe('isRolloutComplete', () => {
  it.each<[string, Look, boolean]>([
    ['every pod updated and available', { upToDate: 4, available: 4 }, true],
    ['a pod not updated yet', { upToDate: 3, available: 4 }, false],
    ['an updated pod not available yet', { upToDate: 4, available: 3 }, false],
    ['the controller has not observed the new generation', { generation: 3, observedGeneration: 2, upToDate: 4, available: 4 }, false],
    ['no node to run on', { desired: 0, upToDate: 0, available: 0 }, true],
  ])('decides %s as kubectl rollout status does (%s)', (_, look, complete) => {
    expect(isRolloutComplete(ds(look))).toBe(complete);
  });
});

describe('evaluateNative', () => {
  function previous(state: Partial<RolloutState>): RolloutState {
    return {
      revision: 7,
      mode: 'native',
      phase: 'progressing',
      generation: 2,
      startedAt: t0.toISOString(),
      lastProgressAt: t0.toISOString(),
      counts: { desired: 4, current: 4, ready: 4, upToDate: 1, available: 4 },
      ...state,
    };
  }

  it('starts the clock when a revision is first seen', () => {
    const state = evaluateNative(undefined, ds({ upToDate: 0, available: 3 }), 7, t0, DEADLINE);

    expect(state).toMatchObject({
      revision: 7,
      mode: 'native',
      phase: 'progressing',
      generation: 2,
      startedAt: t0.toISOString(),
      lastProgressAt: t0.toISOString(),
      counts: { desired: 4, upToDate: 0, available: 3 },
      onDelete: false,
      message: 'progressing: 0/4 updated, 3 available, 3 ready',
    });
  });

  it('restarts the clock for a new revision', () => {
    const state = evaluateNative(previous({ revision: 6, startedAt: '2025-02-01T00:00:00.000Z' }), ds({ upToDate: 1 }), 7, after(3600), DEADLINE);

    expect(state.startedAt).toBe(after(3600).toISOString());
    expect(state.phase).toBe('progressing');
  });

  it('moves lastProgressAt when more pods are updated, and keeps startedAt', () => {
    const state = evaluateNative(previous({}), ds({ upToDate: 2, available: 3 }), 7, after(120), DEADLINE);

    expect(state.startedAt).toBe(t0.toISOString());
    expect(state.lastProgressAt).toBe(after(120).toISOString());
  });

  it('moves lastProgressAt when more pods become available', () => {
    const prev = previous({ counts: { desired: 4, current: 4, ready: 3, upToDate: 2, available: 3 } });

    const state = evaluateNative(prev, ds({ upToDate: 2, available: 4 }), 7, after(120), DEADLINE);

    expect(state.lastProgressAt).toBe(after(120).toISOString());
  });

  it('keeps lastProgressAt while nothing moves', () => {
    const state = evaluateNative(previous({}), ds({ upToDate: 1, available: 3 }), 7, after(300), DEADLINE);

    expect(state.lastProgressAt).toBe(t0.toISOString());
    expect(state.phase).toBe('progressing');
  });

  it('is still progressing just before the deadline', () => {
    const state = evaluateNative(previous({}), ds({ upToDate: 1, available: 3 }), 7, after(DEADLINE - 1), DEADLINE);

    expect(state.phase).toBe('progressing');
  });

  it('is stalled once the deadline passes without progress, and says since when', () => {
    const state = evaluateNative(previous({}), ds({ upToDate: 1, available: 3 }), 7, after(DEADLINE + 1), DEADLINE);

    expect(state.phase).toBe('stalled');
    expect(state.message).toBe('stalled: no progress since 2025-03-01T10:00:00.000Z (deadline 600s): 1/4 updated, 3 available, 3 ready');
  });

  it('says the same about a stalled rollout that has not moved, look after look', () => {
    const first = evaluateNative(previous({}), ds({ upToDate: 1, available: 3 }), 7, after(DEADLINE + 1), DEADLINE);
    const later = evaluateNative(first, ds({ upToDate: 1, available: 3 }), 7, after(5 * DEADLINE), DEADLINE);

    expect(later).toEqual(first);
  });

  it('becomes complete, however late, after it stalled', () => {
    const stalled = previous({ phase: 'stalled' });

    const state = evaluateNative(stalled, ds({ upToDate: 4, available: 4 }), 7, after(10 * DEADLINE), DEADLINE);

    expect(state.phase).toBe('complete');
  });

  it('recovers from stalled when progress resumes', () => {
    const stalled = previous({ phase: 'stalled', lastProgressAt: t0.toISOString() });

    const state = evaluateNative(stalled, ds({ upToDate: 2, available: 3 }), 7, after(3 * DEADLINE), DEADLINE);

    expect(state.phase).toBe('progressing');
    expect(state.lastProgressAt).toBe(after(3 * DEADLINE).toISOString());
  });

  it('never stalls an OnDelete DaemonSet: it waits for its pods to be deleted', () => {
    const prev = previous({ onDelete: true });

    const state = evaluateNative(prev, ds({ upToDate: 1, onDelete: true }), 7, after(86400), DEADLINE);

    expect(state.phase).toBe('progressing');
    expect(state.onDelete).toBe(true);
    expect(state.message).toContain('updateStrategy OnDelete');
  });

  it('marks a complete rollout with the time it finished', () => {
    const state = evaluateNative(previous({}), ds({ upToDate: 4, available: 4 }), 7, after(200), DEADLINE);

    expect(state).toMatchObject({ phase: 'complete', finishedAt: after(200).toISOString(), message: 'complete: 4/4 updated, 4 available, 4 ready' });
  });

  it('keeps finishedAt at later looks of a complete rollout', () => {
    const done = previous({ phase: 'complete', finishedAt: after(200).toISOString(), counts: { desired: 4, current: 4, ready: 4, upToDate: 4, available: 4 } });

    const state = evaluateNative(done, ds({ upToDate: 4, available: 4 }), 7, after(5000), DEADLINE);

    expect(state.phase).toBe('complete');
    expect(state.finishedAt).toBe(after(200).toISOString());
  });

  it('is not complete until the controller has observed the new generation, and shows no counts of the old one', () => {
    const state = evaluateNative(undefined, ds({ generation: 3, observedGeneration: 2, upToDate: 4, available: 4 }), 7, t0, DEADLINE);

    expect(state.phase).toBe('progressing');
    expect(state.counts).toBeUndefined();
    expect(state.message).toBe('progressing: waiting for the DaemonSet controller to observe generation 3');
  });

  it('judges a new DaemonSet only on status for the generation it applied (a status without observedGeneration says nothing)', () => {
    const created = { ...ds({ generation: 1, desired: 0, upToDate: 0, available: 0 }), status: { desiredNumberScheduled: 0, numberAvailable: 0, updatedNumberScheduled: 0 } };

    const state = evaluateNative(previous({ generation: 1, counts: undefined }), created, 7, after(1), DEADLINE);

    expect(state.phase).toBe('progressing');
    expect(state.counts).toBeUndefined();
  });

  it('keeps waiting for the generation it applied even when the object it sees is older', () => {
    const applied = previous({ generation: 5, counts: undefined });

    const state = evaluateNative(applied, ds({ generation: 4, observedGeneration: 4, upToDate: 4, available: 4 }), 7, after(1), DEADLINE);

    expect(state.phase).toBe('progressing');
    expect(state.message).toContain('observe generation 5');
  });

  it('never stalls a rollout that progresses at every look, however far apart the looks are', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 7 * 86400 }), { minLength: 1, maxLength: 20 }), (gaps) => {
        const desired = gaps.length + 1;
        let state: RolloutState | undefined;
        let elapsed = 0;
        for (let i = 0; i < gaps.length; i++) {
          elapsed += gaps[i];
          state = evaluateNative(state, ds({ desired, upToDate: i, available: desired - 1 }), 7, after(elapsed), DEADLINE);
          if (state.phase === 'stalled') return false;
        }
        return true;
      }),
    );
  });

  it('stalls any rollout that makes no progress for longer than the deadline', () => {
    fc.assert(
      fc.property(fc.integer({ min: 10, max: 86400 }), fc.integer({ min: 1, max: 86400 }), (deadline, over) => {
        const look = ds({ upToDate: 1, available: 3 });
        const first = evaluateNative(undefined, look, 7, t0, deadline);
        return evaluateNative(first, look, 7, after(deadline + over), deadline).phase === 'stalled';
      }),
    );
  });
});

/**
 * kubectl's DaemonSet rollout status (kubectl/pkg/polymorphichelpers/rollout_status.go) says
 * "Waiting for daemon set ... rollout to finish" while updatedNumberScheduled or
 * numberAvailable is below desiredNumberScheduled: a row must never say complete then.
 */
function kubectlSaysDone(c: { desired: number; upToDate: number; available: number }): boolean {
  if (c.upToDate < c.desired) return false;
  if (c.available < c.desired) return false;
  return true;
}

describe('consistentRow', () => {
  it('never shows complete with fewer pods up to date or available than desired, whatever phase was recorded', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20 }), fc.constantFrom('complete', 'progressing', 'stalled' as const),
      (desired, upToDate, available, phase) => {
        const row = consistentRow({ phase, desired, upToDate, available, message: 'recorded earlier' });
        if (row.phase === 'complete') expect(kubectlSaysDone({ desired, upToDate, available })).toBe(true);
        // Only a complete phase is corrected; a stalled or progressing one stays as recorded.
        if (phase !== 'complete') expect(row.phase).toBe(phase);
        if (phase === 'complete' && kubectlSaysDone({ desired, upToDate, available })) expect(row).toEqual({ phase, desired, upToDate, available, message: 'recorded earlier' });
      },
    ));
  });

  it('turns the demo\'s contradictory row (complete, READY 0, AVAILABLE 0 of 3) into progressing, saying what the counts show', () => {
    const recorded: RolloutState = { revision: 1, mode: 'native', phase: 'complete', startedAt: 'x', lastProgressAt: 'x', counts: { desired: 3, current: 3, ready: 3, upToDate: 3, available: 3 } };
    const read = countsOf(ds({ desired: 3, upToDate: 3, available: 0, ready: 0 }));
    const row = consistentRow({ ...toRolloutReport(recorded), ...read });
    expect(row).toMatchObject({ phase: 'progressing', desired: 3, available: 0, ready: 0 });
    expect(row.message).toMatch(/^3\/3 up to date, 0 available now/);
  });
});
