/**
 * PURE: should a DaemonSet run a pod on this node? The predicates of the Kubernetes
 * DaemonSet controller (pkg/controller/daemon, `NodeShouldRunDaemonPod`): the template's
 * nodeName, nodeSelector and required node affinity, and the node's NoSchedule and
 * NoExecute taints against the template's tolerations plus the ones the controller adds to
 * every daemon pod.
 *
 * One departure, on purpose: the taints that only mirror a node's Ready condition
 * (`node.kubernetes.io/not-ready`, `node.kubernetes.io/unreachable`) are left out. The
 * controller stops counting a NotReady node once the node lifecycle controller taints it;
 * a managed rollout judges readiness from the Ready condition itself, so that a node the
 * update broke stays in the set it is answerable for.
 */
import { labelsMatch } from '../k8s-values';

export interface Taint { key: string; value?: string; effect: string }
export interface Toleration { key?: string; operator?: string; value?: string; effect?: string; tolerationSeconds?: number }
export interface NodeSelectorRequirement { key: string; operator: string; values?: string[] }
export interface NodeSelectorTerm { matchExpressions?: NodeSelectorRequirement[]; matchFields?: NodeSelectorRequirement[] }

/** The parts of a pod template that decide where a daemon pod may run. */
export interface PlacementSpec {
  nodeName?: string;
  nodeSelector?: Record<string, string>;
  hostNetwork?: boolean;
  tolerations?: Toleration[];
  affinity?: { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms?: NodeSelectorTerm[] } } };
}

export interface PlacementNode {
  name: string;
  labels: Record<string, string>;
  taints: Taint[];
}

/** Taints the node lifecycle controller sets from the Ready condition. */
const READINESS_TAINTS = new Set(['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']);

/** What the DaemonSet controller adds to every daemon pod's tolerations (daemon util `AddOrUpdateDaemonPodTolerations`). */
export function daemonPodTolerations(spec: PlacementSpec): Toleration[] {
  const exists = (key: string, effect: string): Toleration => ({ key, operator: 'Exists', effect });
  const added = [
    exists('node.kubernetes.io/not-ready', 'NoExecute'),
    exists('node.kubernetes.io/unreachable', 'NoExecute'),
    exists('node.kubernetes.io/disk-pressure', 'NoSchedule'),
    exists('node.kubernetes.io/memory-pressure', 'NoSchedule'),
    exists('node.kubernetes.io/pid-pressure', 'NoSchedule'),
    exists('node.kubernetes.io/unschedulable', 'NoSchedule'),
  ];
  if (spec.hostNetwork) added.push(exists('node.kubernetes.io/network-unavailable', 'NoSchedule'));
  return [...(spec.tolerations ?? []), ...added];
}

/** Toleration semantics of the core API: empty key with Exists matches every key, empty effect every effect. */
export function toleratesTaint(t: Toleration, taint: Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  const operator = t.operator ?? 'Equal';
  if (operator === 'Exists') return !t.key || t.key === taint.key;
  return operator === 'Equal' && t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
}

function requirementMatches(r: NodeSelectorRequirement, value: string | undefined): boolean {
  const values = r.values ?? [];
  switch (r.operator) {
    case 'In': return value !== undefined && values.includes(value);
    case 'NotIn': return value === undefined || !values.includes(value);
    case 'Exists': return value !== undefined;
    case 'DoesNotExist': return value === undefined;
    case 'Gt':
    case 'Lt': {
      if (value === undefined || values.length !== 1 || !/^-?\d+$/.test(value) || !/^-?\d+$/.test(values[0])) return false;
      return r.operator === 'Gt' ? Number(value) > Number(values[0]) : Number(value) < Number(values[0]);
    }
    default: return false;
  }
}

/** A term matches when all its requirements do; a term with none matches no node (as in the core API). */
function termMatches(term: NodeSelectorTerm, node: PlacementNode): boolean {
  const expressions = term.matchExpressions ?? [];
  const fields = term.matchFields ?? [];
  if (expressions.length === 0 && fields.length === 0) return false;
  return expressions.every((r) => requirementMatches(r, node.labels[r.key])) &&
    fields.every((r) => r.key === 'metadata.name' && requirementMatches(r, node.name));
}

/** nodeSelector and required node affinity (terms are ORed). */
export function fitsNodeAffinity(spec: PlacementSpec, node: PlacementNode): boolean {
  const selectorFits = labelsMatch(spec.nodeSelector ?? {}, node.labels);
  const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  return selectorFits && (terms === undefined || terms.some((t) => termMatches(t, node)));
}

/** The node's NoSchedule/NoExecute taints that no toleration of the daemon pod tolerates (readiness taints aside). */
export function untoleratedTaints(spec: PlacementSpec, node: PlacementNode): Taint[] {
  const tolerations = daemonPodTolerations(spec);
  return node.taints.filter((taint) =>
    (taint.effect === 'NoSchedule' || taint.effect === 'NoExecute') &&
    !READINESS_TAINTS.has(taint.key) &&
    !tolerations.some((t) => toleratesTaint(t, taint)));
}

/** Whether the DaemonSet should run a pod on this node. */
export function nodeShouldRunDaemonPod(spec: PlacementSpec, node: PlacementNode): boolean {
  if (spec.nodeName && spec.nodeName !== node.name) return false;
  return fitsNodeAffinity(spec, node) && untoleratedTaints(spec, node).length === 0;
}
