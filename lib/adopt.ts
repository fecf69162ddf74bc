/**
 * Adoption: a DaemonSet that carries this tool's stamp (its revision and manifest-digest
 * annotations) but that the store has no record of, because the store is new: another
 * bucket, prefix or CLUSTER_NAME pointed at a cluster this tool already manages.
 *
 * The live object becomes a revision with cause `adopted`, under the number it carries,
 * claimed with If-None-Match like every revision, and a state that lets the next plan take
 * its steady-state path. From then on history lists it and rollback can return to it: a
 * revision running in the cluster always has a snapshot in S3.
 */
import { emitEvent } from './cluster/events';
import type { LiveDaemonSet } from './cluster/types';
import type { Deps } from './deps';
import {
  CHANGE_CAUSE_ANNOTATION,
  COMMIT_ANNOTATION,
  DECLARED_STRATEGY_ANNOTATION,
  DIGEST_ANNOTATION,
  FIELD_MANAGER,
  MANAGED_BY_LABEL,
  PINNED_ANNOTATION,
  REVISION_ANNOTATION,
  SOURCE_ANNOTATION,
} from './labels';
import { liveRevision } from './plan/plan';
import { DeclaredStrategy, rolloutModeOf } from './plan/render';
import { countsOf, isRolloutComplete } from './rollout/status';
import type { DaemonSetManifest } from './source/manifest';
import type { DaemonSetState, RevisionSnapshot } from './store/records';

export interface Adoption {
  snapshot: RevisionSnapshot;
  state: DaemonSetState;
  /** For the pass's report: what was adopted, and why. */
  message: string;
}

/** The stamp `render` puts on every apply; it is put on again when an adopted revision is applied. */
const STAMP_ANNOTATIONS = [CHANGE_CAUSE_ANNOTATION, REVISION_ANNOTATION, DIGEST_ANNOTATION, COMMIT_ANNOTATION, SOURCE_ANNOTATION, PINNED_ANNOTATION, DECLARED_STRATEGY_ANNOTATION];
/** Written by the API server and by kubectl's client-side apply, not part of any manifest. */
const RECORD_ANNOTATIONS = ['deprecated.daemonset.template.generation', 'kubectl.kubernetes.io/last-applied-configuration'];

function without(map: Record<string, string> | undefined, keys: string[]): Record<string, string> | undefined {
  const out = Object.fromEntries(Object.entries(map ?? {}).filter(([k]) => !keys.includes(k)));
  return Object.keys(out).length ? out : undefined;
}

/** A managed rollout runs OnDelete; the strategy Git declared is in its annotation. */
function declaredStrategyOf(live: LiveDaemonSet): DaemonSetManifest['spec']['updateStrategy'] | undefined {
  const text = live.metadata.annotations?.[DECLARED_STRATEGY_ANNOTATION];
  if (!text) return undefined;
  try {
    const s = JSON.parse(text) as DeclaredStrategy;
    return s.type === 'OnDelete' ? { type: 'OnDelete' } : { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: s.maxUnavailable, maxSurge: s.maxSurge } };
  } catch {
    return undefined;
  }
}

/**
 * PURE: the manifest a live DaemonSet stands for, as a snapshot holds manifests: no status,
 * no server-kept metadata (uid, resourceVersion, generation, creationTimestamp,
 * managedFields), no stamp. The API server's defaults stay in: which fields Git left to
 * them cannot be told from the live object.
 */
export function adoptedManifest(live: LiveDaemonSet): DaemonSetManifest {
  const { name, namespace = 'default' } = live.metadata;
  const spec = structuredClone(live.spec) as unknown as DaemonSetManifest['spec'];
  if (spec.template.metadata) delete spec.template.metadata.creationTimestamp;
  const strategy = declaredStrategyOf(live);
  if (strategy) spec.updateStrategy = strategy;
  const labels = without(live.metadata.labels, [MANAGED_BY_LABEL]);
  const annotations = without(live.metadata.annotations, [...STAMP_ANNOTATIONS, ...RECORD_ANNOTATIONS]);
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace, ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) },
    spec,
  };
}

/** When this tool last applied the object: its field manager's entry in managedFields. */
function lastAppliedAt(live: LiveDaemonSet): string | undefined {
  const entries = (live.metadata.managedFields ?? []) as { manager?: string; operation?: string; time?: string }[];
  return entries.find((e) => e.manager === FIELD_MANAGER && e.operation === 'Apply')?.time;
}

/**
 * Adopts `live` when it carries this tool's stamp and its revision number is free in the
 * store; undefined when there is nothing to adopt (no stamp, or the number is taken).
 */
export async function adoptLive(deps: Deps, live: LiveDaemonSet): Promise<Adoption | undefined> {
  const revision = liveRevision(live);
  const digest = live.metadata.annotations?.[DIGEST_ANNOTATION];
  if (revision === undefined || !digest) return undefined;
  const { name, namespace = 'default', generation } = live.metadata;
  const now = deps.clock.now().toISOString();
  const manifest = adoptedManifest(live);
  const mode = rolloutModeOf(manifest);
  const complete = isRolloutComplete(live);
  const commit = live.metadata.annotations?.[COMMIT_ANNOTATION];
  const source = live.metadata.annotations?.[SOURCE_ANNOTATION];
  const origin = [commit && `commit ${commit.slice(0, 7)}`, source].filter(Boolean).join(', ');
  const message = `adopted revision ${revision} from the cluster${origin ? ` (${origin})` : ''}: cluster ${deps.config.cluster.name} had no record of it in S3`;
  const snapshot: RevisionSnapshot = {
    schema: 1,
    cluster: deps.config.cluster.name,
    namespace,
    name,
    revision,
    cause: 'adopted',
    reason: message,
    manifest: manifest as unknown as Record<string, unknown>,
    digest,
    rolloutMode: mode,
    replaced: null,
    runId: deps.runId,
    createdAt: now,
    appliedAt: lastAppliedAt(live),
    outcome: complete ? 'healthy' : 'progressing',
    outcomeAt: now,
  };
  if (!(await deps.store.claimRevisionAt(snapshot))) return undefined;
  const adopted: DaemonSetState = {
    schema: 1,
    namespace,
    name,
    currentRevision: revision,
    appliedDigest: digest,
    generation,
    lastHealthyRevision: complete ? revision : undefined,
    rollout: {
      revision,
      mode,
      phase: complete ? 'complete' : 'progressing',
      generation,
      startedAt: now,
      lastProgressAt: now,
      finishedAt: complete ? now : undefined,
      counts: countsOf(live),
    },
    lastAttempt: { at: now, revision, result: 'unchanged', message },
    updatedAt: now,
  };
  // Created only if absent (If-None-Match): state that appeared meanwhile is someone's newer record.
  const state = (await deps.store.updateState(namespace, name, (cur) => (cur ? undefined : adopted)))!;
  await emitEvent(deps, { namespace, name, uid: live.metadata.uid }, 'Normal', 'Adopted', message);
  deps.logger.log('info', message, { daemonSet: `${namespace}/${name}`, action: 'adopt', revision, digest });
  return { snapshot, state, message };
}
