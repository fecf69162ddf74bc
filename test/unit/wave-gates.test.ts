/**
 * Gates on every wave: after the canary, each wave is held once its nodes run the update and
 * are available, until every metric gate has its `count` measurements on that wave's nodes.
 *
 * The simulation drives the pure pieces the driver uses (gatedScope, judgeSample,
 * combineGates, nextWave) against a small fake fleet whose replacement pods become Ready two
 * seconds after their old pod is deleted, and checks the outcome against what the
 * documentation promises, from the log of deletions and measurements alone: which nodes each
 * wave deleted, which nodes each measurement covered, and when.
 */
import { gatedScope } from '../../lib/rollout/gate-runner';
import { combineGates, dueGates, judgeSample, Measurement, MetricGate } from '../../lib/rollout/gates';
import { nextWave, WaveCheckpoint, WaveDecision, WaveNode, WavePod, WavePolicy } from '../../lib/rollout/wave';
import { prometheusGateSpec } from '../support/gates';

const T0 = Date.parse('2026-03-01T00:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000);
const iso = (s: number) => at(s).toISOString();
const nodeName = (i: number) => `n${String(i).padStart(2, '0')}`;

const spec = () => prometheusGateSpec({ name: 'errors', count: 2, successCondition: 'result < 5' });

interface Step { t: number; decision: WaveDecision; added: Measurement[] }

/**
 * Runs a managed rollout of `n` nodes to its end (complete, stalled or paused), deciding once a
 * second. `value(node, t)` is what the metric reports for a node (undefined: no series).
 */
function simulate(opts: { n: number; maxUnavailable: number; canary?: number; value: (node: string, t: number) => number | undefined; gates?: ReturnType<typeof spec>; restores?: boolean }) {
  const gates = opts.gates ?? spec();
  const names = Array.from({ length: opts.n }, (_, i) => nodeName(i + 1));
  const nodes: WaveNode[] = names.map((name) => ({ name, ready: true, desired: true, labels: {} }));
  const deletedAt = new Map<string, number>();
  const pods = (t: number): WavePod[] => names.map((node) => {
    const d = deletedAt.get(node);
    if (d === undefined) return { name: `old-${node}`, uid: `old-${node}`, node, updated: false, ready: true, readySince: iso(-3600), terminating: false };
    const ready = t >= d + 2;
    return { name: `new-${node}`, uid: `new-${node}`, node, updated: true, ready, readySince: ready ? iso(d + 2) : undefined, terminating: false };
  });
  let checkpoint: WaveCheckpoint | undefined = opts.restores ? { startedAt: iso(0), lastProgressAt: iso(0), updatedAvailable: 0, waves: 0, inFlight: [], restores: true } : undefined;
  let measurements: Measurement[] = [];
  let wavePhase: string | undefined;
  const steps: Step[] = [];
  const policy: WavePolicy = {
    maxUnavailable: opts.maxUnavailable, minReadySeconds: 0, paused: false, progressDeadlineSeconds: 600,
    ...(opts.canary ? { canary: { count: opts.canary, holdSeconds: 0 } } : {}),
    gateWaves: true,
  };
  for (let t = 0; t < 1000; t++) {
    const observed = pods(t);
    const record = checkpoint ? { checkpoint, wavePhase } : undefined;
    const { scope, gated, measuring } = gatedScope(record, policy.canary !== undefined, observed, nodes);
    const added = (measuring ? dueGates(gates, measurements, scope, at(t).getTime()) : []).map((g: MetricGate) => {
      const values = gated.flatMap((node) => { const v = opts.value(node, t); return v === undefined ? [] : [v]; });
      return judgeSample(g, { values }, iso(t), gated, scope.round, scope.wave);
    });
    measurements = [...measurements, ...added];
    const decision = nextWave({ nodes, pods: observed }, { ...policy, gates: combineGates(gates, scope, [], measurements, at(t).getTime()) }, checkpoint, at(t));
    for (const p of decision.podsToDelete) deletedAt.set(p.node, t);
    steps.push({ t, decision, added });
    checkpoint = decision.checkpoint;
    wavePhase = decision.phase;
    if (['complete', 'stalled', 'paused'].includes(decision.phase)) break;
  }
  const waves = steps.filter((s) => s.decision.podsToDelete.length > 0).map((s) => ({ t: s.t, nodes: s.decision.podsToDelete.map((p) => p.node).sort() }));
  return { steps, waves, measurements, last: steps[steps.length - 1].decision };
}

describe('gates on every wave', () => {
  it('holds each wave after the canary until every metric gate has its count measurements on that wave\'s nodes, the last wave too', () => {
    const { waves, measurements, last, steps } = simulate({ n: 7, maxUnavailable: 2, canary: 1, value: () => 1 });
    expect(last.phase).toBe('complete');
    expect(waves.map((w) => w.nodes)).toEqual([['n01'], ['n02', 'n03'], ['n04', 'n05'], ['n06', 'n07']]);
    const completeAt = steps[steps.length - 1].t;
    // Every wave after the canary: measured `count` (2) times on exactly its nodes, after they were all available (2 s after deletion), before the next wave deleted anything.
    waves.slice(1).forEach((w, i) => {
      const nextAt = waves[i + 2]?.t ?? completeAt;
      const mine = measurements.filter((m) => m.round === 'waves' && JSON.stringify(m.nodes) === JSON.stringify(w.nodes));
      expect(mine.map((m) => m.outcome)).toEqual(['success', 'success']);
      for (const m of mine) {
        expect(Date.parse(m.at)).toBeGreaterThanOrEqual(at(w.t + 2).getTime());
        expect(Date.parse(m.at)).toBeLessThanOrEqual(at(nextAt).getTime());
      }
      // on the gate's interval, never sooner
      expect(Date.parse(mine[1].at) - Date.parse(mine[0].at)).toBeGreaterThanOrEqual(10_000);
    });
    // No wave was measured on nodes of another wave, and nothing was measured on the canary after it passed.
    expect(measurements.filter((m) => m.round === 'waves').every((m) => waves.slice(1).some((w) => JSON.stringify(w.nodes) === JSON.stringify(m.nodes)))).toBe(true);
  });

  it('says which wave holds and for which gate while it measures', () => {
    const { steps } = simulate({ n: 4, maxUnavailable: 2, value: () => 1 });
    const holding = steps.find((s) => s.decision.phase === 'wave-hold');
    expect(holding?.decision.reason).toMatch(/^wave 1 \(n01, n02\) updated and available; held for its gates: gate errors: \d of 2 measurements/);
    expect(holding?.decision.podsToDelete).toEqual([]);
  });

  it('a wave whose metric fails stops the rollout there: no node beyond that wave is touched, and the reason names gate, value and nodes', () => {
    const { waves, last } = simulate({ n: 7, maxUnavailable: 2, canary: 1, value: (node) => (node === 'n04' ? 9 : 1) });
    expect(last.phase).toBe('stalled');
    expect(waves.map((w) => w.nodes)).toEqual([['n01'], ['n02', 'n03'], ['n04', 'n05']]);
    expect(last.reason).toBe('stopped: gate errors failed: 1 failed measurement, more than failureLimit 0; last on n04,n05: value 9, success: result < 5: failure; deleting nothing more (5/7 nodes updated and available, 0 unavailable)');
    expect(last.checkpoint.failed?.nodes).toEqual(['n04', 'n05']);
  });

  it('a wave without data pauses the rollout (noData: pause) and deletes nothing more', () => {
    const { waves, last } = simulate({ n: 6, maxUnavailable: 2, value: (node) => (['n03', 'n04'].includes(node) ? undefined : 1) });
    expect(last.phase).toBe('paused');
    expect(waves.map((w) => w.nodes)).toEqual([['n01', 'n02'], ['n03', 'n04']]);
    expect(last.reason).toMatch(/^paused: gate errors inconclusive: 1 inconclusive measurement, more than inconclusiveLimit 0; last: no value, success: result < 5: inconclusive \(no data for the updated nodes \(noData: pause\)\)/);
  });

  it('never stalls on the progress deadline while a wave is held for its gates', () => {
    const g = spec().metrics[0];
    const slow = { metrics: [{ ...g, intervalSeconds: 400, count: 3 }] };
    const { last, steps } = simulate({ n: 3, maxUnavailable: 3, value: () => 1, gates: slow });
    expect(last.phase).toBe('complete');
    expect(steps[steps.length - 1].t).toBeGreaterThan(800);
    expect(steps.some((s) => s.decision.phase === 'stalled')).toBe(false);
  });

  it('a rollback is neither held nor measured: it restores a template that proved itself, whatever the metric still says', () => {
    const { steps, last, measurements } = simulate({ n: 4, maxUnavailable: 2, value: () => 9, restores: true });
    expect(last.phase).toBe('complete');
    expect(steps.some((s) => s.decision.phase === 'wave-hold')).toBe(false);
    expect(measurements).toEqual([]);
  });
});

describe('gatedScope', () => {
  const nodes: WaveNode[] = ['n01', 'n02', 'n03', 'n04'].map((name) => ({ name, ready: true, desired: true, labels: {} }));
  const pod = (node: string, updated: boolean): WavePod => ({ name: `p-${node}`, uid: node, node, updated, ready: true, terminating: false });
  const pods = [pod('n01', true), pod('n02', true), pod('n03', false), pod('n04', false)];
  const cp = (extra: Partial<WaveCheckpoint>): WaveCheckpoint => ({ startedAt: iso(0), lastProgressAt: iso(0), updatedAvailable: 2, waves: 2, inFlight: [], ...extra });

  it.each<[string, Partial<WaveCheckpoint>, boolean, { round: string; wave?: number; gated: string[]; measuring: boolean }]>([
    ['the canary, before its hold: not measured yet', { canaryNodes: ['n01'] }, true, { round: 'canary', gated: ['n01'], measuring: false }],
    ['the canary during its hold', { canaryNodes: ['n01'], canaryAvailableSince: iso(0) }, true, { round: 'canary', gated: ['n01'], measuring: true }],
    ['a wave being replaced: not measured yet', { canaryPassed: true, gatedWave: { wave: 2, nodes: ['n02'] } }, true, { round: 'waves', wave: 2, gated: ['n02'], measuring: false }],
    ['a held wave: its own nodes only', { canaryPassed: true, gatedWave: { wave: 2, nodes: ['n02'], availableSince: iso(1) } }, true, { round: 'waves', wave: 2, gated: ['n02'], measuring: true }],
    ['a wave that passed: the rollout is measured where the update reached', { canaryPassed: true, gatedWave: { wave: 2, nodes: ['n02'], availableSince: iso(1), passed: true } }, true, { round: 'waves', gated: ['n01', 'n02'], measuring: true }],
    ['a failed rollout is not measured', { gatedWave: { wave: 1, nodes: ['n02'], availableSince: iso(1) }, failed: { at: iso(1), reason: 'x', nodes: [] } }, false, { round: 'waves', wave: 1, gated: ['n02'], measuring: false }],
  ])('%s', (_, extra, hasCanary, want) => {
    const s = gatedScope({ checkpoint: cp(extra) }, hasCanary, pods, nodes);
    expect({ round: s.scope.round, ...(s.scope.wave !== undefined ? { wave: s.scope.wave } : {}), gated: s.gated, measuring: s.measuring }).toEqual(want);
    expect(s.baselineNodes).toEqual(['n03', 'n04']);
  });
});
