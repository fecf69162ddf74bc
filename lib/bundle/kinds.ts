/**
 * The kinds policy (ALLOWED_KINDS): which kinds of object from Git a pass may apply. A list of
 * `Kind` or `group/Kind` entries, or `*`. The default is what a node agent runs with in its own
 * namespace; cluster-scoped kinds (Namespace, ClusterRole, CustomResourceDefinition, …) are
 * applied only when listed by name or with `*`, as Argo CD's AppProject whitelists them.
 */

export interface KindEntry {
  /** The API group; undefined: any group (the entry was a bare `Kind`). '' is the core group. */
  group?: string;
  kind: string;
}

export type KindsPolicy = '*' | KindEntry[];

/** DaemonSet and the namespaced objects a node agent runs with. */
export const DEFAULT_ALLOWED_KINDS = 'DaemonSet,ConfigMap,Secret,ServiceAccount,Role,RoleBinding,Service';

const KIND = /^[A-Z][A-Za-z0-9]{0,62}$/;
const GROUP = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** ALLOWED_KINDS as written; problems name `setting` and the fix. */
export function parseAllowedKinds(raw: string, setting: string, problems: string[]): KindsPolicy {
  if (raw.trim() === '*') return '*';
  const entries: KindEntry[] = [];
  for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const slash = item.lastIndexOf('/');
    const group = slash < 0 ? undefined : item.slice(0, slash);
    const kind = slash < 0 ? item : item.slice(slash + 1);
    if (!KIND.test(kind) || (group !== undefined && group !== '' && !GROUP.test(group)) || group === '*') {
      problems.push(`${setting} contains "${item}", which is not a Kind or group/Kind (for example ConfigMap, rbac.authorization.k8s.io/ClusterRole, or * for every kind)`);
      continue;
    }
    entries.push(group === undefined ? { kind } : { group: group === 'core' ? '' : group, kind });
  }
  if (entries.length === 0 && problems.length === 0) problems.push(`${setting} is empty: list kinds separated by commas (${DEFAULT_ALLOWED_KINDS}), or * for every kind`);
  if (!entries.some((e) => e.kind === 'DaemonSet' && (e.group === undefined || e.group === 'apps'))) {
    problems.push(`${setting} does not allow DaemonSet: add DaemonSet (daemonset-gitops applies DaemonSets, with the objects they run with)`);
  }
  return entries;
}

/** The group of an apiVersion: `apps/v1` -> apps, `v1` -> '' (the core group). */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

/** Whether the policy allows this kind of object (whatever its scope: a listed kind is allowed by name). */
export function kindAllowed(policy: KindsPolicy, group: string, kind: string): boolean {
  if (policy === '*') return true;
  return policy.some((e) => e.kind === kind && (e.group === undefined || e.group === group));
}

/** The ALLOWED_KINDS entry that would allow this kind: `Kind` for the core and built-in groups people write bare, else `group/Kind`. */
export function entryFor(group: string, kind: string): string {
  return group === '' ? kind : `${group}/${kind}`;
}

/** The setting as text, for messages. */
export function describeKinds(policy: KindsPolicy): string {
  return policy === '*' ? '*' : policy.map((e) => (e.group === undefined ? e.kind : entryFor(e.group, e.kind))).join(',');
}
