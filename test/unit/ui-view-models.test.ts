import type { LiveDaemonSet, LiveNode, LivePod } from '../../lib/cluster/types';
import { appendTimelinePoint, MAX_TIMELINE_POINTS } from '../../lib/rollout/timeline';
import type { DaemonSetState, RevisionSnapshot } from '../../lib/store/records';
import type { TimelinePoint } from '../../lib/store/timeline-store';
import { clusterRow, eventRows, nodeGrid, revisionDiff, revisionRows, rolloutChart, tileCounts, TILE_LEGEND, TILE_STATES } from '../../lib/ui/view-models';

const NOW = new Date('2026-01-01T12:00:00Z');
const ago = (s: number) => new Date(NOW.getTime() - s * 1000).toISOString();
const UID = 'ds-uid';

function ds(o: { minReadySeconds?: number; revision?: number; nodeSelector?: Record<string, string> } = {}): LiveDaemonSet {
  return {
    metadata: { name: 'agent', namespace: 'ns', uid: UID, generation: 2, annotations: { 'daemonset-gitops.io/revision': String(o.revision ?? 2), 'deprecated.daemonset.template.generation': '2' } },
    spec: { selector: { matchLabels: { app: 'agent' } }, minReadySeconds: o.minReadySeconds ?? 0, template: { spec: { containers: [{ name: 'a' }], ...(o.nodeSelector ? { nodeSelector: o.nodeSelector } : {}) } } },
    status: { desiredNumberScheduled: 3, observedGeneration: 2 },
  };
}

function node(name: string, ready = true, labels: Record<string, string> = {}): LiveNode {
  return { metadata: { name, labels }, status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } };
}

/** A pod of the DaemonSet: `gen` 2 is the current template (hash h2), 1 the old one (hash h1). */
function pod(nodeName: string, o: { gen?: 1 | 2; ready?: boolean; readyFor?: number; terminating?: boolean } = {}): LivePod {
  const gen = o.gen ?? 2;
  const ready = o.ready ?? true;
  return {
    metadata: {
      name: `agent-${nodeName}-${gen}`, uid: `${nodeName}-${gen}`, labels: { 'pod-template-generation': String(gen), 'controller-revision-hash': `h${gen}` },
      ownerReferences: [{ kind: 'DaemonSet', name: 'agent', uid: UID, controller: true }],
      ...(o.terminating ? { deletionTimestamp: ago(1) } : {}),
    },
    spec: { nodeName, containers: [{ name: 'a' }] },
    status: { phase: ready ? 'Running' : 'Pending', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: ago(o.readyFor ?? 600) }] },
  };
}

function managedState(managed: NonNullable<NonNullable<DaemonSetState['rollout']>['managed']>, phase: 'progressing' | 'stalled' | 'complete' = 'progressing'): DaemonSetState {
  return {
    schema: 1, namespace: 'ns', name: 'agent', currentRevision: 2, appliedDigest: 'd', updatedAt: ago(0),
    rollout: { revision: 2, mode: 'managed', phase, startedAt: ago(300), lastProgressAt: ago(10), managed },
  };
}

const checkpoint = (extra: object = {}) => ({ startedAt: ago(300), lastProgressAt: ago(10), updatedAvailable: 1, waves: 2, inFlight: [], ...extra });

describe('nodeGrid', () => {
  // Each row: what the cluster shows on one node -> the tile a person should see.
  // "available" is Kubernetes' definition: a Ready pod, Ready for minReadySeconds, on a Ready node, not being deleted.
  it.each([
    ['an updated pod Ready for long enough', { pods: [pod('n1')] }, 0, { state: 'available', revision: 2, updated: true }],
    ['an old pod still running', { pods: [pod('n1', { gen: 1 })] }, 0, { state: 'available', revision: 1, updated: false }],
    ['an updated pod Ready for 5 s of a minReadySeconds 30', { pods: [pod('n1', { readyFor: 5 })] }, 30, { state: 'updating', revision: 2 }],
    ['an old pod terminating', { pods: [pod('n1', { gen: 1, terminating: true })] }, 0, { state: 'updating' }],
    ['an updated pod not Ready yet while the rollout goes on', { pods: [pod('n1', { ready: false })] }, 0, { state: 'updating', revision: 2 }],
    ['no pod at all', { pods: [] }, 0, { state: 'unavailable', revision: undefined }],
    ['a Ready pod on a NotReady node the rollout reached', { pods: [pod('n1')], nodeReady: false, touched: true }, 0, { state: 'unavailable' }],
  ])('%s', (_what, o: { pods: LivePod[]; nodeReady?: boolean; touched?: boolean }, minReadySeconds, expected) => {
    const state = managedState({ checkpoint: checkpoint(o.touched ? { touched: [{ node: 'n1', readyAtDelete: false, at: ago(60) }] } : {}) });
    const groups = nodeGrid({ ds: ds({ minReadySeconds }), pods: o.pods, nodes: [node('n1', o.nodeReady ?? true)], currentHash: 'h2', revisionByHash: { h1: 1, h2: 2 }, state }, NOW);
    const tile = groups.flatMap((g) => g.tiles).find((t) => t.node === 'n1');
    expect(tile).toMatchObject(expected);
    expect(tile!.reason).not.toBe('');
  });

  it('shows the driver\'s verdicts: broken, skipped NotReady, canary while it holds, and nodes the DaemonSet should not run on', () => {
    const state = managedState({
      checkpoint: checkpoint({ canaryNodes: ['c1'], canaryPassed: false, touched: [{ node: 'c1', readyAtDelete: true, at: ago(100) }, { node: 'b1', readyAtDelete: true, at: ago(100) }] }),
      brokenNodes: ['b1'], notReadyNodes: ['s1'],
    }, 'stalled');
    const nodes = [node('b1', false), node('c1'), node('s1', false), node('x1', true, { role: 'gpu' })];
    const groups = nodeGrid({ ds: ds({ nodeSelector: { role: 'agent' } }), pods: [pod('b1'), pod('c1', { ready: false }), pod('s1', { gen: 1 })], nodes: nodes.map((n) => (n.metadata.name === 'x1' ? n : { ...n, metadata: { ...n.metadata, labels: { role: 'agent' } } })), currentHash: 'h2', revisionByHash: { h1: 1 }, state }, NOW);
    const byNode = Object.fromEntries(groups.flatMap((g) => g.tiles.map((t) => [t.node, t.state])));
    expect(byNode).toEqual({ b1: 'broken', c1: 'canary', s1: 'skipped', x1: 'not-desired' });
    expect(groups.map((g) => g.label)).toEqual(['canary', 'wave 1', 'not reached by a wave', 'not desired']);
    expect(tileCounts(groups)).toMatchObject({ broken: 1, canary: 1, skipped: 1, 'not-desired': 1, available: 0 });
  });

  it('groups nodes by the wave whose decision first reached them, in order', () => {
    const state = managedState({ checkpoint: checkpoint({ touched: [{ node: 'a', readyAtDelete: true, at: ago(50) }, { node: 'b', readyAtDelete: true, at: ago(90) }, { node: 'c', readyAtDelete: true, at: ago(50) }] }) });
    const groups = nodeGrid({ ds: ds(), pods: ['a', 'b', 'c', 'd'].map((n) => pod(n, { gen: n === 'd' ? 1 : 2 })), nodes: ['a', 'b', 'c', 'd'].map((n) => node(n)), currentHash: 'h2', revisionByHash: { h1: 1 }, state }, NOW);
    expect(groups.map((g) => [g.label, g.tiles.map((t) => t.node)])).toEqual([['wave 1', ['b']], ['wave 2', ['a', 'c']], ['not reached by a wave', ['d']]]);
  });

  it('ignores pods another controller owns', () => {
    const stranger = pod('n1', { gen: 1 });
    stranger.metadata.ownerReferences = [{ kind: 'DaemonSet', name: 'other', uid: 'other', controller: true }];
    const tile = nodeGrid({ ds: ds(), pods: [stranger], nodes: [node('n1')], revisionByHash: {}, state: undefined }, NOW)[0].tiles[0];
    expect(tile.state).toBe('unavailable');
  });
});

describe('the legend', () => {
  it('gives every state its own glyph and word, so colour is never the only cue', () => {
    expect(new Set(TILE_STATES.map((s) => TILE_LEGEND[s].glyph)).size).toBe(TILE_STATES.length);
    expect(new Set(TILE_STATES.map((s) => TILE_LEGEND[s].label)).size).toBe(TILE_STATES.length);
  });
});

function point(at: number, o: Partial<TimelinePoint> = {}): TimelinePoint {
  return { at: ago(at), desired: 10, updated: 0, updatedAvailable: 0, unavailable: 0, budget: 2, skipped: 0, phase: 'progressing', wave: 0, ...o };
}

describe('rolloutChart', () => {
  it('plots unavailable, budget and updated per point, with the canary hold and each wave as bands', () => {
    const points = [
      point(100, { phase: 'canary-hold', wave: 1, unavailable: 1, updated: 1 }),
      point(80, { phase: 'progressing', wave: 2, unavailable: 2, updated: 3 }),
      point(60, { phase: 'progressing', wave: 3, unavailable: 2, updated: 5 }),
      point(40, { phase: 'complete', wave: 3, unavailable: 0, updated: 10 }),
    ];
    const c = rolloutChart([...points].reverse(), NOW);
    expect(c.unavailable).toEqual([1, 2, 2, 0]);
    expect(c.budget).toEqual([2, 2, 2, 2]);
    expect(c.updated).toEqual([1, 3, 5, 10]);
    const s = (a: number) => (NOW.getTime() - a * 1000) / 1000;
    expect(c.bands).toEqual([
      { kind: 'canary-hold', label: 'canary hold', from: s(100), to: s(80) },
      { kind: 'wave', label: 'wave 1', from: s(100), to: s(80) },
      { kind: 'wave', label: 'wave 2', from: s(80), to: s(60) },
      { kind: 'wave', label: 'wave 3', from: s(60), to: s(40) },
    ]);
  });

  it('runs the last band to now while the rollout goes on', () => {
    const c = rolloutChart([point(30, { phase: 'paused', wave: 1 })], NOW);
    expect(c.bands).toContainEqual({ kind: 'paused', label: 'paused', from: NOW.getTime() / 1000 - 30, to: NOW.getTime() / 1000 });
  });
});

describe('appendTimelinePoint', () => {
  it('never keeps more than its bound, and keeps the first point and every change of phase or wave', () => {
    let points: TimelinePoint[] = [];
    for (let i = 0; i < 1000; i++) points = appendTimelinePoint(points, point(1000 - i, { phase: i === 500 ? 'canary-hold' : 'progressing', wave: Math.floor(i / 100), updated: i }), 50);
    expect(points.length).toBe(50);
    expect(points[0].updated).toBe(0);
    expect(points[points.length - 1].updated).toBe(999);
    expect(points.some((p) => p.phase === 'canary-hold')).toBe(true);
    for (let w = 0; w < 10; w++) expect(points.some((p) => p.wave === w)).toBe(true);
    expect(JSON.stringify(appendTimelinePoint([], point(0), MAX_TIMELINE_POINTS)).length).toBeLessThan(400);
  });

  it('does not add a point that repeats the last one', () => {
    expect(appendTimelinePoint([point(10)], point(5))).toHaveLength(1);
  });
});

describe('clusterRow', () => {
  it('shows a managed rollout\'s recorded phase, its pin, and a failed apply as the problem of its file', () => {
    const state: DaemonSetState = {
      ...managedState({ paused: true }, 'stalled'),
      pin: { revision: 1, reason: 'bad plugin', at: ago(5), gitDigest: null },
      source: { file: 'agents/agent.yaml', document: 0 },
      lastAttempt: { at: ago(3), result: 'failed', message: 'spec.selector: Invalid value' },
    };
    const row = clusterRow({ key: 'ns/agent', state, live: ds() }, NOW, 600);
    expect(row).toMatchObject({ phase: 'stalled', mode: 'managed', paused: true, revision: 2, pin: { revision: 1 }, problem: { file: 'agents/agent.yaml', message: 'spec.selector: Invalid value' } });
    expect(clusterRow({ key: 'ns/gone', state }, NOW, 600).phase).toBe('not in cluster');
  });
});

describe('revisions', () => {
  const snap = (revision: number, image: string, extra: Partial<RevisionSnapshot> = {}): RevisionSnapshot => ({
    schema: 1, cluster: 'c', namespace: 'ns', name: 'agent', revision, cause: 'git-change', digest: `d${revision}`, rolloutMode: 'managed', replaced: null, runId: 'r', createdAt: ago(100), outcome: 'healthy', outcomeAt: ago(50),
    manifest: { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'agent' }, spec: { template: { spec: { containers: [{ name: 'a', image }] } } } },
    ...extra,
  });

  it('lists them newest first with the current one and the pin marked', () => {
    const state = { ...managedState({}), currentRevision: 3, pin: { revision: 1, reason: 'r', at: ago(1), gitDigest: null } };
    const rows = revisionRows([snap(1, 'a:1'), snap(3, 'a:1', { cause: 'rollback', rollbackTo: 1 }), snap(2, 'a:2', { outcome: 'rolled-back' })], state);
    expect(rows.map((r) => [r.revision, r.current, r.pinned, r.outcome, r.images])).toEqual([[3, true, true, 'healthy', ['a:1']], [2, false, false, 'rolled-back', ['a:2']], [1, false, true, 'healthy', ['a:1']]]);
  });

  it('diffs two revisions older first, whichever is asked first', () => {
    const d = revisionDiff(snap(2, 'a:2'), snap(1, 'a:1'));
    expect(d).toContain('--- revision 1\n+++ revision 2');
    expect(d).toMatch(/^-\s+- image: a:1$/m);
    expect(d).toMatch(/^\+\s+- image: a:2$/m);
  });
});

describe('eventRows', () => {
  it('lists Events newest first', () => {
    const rows = eventRows([
      { metadata: { name: 'e1' }, reason: 'Applied', lastTimestamp: ago(50) },
      { metadata: { name: 'e2' }, reason: 'RolledBack', type: 'Warning', lastTimestamp: ago(5) },
    ]);
    expect(rows.map((r) => r.reason)).toEqual(['RolledBack', 'Applied']);
    expect(rows[0].type).toBe('Warning');
  });
});
