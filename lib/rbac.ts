/**
 * The Kubernetes RBAC that matches the policy (`dsgitops rbac`). Reading is cluster-wide, as
 * a pass lists the managed DaemonSets, nodes and pods everywhere; writing (DaemonSets, pod
 * deletions for managed rollouts, Events) is granted only where ALLOWED_NAMESPACES allows
 * it, with a Role per namespace, so a namespace outside the list is refused by the API
 * server itself, not only by this tool. With `*` the writes are cluster-wide, in the same
 * ClusterRole (deploy/rbac.yaml is that output). A second user, `<user>-reader`, may only
 * read: the status function signs in as it.
 */
import { stringify } from 'yaml';
import type { Policy } from './config';
import { DEFAULT_ALLOWED_KINDS, describeKinds, KindsPolicy, parseAllowedKinds } from './bundle/kinds';
import { guessedResource, knownKind, knownKindNamed } from './bundle/scope';

export interface RbacOptions {
  allowedNamespaces: Policy['allowedNamespaces'];
  /** The user the reconciler authenticates as (an EKS access entry's username, a certificate's CN). */
  user: string;
  /** Name of every object. */
  name: string;
  /** ALLOWED_KINDS: the kinds a pass applies besides DaemonSets (default: DEFAULT_ALLOWED_KINDS). */
  allowedKinds?: KindsPolicy;
}

/** What a pass does to an object of an allowed kind: read it, and apply or delete it. Never bind, escalate or impersonate. */
const OBJECT_VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];

/**
 * The rules for the allowed kinds other than DaemonSet: the namespaced ones (granted where
 * writes are granted) and the cluster-scoped ones (always cluster-wide). A kind this table
 * does not know (one a CRD adds) is named by the resource Kubernetes would guess for it.
 */
export function kindRules(kinds: KindsPolicy): { namespaced: Rule[]; clusterScoped: Rule[] } {
  if (kinds === '*') return { namespaced: [], clusterScoped: [{ apiGroups: ['*'], resources: ['*'], verbs: OBJECT_VERBS }] };
  const namespaced: Rule[] = [];
  const clusterScoped: Rule[] = [];
  for (const e of kinds) {
    if (e.kind === 'DaemonSet' && (e.group === undefined || e.group === 'apps')) continue;
    const known = e.group === undefined ? knownKindNamed(e.kind) : knownKind(e.group, e.kind);
    const rule = { apiGroups: [known?.group ?? e.group ?? '*'], resources: [known?.resource ?? guessedResource(e.kind)], verbs: OBJECT_VERBS };
    (known && !known.namespaced ? clusterScoped : namespaced).push(rule);
  }
  return { namespaced: byGroup(namespaced), clusterScoped: byGroup(clusterScoped) };
}

/** Rules with the same group and verbs joined into one, resources in order. */
function byGroup(rules: Rule[]): Rule[] {
  const out: Rule[] = [];
  for (const r of rules) {
    const same = out.find((o) => o.apiGroups.join() === r.apiGroups.join() && o.verbs.join() === r.verbs.join());
    if (same) same.resources = [...same.resources, ...r.resources.filter((x) => !same.resources.includes(x))];
    else out.push({ ...r, resources: [...r.resources] });
  }
  return out;
}

export const DEFAULT_RBAC_NAME = 'daemonset-gitops';
export const DEFAULT_RBAC_USER = 'daemonset-gitops';

/** The user that may only read (the status function's). */
export function readerUser(user: string): string {
  return `${user}-reader`;
}

interface Rule { apiGroups: string[]; resources: string[]; verbs: string[] }

/** Everything a pass reads. */
const READ_RULES: Rule[] = [
  { apiGroups: ['apps'], resources: ['daemonsets'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['apps'], resources: ['controllerrevisions'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
  // The DaemonSet controller's FailedCreate Events: why a rollout cannot start.
  { apiGroups: [''], resources: ['events'], verbs: ['get', 'list', 'watch'] },
];

/** Everything a pass, a rollback or a managed rollout changes, in a namespace it may touch. */
const WRITE_RULES: Rule[] = [
  { apiGroups: ['apps'], resources: ['daemonsets'], verbs: ['create', 'update', 'patch', 'delete'] },
  // Pre-pull pods (rollout/pre-pull.ts) are created by server-side apply, and deleted.
  { apiGroups: [''], resources: ['pods'], verbs: ['create', 'patch', 'delete'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
];

/** The rules with the same group and resource joined, so each resource is listed once. */
function merged(rules: Rule[]): Rule[] {
  const out: Rule[] = [];
  for (const r of rules) {
    const same = out.find((o) => o.apiGroups.join() === r.apiGroups.join() && o.resources.join() === r.resources.join());
    if (same) same.verbs = [...same.verbs, ...r.verbs.filter((v) => !same.verbs.includes(v))];
    else out.push({ ...r, verbs: [...r.verbs] });
  }
  return out;
}

const RBAC = 'rbac.authorization.k8s.io/v1';

/** The RBAC objects for the policy, in apply order. */
export function rbacObjects(o: RbacOptions): object[] {
  const subjects = [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: o.user }];
  const everywhere = o.allowedNamespaces === '*';
  const reader = `${o.name}-reader`;
  const kinds = kindRules(o.allowedKinds ?? parseAllowedKinds(DEFAULT_ALLOWED_KINDS, 'ALLOWED_KINDS', []));
  const clusterRules = everywhere ? [...merged([...READ_RULES, ...WRITE_RULES]), ...kinds.namespaced] : READ_RULES;
  const objects: object[] = [
    { apiVersion: RBAC, kind: 'ClusterRole', metadata: { name: o.name }, rules: [...clusterRules, ...kinds.clusterScoped] },
    { apiVersion: RBAC, kind: 'ClusterRoleBinding', metadata: { name: o.name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: o.name }, subjects },
    { apiVersion: RBAC, kind: 'ClusterRole', metadata: { name: reader }, rules: READ_RULES },
    {
      apiVersion: RBAC,
      kind: 'ClusterRoleBinding',
      metadata: { name: reader },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: reader },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: readerUser(o.user) }],
    },
  ];
  if (!everywhere) {
    for (const namespace of o.allowedNamespaces) {
      objects.push(
        { apiVersion: RBAC, kind: 'Role', metadata: { name: o.name, namespace }, rules: [...WRITE_RULES, ...kinds.namespaced] },
        { apiVersion: RBAC, kind: 'RoleBinding', metadata: { name: o.name, namespace }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: o.name }, subjects },
      );
    }
  }
  return objects;
}

/** The objects as one YAML stream, with a header saying what it grants. */
export function rbacYaml(o: RbacOptions): string {
  const scope = o.allowedNamespaces === '*'
    ? 'writes in every namespace (ALLOWED_NAMESPACES=*)'
    : `writes only in ${o.allowedNamespaces.join(', ')} (ALLOWED_NAMESPACES)`;
  const kinds = o.allowedKinds ? describeKinds(o.allowedKinds) : DEFAULT_ALLOWED_KINDS;
  const header = [
    `# What daemonset-gitops needs in a cluster, for user "${o.user}": no CRD, no operator.`,
    `# Reads cluster-wide; ${scope}. User "${readerUser(o.user)}" (the status function) only reads.`,
    `# Objects it applies (ALLOWED_KINDS): ${kinds}; never bind, escalate or impersonate, so RBAC from Git grants no more than this.`,
    `# Written by: dsgitops rbac${o.allowedNamespaces === '*' ? " --namespaces '*'" : ` --namespaces ${o.allowedNamespaces.join(',')}`}` +
      `${kinds !== DEFAULT_ALLOWED_KINDS ? ` --kinds '${kinds}'` : ''}` +
      `${o.user !== DEFAULT_RBAC_USER ? ` --user ${o.user}` : ''}${o.name !== DEFAULT_RBAC_NAME ? ` --name ${o.name}` : ''}`,
  ].join('\n');
  return `${header}\n${rbacObjects(o).map((doc) => `---\n${stringify(doc)}`).join('')}`;
}
