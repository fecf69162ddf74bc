/**
 * What is sent to the API server for a manifest: Git's DaemonSet stamped with the product's
 * label and annotations, and, for managed rollouts, switched to OnDelete with the declared
 * strategy recorded beside it. Pure.
 */
import {
  CHANGE_CAUSE_ANNOTATION,
  COMMIT_ANNOTATION,
  DECLARED_STRATEGY_ANNOTATION,
  DIGEST_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  PINNED_ANNOTATION,
  REVISION_ANNOTATION,
  ROLLOUT_ANNOTATION,
  SOURCE_ANNOTATION,
} from '../labels';
import type { DaemonSetManifest } from '../source/manifest';

export type RolloutMode = 'native' | 'managed';

export interface Stamp {
  revision: number;
  commit?: string;
  digest: string;
  sourcePath?: string;
  /** Set while the DaemonSet is pinned by a rollback: "revision N: reason". */
  pinned?: string;
  /** `kubernetes.io/change-cause`: which commit (or rollback) made this revision. */
  changeCause?: string;
}

export function rolloutModeOf(manifest: Pick<DaemonSetManifest, 'metadata'>): RolloutMode {
  return manifest.metadata.annotations?.[ROLLOUT_ANNOTATION] === 'managed' ? 'managed' : 'native';
}

export interface DeclaredStrategy {
  type: 'RollingUpdate' | 'OnDelete';
  maxUnavailable: number | string;
  maxSurge: number | string;
}

/** The update strategy Git declares, with Kubernetes' defaults filled in. */
export function declaredStrategy(manifest: Pick<DaemonSetManifest, 'spec'>): DeclaredStrategy {
  const s = manifest.spec.updateStrategy;
  return {
    type: s?.type ?? 'RollingUpdate',
    maxUnavailable: s?.rollingUpdate?.maxUnavailable ?? 1,
    maxSurge: s?.rollingUpdate?.maxSurge ?? 0,
  };
}

export function render(manifest: DaemonSetManifest, stamp: Stamp, mode: RolloutMode = rolloutModeOf(manifest)): DaemonSetManifest {
  const out = structuredClone(manifest);
  out.metadata.labels = { ...out.metadata.labels, [MANAGED_BY_LABEL]: MANAGED_BY_VALUE };
  const annotations: Record<string, string> = {
    ...out.metadata.annotations,
    [REVISION_ANNOTATION]: String(stamp.revision),
    [DIGEST_ANNOTATION]: stamp.digest,
  };
  if (stamp.commit) annotations[COMMIT_ANNOTATION] = stamp.commit;
  if (stamp.sourcePath) annotations[SOURCE_ANNOTATION] = stamp.sourcePath;
  if (stamp.pinned) annotations[PINNED_ANNOTATION] = stamp.pinned;
  if (stamp.changeCause) annotations[CHANGE_CAUSE_ANNOTATION] = stamp.changeCause;
  if (mode === 'managed') {
    // Managed rollouts: the reconciler replaces pods itself, so the controller must not.
    annotations[DECLARED_STRATEGY_ANNOTATION] = JSON.stringify(declaredStrategy(manifest));
    out.spec.updateStrategy = { type: 'OnDelete' };
  }
  out.metadata.annotations = annotations;
  return out;
}
