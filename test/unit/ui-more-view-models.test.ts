import type { LiveDaemonSet } from '../../lib/cluster/types';
import { nativeBudget, nativeTimelinePoint } from '../../lib/rollout/native-timeline';
import type { PassRecord } from '../../lib/store/pass-record';
import type { RevisionSnapshot } from '../../lib/store/records';
import { clusterRow, configChanges, lastPassView, problemsByFile, revisionDiff, rolloutChart } from '../../lib/ui/view-models';

const NOW = new Date('2026-01-01T12:00:00Z');

function record(extra: Partial<PassRecord> = {}): PassRecord {
  return {
    schema: 1, cluster: 'c1', runId: 'run-9', startedAt: '2026-01-01T11:59:00.000Z', finishedAt: '2026-01-01T11:59:30.000Z', result: 'failed', digest: 'd',
    source: { url: 'u', ref: 'main', path: '.', commit: { sha: 'abcdef0123456789', subject: 'add agents', author: 'Ann' } },
    summary: { total: 5, invalid: 1, update: 1, unchanged: 3 }, daemonSets: [], quiet: 3, objects: [], problems: [], ...extra,
  };
}

describe('problemsByFile', () => {
  // Each row: what the stored pass says -> what a person sees under that file.
  it('groups every kind of problem under its file, documents in order, and marks DaemonSets never applied', () => {
    const r = record({
      problems: [
        { file: 'rbac.yaml', document: 2, code: 'kind-not-allowed', severity: 'skipped', message: 'ClusterRole reader is not applied: ALLOWED_KINDS does not allow it' },
        { file: 'notes.yaml', code: 'yaml-syntax', severity: 'error', message: 'bad indentation' },
      ],
      daemonSets: [
        { key: 'ns/new-agent', action: 'invalid', applied: false, source: { file: 'agents.yaml', document: 3 }, message: 'x', problems: [{ file: 'agents.yaml', document: 3, key: 'ns/new-agent', code: 'selector-mismatch', severity: 'error', message: 'spec.selector does not match' }] },
        { key: 'ns/held', action: 'update', applied: false, revision: 2, source: { file: 'agents.yaml', document: 1 }, message: 'x', held: '2 nodes have no pod yet' },
        { key: 'ns/refused', action: 'failed', applied: false, revision: 4, source: { file: 'refused.yaml', document: 1 }, message: 'x', error: { reason: 'ApplyError', message: 'admission webhook denied it' } },
        { key: 'ns/fine', action: 'update', applied: true, revision: 5, message: 'applied' },
      ],
      objects: [{ id: 'ConfigMap ns/cfg', kind: 'ConfigMap', action: 'failed', applied: false, source: { file: 'agents.yaml', document: 2 }, message: 'm', error: { reason: 'Invalid', message: 'data too large' } }],
    });
    const view = problemsByFile(r);
    expect(view.map((f) => f.file)).toEqual(['agents.yaml', 'notes.yaml', 'rbac.yaml', 'refused.yaml']);
    expect(view[0].problems).toEqual([
      { document: 1, subject: 'ns/held', kind: 'held', message: '2 nodes have no pod yet' },
      { document: 2, subject: 'ConfigMap ns/cfg', kind: 'failed', code: 'Invalid', message: 'data too large' },
      { document: 3, subject: 'ns/new-agent', kind: 'invalid', code: 'selector-mismatch', message: 'spec.selector does not match', neverApplied: true },
    ]);
    expect(view[1].problems[0]).toMatchObject({ kind: 'refused', code: 'yaml-syntax' });
    expect(view[2].problems[0]).toMatchObject({ kind: 'refused', document: 2 });
    expect(view[3].problems[0]).toMatchObject({ kind: 'failed', subject: 'ns/refused', message: 'admission webhook denied it' });
    expect(view[3].problems[0].neverApplied).toBeUndefined();
  });

  it('is empty without a record, and for a pass that found nothing wrong', () => {
    expect(problemsByFile(undefined)).toEqual([]);
    expect(problemsByFile(record({ daemonSets: [{ key: 'ns/a', action: 'update', applied: true, revision: 2, message: 'ok' }] }))).toEqual([]);
  });
});

describe('lastPassView', () => {
  it('tells when, which commit, the counts, each listed DaemonSet in a line, and what was left out', () => {
    const v = lastPassView(record({
      daemonSets: [
        { key: 'ns/a', action: 'update', applied: true, revision: 2, cause: 'git-change', message: 'm', rollout: { phase: 'progressing', mode: 'managed', revision: 2, desired: 8, upToDate: 3 } },
        { key: 'ns/b', action: 'invalid', applied: false, message: 'm', source: { file: 'b.yaml', document: 1 }, problems: [{ file: 'b.yaml', document: 1, code: 'schema', severity: 'error', message: 'containers is required' }] },
      ],
      omitted: { daemonSets: 12, objects: 0, problems: 3 },
    }))!;
    expect(v).toMatchObject({ at: '2026-01-01T11:59:30.000Z', runId: 'run-9', result: 'failed', commit: { short: 'abcdef0', subject: 'add agents' }, counts: '1 invalid, 3 unchanged, 1 update' });
    expect(v.lines).toEqual([
      { key: 'ns/a', action: 'update', revision: 2, text: 'applied revision 2 (git-change); rollout progressing (3/8 updated)', serious: false },
      { key: 'ns/b', action: 'invalid', revision: undefined, text: 'invalid: b.yaml (document 1): containers is required', serious: true },
    ]);
    expect(v.omitted).toMatch(/12 DaemonSets, 3 problems left out/);
    expect(v.byFile.map((f) => f.file)).toEqual(['b.yaml']);
  });

  it('says why when the record cannot be read, and nothing when there is none', () => {
    expect(lastPassView(undefined, 'last-pass.json is not valid JSON')?.note).toBe('last-pass.json is not valid JSON');
    expect(lastPassView(undefined)).toBeUndefined();
  });
});

describe('clusterRow with the last pass', () => {
  it('lists a DaemonSet in Git that never applied, with its file and problem', () => {
    const row = clusterRow({ key: 'ns/new-agent', pass: { key: 'ns/new-agent', action: 'invalid', applied: false, message: 'agents.yaml (document 3): bad', problems: [{ file: 'agents.yaml', document: 3, code: 'schema', severity: 'error', message: 'bad' }] } }, NOW, 600);
    expect(row).toMatchObject({ phase: 'never applied', inCluster: false, problem: { file: 'agents.yaml (document 3)', message: 'bad' } });
  });
});

function snapshot(revision: number, image: string, config?: RevisionSnapshot['config']): RevisionSnapshot {
  return {
    schema: 1, cluster: 'c1', namespace: 'ns', name: 'agent', revision, cause: 'git-change', digest: `d${revision}`, rolloutMode: 'native', replaced: null, runId: 'r', createdAt: NOW.toISOString(), outcome: 'healthy', outcomeAt: NOW.toISOString(),
    manifest: { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'agent', namespace: 'ns' }, spec: { template: { spec: { containers: [{ name: 'a', image }] } } } },
    ...(config ? { config } : {}),
  };
}

describe('configChanges and revisionDiff', () => {
  const cm = (data: Record<string, string>, digest: string, copy: string) => ({ kind: 'ConfigMap' as const, namespace: 'ns', name: 'agent-config', copyName: copy, digest, data });
  const secret = (digest: string) => ({ kind: 'Secret' as const, namespace: 'ns', name: 'agent-token', copyName: `agent-token-${digest}`, digest });

  it.each([
    ['a ConfigMap key changed', [cm({ level: 'info' }, 'c1', 'agent-config-c1')], [cm({ level: 'debug' }, 'c2', 'agent-config-c2')], [{ kind: 'ConfigMap', change: 'changed', diff: /-level: info\n\+level: debug/ }]],
    ['a ConfigMap unchanged', [cm({ level: 'info' }, 'c1', 'x')], [cm({ level: 'info' }, 'c1', 'x')], [{ kind: 'ConfigMap', change: 'unchanged', diff: /^$/ }]],
    ['a Secret rotated', [secret('s1')], [secret('s2')], [{ kind: 'Secret', change: 'changed' }]],
    ['a Secret the same', [secret('s1')], [secret('s1')], [{ kind: 'Secret', change: 'unchanged' }]],
    ['a ConfigMap added', [], [cm({ a: '1' }, 'c1', 'x')], [{ kind: 'ConfigMap', change: 'added', diff: /\+a: "1"/ }]],
    ['a Secret removed', [secret('s1')], [], [{ kind: 'Secret', change: 'removed' }]],
  ] as const)('%s', (_what, from, to, expected) => {
    const got = configChanges(from, to, { before: 'revision 1', after: 'revision 2' });
    expect(got).toHaveLength(expected.length);
    expected.forEach((e, i) => {
      expect(got[i]).toMatchObject({ kind: e.kind, change: e.change });
      if ('diff' in e) expect(got[i].diff).toMatch(e.diff);
      if (e.kind === 'Secret') expect(got[i].diff).toBeUndefined();
    });
  });

  it('shows the template diff and the configuration, never a Secret value, older revision first', () => {
    const a = snapshot(1, 'agent:1.0', [cm({ level: 'info' }, 'c1', 'agent-config-c1'), secret('s1')]);
    const b = snapshot(2, 'agent:1.1', [cm({ level: 'debug' }, 'c2', 'agent-config-c2'), secret('s2')]);
    const text = revisionDiff(b, a);
    expect(text).toMatch(/--- revision 1\n\+\+\+ revision 2/);
    expect(text).toMatch(/-\s+- image: agent:1.0\n\+\s+- image: agent:1.1/);
    expect(text).toMatch(/ConfigMap ns\/agent-config: changed \(agent-config-c1 -> agent-config-c2\)/);
    expect(text).toMatch(/Secret ns\/agent-token: changed .*values not shown/);
  });

  it('says nothing of configuration for snapshots that kept none', () => {
    expect(revisionDiff(snapshot(1, 'a'), snapshot(2, 'b'))).not.toMatch(/configuration/);
  });
});

function nativeDs(o: { desired: number; available: number; updated: number; maxUnavailable?: number | string; maxSurge?: number | string; type?: string; generation?: number; observed?: number }): LiveDaemonSet {
  return {
    metadata: { name: 'exporter', namespace: 'ns', generation: o.generation ?? 2 },
    spec: { selector: {}, template: { spec: { containers: [] } }, updateStrategy: { type: o.type ?? 'RollingUpdate', rollingUpdate: { ...(o.maxUnavailable !== undefined ? { maxUnavailable: o.maxUnavailable } : {}), ...(o.maxSurge !== undefined ? { maxSurge: o.maxSurge } : {}) } } },
    status: { desiredNumberScheduled: o.desired, numberAvailable: o.available, updatedNumberScheduled: o.updated, numberUnavailable: o.desired - o.available, observedGeneration: o.observed ?? 2 },
  } as LiveDaemonSet;
}

describe('nativeBudget', () => {
  // The DaemonSet controller's budget (pkg/controller/daemon/util UnavailableCount, rounding up; both 0 means 1), computed by hand.
  it.each([
    ['the default', {}, 10, 1],
    ['an integer', { maxUnavailable: 3 }, 10, 3],
    ['10% of 15 nodes rounds up to 2', { maxUnavailable: '10%' }, 15, 2],
    ['25% of 4 nodes is 1', { maxUnavailable: '25%' }, 4, 1],
    ['1% of 200 nodes is 2', { maxUnavailable: '1%' }, 200, 2],
    ['surge: the new pod starts first, none may be unavailable', { maxUnavailable: 0, maxSurge: 1 }, 10, 0],
    ['0% of 3 nodes with no surge is taken as 1', { maxUnavailable: '0%' }, 3, 1],
  ] as const)('%s', (_what, strategy, desired, expected) => {
    expect(nativeBudget(nativeDs({ desired, available: desired, updated: 0, ...strategy }))).toBe(expected);
  });

  it('has none for OnDelete: the controller rolls nothing', () => {
    expect(nativeBudget(nativeDs({ desired: 3, available: 3, updated: 0, type: 'OnDelete' }))).toBeUndefined();
  });
});

describe('nativeTimelinePoint', () => {
  it('takes unavailable and updated from the controller\'s status, with the budget, and the chart draws them', () => {
    const at = (s: number) => new Date(NOW.getTime() + s * 1000);
    const looks = [
      nativeTimelinePoint(nativeDs({ desired: 4, available: 4, updated: 0, maxUnavailable: 2 }), { phase: 'progressing' }, at(0)),
      nativeTimelinePoint(nativeDs({ desired: 4, available: 2, updated: 2, maxUnavailable: 2 }), { phase: 'progressing' }, at(5)),
      nativeTimelinePoint(nativeDs({ desired: 4, available: 4, updated: 4, maxUnavailable: 2 }), { phase: 'complete' }, at(10)),
    ];
    expect(looks.map((p) => p && [p.unavailable, p.budget, p.updated, p.desired])).toEqual([[0, 2, 0, 4], [2, 2, 2, 4], [0, 2, 4, 4]]);
    const chart = rolloutChart(looks.filter((p) => p !== undefined), NOW);
    expect(chart.unavailable).toEqual([0, 2, 0]);
    expect(chart.budget).toEqual([2, 2, 2]);
    expect(chart.updated).toEqual([0, 2, 4]);
    expect(chart.bands).toEqual([]);
  });

  it('waits for the controller to observe the new generation before taking its counts', () => {
    expect(nativeTimelinePoint(nativeDs({ desired: 4, available: 4, updated: 4, generation: 3, observed: 2 }), { phase: 'progressing' }, NOW)).toBeUndefined();
  });
});
