import type { LiveDaemonSet } from '../../lib/cluster/types';
import { CHANGE_CAUSE_ANNOTATION, COMMIT_ANNOTATION, DIGEST_ANNOTATION, REVISION_ANNOTATION, SOURCE_ANNOTATION } from '../../lib/labels';
import { decide, DryRunResult, Observed, pinnedChangedOutside, PlanItem, triage, Triage, TriageContext } from '../../lib/plan/plan';
import type { DesiredDaemonSet, ManifestProblem } from '../../lib/source/manifest';
import type { DaemonSetState, Pin } from '../../lib/store/records';
import { daemonSetDoc, desiredOf, liveOf, policy } from './fixtures';

const key = 'kube-system/fluentd';
const v16 = desiredOf(daemonSetDoc({ image: 'fluent/fluentd:v1.16' }));
const v17 = desiredOf(daemonSetDoc({ image: 'fluent/fluentd:v1.17' }));

const complete: TriageContext = { policy: policy(), sourceComplete: true };

function stateOf(desired: DesiredDaemonSet, { revision = 3, generation = 7, pin }: { revision?: number; generation?: number; pin?: Pin } = {}): DaemonSetState {
  return {
    schema: 1,
    namespace: 'kube-system',
    name: 'fluentd',
    currentRevision: revision,
    appliedDigest: desired.digest,
    generation,
    gitDigest: desired.digest,
    updatedAt: '2025-03-01T10:00:00.000Z',
    ...(pin ? { pin } : {}),
  };
}

function pinAt(gitDigest: string | null): Pin {
  return { revision: 4, reason: 'v1.17 crashes on arm64 nodes', by: 'alice', at: '2025-03-02T09:00:00.000Z', gitDigest };
}

function observed(parts: Partial<Observed>): Observed {
  return { key, namespace: 'kube-system', name: 'fluentd', problems: [], ...parts };
}

function decided(t: Triage): PlanItem {
  if (!('decided' in t)) throw new Error(`expected a decision without a dry run for ${t.key}`);
  return t.decided;
}

function dryRunOf(t: Triage): LiveDaemonSet {
  if (!('dryRun' in t)) throw new Error(`expected a dry run, got ${t.decided.action}: ${t.decided.message}`);
  return t.dryRun as LiveDaemonSet;
}

/** What the API server's dry run answers for `desired` stamped as `revision`. */
function serverSays(desired: DesiredDaemonSet, revision: number, generation: number): DryRunResult {
  return { ok: true, object: liveOf(desired, { revision, generation }) };
}

/** The live object after someone ran `kubectl set image` on it. */
function withImage(live: LiveDaemonSet, image: string): LiveDaemonSet {
  const out = structuredClone(live);
  out.spec.template.spec.containers[0].image = image;
  out.metadata.generation = (out.metadata.generation ?? 0) + 1;
  return out;
}

const problem: ManifestProblem = {
  file: 'manifests/fluentd.yaml',
  document: 2,
  key,
  code: 'selector-mismatch',
  severity: 'error',
  message: 'spec.selector does not match spec.template.metadata.labels (name=fluentd vs app=fluentd)',
};

describe('triage', () => {
  it('reports the steady state as unchanged without a dry run', () => {
    const o = observed({ desired: v16, live: liveOf(v16, { revision: 3, generation: 7 }), state: stateOf(v16) });

    const item = decided(triage(o, complete));

    expect(item).toMatchObject({ action: 'unchanged', apply: false, message: 'revision 3 is applied' });
  });

  it.each<[string, Partial<Observed>]>([
    ['Git has a new digest', { desired: v17 }],
    ['the generation moved (someone edited the DaemonSet)', { live: liveOf(v16, { revision: 3, generation: 8 }) }],
    ['the live revision annotation is another revision', { live: liveOf(v16, { revision: 2, generation: 7 }) }],
    ['nothing is recorded for it yet', { state: undefined }],
  ])('asks for a dry run when %s', (_, change) => {
    const o = observed({ desired: v16, live: liveOf(v16, { revision: 3, generation: 7 }), state: stateOf(v16), ...change });

    expect('dryRun' in triage(o, complete)).toBe(true);
  });

  it('dry-runs Git\'s manifest stamped with the live revision, commit, digest and source path', () => {
    const o = observed({ desired: v17, live: liveOf(v16, { revision: 3, generation: 7, commit: 'abc123' }), state: stateOf(v16) });

    const sent = dryRunOf(triage(o, complete));

    expect(sent.spec.template.spec.containers[0].image).toBe('fluent/fluentd:v1.17');
    expect(sent.metadata.annotations).toMatchObject({
      [REVISION_ANNOTATION]: '3',
      [COMMIT_ANNOTATION]: 'abc123',
      [DIGEST_ANNOTATION]: v17.digest,
      [SOURCE_ANNOTATION]: 'manifests/fluentd.yaml',
    });
  });

  it('dry-runs with the live change-cause, so a commit that left this manifest alone is no difference', () => {
    const live = liveOf(v16, { revision: 3, generation: 8 });
    const o = observed({ desired: v16, live, state: stateOf(v16) });

    const sent = dryRunOf(triage(o, complete));
    const item = decide(o, { ok: true, object: { ...live, ...sent, metadata: { ...live.metadata, annotations: sent.metadata.annotations } } }, policy());

    expect(sent.metadata.annotations?.[CHANGE_CAUSE_ANNOTATION]).toBe('c0ffee fixture commit');
    expect(item).toMatchObject({ action: 'unchanged', apply: false, acceptGeneration: 8 });
  });

  it('dry-runs a DaemonSet that is not in the cluster yet as revision 0', () => {
    const sent = dryRunOf(triage(observed({ desired: v16 }), complete));

    expect(sent.metadata.annotations?.[REVISION_ANNOTATION]).toBe('0');
  });

  it('leaves a pinned DaemonSet alone while Git\'s digest is the one it was pinned at', () => {
    const live = withImage(liveOf(v16, { revision: 5, generation: 9 }), 'fluent/fluentd:v1.15');
    const o = observed({ desired: v17, live, state: stateOf(v16, { revision: 5, generation: live.metadata.generation, pin: pinAt(v17.digest) }) });

    const item = decided(triage(o, complete));

    expect(item.action).toBe('pinned');
    expect(item.apply).toBe(false);
    expect(item.message).toBe(
      'pinned to revision 4 since 2025-03-02T09:00:00.000Z by alice: v1.17 crashes on arm64 nodes. Git\'s version is not applied until it changes or the DaemonSet is unpinned',
    );
  });

  it('keeps a pin set while the DaemonSet was absent from Git, even with PRUNE on', () => {
    const o = observed({ live: liveOf(v16, { revision: 5, generation: 9 }), state: stateOf(v16, { revision: 5, generation: 9, pin: pinAt(null) }) });

    const item = decided(triage(o, { policy: policy({ prune: true }), sourceComplete: true }));

    expect(item).toMatchObject({ action: 'pinned', apply: false });
    expect(item.prune).toBeUndefined();
  });

  it('restores a pinned revision whose DaemonSet was changed outside Git (kubectl set image during a rollback), keeping the pin, not Git\'s version', () => {
    // prepare: revision 5 is pinned and was applied as generation 9; someone set an image since (generation 10)
    const live = withImage(liveOf(v16, { revision: 5, generation: 9 }), 'fluent/fluentd:hand-made');
    expect(live.metadata.generation).toBe(10);
    const o = observed({ desired: v17, live, state: stateOf(v16, { revision: 5, generation: 9, pin: pinAt(v17.digest) }) });

    const item = decided(triage(o, complete));

    expect(item).toMatchObject({ action: 'drifted', cause: 'drift-correction', apply: true, restoresPinned: 5, templateChanged: true });
    expect(item.releasesPin).toBeUndefined();
    expect(item.message).toMatch(/^revision 5, pinned \(.*\), was changed outside daemonset-gitops \(generation 10, applied as 9\): restoring revision 5, keeping the pin$/);
    // SELF_HEAL=false only says so
    const reported = decided(triage(o, { ...complete, policy: policy({ selfHeal: false }) }));
    expect(reported).toMatchObject({ action: 'drifted', apply: false });
    expect(reported.restoresPinned).toBeUndefined();
    expect(reported.message).toMatch(/; not restored because SELF_HEAL=false$/);
    // the generation this tool left, or a cache that has not seen the apply yet: the pin holds as it is
    for (const generation of [9, 8]) {
      expect(pinnedChangedOutside({ ...o, live: liveOf(v16, { revision: 5, generation }) })).toBeUndefined();
    }
    // a run killed between its apply and its record left no generation: the pinned revision is restored once
    expect(pinnedChangedOutside({ ...o, live: liveOf(v16, { revision: 5, generation: 9 }), state: { ...o.state!, generation: undefined } })).toBe(5);
    // another revision's object is not the pinned revision changed
    expect(pinnedChangedOutside({ ...o, live: liveOf(v16, { revision: 4, generation: 10 }) })).toBeUndefined();
  });

  it('releases the pin when Git\'s digest differs from the pinned one: the new manifest is dry-run', () => {
    const o = observed({ desired: v17, live: liveOf(v16, { revision: 5, generation: 9 }), state: stateOf(v16, { revision: 5, generation: 9, pin: pinAt('sha256:the-digest-when-pinned') }) });

    const sent = dryRunOf(triage(o, complete));

    expect(sent.spec.template.spec.containers[0].image).toBe('fluent/fluentd:v1.17');
  });

  it('dry-runs a released pin even when everything else looks steady', () => {
    const o = observed({ desired: v16, live: liveOf(v16, { revision: 3, generation: 7 }), state: stateOf(v16, { pin: pinAt('sha256:older') }) });

    expect('dryRun' in triage(o, complete)).toBe(true);
  });

  it('reports a DaemonSet with problems in Git as invalid, naming the file, and leaves the live one alone', () => {
    const o = observed({ problems: [problem], live: liveOf(v16, { revision: 3, generation: 7 }), state: stateOf(v16) });

    const item = decided(triage(o, { policy: policy({ prune: true }), sourceComplete: true }));

    expect(item.action).toBe('invalid');
    expect(item.apply).toBe(false);
    expect(item.prune).toBeUndefined();
    expect(item.message).toBe(
      'manifests/fluentd.yaml (document 2): spec.selector does not match spec.template.metadata.labels (name=fluentd vs app=fluentd) (the live DaemonSet is left as it is)',
    );
    expect(item.problems).toEqual([problem]);
  });

  it('does not block a DaemonSet on a skipped document', () => {
    const skipped: ManifestProblem = { ...problem, code: 'not-a-daemonset', severity: 'skipped', message: 'Deployment fluentd is not applied' };
    const o = observed({ desired: v16, problems: [skipped], live: liveOf(v16, { revision: 3, generation: 7 }), state: stateOf(v16) });

    expect(decided(triage(o, complete)).action).toBe('unchanged');
  });

  it('leaves a DaemonSet removed from Git running when PRUNE is off', () => {
    const o = observed({ live: liveOf(v16, { revision: 3, generation: 7 }), state: stateOf(v16) });

    const item = decided(triage(o, complete));

    expect(item).toMatchObject({ action: 'orphaned', apply: false });
    expect(item.prune).toBeUndefined();
    expect(item.message).toContain('set PRUNE=true');
  });

  it('prunes a DaemonSet removed from Git when PRUNE is on and every manifest was read', () => {
    const o = observed({ live: liveOf(v16, { revision: 3, generation: 7 }), state: stateOf(v16) });

    const item = decided(triage(o, { policy: policy({ prune: true }), sourceComplete: true }));

    expect(item).toMatchObject({ action: 'orphaned', apply: true, prune: true });
  });

  it('prunes nothing when some manifests could not be read, even with PRUNE on', () => {
    const o = observed({ live: liveOf(v16, { revision: 3, generation: 7 }), state: stateOf(v16) });

    const item = decided(triage(o, { policy: policy({ prune: true }), sourceComplete: false }));

    expect(item).toMatchObject({ action: 'orphaned', apply: false });
    expect(item.prune).toBeUndefined();
    expect(item.message).toContain('could not be read');
  });

  it('never prunes a DaemonSet outside ALLOWED_NAMESPACES', () => {
    const o = observed({ live: liveOf(v16, { revision: 3, generation: 7 }) });

    const item = decided(triage(o, { policy: policy({ prune: true, allowedNamespaces: ['logging'] }), sourceComplete: true }));

    expect(item).toMatchObject({ action: 'orphaned', apply: false });
    expect(item.prune).toBeUndefined();
  });

  it('reports a DaemonSet neither in Git nor in the cluster as unchanged', () => {
    expect(decided(triage(observed({ state: stateOf(v16) }), complete)).action).toBe('unchanged');
  });

  it('refuses a selector change as invalid because spec.selector is immutable', () => {
    const doc = daemonSetDoc();
    doc.spec.selector.matchLabels = { app: 'fluentd', tier: 'node' } as typeof doc.spec.selector.matchLabels;
    doc.spec.template.metadata.labels = { app: 'fluentd', tier: 'node' } as typeof doc.spec.template.metadata.labels;
    const changed = desiredOf(doc);
    const o = observed({ desired: changed, live: liveOf(v16, { revision: 3, generation: 7 }), state: stateOf(v16) });

    const item = decided(triage(o, complete));

    expect(item.action).toBe('invalid');
    expect(item.apply).toBe(false);
    expect(item.message).toMatch(/^manifests\/fluentd\.yaml \(document 1\): spec\.selector changed .* but it is immutable/);
    expect(item.message).toContain('kubectl delete ds fluentd -n kube-system --cascade=orphan');
  });
});

describe('decide', () => {
  it('creates a DaemonSet that is in Git and not in the cluster', () => {
    const o = observed({ desired: v16 });

    const item = decide(o, serverSays(v16, 0, 1), policy());

    expect(item).toMatchObject({ action: 'create', cause: 'create', apply: true, templateChanged: true, releasesPin: false });
    expect(item.message).toBe('create from manifests/fluentd.yaml (document 1)');
  });

  it('shows a created DaemonSet\'s diff against /dev/null as additions only', () => {
    const item = decide(observed({ desired: v16 }), serverSays(v16, 0, 1), policy());

    const lines = item.diff!.split('\n').filter(Boolean);
    expect(lines.slice(0, 2)).toEqual(['--- /dev/null', `+++ git/${key}`]);
    expect(lines[2]).toMatch(/^@@ -0,0 \+1,\d+ @@$/);
    expect(lines.slice(3).every((l) => l.startsWith('+'))).toBe(true);
    expect(lines).toContain('+        - image: fluent/fluentd:v1.16');
  });

  it('reports a live DaemonSet equal to the dry run as unchanged', () => {
    const live = liveOf(v16, { revision: 3, generation: 8 });
    const o = observed({ desired: v16, live, state: stateOf(v16) });

    const item = decide(o, { ok: true, object: live }, policy());

    expect(item).toMatchObject({ action: 'unchanged', apply: false, message: 'matches manifests/fluentd.yaml (document 1)' });
  });

  it('ignores the annotations the controller and kubectl add when comparing', () => {
    const live = liveOf(v16, { revision: 3, generation: 8 });
    live.metadata.annotations = { ...live.metadata.annotations, 'deprecated.daemonset.template.generation': '8', 'kubectl.kubernetes.io/last-applied-configuration': '{}' };
    const o = observed({ desired: v16, live, state: stateOf(v16) });

    const item = decide(o, serverSays(v16, 3, 8), policy());

    expect(item.action).toBe('unchanged');
  });

  describe('after kubectl rollout restart (the generation moved, Git and the live object agree)', () => {
    function restarted(generation: number): LiveDaemonSet {
      const live = liveOf(v16, { revision: 3, generation });
      live.spec.template.metadata = { ...live.spec.template.metadata, annotations: { 'kubectl.kubernetes.io/restartedAt': '2025-03-03T08:00:00Z' } };
      return live;
    }

    it('reports it unchanged and asks to record the generation the dry run accepted', () => {
      const o = observed({ desired: v16, live: restarted(8), state: stateOf(v16, { generation: 7 }) });

      const item = decide(o, { ok: true, object: restarted(8) }, policy());

      expect(item).toMatchObject({ action: 'unchanged', apply: false, acceptGeneration: 8 });
    });

    it('takes the steady-state path without a dry run once that generation is recorded', () => {
      const o = observed({ desired: v16, live: restarted(8), state: stateOf(v16, { generation: 7 }) });
      const accepted = decide(o, { ok: true, object: restarted(8) }, policy()).acceptGeneration;

      const next = triage(observed({ desired: v16, live: restarted(8), state: stateOf(v16, { generation: accepted }) }), complete);

      expect(decided(next)).toMatchObject({ action: 'unchanged', message: 'revision 3 is applied' });
    });

    it.each<[string, Partial<Observed>]>([
      ['the generation is the recorded one', { state: stateOf(v16, { generation: 8 }) }],
      ['the live revision is not the recorded one', { state: stateOf(v16, { revision: 2, generation: 7 }) }],
      ['nothing is recorded for it yet', { state: undefined }],
    ])('asks to record nothing when %s', (_, change) => {
      const o = observed({ desired: v16, live: restarted(8), state: stateOf(v16, { generation: 7 }), ...change });

      const item = decide(o, { ok: true, object: restarted(8) }, policy());

      expect(item.action).toBe('unchanged');
      expect(item.acceptGeneration).toBeUndefined();
    });
  });

  it('rolls out a template change from Git as an update with its diff', () => {
    const o = observed({ desired: v17, live: liveOf(v16, { revision: 3, generation: 7 }), state: stateOf(v16) });

    const item = decide(o, serverSays(v17, 3, 8), policy());

    expect(item).toMatchObject({ action: 'update', cause: 'git-change', apply: true, templateChanged: true });
    expect(item.message).toBe('roll out manifests/fluentd.yaml (document 1)');
    expect(item.diff).toMatch(/^-\s+- image: fluent\/fluentd:v1\.16$/m);
    expect(item.diff).toMatch(/^\+\s+- image: fluent\/fluentd:v1\.17$/m);
  });

  it('updates only the metadata when Git changes only labels or annotations', () => {
    const doc = daemonSetDoc();
    doc.metadata.labels = { app: 'fluentd', team: 'observability' } as typeof doc.metadata.labels;
    const relabelled = desiredOf(doc);
    const o = observed({ desired: relabelled, live: liveOf(v16, { revision: 3, generation: 7 }), state: stateOf(v16) });

    const item = decide(o, serverSays(relabelled, 3, 7), policy());

    expect(item).toMatchObject({ action: 'update-metadata', cause: 'git-change', apply: true, templateChanged: false });
    expect(item.message).toBe('update manifests/fluentd.yaml (document 1)');
    expect(item.diff).toContain('+    team: observability');
  });

  it('says it adopts a DaemonSet it did not create', () => {
    const live = liveOf(v16, { revision: 3, generation: 2 });
    delete live.metadata.annotations![REVISION_ANNOTATION];
    const o = observed({ desired: v17, live });

    const item = decide(o, serverSays(v17, 0, 3), policy());

    expect(item.action).toBe('update');
    expect(item.message).toContain('adopting a DaemonSet that daemonset-gitops did not create');
  });

  it('corrects drift (the live DaemonSet changed outside Git) when SELF_HEAL is on', () => {
    const live = withImage(liveOf(v16, { revision: 3, generation: 7 }), 'fluent/fluentd:debug');
    const o = observed({ desired: v16, live, state: stateOf(v16) });

    const item = decide(o, serverSays(v16, 3, 8), policy({ selfHeal: true }));

    expect(item).toMatchObject({ action: 'drifted', cause: 'drift-correction', apply: true, templateChanged: true });
    expect(item.message).toBe('the live DaemonSet differs from revision 3 (changed outside Git): restoring it');
    expect(item.diff).toMatch(/^-\s+- image: fluent\/fluentd:debug$/m);
    expect(item.diff).toMatch(/^\+\s+- image: fluent\/fluentd:v1\.16$/m);
  });

  it('reports drift without correcting it when SELF_HEAL is off', () => {
    const live = withImage(liveOf(v16, { revision: 3, generation: 7 }), 'fluent/fluentd:debug');
    const o = observed({ desired: v16, live, state: stateOf(v16) });

    const item = decide(o, serverSays(v16, 3, 8), policy({ selfHeal: false }));

    expect(item).toMatchObject({ action: 'drifted', apply: false });
    expect(item.message).toContain('not corrected because SELF_HEAL=false');
  });

  it('re-creates a DaemonSet deleted out of band when SELF_HEAL is on', () => {
    const o = observed({ desired: v16, state: stateOf(v16) });

    const item = decide(o, serverSays(v16, 0, 1), policy({ selfHeal: true }));

    expect(item).toMatchObject({ action: 'drifted', cause: 'drift-correction', apply: true });
    expect(item.message).toBe('revision 3 was deleted from the cluster outside Git: re-creating it');
  });

  it('does not re-create a DaemonSet deleted out of band when SELF_HEAL is off', () => {
    const o = observed({ desired: v16, state: stateOf(v16) });

    const item = decide(o, serverSays(v16, 0, 1), policy({ selfHeal: false }));

    expect(item).toMatchObject({ action: 'drifted', apply: false });
    expect(item.message).toContain('not re-created because SELF_HEAL=false');
  });

  it('creates, rather than restores, a deleted DaemonSet whose manifest changed in Git meanwhile', () => {
    const o = observed({ desired: v17, state: stateOf(v16) });

    const item = decide(o, serverSays(v17, 0, 1), policy({ selfHeal: false }));

    expect(item).toMatchObject({ action: 'create', cause: 'create', apply: true });
  });

  it('reports a manifest the API server rejects as invalid with the server\'s message', () => {
    const o = observed({ desired: v17, live: liveOf(v16, { revision: 3, generation: 7 }), state: stateOf(v16) });
    const message = 'DaemonSet.apps "fluentd" is invalid: spec.template.spec.containers[0].resources.limits: Invalid value: "1x": must be a quantity';

    const item = decide(o, { ok: false, message }, policy());

    expect(item).toMatchObject({ action: 'invalid', apply: false, message: `manifests/fluentd.yaml (document 1): ${message}` });
    expect(item.problems).toEqual([{ file: 'manifests/fluentd.yaml', document: 1, key, code: 'dry-run-rejected', severity: 'error', message }]);
  });

  it('releases the pin when Git\'s new manifest is rolled out', () => {
    const live = withImage(liveOf(v16, { revision: 5, generation: 9 }), 'fluent/fluentd:v1.15');
    const o = observed({ desired: v17, live, state: stateOf(v16, { revision: 5, generation: 10, pin: pinAt(v16.digest) }) });

    const item = decide(o, serverSays(v17, 5, 11), policy());

    expect(item).toMatchObject({ action: 'update', cause: 'git-change', apply: true, releasesPin: true });
    expect(item.message).toContain('releases the pin on revision 4');
  });

  it('releases the pin with a metadata update when Git now says what is already applied', () => {
    const live = liveOf(v17, { revision: 5, generation: 9 });
    const o = observed({ desired: v17, live, state: stateOf(v17, { revision: 5, generation: 9, pin: pinAt(v16.digest) }) });

    const item = decide(o, { ok: true, object: live }, policy());

    expect(item).toMatchObject({ action: 'update-metadata', cause: 'git-change', apply: true, templateChanged: false, releasesPin: true });
  });

  it('releases the pin when Git is reverted to the pinned manifest, even if the live DaemonSet was edited since', () => {
    const live = withImage(liveOf(v16, { revision: 5, generation: 9 }), 'fluent/fluentd:debug');
    const o = observed({ desired: v16, live, state: stateOf(v16, { revision: 5, generation: 9, pin: pinAt(v17.digest) }) });

    const item = decide(o, serverSays(v16, 5, 11), policy({ selfHeal: false }));

    expect(item).toMatchObject({ action: 'update', cause: 'git-change', apply: true, releasesPin: true });
  });

  it('releases the pin when it re-creates a DaemonSet from Git\'s new manifest', () => {
    const o = observed({ desired: v17, state: stateOf(v16, { pin: pinAt(v16.digest) }) });

    const item = decide(o, serverSays(v17, 0, 1), policy());

    expect(item).toMatchObject({ action: 'create', apply: true, releasesPin: true });
  });

  it('leaves releasesPin unset for a drift correction, since no pin is involved', () => {
    const live = withImage(liveOf(v16, { revision: 3, generation: 7 }), 'fluent/fluentd:debug');

    const item = decide(observed({ desired: v16, live, state: stateOf(v16) }), serverSays(v16, 3, 8), policy());

    expect(item.releasesPin).toBeFalsy();
  });
});


describe('a rollback with recreate that stopped between its delete and its apply', () => {
  // Revision 5 (v1.17, Git's) was replaced by a rollback to revision 4 with recreate, written ahead as revision 6;
  // the state recorded the pin and the pending recreate before the delete.
  const recreating = (pin: Pin = pinAt(v17.digest)): DaemonSetState => ({ ...stateOf(v17, { revision: 5, pin }), recreate: { revision: 6, at: '2025-03-02T09:00:01.000Z', replacedUid: 'uid-1' } });

  it('is completed from the revision written ahead when the DaemonSet is missing, never re-created from Git', () => {
    const item = decided(triage(observed({ desired: v17, state: recreating() }), complete));
    expect(item).toMatchObject({ action: 'create', cause: 'rollback', apply: true, completesRecreate: 6 });
    expect(item.message).toMatch(/completing the rollback to revision 4 with recreate \(written ahead as revision 6\): the DaemonSet is missing/);
  });

  it('is completed when the object it replaces is still there (the run stopped before its delete)', () => {
    const item = decided(triage(observed({ desired: v17, live: liveOf(v17, { revision: 5, generation: 9 }), state: recreating() }), complete));
    expect(item).toMatchObject({ action: 'create', apply: true, completesRecreate: 6 });
    expect(item.message).toMatch(/still there: deleting it, then creating from that revision/);
  });

  it('is done once the cluster runs the revision written ahead: the DaemonSet is pinned as usual', () => {
    const recreated = { ...liveOf(v16, { revision: 6, generation: 1 }), metadata: { ...liveOf(v16, { revision: 6, generation: 1 }).metadata, uid: 'uid-2' } };
    expect(decided(triage(observed({ desired: v17, live: recreated, state: recreating() }), complete))).toMatchObject({ action: 'pinned', apply: false });
  });

  it('gives way to a new commit in Git, which releases its pin, while the object it replaces is still there: Git\'s new version is planned as an update', () => {
    const o = observed({ desired: v16, live: liveOf(v17, { revision: 5, generation: 9 }), state: recreating(pinAt(v17.digest)) });
    expect('dryRun' in triage(o, complete)).toBe(true);
  });

  it('is completed from the revision written ahead when the DaemonSet is missing although a new commit released its pin: Git\'s version would reach every node at once', () => {
    const o = observed({ desired: v16, state: recreating(pinAt(v17.digest)) });
    expect(decided(triage(o, complete))).toMatchObject({ action: 'create', cause: 'rollback', apply: true, completesRecreate: 6 });
  });
});
