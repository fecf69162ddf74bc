import { adoptedManifest } from '../../lib/adopt';
import type { LiveDaemonSet } from '../../lib/cluster/types';
import { DECLARED_STRATEGY_ANNOTATION, MANAGED_BY_LABEL, PINNED_ANNOTATION, ROLLOUT_ANNOTATION } from '../../lib/labels';
import { comparable } from '../../lib/plan/plan';
import { render } from '../../lib/plan/render';
import { daemonSetDoc, desiredOf, liveOf } from './fixtures';

/** The live object as the API server returns it: server-kept metadata, defaults, status. */
function fromServer(live: LiveDaemonSet): LiveDaemonSet {
  const out = structuredClone(live);
  out.metadata = {
    ...out.metadata,
    creationTimestamp: '2025-03-01T10:00:00Z',
    managedFields: [{ manager: 'daemonset-gitops', operation: 'Apply', time: '2025-03-01T10:00:00Z' }],
    annotations: { ...out.metadata.annotations, 'deprecated.daemonset.template.generation': '7' },
  };
  out.spec.revisionHistoryLimit = 10;
  out.spec.template.spec.restartPolicy = 'Always';
  return out;
}

describe('adoptedManifest', () => {
  const desired = desiredOf(daemonSetDoc({ image: 'fluent/fluentd:v1.16' }));

  it('keeps what the manifest says and the server\'s defaults, and drops status, server-kept metadata and the stamp', () => {
    const live = fromServer(liveOf(desired, { revision: 4, generation: 7 }));
    live.metadata.annotations![PINNED_ANNOTATION] = 'revision 2: v1.17 crashes';

    const manifest = adoptedManifest(live);

    expect(manifest).toEqual({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'fluentd', namespace: 'kube-system', labels: { app: 'fluentd' } },
      spec: { ...desired.manifest.spec, revisionHistoryLimit: 10, template: { ...desired.manifest.spec.template, spec: { ...desired.manifest.spec.template.spec, restartPolicy: 'Always' } } },
    });
    expect(manifest).not.toHaveProperty('status');
  });

  it('applied again under the live revision\'s stamp, changes nothing the plan compares', () => {
    const live = fromServer(liveOf(desired, { revision: 4, generation: 7, commit: 'c0ffee' }));

    const again = render(adoptedManifest(live), { revision: 4, commit: 'c0ffee', digest: desired.digest, sourcePath: desired.source.file, changeCause: 'c0ffee fixture commit' });

    expect(comparable(again as unknown as LiveDaemonSet)).toEqual(comparable(live));
  });

  it('gives a managed rollout back the strategy Git declared, not the OnDelete it runs with', () => {
    const managed = desiredOf({ ...daemonSetDoc(), metadata: { ...daemonSetDoc().metadata, annotations: { [ROLLOUT_ANNOTATION]: 'managed' } } });
    managed.manifest.spec.updateStrategy = { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 2, maxSurge: 0 } };
    const live = fromServer(liveOf(managed, { revision: 2, generation: 3 }));
    expect(live.spec.updateStrategy).toEqual({ type: 'OnDelete' });

    const manifest = adoptedManifest(live);

    expect(manifest.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 2, maxSurge: 0 } });
    expect(manifest.metadata.annotations).toEqual({ [ROLLOUT_ANNOTATION]: 'managed' });
    expect(manifest.metadata.annotations).not.toHaveProperty(DECLARED_STRATEGY_ANNOTATION);
    expect(manifest.metadata.labels).not.toHaveProperty(MANAGED_BY_LABEL);
  });
});
