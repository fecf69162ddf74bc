import fc from 'fast-check';
import { LOOK_AGAIN_SECONDS, nextWave } from '../../lib/rollout/wave';
import {
  CANARY_LABEL,
  Cluster,
  drive,
  explain,
  type Behaviour,
  type CanaryPolicy,
  type ClusterSpec,
  POLL_MS,
  T0,
  type Decide,
  type Delays,
  type DriveResult,
  type InitialNode,
  type Step,
  type WorldChange,
} from '../support/daemonset-sim';

/*
 * Managed-rollout wave decisions judged by an independent oracle: a small simulated cluster
 * (test/support/daemonset-sim.ts) written from the Kubernetes definitions of a DaemonSet's
 * desired nodes, of "available" and of maxUnavailable. The simulator plays the DaemonSet
 * controller and the driver; every decision is checked against it (allowed pods, budget, the
 * cap on skipped NotReady nodes, the truth of what is reported), and each property below adds
 * what a whole rollout must achieve. Set WAVE_ORACLE_STATS=1 to print how often each premise held.
 */

const decide: Decide = (obs, policy, checkpoint, now) => nextWave(obs, policy, checkpoint, now);

const nodeName = (i: number): string => `n${String(i + 1).padStart(2, '0')}`;
const weighted = <T>(common: T, rare: T, odds: number) => fc.oneof({ weight: odds, arbitrary: fc.constant(common) }, { weight: 1, arbitrary: fc.constant(rare) });

const delaysArb: fc.Arbitrary<Delays> = fc.record({
  terminateS: fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 5 }),
  createS: fc.array(fc.constantFrom(0, 0, 0, 1, 3), { minLength: 1, maxLength: 5 }),
  startS: fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 5 }),
  gcS: fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 3 }),
});
const maxUnavailableArb = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 100 }).map((p) => `${p}%`));
const lagArb = fc.array(weighted(false, true, 2), { minLength: 1, maxLength: 6 });
const canaryArb = fc.record({
  count: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
  bySelector: fc.boolean(),
  holdSeconds: fc.integer({ min: 0, max: 60 }),
});
type CanarySeed = typeof canaryArb extends fc.Arbitrary<infer T> ? T : never;

const stats: Record<string, number> = {};
const count = (key: string, by = 1) => {
  stats[key] = (stats[key] ?? 0) + by;
};
const atLeast = (key: string, value: number) => {
  stats[key] = Math.max(stats[key] ?? -Infinity, value);
};
afterAll(() => {
  if (process.env.WAVE_ORACLE_STATS) process.stdout.write(`\nwave-oracle premises:\n${Object.entries(stats).map(([k, v]) => `  ${k}: ${v}`).join('\n')}\n`);
});

/**
 * A canary policy that selects at least one Ready desired node (labelling one if needed), or
 * none when no node is Ready and desired (a canary that selects nothing waits by design).
 */
function canaryPolicy(seed: CanarySeed, nodes: InitialNode[]): CanaryPolicy | undefined {
  const eligible = nodes.filter((n) => n.ready && n.desired);
  if (!eligible.length) return undefined;
  if (!seed.bySelector) return { count: seed.count ?? 1, holdSeconds: seed.holdSeconds };
  if (!eligible.some((n) => n.canary)) eligible[0].canary = true;
  return { ...(seed.count !== undefined ? { count: seed.count } : {}), selector: { [CANARY_LABEL]: 'true' }, holdSeconds: seed.holdSeconds };
}

/** The world took every Ready desired node the canary selector matched: waiting is the answer. */
function canarySelectsNothing(c: Cluster, selector: Record<string, string>): boolean {
  const desired = new Set(c.desiredNodes());
  return !c.nodesMatching(selector).some((n) => desired.has(n) && c.isNodeReady(n));
}

/** How many nodes the canary may take: the count, and only nodes the selector matches. */
function canaryBound(policy: CanaryPolicy | undefined, nodes: InitialNode[]): number {
  if (!policy) return 0;
  const matching = nodes.filter((n) => n.ready && n.desired && (!policy.selector || n.canary)).length;
  return Math.min(policy.count ?? matching, matching);
}

/** Fails with the oracle's problems, or else with the property's own (which read the run's end). */
function expectClean(c: Cluster, run: DriveResult, extra: string[] = []): void {
  const problems = run.problems.length ? run.problems : extra;
  if (problems.length) throw new Error(explain(c, problems));
}

const decisionsAfter = (steps: Step[], t: number) => steps.filter((s) => s.at >= t).length;

// ---------------------------------------------------------------------------------------

describe('nextWave against a simulated cluster (an oracle from the Kubernetes definitions)', () => {
  // ---- 5 (and 1, 2 at every step): a good update on a cluster that keeps changing

  const startArb = fc.constantFrom('old', 'old', 'old', 'old', 'new', 'old-starting', 'old-crashloop', 'missing', 'tainted');
  const worldKindArb = fc.constantFrom('not-ready', 'unlabel', 'taint', 'taint-lifted', 'delete-node', 'add-node', 'pause');
  const goodUpdateArb = fc.record({
    nodes: fc.array(fc.record({ start: startArb, canary: fc.boolean() }), { minLength: 1, maxLength: 10 }),
    notReadyAtStart: fc.option(fc.nat(), { nil: undefined }),
    world: fc.array(fc.record({ atS: fc.integer({ min: 1, max: 300 }), kind: worldKindArb, node: fc.nat(), forS: fc.integer({ min: 5, max: 120 }) }), { maxLength: 6 }),
    maxUnavailable: maxUnavailableArb,
    minReadySeconds: fc.constantFrom(0, 0, 5, 30),
    canary: fc.option(canaryArb, { nil: undefined }),
    delays: delaysArb,
    lag: lagArb,
  });
  type GoodUpdateSeed = typeof goodUpdateArb extends fc.Arbitrary<infer T> ? T : never;

  function goodUpdate(seed: GoodUpdateSeed): { spec: ClusterSpec; canary?: CanaryPolicy } {
    const nodes = seed.nodes.map((n, i): InitialNode => ({
      name: nodeName(i),
      ready: seed.notReadyAtStart === undefined || seed.notReadyAtStart % seed.nodes.length !== i,
      desired: n.start !== 'tainted',
      canary: n.canary,
      pod: n.start === 'new' ? 'new-available'
        : n.start === 'old-starting' ? 'old-starting'
          : n.start === 'old-crashloop' ? 'old-crashloop'
            : n.start === 'missing' ? 'none' : 'old-available',
    }));
    // A crash-looping old pod outside the canary holds the budget the canary needs, and the
    // rollout stalls by design (the canary must be replaced within maxUnavailable): with a
    // canary, old pods start healthy.
    if (seed.canary) for (const n of nodes) if (n.pod === 'old-crashloop') n.pod = 'old-available';
    const canary = seed.canary && canaryPolicy(seed.canary, nodes);
    let added = 0;
    const world = seed.world.flatMap((w): { atS: number; change: WorldChange }[] => {
      const node = nodeName(w.node % nodes.length);
      switch (w.kind) {
        case 'not-ready': return [{ atS: w.atS, change: { kind: 'node-not-ready', node, outage: w.atS } }, { atS: w.atS + w.forS, change: { kind: 'node-ready', outage: w.atS } }];
        case 'unlabel': return [{ atS: w.atS, change: { kind: 'unlabel', node } }];
        case 'taint': return [{ atS: w.atS, change: { kind: 'taint', node } }];
        case 'taint-lifted': return [{ atS: w.atS, change: { kind: 'taint', node } }, { atS: w.atS + w.forS, change: { kind: 'untaint', node } }];
        case 'delete-node': return [{ atS: w.atS, change: { kind: 'delete-node', node } }];
        case 'add-node': return [{ atS: w.atS, change: { kind: 'add-node', node: `x${String(++added).padStart(2, '0')}` } }];
        default: return [{ atS: w.atS, change: { kind: 'pause' } }, { atS: w.atS + w.forS, change: { kind: 'resume' } }];
      }
    });
    const spec: ClusterSpec = {
      nodes,
      behaviours: { old: 'good', new: 'good' },
      template: 'new',
      minReadySeconds: seed.minReadySeconds,
      maxUnavailable: seed.maxUnavailable,
      delays: seed.delays,
      world,
    };
    return { spec, canary };
  }

  it('completes a good update within budget at every step, through node churn, NotReady nodes, lagging observations and pauses', () => {
    fc.assert(
      fc.property(goodUpdateArb, (seed) => {
        // prepare
        const { spec, canary } = goodUpdate(seed);
        const c = new Cluster(spec);
        const quietFrom = c.lastWorldChangeAt();
        // act
        const run = drive(c, decide, {
          policy: { maxUnavailable: spec.maxUnavailable, minReadySeconds: spec.minReadySeconds, canary, progressDeadlineSeconds: 3600 },
          lag: seed.lag,
          maxDecisions: 2000,
          until: (s, cl) => s.decision.phase === 'stalled' || (cl.now >= quietFrom && (s.decision.phase === 'complete' || (s.decision.readyNodesDone && cl.readyNodesDone()) ||
            (s.before.outage.length > s.before.k && s.decision.phase === 'waiting') ||
            (canary?.selector !== undefined && s.decision.phase === 'waiting' && !s.decision.checkpoint.canaryPassed && canarySelectsNothing(cl, canary.selector)))),
        });
        // assert
        const n = c.everNodes.size;
        const after = decisionsAfter(run.steps, quietFrom);
        const extra: string[] = [];
        // A node that goes NotReady after the update reached it is evidence against the update, by design: a stall is an answer then.
        // So is a node NotReady from the start that the update reached without a deletion: it holds the update unproven.
        const stallExcused = c.outageAfterUpdate.size > 0 || [...c.unprovenAtStart].some((node) => c.notReadyNodes().includes(node));
        const stalled = stallExcused ? undefined : run.steps.find((s) => s.decision.phase === 'stalled');
        if (stalled) extra.push(`a good update stalled at t=${stalled.at / 1000}s: ${stalled.decision.reason}`);
        // Waiting out the deadline, a driver looks again now and then without deleting: only decisions that delete count then.
        // Otherwise every look an event prompted counts; a look at a world unchanged since the last one is the driver's own
        // wake-up (every LOOK_AGAIN_SECONDS while a pod starts), bounded by time rather than by nodes, and not counted.
        const endedStalled = run.steps.at(-1)?.decision.phase === 'stalled';
        const counted = endedStalled ? run.steps.filter((s) => s.at >= quietFrom && s.decision.podsToDelete.length > 0).length : run.steps.filter((s) => s.at >= quietFrom && !s.idle).length;
        if (!run.ended && !run.problems.length) extra.push(`no end: ${run.steps.length} decisions, the last: ${run.steps.at(-1)?.decision.phase}: ${run.steps.at(-1)?.decision.reason}`);
        else if (counted > 4 * n + 10) extra.push(`ended only ${counted} decisions prompted by a change after the world stopped changing; at most 4N+10 = ${4 * n + 10}`);
        else if (!endedStalled) {
          // The looks at an unchanged world are bounded by time: one per LOOK_AGAIN_SECONDS, plus one at a time a look foresaw (a hold's or minReadySeconds' end) per change, plus the first.
          const idle = run.steps.filter((s) => s.at >= quietFrom && s.idle).length;
          const spanS = ((run.steps.at(-1)?.at ?? quietFrom) - quietFrom) / 1000;
          const idleBound = Math.ceil(spanS / LOOK_AGAIN_SECONDS) + counted + 1;
          if (idle > idleBound) extra.push(`looked ${idle} times at a world unchanged since the look before, over ${spanS}s: at most one per ${LOOK_AGAIN_SECONDS}s plus one per change, plus one = ${idleBound}`);
        }
        expectClean(c, run, extra);
        // premises
        count('good: runs');
        if (run.ended) atLeast('good: most decisions after the world went still, minus 4N', after - 4 * n);
        count('good: decisions checked', run.steps.length);
        count('good: decisions that deleted', run.steps.filter((s) => s.decision.podsToDelete.length).length);
        count('good: decisions deleting with the budget already spent (unavailable >= k)', run.steps.filter((s) => s.decision.podsToDelete.length && s.before.unavailable.length >= s.before.k).length);
        count('good: decisions shown a deleted pod as not terminating', run.steps.filter((s) => s.lagged > 0).length);
        count('good: decisions while paused', run.steps.filter((s) => s.paused).length);
        if (run.steps.some((s) => s.before.outage.length > 0 && s.decision.podsToDelete.length)) count('good: runs deleting while a node is NotReady');
        for (const [kind, times] of Object.entries(c.applied)) if (times) count(`good: runs with world change ${kind}`);
        const last = run.steps.at(-1)?.decision;
        count(`good: ended ${last?.phase === 'complete' ? 'complete' : last?.readyNodesDone ? 'readyNodesDone, skipped NotReady left' : last?.phase === 'stalled' ? 'stalled: an outage hit a node the update had reached' : last?.phase === 'waiting' && run.steps.at(-1)?.before.outage.length ? 'waiting on more NotReady nodes than maxUnavailable' : 'waiting: the canary selector matches no Ready desired node any more'}`);
        if (canary) count('good: runs with a canary');
      }),
      { numRuns: 1500 },
    );
    expect(stats['good: runs with world change unlabel']).toBeGreaterThan(100);
    expect(stats['good: runs with world change taint']).toBeGreaterThan(100);
    expect(stats['good: runs with world change delete-node']).toBeGreaterThan(100);
    expect(stats['good: runs with world change node-not-ready']).toBeGreaterThan(100);
    expect(stats['good: runs with world change pause']).toBeGreaterThan(100);
    expect(stats['good: decisions shown a deleted pod as not terminating']).toBeGreaterThan(300);
    expect(stats['good: decisions deleting with the budget already spent (unavailable >= k)']).toBeGreaterThan(100);
    expect(stats['good: ended complete']).toBeGreaterThan(500);
  });

  // ---- 2: the cap on skipped NotReady nodes

  it('waits, and says why, while more desired nodes are NotReady than maxUnavailable; otherwise rolls the Ready ones', () => {
    fc.assert(
      fc.property(
        fc.record({
          nodes: fc.array(fc.record({ ready: weighted(true, false, 2), start: fc.constantFrom('old', 'old', 'new') }), { minLength: 2, maxLength: 10 }),
          maxUnavailable: maxUnavailableArb,
          delays: delaysArb,
          lag: lagArb,
        }),
        (seed) => {
          // prepare
          const nodes = seed.nodes.map((n, i): InitialNode => ({ name: nodeName(i), ready: n.ready, desired: true, canary: false, pod: n.start === 'new' ? 'new-available' : 'old-available' }));
          const c = new Cluster({ nodes, behaviours: { old: 'good', new: 'good' }, template: 'new', minReadySeconds: 0, maxUnavailable: seed.maxUnavailable, delays: seed.delays, world: [] });
          // act
          const run = drive(c, decide, {
            policy: { maxUnavailable: seed.maxUnavailable, minReadySeconds: 0, progressDeadlineSeconds: 3600 },
            lag: seed.lag,
            maxDecisions: 4 * nodes.length + 10,
            until: (s) => s.decision.phase === 'complete' || s.decision.readyNodesDone || (s.before.outage.length > s.before.k && c.nextEventAt() === undefined),
          });
          // assert: the checks of every decision include the cap; a rollout under the cap finishes
          expectClean(c, run, run.ended ? [] : [`no end within ${4 * nodes.length + 10} decisions: ${run.steps.at(-1)?.decision.reason}`]);
          const first = run.steps[0];
          if (first.before.outage.length > first.before.k) count('skip cap: runs starting with more skipped NotReady nodes than maxUnavailable');
          else if (first.before.outage.length > 0) count('skip cap: runs with skipped NotReady nodes within maxUnavailable');
        },
      ),
      { numRuns: 1000 },
    );
    expect(stats['skip cap: runs starting with more skipped NotReady nodes than maxUnavailable']).toBeGreaterThan(150);
    expect(stats['skip cap: runs with skipped NotReady nodes within maxUnavailable']).toBeGreaterThan(150);
  });

  // ---- 3 and 6: an update that breaks every node it lands on, then the rollback

  const breakingArb = fc.record({
    nodes: fc.array(fc.record({ start: fc.constantFrom('old', 'old', 'old', 'old', 'old-starting', 'old-crashloop'), canary: fc.boolean() }), { minLength: 1, maxLength: 10 }),
    notReadyAtStart: fc.option(fc.nat(), { nil: undefined }),
    maxUnavailable: maxUnavailableArb,
    minReadySeconds: fc.constantFrom(0, 0, 5, 30),
    canary: fc.option(canaryArb, { nil: undefined }),
    delays: delaysArb,
    lag: lagArb,
  });
  type BreakingSeed = typeof breakingArb extends fc.Arbitrary<infer T> ? T : never;

  function breakingUpdate(seed: BreakingSeed, behaviour: Behaviour) {
    const nodes = seed.nodes.map((n, i): InitialNode => ({
      name: nodeName(i),
      ready: seed.notReadyAtStart === undefined || seed.notReadyAtStart % seed.nodes.length !== i,
      desired: true,
      canary: n.canary,
      pod: n.start === 'old-starting' ? 'old-starting' : n.start === 'old-crashloop' ? 'old-crashloop' : 'old-available',
    }));
    const canary = seed.canary && canaryPolicy(seed.canary, nodes);
    const spec: ClusterSpec = {
      nodes,
      behaviours: { old: 'good', new: behaviour },
      template: 'new',
      minReadySeconds: seed.minReadySeconds,
      maxUnavailable: seed.maxUnavailable,
      delays: seed.delays,
      world: [],
    };
    return { spec, canary, nodes };
  }

  /**
   * Drives a node-breaking update until a decision says it failed, then on until the cluster
   * is quiet and three more decisions have deleted nothing.
   */
  function runBreaking(seed: BreakingSeed) {
    const { spec, canary, nodes } = breakingUpdate(seed, 'breaks-node');
    const c = new Cluster(spec);
    const k = c.k();
    const bound = 4 * nodes.length + 10;
    const policy = { maxUnavailable: spec.maxUnavailable, minReadySeconds: spec.minReadySeconds, canary, progressDeadlineSeconds: 3600 };
    let failedStep = -1;
    let steps = 0;
    const run = drive(c, decide, {
      policy,
      lag: seed.lag,
      maxDecisions: bound + 40,
      until: (s, cl) => {
        steps += 1;
        if (failedStep < 0 && s.decision.checkpoint.failed) failedStep = steps;
        return failedStep > 0 && steps - failedStep >= 3 && cl.nextEventAt() === undefined;
      },
    });
    return { c, run, k, bound, policy, canary, nodes, failedStep };
  }

  it('stops a node-breaking update within maxUnavailable nodes beyond the canary, fails it, and deletes nothing after', () => {
    fc.assert(
      fc.property(breakingArb, (seed) => {
        // prepare, act
        const { c, run, k, bound, canary, nodes, failedStep } = runBreaking(seed);
        // assert
        const reached = [...c.received.new];
        const limit = canaryBound(canary, nodes) + k;
        const extra: string[] = [];
        if (reached.length > limit) extra.push(`the breaking template reached ${reached.length} nodes [${reached.join(', ')}]; at most |canary| ${canaryBound(canary, nodes)} + maxUnavailable ${k} = ${limit}`);
        const last = run.steps.at(-1)?.decision;
        if (reached.length > 0) {
          if (failedStep < 0) extra.push(`never failed although ${reached.length} node(s) broke`);
          else if (failedStep > bound) extra.push(`failed only at decision ${failedStep}; at most 4N+10 = ${bound}`);
          if (last && (last.phase !== 'stalled' || !last.checkpoint.failed?.nodes.length)) extra.push(`ends ${last.phase} with failed ${JSON.stringify(last.checkpoint.failed)}; want stalled with the broken nodes listed`);
          if (last?.checkpoint.failed && !last.checkpoint.failed.nodes.every((n) => c.received.new.has(n))) extra.push(`failed.nodes [${last.checkpoint.failed.nodes.join(', ')}] names nodes the update never reached`);
          if (failedStep > 0 && run.steps.slice(failedStep - 1).some((s) => s.decision.podsToDelete.length)) extra.push('deleted pods in or after the decision that failed it');
        }
        expectClean(c, run, extra);
        // premises
        count('breaking: runs');
        if (reached.length > 0) count('breaking: runs where the update broke a node');
        if (reached.length > 1) count('breaking: runs where it broke more than one node');
        if (reached.length === limit) count('breaking: runs where it broke exactly |canary| + maxUnavailable nodes');
        if (canary && reached.length > 0) count('breaking: runs with a canary that broke a node');
      }),
      { numRuns: 1500 },
    );
    expect(stats['breaking: runs where the update broke a node']).toBeGreaterThan(1100);
    expect(stats['breaking: runs where it broke more than one node']).toBeGreaterThan(150);
    expect(stats['breaking: runs with a canary that broke a node']).toBeGreaterThan(300);
  });

  it('rolls back a node-breaking update: the rollback replaces the bad pods on the broken NotReady nodes and completes', () => {
    fc.assert(
      fc.property(breakingArb, (seed) => {
        // prepare: the failed update (its own property judges it); the old template is healthy
        // everywhere, so a rollback can end complete
        const first = runBreaking({ ...seed, nodes: seed.nodes.map((n) => ({ ...n, start: n.start === 'old-crashloop' ? 'old' : n.start })) });
        if (first.run.problems.length || first.failedStep < 0) return;
        const { c, bound, policy } = first;
        const broken = c.brokenNodes();
        count('rollback: runs');
        if (!broken.length) return;
        count('rollback: runs with broken nodes to repair');
        if (broken.length > 1) count('rollback: runs with more than one broken node');
        // Seeded as lib/rollback.ts seeds it, from what the failed rollout's checkpoint recorded.
        const repair = (first.run.checkpoint?.touched ?? []).filter((t) => t.readyAtDelete).map((t) => t.node);
        c.startRollback();
        const startedAt = new Date(T0 + c.now).toISOString();
        // act
        const run = drive(c, decide, {
          policy,
          checkpoint: { startedAt, lastProgressAt: startedAt, updatedAvailable: 0, waves: 0, inFlight: [], repairNodes: repair, canaryPassed: true },
          lag: seed.lag,
          maxDecisions: bound,
          until: (s, cl) => s.decision.phase === 'complete' || (s.decision.readyNodesDone && cl.readyNodesDone() && broken.every((n) => !cl.desiredNodes().includes(n) || cl.isDone(n))),
        });
        // assert
        const extra: string[] = [];
        if (!run.ended && !run.problems.length) extra.push(`the rollback did not end (complete, or only skipped NotReady nodes left) within 4N+10 = ${bound} decisions: ${run.steps.at(-1)?.decision.phase}: ${run.steps.at(-1)?.decision.reason}`);
        const unrepaired = broken.filter((n) => !c.isNodeReady(n) || !c.isDone(n));
        if (run.ended && unrepaired.length) extra.push(`complete, yet broken nodes [${unrepaired.join(', ')}] were not repaired`);
        expectClean(c, run, extra);
        if (run.steps.some((s) => s.decision.podsToDelete.some((p) => broken.includes(p.node)))) count('rollback: runs that deleted a bad pod on a NotReady node');
      }),
      { numRuns: 1000 },
    );
    expect(stats['rollback: runs with broken nodes to repair']).toBeGreaterThan(600);
    expect(stats['rollback: runs with more than one broken node']).toBeGreaterThan(100);
  });

  // ---- 4: a canary that fails, and one that selects nothing

  it('stalls a canary that never becomes available once progressDeadlineSeconds pass, and touches no node outside it', () => {
    fc.assert(
      fc.property(breakingArb, canaryArb, fc.integer({ min: 60, max: 600 }), (seed, canarySeed, deadline) => {
        // prepare: every new pod crash-loops; the nodes stay Ready
        const { spec, canary, nodes } = breakingUpdate({ ...seed, canary: canarySeed }, 'crashloop');
        if (!canary) return;   // no node was Ready: nothing to be a canary
        const c = new Cluster(spec);
        // act
        const run = drive(c, decide, {
          policy: { maxUnavailable: spec.maxUnavailable, minReadySeconds: spec.minReadySeconds, canary, progressDeadlineSeconds: deadline },
          lag: seed.lag,
          maxDecisions: 4 * nodes.length + 10 + Math.ceil((deadline * 1000) / POLL_MS),
          until: (s) => s.decision.phase === 'stalled',
        });
        // assert
        const extra: string[] = [];
        const reached = [...c.received.new];
        const allowed = new Set(nodes.filter((n) => !canary?.selector || n.canary).map((n) => n.name));
        const outside = reached.filter((n) => !allowed.has(n));
        if (outside.length) extra.push(`the new template reached [${outside.join(', ')}], outside the canary selector`);
        if (canary?.count !== undefined && reached.length > canary.count) extra.push(`the new template reached ${reached.length} nodes [${reached.join(', ')}], more than the canary count ${canary.count}`);
        const deletedAt = run.steps.filter((s) => s.decision.podsToDelete.length).map((s) => s.at);
        const lastActivity = Math.max(0, ...deletedAt, c.lastCreatedAt.new ?? 0);
        const latest = lastActivity + deadline * 1000 + POLL_MS + 1000;
        if (!run.ended && !run.problems.length) extra.push(`not stalled after ${run.steps.length} decisions (t=${c.now / 1000}s, deadline ${deadline}s): ${run.steps.at(-1)?.decision.phase}: ${run.steps.at(-1)?.decision.reason}`);
        else if (run.ended && c.now > latest) extra.push(`stalled only at t=${c.now / 1000}s; the last deletion or creation was at t=${lastActivity / 1000}s and the deadline is ${deadline}s`);
        expectClean(c, run, extra);
        // premises
        if (reached.length > 0) count('failing canary: runs where the canary got the new template');
        if (canary?.selector && reached.length > 0) count('failing canary: by selector, reached');
        if (nodes.length > (canary?.count ?? 1)) count('failing canary: runs with nodes outside the canary');
      }),
      { numRuns: 1000 },
    );
    expect(stats['failing canary: runs where the canary got the new template']).toBeGreaterThan(600);
    expect(stats['failing canary: by selector, reached']).toBeGreaterThan(200);
  });

  const DEADLINE_S = 3600;
  it('deletes nothing, and names the canary annotation, when the canary selector matches no Ready desired node', () => {
    fc.assert(
      fc.property(
        fc.record({
          nodes: fc.array(fc.record({ labelled: fc.boolean(), state: fc.constantFrom('ready', 'ready', 'not-ready', 'tainted') }), { minLength: 1, maxLength: 8 }),
          deletedCanaryNode: fc.boolean(),
          count: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
          maxUnavailable: maxUnavailableArb,
          delays: delaysArb,
        }),
        (seed) => {
          // prepare: labelled nodes are NotReady (at most one), tainted, or deleted with their pod still listed
          let notReady = 0;
          const nodes = seed.nodes.map((n, i): InitialNode => {
            let state = n.state;
            if (state === 'not-ready' && ++notReady > 1) state = 'ready';
            if (n.labelled && state === 'ready') state = 'tainted';
            return { name: nodeName(i), ready: state !== 'not-ready', desired: state !== 'tainted', canary: n.labelled, pod: 'old-available' };
          });
          if (!nodes.some((n) => n.ready && n.desired)) nodes.push({ name: nodeName(nodes.length), ready: true, desired: true, canary: false, pod: 'old-available' });
          const world: { atS: number; change: WorldChange }[] = [];
          if (seed.deletedCanaryNode) {
            nodes.push({ name: 'gone', ready: true, desired: true, canary: true, pod: 'old-available' });
            world.push({ atS: 0, change: { kind: 'delete-node', node: 'gone' } });
          }
          const c = new Cluster({ nodes, behaviours: { old: 'good', new: 'good' }, template: 'new', minReadySeconds: 0, maxUnavailable: seed.maxUnavailable, delays: seed.delays, world });
          const canary: CanaryPolicy = { ...(seed.count !== undefined ? { count: seed.count } : {}), selector: { [CANARY_LABEL]: 'true' }, holdSeconds: 0 };
          // act
          let steps = 0;
          const run = drive(c, decide, {
            policy: { maxUnavailable: seed.maxUnavailable, minReadySeconds: 0, canary, progressDeadlineSeconds: DEADLINE_S },
            lag: [false],
            maxDecisions: 12,
            until: (_, cl) => ++steps >= 3 && cl.nextEventAt() === undefined,
          });
          // assert
          // (once the progress deadline has passed, a stall is an answer too)
          const wrong = run.steps.filter((s) => s.at < DEADLINE_S * 1000 && (s.decision.podsToDelete.length || s.decision.phase !== 'waiting' || !s.decision.reason.includes('daemonset-gitops.io/canary')));
          expectClean(c, run, wrong.slice(0, 1).map((s) => `at t=${s.at / 1000}s: ${s.decision.phase}, deleting ${s.decision.podsToDelete.length}: "${s.decision.reason}"; want waiting, nothing deleted, a reason naming daemonset-gitops.io/canary`));
          if (c.nodesMatching({ [CANARY_LABEL]: 'true' }).length || seed.deletedCanaryNode) count('empty canary: runs where some node carries the canary label');
        },
      ),
      { numRuns: 500 },
    );
    expect(stats['empty canary: runs where some node carries the canary label']).toBeGreaterThan(300);
  });
});

