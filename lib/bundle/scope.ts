/**
 * The built-in kinds Kubernetes serves, with their resource and scope (from Kubernetes' own
 * API definitions, as `kubectl api-resources` lists them). Loading uses it to know, without
 * the API server, whether a document without a namespace goes to DEFAULT_NAMESPACE, and
 * `dsgitops rbac` to name the resources of the allowed kinds. The apply itself asks API
 * discovery (lib/cluster/discovery.ts), which also knows the kinds CRDs add.
 */

export interface KnownKind {
  group: string;
  kind: string;
  resource: string;
  namespaced: boolean;
}

const table: [string, string, string, boolean][] = [
  ['', 'ConfigMap', 'configmaps', true],
  ['', 'Secret', 'secrets', true],
  ['', 'ServiceAccount', 'serviceaccounts', true],
  ['', 'Service', 'services', true],
  ['', 'Endpoints', 'endpoints', true],
  ['', 'PersistentVolumeClaim', 'persistentvolumeclaims', true],
  ['', 'Pod', 'pods', true],
  ['', 'LimitRange', 'limitranges', true],
  ['', 'ResourceQuota', 'resourcequotas', true],
  ['', 'Namespace', 'namespaces', false],
  ['', 'Node', 'nodes', false],
  ['', 'PersistentVolume', 'persistentvolumes', false],
  ['apps', 'DaemonSet', 'daemonsets', true],
  ['apps', 'Deployment', 'deployments', true],
  ['apps', 'StatefulSet', 'statefulsets', true],
  ['apps', 'ReplicaSet', 'replicasets', true],
  ['batch', 'Job', 'jobs', true],
  ['batch', 'CronJob', 'cronjobs', true],
  ['rbac.authorization.k8s.io', 'Role', 'roles', true],
  ['rbac.authorization.k8s.io', 'RoleBinding', 'rolebindings', true],
  ['rbac.authorization.k8s.io', 'ClusterRole', 'clusterroles', false],
  ['rbac.authorization.k8s.io', 'ClusterRoleBinding', 'clusterrolebindings', false],
  ['apiextensions.k8s.io', 'CustomResourceDefinition', 'customresourcedefinitions', false],
  ['scheduling.k8s.io', 'PriorityClass', 'priorityclasses', false],
  ['admissionregistration.k8s.io', 'MutatingWebhookConfiguration', 'mutatingwebhookconfigurations', false],
  ['admissionregistration.k8s.io', 'ValidatingWebhookConfiguration', 'validatingwebhookconfigurations', false],
  ['admissionregistration.k8s.io', 'ValidatingAdmissionPolicy', 'validatingadmissionpolicies', false],
  ['admissionregistration.k8s.io', 'ValidatingAdmissionPolicyBinding', 'validatingadmissionpolicybindings', false],
  ['storage.k8s.io', 'StorageClass', 'storageclasses', false],
  ['storage.k8s.io', 'CSIDriver', 'csidrivers', false],
  ['storage.k8s.io', 'CSINode', 'csinodes', false],
  ['policy', 'PodDisruptionBudget', 'poddisruptionbudgets', true],
  ['networking.k8s.io', 'NetworkPolicy', 'networkpolicies', true],
  ['networking.k8s.io', 'Ingress', 'ingresses', true],
  ['networking.k8s.io', 'IngressClass', 'ingressclasses', false],
  ['node.k8s.io', 'RuntimeClass', 'runtimeclasses', false],
  ['apiregistration.k8s.io', 'APIService', 'apiservices', false],
  ['coordination.k8s.io', 'Lease', 'leases', true],
  ['discovery.k8s.io', 'EndpointSlice', 'endpointslices', true],
];

const byKey = new Map(table.map(([group, kind, resource, namespaced]) => [`${group}/${kind}`, { group, kind, resource, namespaced }]));

export function knownKind(group: string, kind: string): KnownKind | undefined {
  return byKey.get(`${group}/${kind}`);
}

/** Kinds whose names people write bare in ALLOWED_KINDS: the first built-in of that name. */
export function knownKindNamed(kind: string): KnownKind | undefined {
  return table.map(([group, k, resource, namespaced]) => ({ group, kind: k, resource, namespaced })).find((k) => k.kind === kind);
}

/**
 * The resource name Kubernetes guesses for a kind it has not discovered (lower case, plural):
 * what `dsgitops rbac` names for a listed kind it does not know, e.g. one a CRD adds.
 */
export function guessedResource(kind: string): string {
  const lower = kind.toLowerCase();
  if (/(s|x|z|ch|sh)$/.test(lower)) return `${lower}es`;
  if (/[^aeiou]y$/.test(lower)) return `${lower.slice(0, -1)}ies`;
  return `${lower}s`;
}
