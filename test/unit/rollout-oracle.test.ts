import fc from 'fast-check';
import { Judge, Run, STEPS, type Behaviour, type Event, type NodeSpec, type Scenario } from '../support/rollout-world';

/*
 * Managed rollouts across revisions, crashes and racing writers, judged from the world alone
 * (test/support/rollout-world.ts): the implementation's own decisions (nextWave) and records
 * (stateAfterApply, the checkpoint, the rollback's seed) drive a simulated cluster, and the
 * judgement reads only which template ran where and which desired nodes had no available pod.
 * A failure prints the scenario, the verdict, the decisions and the story.
 */

const nodeName = (i: number): string => `n${i + 1}`;

function story(run: Run, judge: Judge, sc: Scenario): string {
  const log = run.world.log;
  const trace = log.length > 160 ? [...log.slice(0, 100), `... (${log.length - 140} lines) ...`, ...log.slice(-40)] : log;
  return [
    ...judge.verdicts.map((v) => `${v.property}: ${v.problem}`),
    '',
    `scenario: ${JSON.stringify({ ...sc, nodes: sc.nodes.map((n) => `${n.name}:${n.eligible ? '' : 'ineligible,'}${n.pod}${n.notReadyUntil !== undefined ? `,NotReady<${n.notReadyUntil / 1000}s` : ''}`) })}`,
    `k = ${judge.k}, |canary| = ${judge.canary}, available at the start: [${[...judge.from].sort().join(', ')}]`,
    '',
    'story (t = simulated time):',
    ...trace,
  ].join('\n');
}

/** Plays a scenario to its end and returns the verdicts. */
function play(sc: Scenario): { run: Run; judge: Judge } {
  const run = new Run(sc);
  const judge = new Judge(run);
  const outagesEnd = Math.max(0, ...sc.nodes.map((n) => (n.notReadyUntil ?? 0) / 1000), ...sc.events.map((e) => e.atS + (e.kind === 'outage' ? e.forS : 0)));
  run.play(outagesEnd + 900);
  judge.judgeEnding();
  return { run, judge };
}

const stats: Record<string, number> = {};
const count = (key: string, by = 1) => {
  stats[key] = (stats[key] ?? 0) + by;
};
afterAll(() => {
  if (process.env.ROLLOUT_ORACLE_STATS) process.stdout.write(`\nrollout-oracle premises:\n${Object.entries(stats).sort().map(([k, v]) => `  ${k}: ${v}`).join('\n')}\n`);
});

function expectHolds(sc: Scenario): Run {
  const { run, judge } = play(sc);
  if (judge.verdicts.length) throw new Error(story(run, judge, sc));
  return run;
}

const base = (nodes: NodeSpec[], over: Partial<Scenario>): Scenario => ({
  nodes,
  maxUnavailable: 1,
  minReadySeconds: 0,
  autoRollback: false,
  first: 'breaks-node',
  events: [],
  delays: { terminateS: 5, createS: 1, startS: 5, breakAfterS: 0 },
  lag: [false],
  crashes: [],
  progressDeadlineSeconds: 120,
  passEveryS: 30,
  ...over,
});
const plain = (n: number, pod: NodeSpec['pod'] = 'available'): NodeSpec[] => Array.from({ length: n }, (_, i) => ({ name: nodeName(i), eligible: true, pod }));

// ---- random runs ----------------------------------------------------------------------------

const behaviourArb = fc.constantFrom<Behaviour>('breaks-node', 'breaks-node', 'breaks-node', 'crashloop', 'good');
const eventArb: fc.Arbitrary<Event[]> = fc.oneof(
  fc.record({ atS: fc.integer({ min: 0, max: 400 }), what: fc.constantFrom('auto-rollback', 'label') }).map(({ atS, what }): Event[] => [{ atS, kind: 'git', change: { kind: 'metadata', what: what as 'auto-rollback' | 'label' } }]),
  fc.record({ atS: fc.integer({ min: 0, max: 400 }), forS: fc.integer({ min: 10, max: 200 }) }).map(({ atS, forS }): Event[] => [
    { atS, kind: 'git', change: { kind: 'metadata', what: 'paused' } }, { atS: atS + forS, kind: 'git', change: { kind: 'metadata', what: 'unpaused' } }]),
  fc.record({ atS: fc.integer({ min: 0, max: 400 }), behaviour: behaviourArb }).map(({ atS, behaviour }): Event[] => [{ atS, kind: 'git', change: { kind: 'template', behaviour } }]),
  fc.integer({ min: 0, max: 400 }).map((atS): Event[] => [{ atS, kind: 'drift' }]),
  fc.record({ atS: fc.integer({ min: 0, max: 400 }), recreate: fc.boolean() }).map(({ atS, recreate }): Event[] => [{ atS, kind: 'rollback', recreate }]),
  fc.record({ atS: fc.integer({ min: 0, max: 400 }), forS: fc.integer({ min: 5, max: 200 }), racing: fc.boolean() }).map(({ atS, forS, racing }): Event[] => [
    { atS, kind: 'pause', racing }, { atS: atS + forS, kind: 'resume', racing }]),
  fc.record({ atS: fc.integer({ min: 0, max: 400 }), racing: fc.boolean() }).map(({ atS, racing }): Event[] => [{ atS, kind: 'unpin', racing }]),
  fc.record({ atS: fc.integer({ min: 0, max: 400 }), node: fc.nat(), forS: fc.integer({ min: 10, max: 300 }) }).map(({ atS, node, forS }): Event[] => [{ atS, kind: 'outage', node, forS }]),
);

export const scenarioArbForTiming: fc.Arbitrary<Scenario> = fc.record({
  nodes: fc.array(fc.record({
    eligible: fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    pod: fc.constantFrom<NodeSpec['pod']>('available', 'available', 'available', 'available', 'none', 'terminating', 'crashloop'),
    notReadyS: fc.option(fc.integer({ min: 10, max: 600 }), { nil: undefined, freq: 4 }),
  }), { minLength: 2, maxLength: 8 }),
  maxUnavailable: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 10, max: 60 }).map((p) => `${p}%`)),
  minReadySeconds: fc.constantFrom(0, 0, 5),
  canary: fc.option(fc.integer({ min: 1, max: 2 }), { nil: undefined }),
  autoRollback: fc.boolean(),
  first: behaviourArb,
  events: fc.array(eventArb, { maxLength: 4 }).map((es) => es.flat()),
  delays: fc.record({ terminateS: fc.integer({ min: 1, max: 10 }), createS: fc.constantFrom(0, 1, 2), startS: fc.integer({ min: 1, max: 15 }), breakAfterS: fc.constantFrom(0, 0, 0, 1) }),
  lag: fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }),
  crashes: fc.oneof({ weight: 2, arbitrary: fc.constant([] as number[]) }, { weight: 3, arbitrary: fc.array(fc.integer({ min: 1, max: 120 }), { minLength: 1, maxLength: 3 }) }),
  // Rare steps (a rollback's) get their crashes too: the first time a process reaches the named step.
  crashAtNamed: fc.oneof({ weight: 2, arbitrary: fc.constant([] as string[]) }, { weight: 1, arbitrary: fc.subarray([...STEPS], { minLength: 1, maxLength: 2 }) }),
}).map((r): Scenario => ({
  ...r,
  nodes: r.nodes.map((n, i) => ({ name: nodeName(i), eligible: n.eligible, pod: n.pod, ...(n.notReadyS !== undefined ? { notReadyUntil: n.notReadyS * 1000 } : {}) })),
  progressDeadlineSeconds: 120,
  passEveryS: 30,
}));

/**
 * The same 300 scenarios in every run of the suite (CI must not pass or fail by chance), unless
 * ROLLOUT_ORACLE_SEED says otherwise: `random` explores new ones (with ROLLOUT_ORACLE_RUNS=3000,
 * say); a number, with ROLLOUT_ORACLE_PATH, replays what a failure printed. What exploration
 * found is kept below as stories.
 */
function oracleSeed(): { seed?: number; path?: string } {
  const given = process.env.ROLLOUT_ORACLE_SEED;
  if (given === 'random') return {};
  return { seed: given ? Number(given) : 20261206, ...(process.env.ROLLOUT_ORACLE_PATH ? { path: process.env.ROLLOUT_ORACLE_PATH } : {}) };
}

const scenarioArb = scenarioArbForTiming;
describe('managed rollouts across revisions, crashes and racing writers, judged from the world alone', () => {
  it('keeps a node-breaking template within |canary| + k nodes over the whole history, keeps the budget, and always ends', () => {
    fc.assert(fc.property(scenarioArb, (sc) => {
      const run = expectHolds(sc);
      count('runs');
      for (const what of new Set(run.crashes)) count(`crash at ${what}`);
      for (const [what, times] of Object.entries(run.happened)) if (times) count(`runs with ${what}`);
      const broke = [...run.world.exposed].filter(([id, nodes]) => run.world.templates.get(id)?.behaviour === 'breaks-node' && nodes.size > 0).length;
      if (broke) count('runs where a node-breaking template reached a node');
      if (sc.nodes.some((n) => n.pod === 'none' || n.pod === 'terminating')) count('runs with podless or terminating-pod nodes at the start');
      if (typeof sc.maxUnavailable === 'string' && sc.nodes.some((n) => n.notReadyUntil !== undefined)) count('runs with a percent budget and NotReady nodes');
      const phase = run.store.state?.rollout?.phase;
      count(`ended ${phase}${run.store.revisions.get(run.store.state?.currentRevision ?? 0)?.cause === 'rollback' ? ' (a rollback)' : ''}`);
    }), { numRuns: Number(process.env.ROLLOUT_ORACLE_RUNS ?? 300), ...oracleSeed() });
    // premises: the runs exercise what the properties are about
    expect(stats['runs where a node-breaking template reached a node']).toBeGreaterThan(100);
    expect(stats['runs with git metadata change']).toBeGreaterThan(30);
    expect(stats['runs with apply drift-correction']).toBeGreaterThan(10);
    expect(stats['runs with rollback']).toBeGreaterThan(30);
    expect(stats['runs with rollback --recreate']).toBeGreaterThan(5);
    expect(stats['runs with decision refused by a racing write']).toBeGreaterThan(5);
    const crashes = (prefix: string) => STEPS.filter((step) => step.startsWith(prefix)).reduce((sum, step) => sum + (stats[`crash at ${step}`] ?? 0), 0);
    expect(crashes('rollback:')).toBeGreaterThan(10);
    expect(crashes('apply:')).toBeGreaterThan(10);
    expect(stats['crash at driver: after writing the decision']).toBeGreaterThan(10);
    expect(stats['runs with a percent budget and NotReady nodes']).toBeGreaterThan(30);
  });

  // ---- the holes of issue 19, each as the story that shows it ------------------------------

  describe('stories', () => {
    it('a metadata-only revision after a canary broke its node neither breaks a second node nor leaves the first unrepaired (the new revision keeps what the rollout learned)', () => {
      expectHolds(base(plain(4), { canary: 1, events: [{ atS: 200, kind: 'git', change: { kind: 'metadata', what: 'auto-rollback' } }] }));
    });

    it('a forward fix pushed while a broken node is down neither deletes another node\'s pod nor waits forever for the broken node', () => {
      expectHolds(base(plain(4), { canary: 1, events: [{ atS: 200, kind: 'git', change: { kind: 'template', behaviour: 'good' } }] }));
    });

    it('a drift correction re-applying a node-breaking template continues its rollout instead of starting it afresh', () => {
      expectHolds(base(plain(4), { events: [{ atS: 200, kind: 'drift' }] }));
    });

    it('an automatic rollback killed between its apply and its seed still repairs the broken nodes', () => {
      expectHolds(base(plain(4), { maxUnavailable: 2, autoRollback: true, crashAtNamed: ['rollback: after the state write'] }));
    });

    it('a rollback --recreate killed between its delete and its apply is completed by the next pass, never Git\'s version', () => {
      expectHolds(base(plain(4), { events: [{ atS: 200, kind: 'rollback', recreate: true }], crashAtNamed: ['rollback: after the delete'] }));
    });

    it('a node the controller fills without a deletion (podless, or only a terminating pod) counts as exposed', () => {
      const nodes = plain(4);
      nodes[2].pod = 'crashloop';
      nodes[3].pod = 'none';
      expectHolds(base(nodes, { delays: { terminateS: 5, createS: 2, startS: 5, breakAfterS: 0 } }));
      const terminating = plain(4);
      terminating[2].pod = 'crashloop';
      terminating[3].pod = 'terminating';
      expectHolds(base(terminating, { delays: { terminateS: 5, createS: 2, startS: 5, breakAfterS: 0 } }));
    });

    // Found by this oracle once the fixes of items 1-6 were in.
    it('a NotReady node holding only a terminating pod when a node-breaking revision is applied counts as exposed: the template reaches no second node', () => {
      const nodes = plain(2);
      nodes[0] = { ...nodes[0], pod: 'terminating', notReadyUntil: 10_000 };
      expectHolds(base(nodes, { delays: { terminateS: 1, createS: 0, startS: 1, breakAfterS: 0 } }));
    });

    it('a run killed between the apply and the first decision leaves a node filled without a deletion exposed for the next run', () => {
      const nodes = plain(2);
      nodes[0] = { ...nodes[0], pod: 'terminating' };
      expectHolds(base(nodes, { delays: { terminateS: 1, createS: 0, startS: 1, breakAfterS: 0 }, crashAtNamed: ['apply: after the apply'] }));
    });

    it('a forward fix that breaks nodes too, put on a node the previous revision broke, keeps that node unavailable and exposed', () => {
      expectHolds(base(plain(2), { events: [{ atS: 1, kind: 'git', change: { kind: 'template', behaviour: 'breaks-node' } }], delays: { terminateS: 1, createS: 0, startS: 1, breakAfterS: 0 }, crashAtNamed: ['driver: after a delete'] }));
    });

    it('a rollback repairs a node the bad revision reached without a deletion while no run was driving it', () => {
      const nodes = plain(2);
      nodes[0] = { ...nodes[0], pod: 'none' };
      expectHolds(base(nodes, { autoRollback: true, delays: { terminateS: 1, createS: 2, startS: 1, breakAfterS: 0 }, crashAtNamed: ['apply: after the apply'] }));
    });

    // Found by the property above (the seeds it printed), kept as stories.
    it('a rollback that repairs a node in the instant its update breaks it counts that node unavailable, as its pods are (seed 1687542406)', () => {
      expectHolds({
        nodes: [{ name: 'n1', eligible: true, pod: 'available', notReadyUntil: 10000 }, { name: 'n2', eligible: true, pod: 'available' }, { name: 'n3', eligible: true, pod: 'available' }],
        maxUnavailable: 2, minReadySeconds: 0, autoRollback: false, first: 'breaks-node',
        events: [{ atS: 3, kind: 'rollback', recreate: false }],
        delays: { terminateS: 1, createS: 0, startS: 1, breakAfterS: 1 }, lag: [false], crashes: [20], crashAtNamed: [], progressDeadlineSeconds: 120, passEveryS: 30,
      } as Scenario);
    });

    it('an automatic rollback killed after writing a decision whose deletes never landed repairs the node the bad revision broke meanwhile (seed 73705012)', () => {
      expectHolds({
        nodes: [{ name: 'n1', eligible: true, pod: 'available' }, { name: 'n2', eligible: true, pod: 'available' }, { name: 'n3', eligible: false, pod: 'available' }, { name: 'n4', eligible: true, pod: 'available' }],
        maxUnavailable: 2, minReadySeconds: 0, autoRollback: true, first: 'good',
        events: [{ atS: 91, kind: 'outage', node: 0, forS: 10 }, { atS: 61, kind: 'git', change: { kind: 'template', behaviour: 'breaks-node' } }],
        delays: { terminateS: 2, createS: 2, startS: 1, breakAfterS: 0 }, lag: [false], crashes: [53], crashAtNamed: [], progressDeadlineSeconds: 120, passEveryS: 30,
      } as Scenario);
    });

    // kubectl set image made revision 3's rollout look complete while the cluster ran the drifted
    // template, so revision 3 (whose own template breaks nodes) was recorded healthy and the
    // automatic rollback after the drift correction restored it. The driver now decides nothing
    // on a DaemonSet whose generation moved past the one recorded (managed.ts,
    // changedOutsideSinceApply), and the drift correction replaces the drifted pod.
    it('an automatic rollback never restores a revision that was recorded healthy while drift ran instead of it (seed -1517387437)', () => {
      expectHolds({
        nodes: [{ name: 'n1', eligible: true, pod: 'available', notReadyUntil: 241000 }, { name: 'n2', eligible: false, pod: 'available' }],
        maxUnavailable: 1, minReadySeconds: 0, autoRollback: true, first: 'breaks-node',
        events: [{ atS: 271, kind: 'drift' }, { atS: 91, kind: 'git', change: { kind: 'template', behaviour: 'breaks-node' } }],
        delays: { terminateS: 1, createS: 0, startS: 1, breakAfterS: 0 }, lag: [false], crashes: [1], crashAtNamed: [], progressDeadlineSeconds: 120, passEveryS: 30,
      } as Scenario);
    });

    // Found with the healthy property, and the world was wrong: it showed a driver that had just
    // started (a rollback) the pod another driver had deleted as still Ready, as if its caches
    // lagged that deletion. A driver's caches begin with a LIST the API server answers with the
    // latest state; only its own deletions can lag. The rollback is complete once n1's new pod is.
    it('a rollback that starts right after another driver deleted a pod sees that deletion, and is recorded healthy only once that node\'s new pod is available (seed 782486720)', () => {
      const run = expectHolds({
        nodes: [{ name: 'n1', eligible: true, pod: 'available', notReadyUntil: 69000 }, { name: 'n2', eligible: true, pod: 'available', notReadyUntil: 69000 }, { name: 'n3', eligible: true, pod: 'available' }],
        maxUnavailable: 1, minReadySeconds: 0, autoRollback: false, first: 'breaks-node',
        events: [{ atS: 70, kind: 'rollback', recreate: false }],
        delays: { terminateS: 1, createS: 0, startS: 1, breakAfterS: 0 }, lag: [true], crashes: [1], crashAtNamed: [], progressDeadlineSeconds: 120, passEveryS: 30,
      } as Scenario);
      expect(run.store.state).toMatchObject({ currentRevision: 3, lastHealthyRevision: 3, rollout: { phase: 'complete' } });
    });

    // A run killed between its apply and its record, then kubectl set image: the next pass recorded
    // the revision with the live (changed) generation as its own, so the change was never seen and
    // the revision was recorded healthy on the hand-made template. No generation is recorded now
    // (apply.ts, repairFromLive): the plan looks first, and a pinned revision is restored once.
    it('a rollback killed after its apply and changed by hand before the next pass is restored, not recorded healthy on the hand-made template (seed 385306398)', () => {
      expectHolds({
        nodes: [{ name: 'n1', eligible: false, pod: 'available' }, { name: 'n2', eligible: true, pod: 'available', notReadyUntil: 10000 }],
        maxUnavailable: '10%', minReadySeconds: 0, autoRollback: true, first: 'crashloop',
        events: [{ atS: 151, kind: 'drift' }],
        delays: { terminateS: 1, createS: 0, startS: 1, breakAfterS: 0 }, lag: [false], crashes: [1], crashAtNamed: ['rollback: after the apply'], progressDeadlineSeconds: 120, passEveryS: 30,
      } as Scenario);
    });

    it('a restore of a pinned revision killed after its apply and changed by hand again is restored again (seed -775266449)', () => {
      expectHolds({
        nodes: [{ name: 'n1', eligible: true, pod: 'available', notReadyUntil: 301000 }, { name: 'n2', eligible: false, pod: 'available' }],
        maxUnavailable: '10%', minReadySeconds: 0, autoRollback: true, first: 'breaks-node',
        events: [{ atS: 331, kind: 'drift' }, { atS: 361, kind: 'drift' }, { atS: 0, kind: 'pause', racing: false }, { atS: 91, kind: 'resume', racing: false }],
        delays: { terminateS: 1, createS: 0, startS: 1, breakAfterS: 0 }, lag: [false], crashes: [39, 61], crashAtNamed: ['apply: after write-ahead'], progressDeadlineSeconds: 120, passEveryS: 30,
      } as Scenario);
    });

    // The world did not count a recreate that a pass completed (the rollback was killed before its
    // delete) as a recreate, and judged its delete of every pod at once against the budget; a
    // rollback --recreate replaces every pod at once by design, whichever process deletes.
    it('a rollback --recreate killed before its delete and completed by the next pass replaces every pod at once, by design (seed -1599817266)', () => {
      const run = expectHolds({
        nodes: [{ name: 'n1', eligible: true, pod: 'available' }, { name: 'n2', eligible: true, pod: 'available' }],
        maxUnavailable: 1, minReadySeconds: 0, autoRollback: false, first: 'breaks-node',
        events: [{ atS: 1, kind: 'rollback', recreate: true }],
        delays: { terminateS: 1, createS: 0, startS: 1, breakAfterS: 0 }, lag: [false], crashes: [], crashAtNamed: ['rollback: after recording the recreate'], progressDeadlineSeconds: 120, passEveryS: 30,
      } as Scenario);
      expect(run.store.state).toMatchObject({ currentRevision: 3, lastHealthyRevision: 3, rollout: { phase: 'complete' } });
    });

    // A rollback --recreate killed after its delete, then a new commit in Git: the pin no longer
    // held, so the next pass created Git's new version, which broke both nodes at once (no old pod
    // was left to replace in waves). The missing DaemonSet is now re-created from the revision the
    // rollback restores, and Git's version rolls out over it in waves (plan.ts, pendingRecreate).
    it('a new commit after a rollback --recreate was killed after its delete rolls out in waves over the restored revision, not created on every node at once (seed 1438518964)', () => {
      expectHolds({
        nodes: [{ name: 'n1', eligible: true, pod: 'available', notReadyUntil: 10000 }, { name: 'n2', eligible: true, pod: 'available' }],
        maxUnavailable: 1, minReadySeconds: 0, autoRollback: false, first: 'breaks-node',
        events: [{ atS: 92, kind: 'git', change: { kind: 'template', behaviour: 'breaks-node' } }, { atS: 91, kind: 'rollback', recreate: true }],
        delays: { terminateS: 1, createS: 0, startS: 1, breakAfterS: 0 }, lag: [false], crashes: [1], crashAtNamed: ['rollback: after the delete', 'driver: before reading the state'], progressDeadlineSeconds: 120, passEveryS: 30,
      } as Scenario);
    });

    // The automatic rollback restored revision 3, whose manifest carried Git's
    // `daemonset-gitops.io/paused: "true"` (Git has unpaused since). rollback.ts applies the
    // target's manifest as stored, so the rollback's own rollout was paused by that annotation and
    // never replaced the pod on the node revision 4 broke; the pin kept Git's unpause out. A
    // rollback's rollout is now paused only by hand (managed.ts, isPaused).
    it('an automatic rollback to a revision whose manifest was paused in Git still repairs the node the bad revision broke (seed -1970636275)', () => {
      expectHolds({
        nodes: [{ name: 'n1', eligible: true, pod: 'available' }, { name: 'n2', eligible: true, pod: 'available' }],
        maxUnavailable: '10%', minReadySeconds: 0, autoRollback: false, first: 'good',
        events: [{ atS: 31, kind: 'git', change: { kind: 'template', behaviour: 'breaks-node' } }, { atS: 1, kind: 'git', change: { kind: 'metadata', what: 'paused' } }, { atS: 31, kind: 'git', change: { kind: 'metadata', what: 'unpaused' } }, { atS: 0, kind: 'git', change: { kind: 'metadata', what: 'auto-rollback' } }],
        delays: { terminateS: 1, createS: 0, startS: 1, breakAfterS: 0 }, lag: [false], crashes: [15], crashAtNamed: [], progressDeadlineSeconds: 120, passEveryS: 30,
      } as Scenario);
    });

    it('NotReady nodes count against a percent budget: ten nodes, four NotReady, 50% keeps at most five unavailable', () => {
      const nodes = plain(10).map((n, i) => (i < 4 ? { ...n, notReadyUntil: 1200_000 } : n));
      expectHolds(base(nodes, { maxUnavailable: '50%', first: 'good' }));
    });
  });
});
