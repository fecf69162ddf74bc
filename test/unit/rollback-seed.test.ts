/**
 * A managed rollback's seed (the nodes the replaced rollout may have broken, and no canary) is
 * written ahead with its snapshot and set with the state write of the revision itself, by the
 * rollback's own run or, after a kill between the apply and that write, by the next run from
 * the snapshot. The wave decision then replaces the bad pods on those nodes although they are
 * NotReady.
 */
import { nextWave, type WaveNode, type WavePod } from '../../lib/rollout/wave';
import { DaemonSetState, managedRollbackSeed, revisionSchema, RevisionSnapshot, seedManagedRollout, stateAfterApply } from '../../lib/store/records';

const T0 = '2024-05-01T12:00:00.000Z';
const T1 = '2024-05-01T12:05:00.000Z';

/** The state a managed rollout of revision 2 left: it deleted n01's pod while n01 was Ready (n01 broke), and n03's while NotReady. */
function failedRollout(): DaemonSetState {
  return {
    schema: 1, namespace: 'ops', name: 'agent', currentRevision: 2, appliedDigest: 'd2', updatedAt: T0, lastHealthyRevision: 1,
    rollout: {
      revision: 2, mode: 'managed', phase: 'stalled', startedAt: T0, lastProgressAt: T0,
      managed: {
        checkpoint: {
          startedAt: T0, lastProgressAt: T0, updatedAvailable: 0, waves: 1, inFlight: [],
          touched: [{ node: 'n01', readyAtDelete: true, at: T0 }, { node: 'n03', readyAtDelete: false, at: T0 }],
          failed: { at: T0, reason: 'the update broke 1 node (n01)', nodes: ['n01'] },
        },
      },
    },
  };
}

/** The rollback's snapshot as written ahead, read back from S3 (parsed by its schema, which drops what it does not know). */
function snapshotReadBack(seed: ReturnType<typeof managedRollbackSeed>): RevisionSnapshot {
  const written = {
    schema: 1, cluster: 'c', namespace: 'ops', name: 'agent', revision: 3, cause: 'rollback', rollbackTo: 1, manifest: {}, digest: 'd1',
    rolloutMode: 'managed', replaced: null, runId: 'r', createdAt: T1, outcome: 'pending', outcomeAt: T1,
    pin: { revision: 1, reason: 'v2 breaks nodes', at: T1, gitDigest: 'd2' },
    managedSeed: seed,
  };
  return revisionSchema.parse(JSON.parse(JSON.stringify(written)));
}

/** What the next run records for revision 3 from its snapshot (repairFromLive's state write). */
function recordedFromSnapshot(before: DaemonSetState, snap: RevisionSnapshot): DaemonSetState {
  return seedManagedRollout(stateAfterApply(before, {
    namespace: 'ops', name: 'agent', revision: snap.revision, digest: snap.digest, mode: snap.rolloutMode, at: T1, pin: snap.pin,
  }), snap.managedSeed);
}

describe('managedRollbackSeed', () => {
  it('names every node the replaced rollout\'s update reached (n03 too, whose pod it replaced while NotReady: it runs the bad template), and skips the canary', () => {
    expect(managedRollbackSeed(failedRollout())).toEqual({ repairNodes: ['n01', 'n03'], canaryPassed: true });
    expect(managedRollbackSeed(undefined)).toEqual({ repairNodes: [], canaryPassed: true });
  });
});

describe('a managed rollback killed between its apply and its state write', () => {
  it('leaves the seed in its snapshot, and the state the next run records from it starts the rollout there', () => {
    const before = failedRollout();
    const snap = snapshotReadBack(managedRollbackSeed(before));
    expect(snap.managedSeed).toEqual({ repairNodes: ['n01', 'n03'], canaryPassed: true });
    const state = recordedFromSnapshot(before, snap);
    expect(state).toMatchObject({ currentRevision: 3, pin: { revision: 1 }, rollout: { revision: 3, mode: 'managed', phase: 'progressing' } });
    expect(state.rollout!.managed!.checkpoint).toMatchObject({ startedAt: T1, repairNodes: ['n01', 'n03'], canaryPassed: true });
  });

  it('so the first wave replaces the bad pod on the broken NotReady node, instead of waiting for it forever', () => {
    const state = recordedFromSnapshot(failedRollout(), snapshotReadBack(managedRollbackSeed(failedRollout())));
    // n01 runs revision 2's pod and is NotReady (broken by it); n02..n04 run the restored template.
    const node = (name: string, ready = true): WaveNode => ({ name, ready, desired: true, labels: {} });
    const pod = (on: string, updated: boolean, ready = true): WavePod => ({ name: `agent-${on}`, uid: `uid-${on}`, node: on, updated, ready, readySince: ready ? T0 : undefined, terminating: false });
    const obs = { nodes: [node('n01', false), node('n02'), node('n03'), node('n04')], pods: [pod('n01', false, false), pod('n02', true), pod('n03', true), pod('n04', true)] };
    const policy = { maxUnavailable: 1, minReadySeconds: 0, paused: false, progressDeadlineSeconds: 600, canary: { count: 1, holdSeconds: 60 } };
    const d = nextWave(obs, policy, state.rollout!.managed!.checkpoint, new Date(T1));
    expect(d.podsToDelete.map((p) => p.node)).toEqual(['n01']);
  });

  it('a checkpoint already there keeps what it holds and gains the seed\'s repair nodes', () => {
    const base = stateAfterApply(failedRollout(), { namespace: 'ops', name: 'agent', revision: 3, digest: 'd1', mode: 'managed', at: T1 });
    base.rollout!.managed = { checkpoint: { startedAt: T1, lastProgressAt: T1, updatedAvailable: 0, waves: 0, inFlight: [], repairNodes: ['n02'], touched: [{ node: 'n02', readyAtDelete: true, at: T0 }] } };
    const seeded = seedManagedRollout(base, { repairNodes: ['n01'], canaryPassed: true });
    expect(seeded.rollout!.managed!.checkpoint).toMatchObject({ repairNodes: ['n01', 'n02'], canaryPassed: true, touched: [{ node: 'n02' }] });
    // A native rollout takes no seed.
    const native = stateAfterApply(failedRollout(), { namespace: 'ops', name: 'agent', revision: 3, digest: 'd1', mode: 'native', at: T1 });
    expect(seedManagedRollout(native, { repairNodes: ['n01'], canaryPassed: true })).toEqual(native);
  });
});
