/**
 * PURE: what a pass does with each object of the bundle, and in which order. Order follows
 * what depends on what (as Flux's ApplyAllStaged does): Namespaces and CRDs first, then the
 * other cluster-scoped objects (ClusterRoles), then ClusterRoleBindings (the API server checks
 * a binding against the role it names, which must exist by then), then namespaced objects
 * (ServiceAccounts, Roles, ConfigMaps, Secrets, Services, custom resources), then
 * RoleBindings, then the DaemonSets (reconcile.ts, with revisions, waves and pins), then other
 * workloads last.
 */
import type { LiveObject, ResourceRef } from '../cluster/resources';
import { DIGEST_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SOURCE_ANNOTATION } from '../labels';
import type { JsonObject } from '../source/manifest';
import { stringify } from 'yaml';
import { unifiedDiff } from '../plan/diff';
import { expectedInLive, firstDifference, projection, redactSecret } from './normalize';
import type { DesiredObject } from './objects';

export type ObjectAction = 'create' | 'update' | 'unchanged' | 'drifted' | 'failed';

/** Namespaces and CRDs; other cluster-scoped objects; ClusterRoleBindings; namespaced objects; RoleBindings; (DaemonSets: 5); other workloads. */
export type Stage = 0 | 1 | 2 | 3 | 4 | 6;
export const STAGES_BEFORE_DAEMONSETS: Stage[] = [0, 1, 2, 3, 4];
export const STAGES_AFTER_DAEMONSETS: Stage[] = [6];

const WORKLOADS = new Set(['apps/Deployment', 'apps/StatefulSet', 'apps/ReplicaSet', 'batch/Job', 'batch/CronJob', '/Pod']);

export function stageOf(o: Pick<DesiredObject, 'group' | 'kind'>, namespaced: boolean): Stage {
  if ((o.group === '' && o.kind === 'Namespace') || (o.group === 'apiextensions.k8s.io' && o.kind === 'CustomResourceDefinition')) return 0;
  const binding = o.group === 'rbac.authorization.k8s.io' && (o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding');
  if (!namespaced) return binding ? 2 : 1;
  if (binding) return 4;
  return WORKLOADS.has(`${o.group}/${o.kind}`) ? 6 : 3;
}

export interface ObjectPlanItem {
  object: DesiredObject;
  /** Unset when the kind is served only once a CRD of this pass is Established. */
  resource?: ResourceRef;
  stage: Stage;
  action: ObjectAction;
  apply: boolean;
  message: string;
  /** Where the live object differs from Git (drift). */
  drift?: string;
  /** What an apply changes, as a unified diff of the fields Git sets (a Secret's values never shown). */
  diff?: string;
}

/** The object as applied: Git's, stamped with who manages it, its digest and its file. */
export function stamped(o: DesiredObject): JsonObject {
  const metadata = (o.manifest.metadata ?? {}) as JsonObject;
  return {
    ...o.manifest,
    metadata: {
      ...metadata,
      labels: { ...((metadata.labels ?? {}) as JsonObject), [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
      annotations: { ...((metadata.annotations ?? {}) as JsonObject), [DIGEST_ANNOTATION]: o.digest, [SOURCE_ANNOTATION]: o.source.file },
    },
  };
}

/**
 * One object: created when absent, updated when Git's digest is not the one it was applied
 * with, and compared field by field otherwise (what Git sets must be there; what the API
 * server added is not a difference), so an edit made in the cluster is drift.
 */
export function decideObject(o: DesiredObject, live: LiveObject | undefined, selfHeal: boolean): Pick<ObjectPlanItem, 'action' | 'apply' | 'message' | 'drift' | 'diff'> {
  const want = expectedInLive(stamped(o));
  if (!live) return { action: 'create', apply: true, message: 'not in the cluster: created', diff: objectDiff(o, want, undefined) };
  const diff = objectDiff(o, want, live);
  if (live.metadata.annotations?.[DIGEST_ANNOTATION] !== o.digest) return { action: 'update', apply: true, message: 'changed in Git: applied', diff };
  const drift = firstDifference(want, live);
  if (!drift) return { action: 'unchanged', apply: false, message: 'as in Git' };
  if (!selfHeal) return { action: 'drifted', apply: false, message: `${drift} differs from Git: not corrected (SELF_HEAL=false)`, drift, diff };
  return { action: 'update', apply: true, message: `${drift} differs from Git: corrected`, drift, diff };
}

/** The diff of what Git sets against what the live object holds there (none: created). */
function objectDiff(o: DesiredObject, want: JsonObject, live: LiveObject | undefined): string {
  let before = live ? (projection(want, live) as JsonObject | undefined) : undefined;
  let after: JsonObject = want;
  if (o.group === '' && o.kind === 'Secret') {
    before = redactSecret(before, want);
    after = redactSecret(want, before ? (projection(want, live) as JsonObject) : undefined)!;
  }
  const text = (v: JsonObject | undefined) => (v ? stringify(v, { sortMapEntries: true }) : '');
  return unifiedDiff(text(before), text(after), { before: live ? `live/${o.id}` : '/dev/null', after: `git/${o.id}` });
}
