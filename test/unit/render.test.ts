import {
  CHANGE_CAUSE_ANNOTATION,
  COMMIT_ANNOTATION,
  DECLARED_STRATEGY_ANNOTATION,
  DIGEST_ANNOTATION,
  MANAGED_BY_LABEL,
  PINNED_ANNOTATION,
  REVISION_ANNOTATION,
  ROLLOUT_ANNOTATION,
  SOURCE_ANNOTATION,
} from '../../lib/labels';
import { declaredStrategy, render, rolloutModeOf } from '../../lib/plan/render';
import type { DaemonSetManifest } from '../../lib/source/manifest';
import { daemonSetDoc, desiredOf } from './fixtures';

const digest = 'sha256:1111111111111111111111111111111111111111111111111111111111111111';

function manifest(change: (m: DaemonSetManifest) => void = () => {}): DaemonSetManifest {
  const m = desiredOf(daemonSetDoc()).manifest;
  change(m);
  return m;
}

function managed(strategy?: DaemonSetManifest['spec']['updateStrategy']): DaemonSetManifest {
  return manifest((m) => {
    m.metadata.annotations = { [ROLLOUT_ANNOTATION]: 'managed' };
    if (strategy) m.spec.updateStrategy = strategy;
  });
}

describe('render', () => {
  it('adds the managed-by label and keeps the manifest\'s own labels', () => {
    const out = render(manifest(), { revision: 3, digest });

    expect(out.metadata.labels).toEqual({ app: 'fluentd', [MANAGED_BY_LABEL]: 'daemonset-gitops' });
  });

  it('stamps the revision, digest, commit, source path and pin as annotations', () => {
    const out = render(manifest(), { revision: 12, digest, commit: '0a1b2c3', sourcePath: 'manifests/fluentd.yaml', pinned: 'revision 11: bad image' });

    expect(out.metadata.annotations).toEqual({
      [REVISION_ANNOTATION]: '12',
      [DIGEST_ANNOTATION]: digest,
      [COMMIT_ANNOTATION]: '0a1b2c3',
      [SOURCE_ANNOTATION]: 'manifests/fluentd.yaml',
      [PINNED_ANNOTATION]: 'revision 11: bad image',
    });
  });

  it('stamps kubernetes.io/change-cause, which the DaemonSet controller copies into its ControllerRevision', () => {
    const out = render(manifest(), { revision: 2, digest, changeCause: '0a1b2c3 fluentd 1.17' });

    expect(out.metadata.annotations?.[CHANGE_CAUSE_ANNOTATION]).toBe('0a1b2c3 fluentd 1.17');
  });

  it('leaves out the commit, source path and pin annotations when there are none', () => {
    const out = render(manifest(), { revision: 1, digest });

    expect(Object.keys(out.metadata.annotations ?? {}).sort()).toEqual([DIGEST_ANNOTATION, REVISION_ANNOTATION].sort());
  });

  it('keeps the manifest\'s own annotations', () => {
    const out = render(manifest((m) => { m.metadata.annotations = { 'example.com/team': 'observability' }; }), { revision: 1, digest });

    expect(out.metadata.annotations).toMatchObject({ 'example.com/team': 'observability', [REVISION_ANNOTATION]: '1' });
  });

  it('does not change the manifest it is given', () => {
    const input = managed({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 2 } });
    const before = structuredClone(input);

    render(input, { revision: 3, digest, commit: 'abc', sourcePath: 'x.yaml', pinned: 'p' });

    expect(input).toEqual(before);
  });

  it('leaves the update strategy as Git declares it in native mode', () => {
    const out = render(manifest((m) => { m.spec.updateStrategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } }; }), { revision: 1, digest });

    expect(out.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    expect(out.metadata.annotations).not.toHaveProperty(DECLARED_STRATEGY_ANNOTATION);
  });

  it.each<[string, DaemonSetManifest['spec']['updateStrategy'], object]>([
    ['no strategy', undefined, { type: 'RollingUpdate', maxUnavailable: 1, maxSurge: 0 }],
    ['a percentage maxUnavailable', { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%' } }, { type: 'RollingUpdate', maxUnavailable: '25%', maxSurge: 0 }],
    ['a surge', { rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } }, { type: 'RollingUpdate', maxUnavailable: 0, maxSurge: 1 }],
    ['OnDelete', { type: 'OnDelete' }, { type: 'OnDelete', maxUnavailable: 1, maxSurge: 0 }],
  ])('in managed mode applies OnDelete and records the declared strategy with Kubernetes defaults (%s)', (_, strategy, declared) => {
    const out = render(managed(strategy), { revision: 2, digest });

    expect(out.spec.updateStrategy).toEqual({ type: 'OnDelete' });
    expect(JSON.parse(out.metadata.annotations![DECLARED_STRATEGY_ANNOTATION])).toEqual(declared);
  });

  it('uses the mode it is given over the manifest\'s annotation', () => {
    const asNative = render(managed(), { revision: 2, digest }, 'native');
    const asManaged = render(manifest(), { revision: 2, digest }, 'managed');

    expect(asNative.spec.updateStrategy).toBeUndefined();
    expect(asManaged.spec.updateStrategy).toEqual({ type: 'OnDelete' });
  });
});

describe('rolloutModeOf', () => {
  it.each<[string, Record<string, string> | undefined, string]>([
    ['no annotations', undefined, 'native'],
    ['rollout: managed', { [ROLLOUT_ANNOTATION]: 'managed' }, 'managed'],
    ['rollout: native', { [ROLLOUT_ANNOTATION]: 'native' }, 'native'],
    ['an unknown rollout value', { [ROLLOUT_ANNOTATION]: 'Managed' }, 'native'],
  ])('reads %s as %s', (_, annotations, mode) => {
    expect(rolloutModeOf({ metadata: { name: 'fluentd', namespace: 'kube-system', annotations } })).toBe(mode);
  });
});

describe('declaredStrategy', () => {
  it('fills in maxUnavailable 1 and maxSurge 0 as Kubernetes does', () => {
    expect(declaredStrategy(manifest())).toEqual({ type: 'RollingUpdate', maxUnavailable: 1, maxSurge: 0 });
  });

  it('keeps the values Git declares', () => {
    const m = manifest((x) => { x.spec.updateStrategy = { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '10%', maxSurge: 0 } }; });

    expect(declaredStrategy(m)).toEqual({ type: 'RollingUpdate', maxUnavailable: '10%', maxSurge: 0 });
  });
});
