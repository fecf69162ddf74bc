import { isRecordedPass, MAX_PASS_RECORD_BYTES, passRecord } from '../../lib/pass-summary';
import type { DaemonSetReport, ReconcileReport } from '../../lib/report';
import { passRecordSchema } from '../../lib/store/pass-record';

function report(daemonSets: DaemonSetReport[], extra: Partial<ReconcileReport> = {}): ReconcileReport {
  return {
    kind: 'ReconcileReport', runId: 'run-1', cluster: 'c1', dryRun: false, result: 'succeeded',
    startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:00:05.000Z',
    source: { url: 'https://git.example/r.git', ref: 'main', path: '.', commit: { sha: 'a'.repeat(40), author: 'Ann', email: 'a@x', time: '2026-01-01T00:00:00Z', subject: 'bump' } },
    summary: { total: daemonSets.length }, daemonSets, problems: [], kubernetesRequests: 3, ...extra,
  };
}

const unchanged = (i: number): DaemonSetReport => ({ key: `ns/agent-${i}`, namespace: 'ns', name: `agent-${i}`, action: 'unchanged', applied: false, revision: 1, message: 'in sync', rollout: { phase: 'complete', mode: 'native', revision: 1 } });
const invalid = (i: number, message = 'spec.selector does not match the template labels'): DaemonSetReport => ({
  key: `ns/bad-${i}`, namespace: 'ns', name: `bad-${i}`, action: 'invalid', applied: false, message: `bad-${i}.yaml: ${message}`,
  source: { file: `bad-${i}.yaml`, document: 1 },
  problems: [{ file: `bad-${i}.yaml`, document: 1, key: `ns/bad-${i}`, code: 'selector-mismatch', severity: 'error', message }],
});

describe('passRecord', () => {
  it('counts quiet DaemonSets instead of listing them, and lists what has something to say, most serious first', () => {
    const applied: DaemonSetReport = { key: 'ns/fresh', namespace: 'ns', name: 'fresh', action: 'update', cause: 'git-change', applied: true, revision: 3, previousRevision: 2, message: 'applied', rollout: { phase: 'progressing', mode: 'native', revision: 3 } };
    const held: DaemonSetReport = { key: 'ns/held', namespace: 'ns', name: 'held', action: 'update', applied: false, revision: 4, message: 'update: held', held: '3 nodes have no pod yet (budget 1)', source: { file: 'held.yaml', document: 2 } };
    const r = passRecord(report([unchanged(1), applied, unchanged(2), held, invalid(1)]));
    expect(r.quiet).toBe(2);
    expect(r.daemonSets.map((d) => d.key)).toEqual(['ns/bad-1', 'ns/held', 'ns/fresh']);
    expect(r.daemonSets[1]).toMatchObject({ held: '3 nodes have no pod yet (budget 1)', source: { file: 'held.yaml', document: 2 } });
    expect(passRecordSchema.safeParse(r).success).toBe(true);
  });

  it('a DaemonSet held because its companion failed is held, with that reason', () => {
    const companion: DaemonSetReport = { key: 'ns/c', namespace: 'ns', name: 'c', action: 'failed', applied: false, message: 'x', error: { reason: 'CompanionFailed', message: 'ConfigMap ns/c-config failed to apply' } };
    expect(passRecord(report([companion])).daemonSets[0].held).toBe('ConfigMap ns/c-config failed to apply');
  });

  it('stays under its byte bound whatever the report holds, and says how much it left out', () => {
    const many = Array.from({ length: 3000 }, (_, i) => invalid(i, 'x'.repeat(5000)));
    const problems = Array.from({ length: 3000 }, (_, i) => ({ file: `other-${i}.yaml`, document: 1, code: 'not-a-daemonset', severity: 'error' as const, message: 'y'.repeat(5000) }));
    const r = passRecord(report(many, { problems }));
    const bytes = Buffer.byteLength(JSON.stringify(r));
    expect(bytes).toBeLessThanOrEqual(MAX_PASS_RECORD_BYTES);
    expect(r.daemonSets.length).toBeGreaterThan(0);
    expect(r.daemonSets.length + (r.omitted?.daemonSets ?? 0)).toBe(3000);
    expect(r.problems.length + (r.omitted?.problems ?? 0)).toBe(3000);
    expect(r.daemonSets[0].message.length).toBeLessThanOrEqual(600);
  });

  it('gives a quiet pass after one that applied something the same digest, and a pass with a new problem another', () => {
    const applied: DaemonSetReport = { ...unchanged(1), action: 'update', applied: true, revision: 2, rollout: { phase: 'complete', mode: 'native', revision: 2 } };
    const acting = passRecord(report([applied, unchanged(2)]));
    const quiet = passRecord(report([unchanged(1), unchanged(2)], { runId: 'run-2', startedAt: '2026-01-01T00:01:00.000Z' }));
    const broken = passRecord(report([unchanged(1), unchanged(2), invalid(7)], { runId: 'run-3' }));
    const fixed = passRecord(report([unchanged(1), unchanged(2)], { runId: 'run-4' }));
    expect(quiet.digest).toBe(acting.digest);
    expect(broken.digest).not.toBe(quiet.digest);
    expect(fixed.digest).toBe(quiet.digest);
    // Another message for the same problem is news.
    expect(passRecord(report([invalid(7, 'other')])).digest).not.toBe(passRecord(report([invalid(7)])).digest);
  });

  it.each([
    ['a scheduled pass', {}, 'succeeded', true],
    ['a dry run', { dryRun: true }, 'succeeded', false],
    ['a pass limited to some DaemonSets', { only: ['ns/a'] as string[] }, 'succeeded', false],
    ['a pass skipped while another held the lease', {}, 'skipped', false],
    ['a failed pass', {}, 'failed', true],
  ] as [string, { dryRun?: boolean; only?: string[] }, 'succeeded' | 'failed' | 'skipped', boolean][])('%s is kept: %#', (_what, request, result, kept) => {
    expect(isRecordedPass(report([], { result }), request)).toBe(kept);
  });
});
