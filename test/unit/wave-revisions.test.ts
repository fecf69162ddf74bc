/**
 * Managed rollouts across revisions, crashes and time: what `stateAfterApply` carries from
 * one revision's rollout to the next, and what `nextWave` then decides. The cluster here is
 * a small world of named templates: the DaemonSet controller replaces a deleted pod with the
 * current template, and a template marked as breaking takes its node down as it lands.
 */
import { DRIVEN_GAP_SECONDS, nextWave, SETTLE_SECONDS, type WaveCheckpoint, type WaveDecision, type WaveObservation, type WavePod, type WavePolicy } from '../../lib/rollout/wave';
import { checkpointForNextRevision, managedRollbackSeed, stateAfterApply, type Cause, type DaemonSetState, type RolloutState } from '../../lib/store/records';

const T0 = Date.parse('2024-05-01T12:00:00.000Z');
const at = (seconds: number): Date => new Date(T0 + seconds * 1000);
const iso = (seconds: number): string => at(seconds).toISOString();

// ---------------------------------------------------------------------------------------
// A world of nodes and pods by template.

interface WorldPod { uid: string; template: string; ready: boolean; readySince?: number; terminating?: boolean }
interface World { now: number; nodes: Map<string, { ready: boolean }>; pods: Map<string, WorldPod[]>; breaking: Set<string>; uids: number }

function world(names: string[], template: string): World {
  const w: World = { now: 0, nodes: new Map(), pods: new Map(), breaking: new Set(), uids: 0 };
  for (const n of names) {
    w.nodes.set(n, { ready: true });
    w.pods.set(n, [{ uid: `${n}-${++w.uids}`, template, ready: true, readySince: -3600 }]);
  }
  return w;
}

function observe(w: World, target: string): WaveObservation {
  const pods: WavePod[] = [];
  for (const [node, here] of w.pods) {
    for (const p of here) {
      pods.push({ name: `agent-${p.uid}`, uid: p.uid, node, updated: p.template === target, ready: p.ready, readySince: p.readySince === undefined ? undefined : iso(p.readySince), terminating: p.terminating === true });
    }
  }
  return { nodes: [...w.nodes].map(([name, n]) => ({ name, ready: n.ready, desired: true, labels: {} })), pods };
}

/** The controller's answer to deletions: each deleted pod replaced by one of `template`, Ready at once unless it breaks its node. */
function replace(w: World, d: WaveDecision, template: string): void {
  for (const p of d.podsToDelete) {
    const breaks = w.breaking.has(template);
    w.pods.set(p.node, [{ uid: `${p.node}-${++w.uids}`, template, ready: !breaks, readySince: breaks ? undefined : w.now }]);
    w.nodes.get(p.node)!.ready = !breaks;
  }
}

function unavailableNodes(w: World): string[] {
  return [...w.nodes].filter(([name, n]) => !n.ready || !(w.pods.get(name) ?? []).some((p) => p.ready && !p.terminating)).map(([name]) => name);
}

const policy = (o: Partial<WavePolicy> = {}): WavePolicy => ({ maxUnavailable: 1, minReadySeconds: 0, paused: false, progressDeadlineSeconds: 600, ...o });

/** A DaemonSet's state record as apply.ts writes it for revision `revision`. */
function applied(current: DaemonSetState | undefined, revision: number, opts: { sameTemplate: boolean; cause: Cause; at: number }): DaemonSetState {
  return stateAfterApply(current, { namespace: 'ns', name: 'agent', revision, digest: `d${revision}`, mode: 'managed', at: iso(opts.at), gitDigest: null, sameTemplate: opts.sameTemplate, cause: opts.cause });
}

/** Records a decision in the state, as the driver does. */
function recorded(state: DaemonSetState, d: WaveDecision): DaemonSetState {
  const phase: RolloutState['phase'] = d.phase === 'complete' ? 'complete' : d.phase === 'stalled' ? 'stalled' : 'progressing';
  return { ...state, rollout: { ...state.rollout!, phase, managed: { checkpoint: d.checkpoint, wavePhase: d.phase } } };
}

/** Drives the current revision (target template) every 10 s until it ends or `steps` run out; checks the budget after every decision. */
function drive(w: World, state: DaemonSetState, target: string, pol: WavePolicy, steps = 40): { state: DaemonSetState; decisions: WaveDecision[]; maxUnavailable: number } {
  const decisions: WaveDecision[] = [];
  let maxUnavailable = unavailableNodes(w).length;
  for (let i = 0; i < steps; i++) {
    const d = nextWave(observe(w, target), pol, state.rollout?.managed?.checkpoint, at(w.now));
    decisions.push(d);
    state = recorded(state, d);
    // the moment after the deletions, before the controller replaces the pods
    maxUnavailable = Math.max(maxUnavailable, new Set([...unavailableNodes(w), ...d.podsToDelete.map((p) => p.node)]).size);
    replace(w, d, target);
    maxUnavailable = Math.max(maxUnavailable, unavailableNodes(w).length);
    if (d.phase === 'complete' || d.phase === 'stalled') break;
    w.now += 10;
  }
  return { state, decisions, maxUnavailable };
}

const deleted = (ds: WaveDecision[]): string[] => ds.flatMap((d) => d.podsToDelete.map((p) => p.node));

// ---------------------------------------------------------------------------------------

describe('a new revision of a managed DaemonSet', () => {
  // Four nodes, maxUnavailable 1, canary 1: revision 1 (template BAD) breaks node a and stops.
  function brokenByRevision1() {
    const w = world(['a', 'b', 'c', 'd'], 'GOOD');
    w.breaking.add('BAD');
    const pol = policy({ canary: { count: 1, holdSeconds: 30 } });
    const r1 = drive(w, applied(undefined, 1, { sameTemplate: false, cause: 'git-change', at: 0 }), 'BAD', pol);
    return { w, pol, r1 };
  }

  it('revision 1 of the story breaks its canary node a and stops (the premise)', () => {
    const { w, r1 } = brokenByRevision1();
    expect(deleted(r1.decisions)).toEqual(['a']);
    expect(r1.decisions.at(-1)).toMatchObject({ phase: 'stalled', brokenNodes: ['a'] });
    expect(w.nodes.get('a')!.ready).toBe(false);
  });

  it('with the same template (an annotation added in Git) continues the same rollout: still stopped, b untouched', () => {
    const { w, pol, r1 } = brokenByRevision1();
    // act: the operator adds daemonset-gitops.io/auto-rollback: "true" in Git
    const r2 = drive(w, applied(r1.state, 2, { sameTemplate: true, cause: 'git-change', at: w.now }), 'BAD', pol);
    // assert
    expect(deleted(r2.decisions)).toEqual([]);
    expect(r2.decisions[0]).toMatchObject({ phase: 'stalled', brokenNodes: ['a'] });
    expect(r2.decisions[0].reason).toMatch(/^stopped: the update broke 1 node \(a\)/);
  });

  it('then rolled back, repairs a: the node revision 1 broke, though the revision it replaces is revision 2', () => {
    const { w, pol, r1 } = brokenByRevision1();
    const r2 = drive(w, applied(r1.state, 2, { sameTemplate: true, cause: 'git-change', at: w.now }), 'BAD', pol);
    // act
    const r3state = applied(r2.state, 3, { sameTemplate: false, cause: 'rollback', at: w.now });
    const r3 = drive(w, r3state, 'GOOD', pol);
    // assert
    expect(r3state.rollout!.managed!.checkpoint).toMatchObject({ repairNodes: ['a'], canaryPassed: true });
    expect(deleted(r3.decisions)).toEqual(['a']);
    expect(r3.decisions.at(-1)!.phase).toBe('complete');
    expect(unavailableNodes(w)).toEqual([]);
    expect(r3.maxUnavailable).toBeLessThanOrEqual(1);
  });

  it('with a forward fix (a new template) repairs a first, never deletes b while a is down, and completes', () => {
    const { w, pol, r1 } = brokenByRevision1();
    // act
    const r3 = drive(w, applied(r1.state, 3, { sameTemplate: false, cause: 'git-change', at: w.now }), 'FIX', pol);
    // assert
    expect(deleted(r3.decisions)[0]).toBe('a');
    expect(r3.maxUnavailable).toBeLessThanOrEqual(1);
    expect(r3.decisions.at(-1)!.phase).toBe('complete');
    expect([...w.pods.values()].map((p) => p[0].template)).toEqual(['FIX', 'FIX', 'FIX', 'FIX']);
  });

  it('with a forward fix that does not bring a back: touches no other node, and stalls at the deadline instead of waiting forever', () => {
    const { w, pol, r1 } = brokenByRevision1();
    w.breaking.add('FIX2');
    // act
    const r3 = drive(w, applied(r1.state, 3, { sameTemplate: false, cause: 'git-change', at: w.now }), 'FIX2', { ...pol, progressDeadlineSeconds: 60 });
    // assert: a got the fix (it was down anyway); b, c and d kept theirs
    expect(deleted(r3.decisions)).toEqual(['a']);
    expect(r3.maxUnavailable).toBe(1);
    const last = r3.decisions.at(-1)!;
    expect(last.phase).toBe('stalled');
    expect(last.reason).toMatch(/^stalled: no progress for \d+s \(deadline 60s\)/);
    // a was down before this revision touched it: the fix is not blamed for it
    expect(last.checkpoint.failed).toBeUndefined();
  });

  it('rolled back after a forward fix that left a down, repairs a: what revision 1 broke is carried through revision 3', () => {
    // prepare: revision 1 broke a; the fix (revision 3) reaches a, which stays down, and stalls
    const { w, pol, r1 } = brokenByRevision1();
    w.breaking.add('FIX2');
    const r3 = drive(w, applied(r1.state, 3, { sameTemplate: false, cause: 'git-change', at: w.now }), 'FIX2', { ...pol, progressDeadlineSeconds: 60 });
    expect(r3.decisions.at(-1)!.phase).toBe('stalled');
    // act
    const back = applied(r3.state, 4, { sameTemplate: false, cause: 'rollback', at: w.now });
    const r4 = drive(w, back, 'GOOD', pol);
    // assert
    expect(back.rollout!.managed!.checkpoint!.repairNodes).toEqual(['a']);
    expect(deleted(r4.decisions)).toEqual(['a']);
    expect(r4.decisions.at(-1)!.phase).toBe('complete');
    expect(unavailableNodes(w)).toEqual([]);
  });

  it('carries every node an unfinished rollout\'s update reached into the repair set, also those reached while NotReady (a pod replaced there, or filled by the controller)', () => {
    const unfinished: RolloutState = {
      revision: 2, mode: 'managed', phase: 'stalled', startedAt: iso(0), lastProgressAt: iso(0),
      managed: { checkpoint: { startedAt: iso(0), lastProgressAt: iso(0), updatedAvailable: 0, waves: 1, inFlight: [], touched: [{ node: 'a', readyAtDelete: true, at: iso(0) }, { node: 'c', readyAtDelete: false, at: iso(0) }], repairNodes: ['d'] } },
    };
    expect(checkpointForNextRevision(unfinished, { sameTemplate: false, cause: 'git-change', at: iso(100) })!.repairNodes).toEqual(['a', 'c', 'd']);
    expect(managedRollbackSeed({ schema: 1, namespace: 'ops', name: 'agent', currentRevision: 2, appliedDigest: 'd2', updatedAt: iso(0), rollout: unfinished })).toEqual({ repairNodes: ['a', 'c', 'd'], canaryPassed: true });
  });

  it('after a complete rollout carries nothing: its nodes were proven', () => {
    const done: RolloutState = {
      revision: 1, mode: 'managed', phase: 'complete', startedAt: iso(0), lastProgressAt: iso(0),
      managed: { checkpoint: { startedAt: iso(0), lastProgressAt: iso(0), updatedAvailable: 4, waves: 4, inFlight: [], touched: [{ node: 'a', readyAtDelete: true, at: iso(0) }], canaryNodes: ['a'], canaryPassed: true } },
    };
    expect(checkpointForNextRevision(done, { sameTemplate: false, cause: 'git-change', at: iso(100) })).toBeUndefined();
    expect(checkpointForNextRevision(done, { sameTemplate: false, cause: 'rollback', at: iso(100) })).toEqual({ startedAt: iso(100), lastProgressAt: iso(100), decidedAt: iso(100), updatedAvailable: 0, waves: 0, inFlight: [], canaryPassed: true, restores: true });
    expect(checkpointForNextRevision(done, { sameTemplate: true, cause: 'git-change', at: iso(100) })).toEqual(done.managed!.checkpoint);
  });
});

describe('nodes the controller fills without a deletion', () => {
  it.each<[string, (w: World) => void]>([
    ['d has no pod', (w) => w.pods.set('d', [])],
    ['d holds only a terminating pod', (w) => { w.pods.get('d')![0].terminating = true; w.pods.get('d')![0].ready = false; }],
  ])('count as exposed from the first decision (%s): a crash-looping old pod on c waits until d has proven the update', (_label, prepare) => {
    // prepare: four nodes, maxUnavailable 1, no canary; c's old pod crash-loops
    const w = world(['a', 'b', 'c', 'd'], 'OLD');
    prepare(w);
    w.pods.get('c')![0].ready = false;
    // act
    const first = nextWave(observe(w, 'NEW'), policy(), undefined, at(0));
    // assert
    expect(first.podsToDelete).toEqual([]);
    expect(first.checkpoint.touched).toEqual([{ node: 'd', readyAtDelete: true, at: iso(0) }]);
    // and once the controller's new pod on d has proven itself, c goes
    w.pods.set('d', [{ uid: 'd-new', template: 'NEW', ready: true, readySince: 5 }]);
    const later = nextWave(observe(w, 'NEW'), policy(), first.checkpoint, at(10));
    expect(later.podsToDelete.map((p) => p.node)).toEqual(['c']);
  });

  it('never lets an update that breaks nodes reach more than maxUnavailable nodes, podless nodes included', () => {
    // prepare: d has no pod when the revision lands; c's old pod crash-loops; the new template breaks nodes
    const w = world(['a', 'b', 'c', 'd'], 'OLD');
    w.pods.set('d', []);
    w.pods.get('c')![0].ready = false;
    const state = applied(undefined, 2, { sameTemplate: false, cause: 'git-change', at: 0 });
    const first = nextWave(observe(w, 'NEW'), policy(), undefined, at(0));
    // the controller fills d with the new template, which takes d down
    w.pods.set('d', [{ uid: 'd-new', template: 'NEW', ready: false }]);
    w.nodes.get('d')!.ready = false;
    // act
    const r = drive(w, recorded(state, first), 'NEW', policy());
    // assert
    expect(first.podsToDelete).toEqual([]);
    expect(deleted(r.decisions)).toEqual([]);
    expect(r.decisions.at(-1)).toMatchObject({ phase: 'stalled', brokenNodes: ['d'] });
    expect([...w.pods.values()].filter((p) => p.some((x) => x.template === 'NEW'))).toHaveLength(1);
  });
});

describe('NotReady nodes and the budget', () => {
  // Ten nodes, four NotReady before the rollout, maxUnavailable 50% (k = 5).
  function tenNodes() {
    const names = Array.from({ length: 10 }, (_, i) => `n${String(i + 1).padStart(2, '0')}`);
    const w = world(names, 'OLD');
    for (const n of names.slice(0, 4)) w.nodes.get(n)!.ready = false;
    return w;
  }

  it('counts skipped NotReady nodes against maxUnavailable: 4 NotReady of 10 with 50% leaves one deletion, never five', () => {
    const w = tenNodes();
    const d = nextWave(observe(w, 'NEW'), policy({ maxUnavailable: '50%' }), undefined, at(0));
    expect(d.notReadyNodes).toHaveLength(4);
    expect(d.podsToDelete.map((p) => p.node)).toEqual(['n05']);
    expect(d.counts).toMatchObject({ maxUnavailable: 5, budget: 1, skipped: 4 });
    expect(d.reason).toBe('deleting 1 old pod (budget 1 of maxUnavailable 5; 0 unavailable, 4 NotReady)');
  });

  it('keeps at most max(k, NotReady + 1) nodes unavailable over the whole rollout, and completes the Ready nodes', () => {
    const w = tenNodes();
    const r = drive(w, applied(undefined, 1, { sameTemplate: false, cause: 'git-change', at: 0 }), 'NEW', policy({ maxUnavailable: '50%' }), 60);
    expect(r.maxUnavailable).toBeLessThanOrEqual(5);
    expect(r.decisions.some((d) => d.readyNodesDone)).toBe(true);
    expect(deleted(r.decisions).sort()).toEqual(['n05', 'n06', 'n07', 'n08', 'n09', 'n10']);
  });

  it.each<[number | string, number, number, string[]]>([
    // maxUnavailable, nodes, NotReady, deleted
    [1, 4, 1, ['n02']],       // as many NotReady as the budget: one at a time, never a deadlock (kubernetes#117204)
    ['25%', 8, 2, ['n03']],   // k = 2, two NotReady: one at a time
    [3, 8, 1, ['n02', 'n03']],
    [1, 4, 2, []],            // more NotReady than the budget: the rollout waits
  ])('maxUnavailable %p on %i nodes with %i NotReady deletes %j', (maxUnavailable, n, notReady, expected) => {
    const names = Array.from({ length: n }, (_, i) => `n${String(i + 1).padStart(2, '0')}`);
    const w = world(names, 'OLD');
    for (const name of names.slice(0, notReady)) w.nodes.get(name)!.ready = false;
    const d = nextWave(observe(w, 'NEW'), policy({ maxUnavailable }), undefined, at(0));
    expect(d.podsToDelete.map((p) => p.node)).toEqual(expected);
  });

  it('never unlocks the extra deletion for nodes an earlier revision broke: those are this product\'s own damage', () => {
    const w = world(['a', 'b', 'c', 'd'], 'OLD');
    w.nodes.get('a')!.ready = false;
    w.pods.get('a')![0].template = 'NEW';
    const cp: WaveCheckpoint = { startedAt: iso(0), lastProgressAt: iso(0), updatedAvailable: 0, waves: 0, inFlight: [], repairNodes: ['a'] };
    const d = nextWave(observe(w, 'NEW'), policy(), cp, at(0));
    expect(d.podsToDelete).toEqual([]);
    expect(d.phase).toBe('progressing');
  });
});

describe('time nobody drove', () => {
  // n01's new pod never becomes available: no progress after the first wave.
  function stuck(): WaveObservation {
    const w = world(['n01', 'n02', 'n03'], 'OLD');
    w.pods.set('n01', [{ uid: 'n01-new', template: 'NEW', ready: false }]);
    return observe(w, 'NEW');
  }
  const pol = policy({ progressDeadlineSeconds: 600 });
  const started = (): WaveCheckpoint => ({ startedAt: iso(0), lastProgressAt: iso(0), decidedAt: iso(0), updatedAvailable: 0, waves: 1, inFlight: [] });

  it('does not count the gap after a run that died (no hand-off), up to the lease, against the deadline', () => {
    // act: the run that decided at 0 was killed; the next one takes the expired lease 900 s later
    const d = nextWave(stuck(), pol, started(), at(900));
    // assert
    expect(d.phase).toBe('progressing');
    expect(d.checkpoint.undrivenMs).toBe((900 - DRIVEN_GAP_SECONDS) * 1000);
    expect(d.wakeAt).toBe(iso(930));
  });

  it('stalls once the rollout was driven past the deadline without progress, the undriven gap aside', () => {
    let cp = nextWave(stuck(), pol, started(), at(900)).checkpoint;
    const phases: [number, string][] = [];
    for (let t = 930; t <= 1470; t += 30) {
      const d = nextWave(stuck(), pol, cp, at(t));
      phases.push([t, d.phase]);
      cp = d.checkpoint;
    }
    // driven: 0..60 before the gap and 900..t after it, so 600 s are up after t = 1440
    expect(phases.filter(([, p]) => p === 'stalled').map(([t]) => t)).toEqual([1470]);
  });

  it('counts the gap after a run that handed the rollout over cleanly: the schedule drives it', () => {
    const d = nextWave(stuck(), pol, { ...started(), handedOffAt: iso(5) }, at(900));
    expect(d.phase).toBe('stalled');
    expect(d.reason).toMatch(/^stalled: no progress for 900s \(deadline 600s\)/);
  });

  it('counts every gap of a driver that looks again when asked (wakeAt is never more than 30 s away while the clock runs)', () => {
    let cp = started();
    let last: WaveDecision | undefined;
    for (let t = 30; t <= 630; t += 30) {
      last = nextWave(stuck(), pol, cp, at(t));
      if (last.phase !== 'stalled') expect(Date.parse(last.wakeAt!)).toBeLessThanOrEqual(at(t + 30).getTime());
      cp = last.checkpoint;
    }
    expect(last!.phase).toBe('stalled');
  });
});

describe('what a wave must see before it counts a node as proven', () => {
  // n01's new pod turned Ready at t = 0 (whole-second timestamps); maxUnavailable 1, no canary.
  function afterFirstWave(): WaveObservation {
    const w = world(['n01', 'n02', 'n03'], 'OLD');
    w.pods.set('n01', [{ uid: 'n01-new', template: 'NEW', ready: true, readySince: 0 }]);
    return observe(w, 'NEW');
  }
  const cp: WaveCheckpoint = { startedAt: iso(-10), lastProgressAt: iso(-10), decidedAt: iso(-1), updatedAvailable: 0, waves: 1, inFlight: [], touched: [{ node: 'n01', readyAtDelete: true, at: iso(-10) }] };

  it.each<[number, number, string[], string | undefined]>([
    // minReadySeconds, seconds since Ready, deleted, wakeAt
    [0, 0, [], iso(SETTLE_SECONDS)],
    [0, 0.5, [], iso(SETTLE_SECONDS)],
    [0, SETTLE_SECONDS, ['n02'], undefined],
    [5, 1, [], iso(5)],
    [5, 5, ['n02'], undefined],
  ])('minReadySeconds %i, %ss after the pod turned Ready: deletes %j (wakes at %s)', (minReadySeconds, since, expected, wake) => {
    const d = nextWave(afterFirstWave(), policy({ minReadySeconds }), cp, at(since));
    expect(d.podsToDelete.map((p) => p.node)).toEqual(expected);
    if (wake !== undefined) expect(d.wakeAt).toBe(wake);
  });

  it('a node that breaks within the settle time stops the rollout before the update reaches another node', () => {
    // prepare: n01's pod was Ready at 0; the node goes NotReady at 0.5 s
    const obs = afterFirstWave();
    const early = nextWave(obs, policy(), cp, at(0.2));
    obs.nodes[0].ready = false;
    const d = nextWave(obs, policy(), early.checkpoint, at(0.5));
    expect(early.podsToDelete).toEqual([]);
    expect(d).toMatchObject({ phase: 'stalled', podsToDelete: [], brokenNodes: ['n01'] });
  });
});
