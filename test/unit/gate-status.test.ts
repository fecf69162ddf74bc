/**
 * Where gate measurements show: `plan` and `status --json` give each gate's verdict and last
 * measurements (value, condition, outcome); after a rollback the replaced revision's gate
 * record stays readable in the state (for `status`) and in its revision (for `history`).
 */
import type { Deps } from '../../lib/deps';
import { formatHistory, history, HistoryReport } from '../../lib/history';
import { formatReconcileReport, ReconcileReport, toRolloutReport } from '../../lib/report';
import { formatGateLines, gateStatus } from '../../lib/rollout/gate-status';
import { gateVerdicts, judgeSample } from '../../lib/rollout/gates';
import { formatStatus, StatusReport } from '../../lib/status';
import { StoreKeys } from '../../lib/store/keys';
import { DaemonSetState, GateRecord, RolloutState, stateAfterApply, stateSchema } from '../../lib/store/records';
import { StateStore } from '../../lib/store/state-store';
import { prometheusGateSpec } from '../support/gates';
import { MemoryObjectStore } from '../support/memory-object-store';

const T0 = Date.parse('2026-03-01T00:00:00Z');
const iso = (s: number) => new Date(T0 + s * 1000).toISOString();

const spec = prometheusGateSpec({ name: 'dropped', count: 3, successCondition: 'result < 0.1', failureLimit: 1 });
const gate = spec.metrics[0];

/** A wave-2 record: a success, then two failures on n04 (beyond failureLimit 1), with the verdicts the driver records. */
function failedRecord(): GateRecord {
  const scope = { round: 'waves' as const, wave: 2 };
  const measurements = [
    judgeSample(gate, { values: [0.01] }, iso(0), ['n03', 'n04'], 'waves', 2),
    judgeSample(gate, { values: [0.01, 0.5] }, iso(10), ['n03', 'n04'], 'waves', 2),
    judgeSample(gate, { values: [0.01, 0.7] }, iso(20), ['n03', 'n04'], 'waves', 2),
  ];
  return { measurements, verdicts: gateVerdicts(spec, measurements, scope, T0 + 21_000) };
}

function stalledRollout(): RolloutState {
  return {
    revision: 2, mode: 'managed', phase: 'stalled', startedAt: iso(-60), lastProgressAt: iso(20),
    counts: { desired: 5, current: 5, ready: 5, upToDate: 3, available: 5 },
    message: 'stopped: gate dropped failed: 2 failed measurements, more than failureLimit 1; last on n03,n04: value 0.7, success: result < 0.1: failure',
    managed: { gates: failedRecord() },
  };
}

describe('gateStatus', () => {
  it('gives each gate its verdict, its measurements count and its newest measurements', () => {
    const [s] = gateStatus(failedRecord())!;
    expect(s).toMatchObject({ gate: 'dropped', measurements: 3, verdict: { verdict: 'failed', round: 'waves', wave: 2 } });
    expect(s.verdict!.reason).toContain('2 failed measurements, more than failureLimit 1');
    expect(s.last).toMatchObject({ wave: 2, nodes: ['n03', 'n04'], value: 0.7, condition: 'success: result < 0.1', outcome: 'failure' });
    expect(s.recent.map((m) => [m.value, m.outcome])).toEqual([[0.01, 'success'], [0.5, 'failure'], [0.7, 'failure']]);
  });

  it('says nothing for a rollout without measurements', () => {
    expect(gateStatus(undefined)).toBeUndefined();
    expect(gateStatus({ measurements: [] })).toBeUndefined();
  });

  it('one line per gate: last value, condition, outcome and the verdict of its round', () => {
    expect(formatGateLines('ops/agent', gateStatus(failedRecord()))).toEqual([
      `ops/agent gate dropped: 3 measurements; last (wave 2, ${iso(20)}) on n03,n04: value 0.7, success: result < 0.1: failure; verdict (wave 2): failed`,
    ]);
  });
});

describe('plan and the reconcile report', () => {
  it('carries each gate\'s verdict and last measurements in --json, and prints them under the table', () => {
    const rollout = toRolloutReport(stalledRollout());
    expect(rollout.gates?.[0]).toMatchObject({ gate: 'dropped', verdict: { verdict: 'failed' }, last: { value: 0.7, outcome: 'failure' } });
    const report = {
      kind: 'ReconcileReport', cluster: 'c1', dryRun: true, result: 'ok', problems: [],
      daemonSets: [{ key: 'ops/agent', namespace: 'ops', name: 'agent', action: 'unchanged', applied: false, revision: 2, message: 'in sync', rollout }],
    } as unknown as ReconcileReport;
    const text = formatReconcileReport(report);
    expect(text).toContain(`ops/agent gate dropped: 3 measurements; last (wave 2, ${iso(20)}) on n03,n04: value 0.7, success: result < 0.1: failure; verdict (wave 2): failed`);
  });
});

describe('measurements survive a rollback', () => {
  const failed = (): DaemonSetState => ({
    schema: 1, namespace: 'ops', name: 'agent', currentRevision: 2, appliedDigest: 'd2', lastHealthyRevision: 1, rollout: stalledRollout(), updatedAt: iso(20),
  });

  it('the rollback\'s state keeps the replaced revision\'s gate record, its phase and message', () => {
    const after = stateAfterApply(failed(), { namespace: 'ops', name: 'agent', revision: 3, digest: 'd1', mode: 'managed', at: iso(30), cause: 'rollback' });
    expect(after.rollout?.revision).toBe(3);
    expect(after.rolledBack).toEqual({ revision: 2, phase: 'stalled', message: stalledRollout().message, gates: failedRecord() });
    // It is a valid state record, as S3 keeps it.
    expect(stateSchema.safeParse(after).success).toBe(true);
  });

  it('a forward change does not carry it, and the next apply after the rollback drops it', () => {
    expect(stateAfterApply(failed(), { namespace: 'ops', name: 'agent', revision: 3, digest: 'd3', mode: 'managed', at: iso(30), cause: 'git-change' }).rolledBack).toBeUndefined();
    const rolledBack = stateAfterApply(failed(), { namespace: 'ops', name: 'agent', revision: 3, digest: 'd1', mode: 'managed', at: iso(30), cause: 'rollback' });
    expect(stateAfterApply(rolledBack, { namespace: 'ops', name: 'agent', revision: 4, digest: 'd4', mode: 'managed', at: iso(90), cause: 'git-change' }).rolledBack).toBeUndefined();
  });

  it('status names the rolled-back revision, the gate that failed and its value', () => {
    const report: StatusReport = {
      kind: 'StatusReport', cluster: 'c1',
      daemonSets: [{
        key: 'ops/agent', namespace: 'ops', name: 'agent', inCluster: true, revision: 3, phase: 'complete', mode: 'managed',
        rolledBack: { revision: 2, phase: 'stalled', message: stalledRollout().message, gates: gateStatus(failedRecord())! },
      }],
    };
    const text = formatStatus(report);
    expect(text).toContain(`ops/agent revision 2, rolled back (stalled: ${stalledRollout().message}):`);
    expect(text).toContain(`  revision 2 gate dropped: 3 measurements; last (wave 2, ${iso(20)}) on n03,n04: value 0.7, success: result < 0.1: failure; verdict (wave 2): failed`);
  });

  it('history shows, under the table, what the gates of each revision that had them said', () => {
    const h: HistoryReport = {
      kind: 'HistoryReport', cluster: 'c1', namespace: 'ops', name: 'agent', currentRevision: 3, total: 3,
      revisions: [
        { revision: 3, current: true, cause: 'rollback', causeText: 'rollback to 1', createdAt: iso(30), outcome: 'healthy', images: ['agent:1'], digest: 'd1' },
        { revision: 2, current: false, cause: 'git-change', causeText: 'git-change', createdAt: iso(-60), outcome: 'rolled-back', outcomeReason: 'rolled back to revision 1 (as revision 3)', images: ['agent:2'], digest: 'd2', gates: gateStatus(failedRecord()) },
      ],
    };
    const text = formatHistory(h);
    expect(text).toContain('revision 2 (rolled-back: rolled back to revision 1 (as revision 3)):');
    expect(text).toContain(`  gate dropped: 3 measurements; last (wave 2, ${iso(20)}) on n03,n04: value 0.7, success: result < 0.1: failure; verdict (wave 2): failed`);
  });
});

describe('a revision keeps its gate record', () => {
  it('setOutcome writes the gates given, keeps them when none are given, and history reads them back', async () => {
    const store = new StateStore(new MemoryObjectStore(), new StoreKeys('dsg', 'c1'));
    const snapshot = {
      schema: 1 as const, cluster: 'c1', namespace: 'ops', name: 'agent', cause: 'git-change' as const, manifest: { spec: { template: { spec: { containers: [{ name: 'a', image: 'agent:2' }] } } } },
      digest: 'd2', rolloutMode: 'managed' as const, replaced: null, runId: 'r', createdAt: iso(0), outcome: 'pending' as const, outcomeAt: iso(0),
    };
    const claimed = await store.claimRevision(snapshot, 1);
    await store.setOutcome('ops', 'agent', claimed.revision, 'stalled', iso(30), stalledRollout().message, undefined, failedRecord());
    await store.setOutcome('ops', 'agent', claimed.revision, 'rolled-back', iso(40), 'rolled back to revision 1 (as revision 3)');
    const stored = (await store.getRevision('ops', 'agent', claimed.revision))!.value;
    expect(stored).toMatchObject({ outcome: 'rolled-back', gates: failedRecord() });
    const h = await history({ store, config: { cluster: { name: 'c1' } } } as unknown as Deps, { namespace: 'ops', name: 'agent' });
    expect(h.revisions[0].gates?.[0]).toMatchObject({ gate: 'dropped', verdict: { verdict: 'failed', wave: 2 }, last: { value: 0.7, nodes: ['n03', 'n04'] } });
  });
});
