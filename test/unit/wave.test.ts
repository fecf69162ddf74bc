import {
  holdBeforeApply,
  nextWave,
  resolveMaxUnavailable,
  type CanaryPolicy,
  type WaveCheckpoint,
  type WaveDecision,
  type WaveNode,
  type WaveObservation,
  type WavePod,
  type WavePolicy,
} from '../../lib/rollout/wave';

// ---------------------------------------------------------------------------------------
// Builders. Time is seconds relative to T0; nodes are n01, n02, ... so name order is
// numeric order.

const T0 = Date.parse('2024-05-01T12:00:00.000Z');
const at = (seconds: number): Date => new Date(T0 + seconds * 1000);
const iso = (seconds: number): string => at(seconds).toISOString();
const nodeName = (i: number): string => `n${String(i).padStart(2, '0')}`;

function node(name: string, opts: { ready?: boolean; desired?: boolean; labels?: Record<string, string> } = {}): WaveNode {
  return { name, ready: opts.ready ?? true, desired: opts.desired ?? true, labels: opts.labels ?? {} };
}

type PodOpts = Partial<Omit<WavePod, 'node' | 'updated'>> & { readyAgo?: number };

/** A pod on `on`, Ready for an hour unless told otherwise. */
function pod(on: string, updated: boolean, opts: PodOpts = {}): WavePod {
  const { readyAgo, ...rest } = opts;
  const ready = rest.ready ?? true;
  const suffix = updated ? 'new' : 'old';
  return {
    name: `agent-${on}-${suffix}`,
    uid: `uid-${on}-${suffix}`,
    node: on,
    updated,
    ready,
    readySince: ready ? iso(-(readyAgo ?? 3600)) : undefined,
    terminating: false,
    ...rest,
  };
}
const oldPod = (on: string, opts: PodOpts = {}) => pod(on, false, opts);
const newPod = (on: string, opts: PodOpts = {}) => pod(on, true, opts);

/** n Ready nodes; `podsOn` says what runs on each (default: one old, available pod). */
function cluster(n: number, podsOn: (name: string, i: number) => WavePod[] = (name) => [oldPod(name)]): WaveObservation {
  const names = Array.from({ length: n }, (_, i) => nodeName(i + 1));
  return { nodes: names.map((name) => node(name)), pods: names.flatMap(podsOn) };
}

function policy(overrides: Partial<WavePolicy> = {}): WavePolicy {
  return { maxUnavailable: 1, minReadySeconds: 0, paused: false, progressDeadlineSeconds: 600, ...overrides };
}

function checkpoint(overrides: Partial<WaveCheckpoint> = {}): WaveCheckpoint {
  return { startedAt: iso(-100), lastProgressAt: iso(-10), updatedAvailable: 0, waves: 0, inFlight: [], ...overrides };
}

const deletedNodes = (d: WaveDecision): string[] => d.podsToDelete.map((p) => p.node);

// ---------------------------------------------------------------------------------------

describe('resolveMaxUnavailable', () => {
  it.each<[number | string, number, number]>([
    [1, 10, 1],
    [3, 10, 3],
    [0, 10, 0],
    [15, 10, 10],
    [-2, 10, 0],
    ['25%', 12, 3],
    ['25%', 10, 3],
    ['10%', 5, 1],
    ['33%', 10, 4],
    ['50%', 7, 4],
    ['100%', 7, 7],
    ['150%', 4, 4],
    ['1%', 1, 1],
    ['0%', 10, 0],
    ['30%', 0, 0],
  ])('resolves %p of %i desired nodes to %i (percentages round up, clamped to 0..desired)', (value, desired, expected) => {
    expect(resolveMaxUnavailable(value, desired)).toBe(expected);
  });

  it.each<[number | string]>([['abc'], ['25'], ['12.5%'], ['%'], ['-5%'], [' 25%'], ['25 %'], [''], [1.5], [Number.NaN]])(
    'rejects the malformed value %p with an error that names it',
    (value) => {
      expect(() => resolveMaxUnavailable(value, 10)).toThrow(String(value));
    },
  );
});

describe('nextWave', () => {
  describe('the maxUnavailable budget', () => {
    it.each<[number | string, number, number]>([
      [1, 12, 1],
      [3, 12, 3],
      ['25%', 12, 3],
      ['10%', 5, 1],
      ['33%', 10, 4],
      [20, 12, 12],
      [0, 12, 1],
      ['0%', 12, 1],
    ])('with maxUnavailable %p deletes that many of %i old available pods (at least one)', (maxUnavailable, nodes, expected) => {
      // prepare
      const obs = cluster(nodes);
      // act
      const d = nextWave(obs, policy({ maxUnavailable }), undefined, at(0));
      // assert
      expect(d.podsToDelete).toHaveLength(expected);
      expect(d.counts).toMatchObject({ maxUnavailable: expected, budget: expected, unavailable: 0 });
      expect(d.phase).toBe('progressing');
    });

    it('deletes in node-name order and says what it does in one sentence', () => {
      const obs = cluster(5);
      const d = nextWave(obs, policy({ maxUnavailable: 2 }), undefined, at(0));
      expect(d.podsToDelete).toEqual([
        { name: 'agent-n01-old', uid: 'uid-n01-old', node: 'n01' },
        { name: 'agent-n02-old', uid: 'uid-n02-old', node: 'n02' },
      ]);
      expect(d.reason).toBe('deleting 2 old pods (budget 2 of maxUnavailable 2; 0 unavailable)');
    });

    it.each<[number, number, number]>([
      [0, 3, 3],
      [1, 3, 2],
      [2, 3, 1],
      [3, 3, 0],
      [4, 3, 0],
    ])('never exceeds maxUnavailable when pods are already unavailable (%i unavailable, maxUnavailable %i: deletes %i)', (unavailableNow, k, expected) => {
      // prepare: the first nodes run updated pods that are not Ready yet
      const obs = cluster(10, (name, i) => [i < unavailableNow ? newPod(name, { ready: false }) : oldPod(name)]);
      // act
      const d = nextWave(obs, policy({ maxUnavailable: k }), checkpoint(), at(0));
      // assert
      expect(d.podsToDelete).toHaveLength(expected);
      expect(d.counts.unavailable).toBe(unavailableNow);
      expect(d.counts.unavailable + d.podsToDelete.length).toBeLessThanOrEqual(Math.max(k, unavailableNow));
    });

    it('counts desired nodes whose pod the controller has not created yet as unavailable', () => {
      // prepare: 6 nodes should run the pod, only 5 pods exist
      const obs = cluster(6, (name) => (name === 'n06' ? [] : [oldPod(name)]));
      // act
      const d = nextWave(obs, policy({ maxUnavailable: 1 }), checkpoint(), at(0));
      // assert
      expect(d.counts.unavailable).toBe(1);
      expect(d.podsToDelete).toEqual([]);
      expect(d.reason).toContain('waiting');
    });

    it('replaces old pods that are already unavailable first, without spending budget', () => {
      // prepare: n01's updated pod is not available yet; n03 and n05 run broken old pods
      const obs = cluster(6, (name) => {
        if (name === 'n01') return [newPod(name, { ready: false })];
        if (name === 'n03' || name === 'n05') return [oldPod(name, { ready: false })];
        return [oldPod(name)];
      });
      // act
      const d = nextWave(obs, policy({ maxUnavailable: 3 }), checkpoint(), at(0));
      // assert
      expect(d.counts).toMatchObject({ unavailable: 3, budget: 0 });
      expect(deletedNodes(d)).toEqual(['n03', 'n05']);
    });

    it('never sends the update to more than maxUnavailable nodes where it has not proven available, broken old pods included', () => {
      // prepare: as above, with maxUnavailable 1: n01 already runs the update unproven
      const obs = cluster(6, (name) => {
        if (name === 'n01') return [newPod(name, { ready: false })];
        if (name === 'n03' || name === 'n05') return [oldPod(name, { ready: false })];
        return [oldPod(name)];
      });
      const d = nextWave(obs, policy({ maxUnavailable: 1 }), checkpoint(), at(0));
      expect(d.podsToDelete).toEqual([]);
      expect(d.reason).toBe('waiting: budget 0 of maxUnavailable 1 with 1 node runs the update without being proven yet; 5 old pods wait');
    });

    it('spends the remaining budget on available old pods after the unavailable ones', () => {
      const obs = cluster(6, (name) => [name === 'n04' ? oldPod(name, { ready: false }) : oldPod(name)]);
      const d = nextWave(obs, policy({ maxUnavailable: 2 }), checkpoint(), at(0));
      // n04 is free; one more is allowed since only n04 is unavailable
      expect(deletedNodes(d)).toEqual(['n04', 'n01']);
      expect(d.reason).toBe('deleting 2 old pods (1 already unavailable, budget 1 of maxUnavailable 2; 1 unavailable)');
    });

    it('never deletes an updated pod, a terminating pod, or two pods on one node', () => {
      // prepare: n01 updated, n02 terminating old, n03 two old pods
      const obs: WaveObservation = {
        nodes: ['n01', 'n02', 'n03'].map((n) => node(n)),
        pods: [
          newPod('n01'),
          oldPod('n02', { terminating: true }),
          oldPod('n03', { name: 'a-n03', uid: 'a' }),
          oldPod('n03', { name: 'b-n03', uid: 'b', ready: false }),
        ],
      };
      // act
      const d = nextWave(obs, policy({ maxUnavailable: 3 }), checkpoint(), at(0));
      // assert: the unavailable duplicate goes first, and alone
      expect(d.podsToDelete).toEqual([{ name: 'b-n03', uid: 'b', node: 'n03' }]);
    });
  });

  describe('minReadySeconds', () => {
    it.each<[string, number, PodOpts, boolean]>([
      ['Ready 10s of 30s', 30, { readyAgo: 10 }, false],
      ['Ready exactly 30s of 30s', 30, { readyAgo: 30 }, true],
      ['Ready with no readySince and minReadySeconds 30', 30, { readySince: undefined }, false],
      ['Ready with no readySince and minReadySeconds 0', 0, { readySince: undefined }, true],
      ['not Ready', 0, { ready: false }, false],
      ['Ready but terminating', 0, { terminating: true }, false],
    ])('counts an updated pod that is %s (minReadySeconds %i) as available: %p', (_label, minReadySeconds, opts, available) => {
      // prepare: n01 runs the pod under test; n02, n03 old and available; budget 1
      const obs = cluster(3, (name) => [name === 'n01' ? newPod(name, opts) : oldPod(name, { readyAgo: 3600 })]);
      // act
      const d = nextWave(obs, policy({ minReadySeconds }), checkpoint(), at(0));
      // assert
      expect(d.counts.updatedAvailable).toBe(available ? 1 : 0);
      expect(d.podsToDelete).toHaveLength(available ? 1 : 0);
    });

    it('wakes when a Ready pod reaches minReadySeconds', () => {
      const obs = cluster(3, (name) => [name === 'n01' ? newPod(name, { readyAgo: 10 }) : oldPod(name)]);
      const d = nextWave(obs, policy({ minReadySeconds: 30 }), checkpoint(), at(0));
      expect(d.wakeAt).toBe(iso(20));
    });
  });

  describe('NotReady nodes', () => {
    it('skips nodes that were NotReady before the rollout touched them: listed, never deleted from, outside the budget', () => {
      // prepare: n01 NotReady from the start, n03..n05 Ready
      const obs: WaveObservation = {
        nodes: [node('n01', { ready: false }), node('n02'), node('n03'), node('n04')],
        pods: [oldPod('n01', { ready: false }), oldPod('n02'), oldPod('n03'), oldPod('n04')],
      };
      // act
      const d = nextWave(obs, policy({ maxUnavailable: 1 }), checkpoint(), at(0));
      // assert
      expect(d.notReadyNodes).toEqual(['n01']);
      expect(d.counts).toMatchObject({ unavailable: 0, skipped: 1, desired: 4 });
      expect(deletedNodes(d)).toEqual(['n02']);
    });

    it('ignores deleted nodes and nodes that no longer should run the pod: their pods are neither waited for nor deleted', () => {
      // prepare: n02 was deleted from the cluster; n03 was tainted and is no longer desired
      const obs: WaveObservation = {
        nodes: [node('n01'), node('n03', { desired: false }), node('n04')],
        pods: [oldPod('n01'), oldPod('n02'), oldPod('n03'), oldPod('n04')],
      };
      const d = nextWave(obs, policy({ maxUnavailable: 3 }), checkpoint(), at(0));
      expect(deletedNodes(d)).toEqual(['n01', 'n04']);
      expect(d.counts).toMatchObject({ desired: 2, unavailable: 0 });
    });

    it('counts a Pending pod on a desired node as unavailable, even when a stray pod runs on a node that is not desired (no budget left)', () => {
      // prepare: desired a, b, c; c's pod is Pending; a stray old pod runs on z, which is no longer desired
      const obs: WaveObservation = {
        nodes: ['a', 'b', 'c'].map((n) => node(n)).concat(node('z', { desired: false })),
        pods: [oldPod('a'), oldPod('b'), newPod('c', { ready: false }), oldPod('z')],
      };
      const d = nextWave(obs, policy({ maxUnavailable: 1 }), checkpoint(), at(0));
      expect(d.counts.unavailable).toBe(1);
      expect(d.podsToDelete).toEqual([]);
    });

    it('forgets an in-flight deletion whose node left the desired set, so the rollout does not wait on it forever', () => {
      const obs: WaveObservation = {
        nodes: [node('n01', { desired: false }), node('n02'), node('n03')],
        pods: [oldPod('n02'), oldPod('n03')],
      };
      const before = checkpoint({ inFlight: [{ node: 'n01', uid: 'uid-n01-old', deletedAt: iso(-5) }] });
      const d = nextWave(obs, policy({ maxUnavailable: 1 }), before, at(0));
      expect(d.checkpoint.inFlight).toEqual([{ node: 'n02', uid: 'uid-n02-old', deletedAt: iso(0) }]);
      expect(d.counts.unavailable).toBe(0);
    });

    it.each<[number, string]>([[0, 'progressing'], [60, 'progressing'], [61, 'stalled'], [86_400, 'stalled']])(
      'reports readyNodesDone when only skipped NotReady nodes hold old pods, and stalls naming them once the deadline passes (%is since the wait began: %s)',
      (later, phase) => {
        // prepare: the Ready nodes are done; n02 was NotReady before the rollout and keeps its old pod
        const obs: WaveObservation = {
          nodes: [node('n01'), node('n02', { ready: false }), node('n03')],
          pods: [newPod('n01'), oldPod('n02', { ready: false }), newPod('n03')],
        };
        const began = nextWave(obs, policy({ progressDeadlineSeconds: 60 }), checkpoint({ updatedAvailable: 2, lastProgressAt: iso(0) }), at(0));
        // act: the run that decided handed the rollout over (nothing left for it but NotReady nodes); the schedule drives it from there
        const d = nextWave(obs, policy({ progressDeadlineSeconds: 60 }), { ...began.checkpoint, handedOffAt: iso(0) }, at(later));
        // assert
        expect(d).toMatchObject({ phase, readyNodesDone: true, notReadyNodes: ['n02'], podsToDelete: [] });
        expect(d.reason).toContain('waiting for NotReady node n02 to take the new template');
        if (phase === 'stalled') expect(d.reason).toMatch(/^stalled: no progress for \d+s \(deadline 60s\) while every Ready node is updated/);
        else expect(d.wakeAt).toBeDefined();
      },
    );

    it('replaces an old pod at once when its node comes back, despite the time spent waiting', () => {
      const obs: WaveObservation = {
        nodes: [node('n01'), node('n02'), node('n03')],
        pods: [newPod('n01'), oldPod('n02'), newPod('n03')],
      };
      // the previous decision waited on NotReady n02, which refreshed the progress clock
      const waited = nextWave({ ...obs, nodes: [node('n01'), node('n02', { ready: false }), node('n03')] }, policy({ progressDeadlineSeconds: 60 }), checkpoint({ updatedAvailable: 2 }), at(3600));
      const d = nextWave(obs, policy({ progressDeadlineSeconds: 60 }), waited.checkpoint, at(3630));
      expect(deletedNodes(d)).toEqual(['n02']);
    });

    it('is complete when skipped NotReady nodes already run the updated template', () => {
      const obs: WaveObservation = {
        nodes: [node('n01'), node('n02', { ready: false })],
        pods: [newPod('n01'), newPod('n02', { ready: false })],
      };
      const d = nextWave(obs, policy(), checkpoint(), at(0));
      expect(d).toMatchObject({ phase: 'complete', readyNodesDone: true, notReadyNodes: ['n02'] });
    });

    it('waits, deleting nothing, while more than maxUnavailable desired nodes are NotReady', () => {
      const obs = cluster(6);
      obs.nodes[0] = node('n01', { ready: false });
      obs.nodes[1] = node('n02', { ready: false });
      const pol = policy({ maxUnavailable: 1, progressDeadlineSeconds: 60 });
      const d = nextWave(obs, pol, checkpoint({ lastProgressAt: iso(-10) }), at(0));
      expect(d).toMatchObject({ phase: 'waiting', podsToDelete: [], notReadyNodes: ['n01', 'n02'] });
      expect(d.reason).toContain('2 desired nodes are NotReady (n01, n02), more than maxUnavailable 1');
      expect(d.checkpoint).toMatchObject({ lastProgressAt: iso(-10), waitingSince: iso(0) });
      expect(d.wakeAt).toBe(iso(30));
    });

    it('stalls once it has waited on NotReady nodes past the deadline, naming them, and starts the clock again when they are back', () => {
      // prepare: two of six nodes NotReady with maxUnavailable 1, a driver deciding every 30 s
      const sick = cluster(6);
      sick.nodes[0] = node('n01', { ready: false });
      sick.nodes[1] = node('n02', { ready: false });
      const pol = policy({ maxUnavailable: 1, progressDeadlineSeconds: 60 });
      let cp: WaveCheckpoint | undefined = checkpoint({ lastProgressAt: iso(0) });
      const phases: string[] = [];
      let last: WaveDecision | undefined;
      for (const t of [0, 30, 60, 61]) {
        last = nextWave(sick, pol, cp, at(t));
        phases.push(last.phase);
        cp = last.checkpoint;
      }
      // act: the nodes are back
      const back = nextWave(cluster(6), pol, cp, at(90));
      // assert
      expect(phases).toEqual(['waiting', 'waiting', 'waiting', 'stalled']);
      expect(last!.reason).toBe('stalled: no progress for 61s (deadline 60s) while 2 desired nodes are NotReady (n01, n02), more than maxUnavailable 1; deleting nothing until enough of them are Ready again (0/4 nodes updated and available, 0 unavailable)');
      expect(back).toMatchObject({ phase: 'progressing' });
      expect(deletedNodes(back)).toEqual(['n01']);
      expect(back.checkpoint.waitingSince).toBeUndefined();
    });
  });

  describe('an update that breaks the nodes it reaches', () => {
    // Six nodes, maxUnavailable 1, and every node that receives the new pod goes NotReady.
    function breakingRollout(maxUnavailable: number | string, canary?: CanaryPolicy) {
      const names = Array.from({ length: 6 }, (_, i) => nodeName(i + 1));
      const broken = new Set<string>();
      const runsNew = new Set<string>();
      let cp: WaveCheckpoint | undefined;
      const decisions: WaveDecision[] = [];
      for (let step = 0; step < 20; step++) {
        const obs: WaveObservation = {
          nodes: names.map((n) => node(n, { ready: !broken.has(n) })),
          pods: names.map((n) => (runsNew.has(n) ? newPod(n, { ready: false }) : oldPod(n))),
        };
        const d = nextWave(obs, policy({ maxUnavailable, canary }), cp, at(step * 10));
        decisions.push(d);
        cp = d.checkpoint;
        // the controller replaces each deleted pod and the new pod takes its node down as it lands
        for (const p of d.podsToDelete) {
          runsNew.add(p.node);
          broken.add(p.node);
        }
        if (d.phase === 'stalled' || d.phase === 'complete') break;
      }
      return { decisions, last: decisions[decisions.length - 1], reached: [...runsNew].sort() };
    }

    it('stops after the first wave, is stalled, and never records the update as complete', () => {
      const { last, reached, decisions } = breakingRollout(1);
      expect(reached).toEqual(['n01']);
      expect(last.phase).toBe('stalled');
      expect(last.checkpoint.failed).toMatchObject({ nodes: ['n01'] });
      expect(last.reason).toMatch(/^stopped: the update broke 1 node \(n01\)/);
      expect(last.brokenNodes).toEqual(['n01']);
      expect(decisions.some((d) => d.phase === 'complete')).toBe(false);
    });

    it.each<[number | string, number]>([[2, 2], ['50%', 3]])('with maxUnavailable %p reaches at most %i nodes', (maxUnavailable, k) => {
      const { last, reached } = breakingRollout(maxUnavailable);
      expect(reached.length).toBeLessThanOrEqual(k);
      expect(last.phase).toBe('stalled');
    });

    it('counts a node that went NotReady after its pod was deleted while Ready as unavailable', () => {
      // prepare: this rollout deleted n01's pod while n01 was Ready; n01 is NotReady now, its new pod not there yet
      const obs: WaveObservation = { nodes: [node('n01', { ready: false }), node('n02'), node('n03')], pods: [oldPod('n02'), oldPod('n03')] };
      const before = checkpoint({ inFlight: [{ node: 'n01', uid: 'uid-n01-old', deletedAt: iso(-5) }], touched: [{ node: 'n01', readyAtDelete: true, at: iso(-5) }] });
      const d = nextWave(obs, policy({ maxUnavailable: 1 }), before, at(0));
      expect(d.counts).toMatchObject({ unavailable: 1, skipped: 0 });
      expect(d.notReadyNodes).toEqual([]);
      expect(d.brokenNodes).toEqual(['n01']);
      expect(d.podsToDelete).toEqual([]);
      expect(d.phase).toBe('progressing');
    });

    it('stays stopped once it has failed, even when the broken node recovers', () => {
      const failed = { at: iso(-60), reason: 'the update broke 1 node (n01)', nodes: ['n01'] };
      const d = nextWave(cluster(3, (n) => [n === 'n01' ? newPod(n) : oldPod(n)]), policy(), checkpoint({ failed, touched: [{ node: 'n01', readyAtDelete: true, at: iso(-90) }] }), at(0));
      expect(d).toMatchObject({ phase: 'stalled', podsToDelete: [] });
      expect(d.checkpoint.failed).toEqual(failed);
    });

    it('a rollback replaces the bad pods on the nodes the bad version broke, although they are NotReady', () => {
      // prepare: the rollback's target template is what n02..n04 still run (updated); n01 runs the bad pod and is NotReady
      const obs: WaveObservation = {
        nodes: [node('n01', { ready: false }), node('n02'), node('n03'), node('n04'), node('n05', { ready: false })],
        pods: [oldPod('n01', { ready: false }), newPod('n02'), newPod('n03'), newPod('n04'), oldPod('n05', { ready: false })],
      };
      const seed = checkpoint({ repairNodes: ['n01'], canaryPassed: true });
      const d = nextWave(obs, policy({ maxUnavailable: 1, canary: { count: 1, holdSeconds: 60 } }), seed, at(0));
      expect(deletedNodes(d)).toEqual(['n01']);
      expect(d.checkpoint.touched).toEqual([{ node: 'n01', readyAtDelete: false, at: iso(0) }]);
      // n05 was NotReady before anything touched it: skipped, not repaired
      expect(d.notReadyNodes).toEqual(['n01', 'n05']);
    });
  });

  describe('nodes the update reaches without a deletion, judged from the observation alone', () => {
    it('counts a NotReady node holding only a terminating pod as exposed: no Ready node\'s pod goes while it is unproven', () => {
      // prepare: n01 is NotReady and its pod is going away, so the controller will put the update there without a deletion
      const obs: WaveObservation = { nodes: [node('n01', { ready: false }), node('n02')], pods: [oldPod('n01', { ready: false, terminating: true }), oldPod('n02')] };
      // act
      const d = nextWave(obs, policy({ maxUnavailable: 1 }), undefined, at(0));
      // assert
      expect(d.podsToDelete).toEqual([]);
      expect(d.reason).toMatch(/1 node runs the update without being proven yet \(NotReady: n01\)/);
      expect(d.checkpoint.touched).toEqual([{ node: 'n01', readyAtDelete: false, at: iso(0) }]);
    });

    it('after a run died right after its apply, counts a NotReady node that already runs a pod created for the update as exposed, and records it to repair', () => {
      // prepare: no checkpoint (the run that applied died); n01 got the update from the controller and is NotReady now
      const obs: WaveObservation = { nodes: [node('n01', { ready: false }), node('n02')], pods: [newPod('n01', { ready: false, sinceApply: true }), oldPod('n02')] };
      const d = nextWave(obs, policy({ maxUnavailable: 1 }), undefined, at(30));
      expect(d.podsToDelete).toEqual([]);
      expect(d.checkpoint.touched).toEqual([{ node: 'n01', readyAtDelete: false, at: iso(30) }]);
      // not evidence against the update: what n01 was when the update arrived is not known
      expect(d.checkpoint.failed).toBeUndefined();
    });

    it('does not count a NotReady node whose updated pod predates the apply (a rollback to the template it still runs)', () => {
      const obs: WaveObservation = { nodes: [node('n01', { ready: false }), node('n02'), node('n03')], pods: [newPod('n01', { ready: false, sinceApply: false }), oldPod('n02'), newPod('n03', { sinceApply: false })] };
      const d = nextWave(obs, policy({ maxUnavailable: 1 }), checkpoint({ canaryPassed: true }), at(0));
      expect(deletedNodes(d)).toEqual(['n02']);
      expect(d.checkpoint.touched).toEqual([{ node: 'n02', readyAtDelete: true, at: iso(0) }]);
    });

    it('counts a node deleted from while NotReady and seen Ready before the update arrived as reached while Ready: it breaking then stops the rollout', () => {
      // prepare: a repair deleted n01's pod while n01 was NotReady; n01 is Ready now, its pod gone, the update not there yet
      const before = checkpoint({ touched: [{ node: 'n01', readyAtDelete: false, at: iso(-5) }], inFlight: [{ node: 'n01', uid: 'uid-n01-old', deletedAt: iso(-5) }] });
      const ready = nextWave({ nodes: [node('n01'), node('n02')], pods: [oldPod('n02')] }, policy({ maxUnavailable: 1 }), before, at(0));
      expect(ready.podsToDelete).toEqual([]);
      expect(ready.checkpoint.touched).toEqual([{ node: 'n01', readyAtDelete: true, at: iso(-5) }]);
      // act: the update lands on n01 and n01 goes NotReady
      const broken = nextWave({ nodes: [node('n01', { ready: false }), node('n02')], pods: [newPod('n01', { ready: false, sinceApply: true }), oldPod('n02')] }, policy({ maxUnavailable: 1 }), ready.checkpoint, at(2));
      expect(broken.phase).toBe('stalled');
      expect(broken.checkpoint.failed).toMatchObject({ nodes: ['n01'] });
      expect(broken.podsToDelete).toEqual([]);
    });
  });

  describe('what a template change, a rollback and completion wait for', () => {
    it('holds a template change while more desired nodes than maxUnavailable have no running pod, and applies it once they have one', () => {
      const podless: WaveObservation = { nodes: [node('n01'), node('n02'), node('n03', { ready: false })], pods: [oldPod('n01', { terminating: true }), oldPod('n02')] };
      expect(holdBeforeApply(podless, 1)).toMatch(/^held: 2 desired nodes have no running pod \(n01, n03\)/);
      expect(holdBeforeApply(podless, 2)).toBeUndefined();
      expect(holdBeforeApply(cluster(3), 1)).toBeUndefined();
    });

    it('a rollback replaces the pod of every NotReady node running another template, recorded or not, within the availability budget only', () => {
      // prepare: n01 and n02 are NotReady and run the bad template (old here); no record names them; n03, n04 run the restored one
      const obs: WaveObservation = {
        nodes: [node('n01', { ready: false }), node('n02', { ready: false }), node('n03'), node('n04')],
        pods: [oldPod('n01', { ready: false }), oldPod('n02', { ready: false }), newPod('n03', { sinceApply: false }), newPod('n04', { sinceApply: false })],
      };
      const d = nextWave(obs, policy({ maxUnavailable: 1 }), checkpoint({ canaryPassed: true, restores: true }), at(0));
      expect(deletedNodes(d)).toEqual(['n01', 'n02']);
    });

    it('is not complete while an updated pod has not proven itself, so a node that breaks within the settle time is never recorded healthy', () => {
      const obs = cluster(2, (name) => [newPod(name, { readyAgo: name === 'n02' ? 0 : 3600, sinceApply: true })]);
      const d = nextWave(obs, policy({ maxUnavailable: 1 }), checkpoint(), at(0));
      expect(d.phase).toBe('progressing');
      expect(d.wakeAt).toBe(iso(1));
      expect(nextWave(obs, policy({ maxUnavailable: 1 }), checkpoint(), at(1)).phase).toBe('complete');
    });

    it('is not complete with every desired node NotReady: the update proved itself nowhere', () => {
      const obs: WaveObservation = { nodes: [node('n01', { ready: false })], pods: [newPod('n01', { ready: false, sinceApply: true })] };
      expect(nextWave(obs, policy(), checkpoint(), at(0)).phase).not.toBe('complete');
    });
  });

  describe('old pods that are already unavailable', () => {
    it('are replaced without spending budget, but never more at once than maxUnavailable nodes not yet proven on the update', () => {
      // prepare: 5 of 6 old pods are broken; a broken update would take down every node it reaches
      const obs = cluster(6, (name) => [oldPod(name, { ready: name === 'n06' })]);
      const d = nextWave(obs, policy({ maxUnavailable: 2 }), checkpoint(), at(0));
      expect(deletedNodes(d)).toEqual(['n01', 'n02']);
    });
  });

  describe('pause', () => {
    it('deletes nothing while paused, and paused time does not count toward the deadline', () => {
      // prepare: paused long past the deadline
      const obs = cluster(4);
      const before = checkpoint({ lastProgressAt: iso(-5000) });
      // act
      const paused = nextWave(obs, policy({ paused: true }), before, at(0));
      const resumed = nextWave(obs, policy({ paused: false }), paused.checkpoint, at(30));
      // assert
      expect(paused).toMatchObject({ phase: 'paused', podsToDelete: [] });
      expect(paused.checkpoint.lastProgressAt).toBe(iso(0));
      expect(resumed.phase).toBe('progressing');
      expect(deletedNodes(resumed)).toEqual(['n01']);
    });
  });

  describe('canary', () => {
    const hold: Pick<CanaryPolicy, 'holdSeconds'> = { holdSeconds: 300 };

    it('by count: replaces only the first `count` Ready nodes by name until the canary passes', () => {
      // prepare: n01 is NotReady, so the canaries are n02 and n03
      const obs = cluster(6);
      obs.nodes[0] = node('n01', { ready: false });
      // act
      const d = nextWave(obs, policy({ maxUnavailable: 4, canary: { count: 2, ...hold } }), undefined, at(0));
      // assert
      expect(d.checkpoint.canaryNodes).toEqual(['n02', 'n03']);
      expect(deletedNodes(d)).toEqual(['n02', 'n03']);
      expect(d.reason).toMatch(/^canary: deleting 2 old pods/);
    });

    it('by selector: replaces only nodes whose labels match every key', () => {
      const obs = cluster(5);
      obs.nodes = obs.nodes.map((n) => node(n.name, { labels: { zone: n.name === 'n04' ? 'b' : 'a', canary: ['n03', 'n04', 'n05'].includes(n.name) ? 'true' : 'false' } }));
      const d = nextWave(obs, policy({ maxUnavailable: 5, canary: { selector: { canary: 'true', zone: 'a' }, ...hold } }), undefined, at(0));
      expect(d.checkpoint.canaryNodes).toEqual(['n03', 'n05']);
      expect(deletedNodes(d)).toEqual(['n03', 'n05']);
    });

    it('keeps the canary set chosen at the first decision', () => {
      const canary = { count: 1, ...hold };
      const first = nextWave(cluster(3), policy({ canary }), undefined, at(0));
      // a node that sorts first joins the cluster
      const later: WaveObservation = { ...cluster(3), nodes: [node('n00'), ...cluster(3).nodes], pods: [oldPod('n00'), ...cluster(3).pods] };
      later.pods = later.pods.map((p) => (p.node === 'n01' ? newPod('n01', { ready: false }) : p));
      const second = nextWave(later, policy({ canary }), first.checkpoint, at(10));
      expect(first.checkpoint.canaryNodes).toEqual(['n01']);
      expect(second.checkpoint.canaryNodes).toEqual(['n01']);
      expect(second.podsToDelete).toEqual([]);
    });

    it('holds once every canary node is updated and available, then proceeds with every node', () => {
      // prepare: canaries n01, n02 already run the updated template
      const canary = { count: 2, ...hold };
      const obs = cluster(5, (name) => [['n01', 'n02'].includes(name) ? newPod(name) : oldPod(name)]);
      const start = checkpoint({ canaryNodes: ['n01', 'n02'], updatedAvailable: 1 });
      // act
      const holding = nextWave(obs, policy({ maxUnavailable: 2, canary }), start, at(0));
      const stillHolding = nextWave(obs, policy({ maxUnavailable: 2, canary }), holding.checkpoint, at(299));
      const passed = nextWave(obs, policy({ maxUnavailable: 2, canary }), stillHolding.checkpoint, at(300));
      // assert
      expect(holding).toMatchObject({ phase: 'canary-hold', podsToDelete: [], wakeAt: iso(300) });
      expect(holding.checkpoint.canaryAvailableSince).toBe(iso(0));
      expect(stillHolding).toMatchObject({ phase: 'canary-hold', podsToDelete: [] });
      expect(passed.checkpoint.canaryPassed).toBe(true);
      expect(passed.phase).toBe('progressing');
      expect(deletedNodes(passed)).toEqual(['n03', 'n04']);
    });

    it('restarts the hold when a canary pod becomes unavailable during it', () => {
      const canary = { count: 2, ...hold };
      const healthy = cluster(4, (name) => [['n01', 'n02'].includes(name) ? newPod(name) : oldPod(name)]);
      const sick = cluster(4, (name) => [name === 'n01' ? newPod(name) : name === 'n02' ? newPod(name, { ready: false }) : oldPod(name)]);
      const holding = nextWave(healthy, policy({ canary }), checkpoint({ canaryNodes: ['n01', 'n02'] }), at(0));
      // act
      const reset = nextWave(sick, policy({ canary }), holding.checkpoint, at(200));
      const again = nextWave(healthy, policy({ canary }), reset.checkpoint, at(250));
      const notYet = nextWave(healthy, policy({ canary }), again.checkpoint, at(400));
      // assert
      expect(reset.phase).toBe('progressing');
      expect(reset.checkpoint.canaryAvailableSince).toBeUndefined();
      expect(reset.podsToDelete).toEqual([]);
      expect(again.checkpoint.canaryAvailableSince).toBe(iso(250));
      expect(notYet.phase).toBe('canary-hold');
      expect(notYet.wakeAt).toBe(iso(550));
    });

    it.each<[string, CanaryPolicy]>([
      ['a selector that matches no node', { selector: { pool: 'canary' }, ...hold }],
      ['a selector that matches only NotReady nodes', { selector: { pool: 'sick' }, ...hold }],
    ])('never passes with %s: deletes nothing and names the annotation', (_label, canary) => {
      const obs = cluster(3);
      obs.nodes[2] = node('n03', { ready: false, labels: { pool: 'sick' } });
      const d = nextWave(obs, policy({ canary, progressDeadlineSeconds: 60 }), checkpoint({ lastProgressAt: iso(-30) }), at(0));
      const later = nextWave(obs, policy({ canary, progressDeadlineSeconds: 60 }), d.checkpoint, at(31));
      expect(d).toMatchObject({ phase: 'waiting', podsToDelete: [] });
      expect(later).toMatchObject({ phase: 'stalled', podsToDelete: [] });
      expect(later.reason).toContain('selects no Ready node');
      expect(d.checkpoint.canaryPassed).toBeUndefined();
      expect(d.reason).toContain(`daemonset-gitops.io/canary: "pool=`);
    });

    it('never stalls while holding, however long the hold', () => {
      const canary = { count: 1, holdSeconds: 3600 };
      const obs = cluster(3, (name) => [name === 'n01' ? newPod(name) : oldPod(name)]);
      const holding = nextWave(obs, policy({ canary, progressDeadlineSeconds: 60 }), checkpoint({ canaryNodes: ['n01'] }), at(0));
      const d = nextWave(obs, policy({ canary, progressDeadlineSeconds: 60 }), holding.checkpoint, at(1800));
      expect(d.phase).toBe('canary-hold');
      const passed = nextWave(obs, policy({ canary, progressDeadlineSeconds: 60 }), d.checkpoint, at(3600));
      expect(deletedNodes(passed)).toEqual(['n02']);
    });

    it('stalls, rather than spread the update beyond the canary, while a broken old pod elsewhere holds the whole budget', () => {
      // prepare: canary n01; n03's old pod is broken, which uses up maxUnavailable 1
      const obs = cluster(3, (name) => [oldPod(name, { ready: name !== 'n03' })]);
      const pol = policy({ canary: { count: 1, ...hold }, progressDeadlineSeconds: 600 });
      // act
      const waiting = nextWave(obs, pol, undefined, at(0));
      // a driver looks again at least every 30 s
      let cp = waiting.checkpoint;
      for (let t = 30; t <= 600; t += 30) cp = nextWave(obs, pol, cp, at(t)).checkpoint;
      const stalled = nextWave(obs, pol, cp, at(601));
      // assert
      expect(waiting).toMatchObject({ phase: 'progressing', podsToDelete: [] });
      expect(waiting.reason).toBe('canary: waiting: budget 0 of maxUnavailable 1 with 1 unavailable (n03); 1 old pod waits');
      expect(stalled).toMatchObject({ phase: 'stalled', podsToDelete: [] });
      expect(stalled.reason).toContain('(n03)');
    });

    it('chooses again when every canary node went NotReady before it was touched', () => {
      const obs = cluster(3);
      obs.nodes[0] = node('n01', { ready: false });
      const d = nextWave(obs, policy({ canary: { count: 1, ...hold } }), checkpoint({ canaryNodes: ['n01'] }), at(0));
      expect(d.checkpoint.canaryNodes).toEqual(['n02']);
      expect(deletedNodes(d)).toEqual(['n02']);
    });

    it('fails when a canary pod breaks its own node, and touches no other node', () => {
      // prepare: canary n01 received the update while Ready and is NotReady since
      const obs: WaveObservation = { nodes: [node('n01', { ready: false }), node('n02'), node('n03')], pods: [newPod('n01', { ready: false }), oldPod('n02'), oldPod('n03')] };
      const before = checkpoint({ canaryNodes: ['n01'], touched: [{ node: 'n01', readyAtDelete: true, at: iso(-30) }] });
      const d = nextWave(obs, policy({ maxUnavailable: 2, canary: { count: 1, ...hold } }), before, at(0));
      expect(d).toMatchObject({ phase: 'stalled', podsToDelete: [] });
      expect(d.checkpoint.failed?.nodes).toEqual(['n01']);
    });

    it('stalls when the canary does not become available within the deadline', () => {
      const obs = cluster(3, (n) => [n === 'n01' ? newPod(n, { ready: false }) : oldPod(n)]);
      const pol = policy({ maxUnavailable: 2, canary: { count: 1, ...hold }, progressDeadlineSeconds: 300 });
      const d = nextWave(obs, pol, checkpoint({ canaryNodes: ['n01'], lastProgressAt: iso(-301) }), at(0));
      expect(d).toMatchObject({ phase: 'stalled', podsToDelete: [] });
    });
  });

  describe('progress deadline', () => {
    // n01's updated pod never becomes Ready; the budget (2) leaves room for one more delete
    const stuck = () => cluster(4, (name) => [name === 'n01' ? newPod(name, { ready: false }) : oldPod(name)]);
    const deadline = policy({ maxUnavailable: 2, progressDeadlineSeconds: 600 });

    it('stalls after the deadline with no progress and deletes nothing, budget or not', () => {
      const d = nextWave(stuck(), deadline, checkpoint({ lastProgressAt: iso(-601) }), at(0));
      expect(d).toMatchObject({ phase: 'stalled', podsToDelete: [] });
      expect(d.counts.budget).toBe(1);
      expect(d.reason).toMatch(/^stalled: no progress for 601s \(deadline 600s\)/);
      expect(d.wakeAt).toBeUndefined();
    });

    it('is not stalled at exactly the deadline, and wakes just after it', () => {
      const d = nextWave(
        cluster(4, (name) => [name === 'n01' || name === 'n02' ? newPod(name, { ready: false }) : oldPod(name)]),
        deadline,
        checkpoint({ lastProgressAt: iso(-600) }),
        at(0),
      );
      expect(d.phase).toBe('progressing');
      expect(d.podsToDelete).toEqual([]);
      expect(d.wakeAt).toBe(new Date(T0 + 1).toISOString());
    });

    it('recovers by itself when an updated pod becomes available', () => {
      // prepare: stalled, then n01 becomes Ready
      const stalled = nextWave(stuck(), deadline, checkpoint({ lastProgressAt: iso(-700) }), at(0));
      const healed = stuck();
      healed.pods[0] = newPod('n01', { readyAgo: 5 });
      // act
      const d = nextWave(healed, deadline, stalled.checkpoint, at(10));
      // assert
      expect(stalled.phase).toBe('stalled');
      expect(d.phase).toBe('progressing');
      expect(deletedNodes(d)).toEqual(['n02', 'n03']);
      expect(d.checkpoint.lastProgressAt).toBe(iso(10));
    });
  });

  describe('completion', () => {
    it('is complete when every node runs an updated, available pod', () => {
      const d = nextWave(cluster(3, (name) => [newPod(name)]), policy(), checkpoint(), at(0));
      expect(d).toMatchObject({ phase: 'complete', podsToDelete: [], readyNodesDone: true, notReadyNodes: [] });
      expect(d.counts).toMatchObject({ desired: 3, updated: 3, updatedAvailable: 3, available: 3, unavailable: 0 });
      expect(d.wakeAt).toBeUndefined();
    });

    it.each<[string, WaveObservation, WavePolicy]>([
      ['an old pod is still terminating', { ...cluster(2, (name) => [newPod(name)]), pods: [newPod('n01'), newPod('n02'), oldPod('n02', { terminating: true })] }, policy()],
      ['a pod is not created yet', cluster(3, (name) => (name === 'n03' ? [] : [newPod(name)])), policy()],
      ['a pod is inside minReadySeconds', cluster(2, (name) => [newPod(name, { readyAgo: 5 })]), policy({ minReadySeconds: 10 })],
    ])('is not complete while %s', (_label, obs, pol) => {
      const d = nextWave(obs, pol, checkpoint(), at(0));
      expect(d.phase).toBe('progressing');
      expect(d.readyNodesDone).toBe(false);
    });
  });

  describe('checkpoint', () => {
    it('starts a rollout, records deleted pods in flight and counts the wave', () => {
      const d = nextWave(cluster(3), policy(), undefined, at(0));
      expect(d.checkpoint).toEqual({
        startedAt: iso(0),
        lastProgressAt: iso(0),
        decidedAt: iso(0),
        updatedAvailable: 0,
        waves: 1,
        inFlight: [{ node: 'n01', uid: 'uid-n01-old', deletedAt: iso(0) }],
        touched: [{ node: 'n01', readyAtDelete: true, at: iso(0) }],
      });
    });

    it('forgets an in-flight pod once its replacement appears', () => {
      const obs = cluster(3, (name) => [name === 'n01' ? newPod(name, { ready: false }) : oldPod(name)]);
      const before = checkpoint({ waves: 1, inFlight: [{ node: 'n01', uid: 'uid-n01-old', deletedAt: iso(-5) }] });
      const d = nextWave(obs, policy(), before, at(0));
      expect(d.checkpoint.inFlight).toEqual([]);
      expect(d.checkpoint.waves).toBe(1);
    });

    it('counts a node whose pod is gone and not yet replaced as unavailable, and waits for it', () => {
      // prepare: n01's old pod is gone, the controller has not created the new one
      const obs = cluster(3, (name) => (name === 'n01' ? [] : [oldPod(name)]));
      const before = checkpoint({ inFlight: [{ node: 'n01', uid: 'uid-n01-old', deletedAt: iso(-5) }] });
      // act
      const d = nextWave(obs, policy(), before, at(0));
      // assert
      expect(d.counts.unavailable).toBe(1);
      expect(d.podsToDelete).toEqual([]);
      expect(d.checkpoint.inFlight).toEqual(before.inFlight);
    });

    it('retries a delete the observation does not show yet, counting that pod as unavailable', () => {
      // prepare: the watch still shows n01's deleted pod as Ready
      const obs = cluster(3);
      const before = checkpoint({ inFlight: [{ node: 'n01', uid: 'uid-n01-old', deletedAt: iso(-5) }] });
      // act
      const d = nextWave(obs, policy({ maxUnavailable: 1 }), before, at(0));
      // assert: n01 again, and nothing more, since its loss already spends the budget
      expect(d.counts.unavailable).toBe(1);
      expect(deletedNodes(d)).toEqual(['n01']);
    });

    it('leaves a different pod on a node with a pod in flight alone while the deleted pod is still there', () => {
      const obs = cluster(2, (name) => [oldPod(name, { uid: `other-${name}`, ready: false })]);
      obs.pods.push(oldPod('n01', { terminating: true, ready: false }));
      const before = checkpoint({ inFlight: [{ node: 'n01', uid: 'uid-n01-old', deletedAt: iso(-5) }] });
      const d = nextWave(obs, policy({ maxUnavailable: 2 }), before, at(0));
      expect(deletedNodes(d)).toEqual(['n02']);
      expect(d.checkpoint.inFlight.map((e) => e.node)).toEqual(['n01', 'n02']);
    });

    it('ends a deletion whose pod is gone and whose node the controller filled with another template (kubectl set image meanwhile): that pod is an old pod to replace', () => {
      // prepare: n01's deleted pod is gone; the controller put a pod of the drifted template there, which the restored template does not count as updated
      const obs = cluster(2, (name) => [oldPod(name, { uid: `drifted-${name}` })]);
      const before = checkpoint({ inFlight: [{ node: 'n01', uid: 'uid-n01-old', deletedAt: iso(-5) }] });
      // act
      const d = nextWave(obs, policy({ maxUnavailable: 1 }), before, at(0));
      // assert: n01 is no longer waited for; its pod goes, within the budget of one
      expect(d.podsToDelete).toEqual([{ name: 'agent-n01-old', uid: 'drifted-n01', node: 'n01' }]);
      expect(d.reason).not.toMatch(/waiting for replacements/);
    });

    it('does not mutate its inputs and decides the same way twice', () => {
      const obs = cluster(4, (name) => [name === 'n02' ? newPod(name, { readyAgo: 1 }) : oldPod(name)]);
      const pol = policy({ maxUnavailable: '50%', minReadySeconds: 10, canary: { count: 2, holdSeconds: 60 } });
      const before = checkpoint({ inFlight: [{ node: 'n02', uid: 'uid-n02-old', deletedAt: iso(-5) }] });
      const copies = structuredClone({ obs, pol, before });
      const first = nextWave(obs, pol, before, at(0));
      const second = nextWave(obs, pol, before, at(0));
      expect({ obs, pol, before }).toEqual(copies);
      expect(second).toEqual(first);
    });
  });
});

