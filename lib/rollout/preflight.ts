/**
 * PURE pre-flight checks: updates that would stall for reasons known before any pod is
 * deleted, each refused with the fix.
 */
import { parseIntOrPercent } from '../k8s-values';

interface ContainerPorts { name?: string; ports?: { hostPort?: number; containerPort?: number }[] }

function surgeIsZero(maxSurge: number | string | undefined): boolean {
  if (maxSurge === undefined) return true;
  const parsed = parseIntOrPercent(maxSurge);
  return parsed !== undefined && parsed.value === 0;
}

/**
 * A `hostPort` with a non-zero `maxSurge`: the surge pod must start on a node while the old
 * pod there still holds the port, so the scheduler never places it and the update stalls on
 * the first node. Returns the refusal, naming the container, the port and the fix.
 */
export function hostPortWithSurge(template: { spec?: { containers?: ContainerPorts[]; initContainers?: ContainerPorts[] } }, strategy: { type?: string; rollingUpdate?: { maxSurge?: number | string } } | undefined): string | undefined {
  if (strategy?.type === 'OnDelete' || surgeIsZero(strategy?.rollingUpdate?.maxSurge)) return undefined;
  for (const [field, list] of [['containers', template.spec?.containers], ['initContainers', template.spec?.initContainers]] as const) {
    for (const [i, c] of (list ?? []).entries()) {
      for (const [j, p] of (c.ports ?? []).entries()) {
        if (p.hostPort) {
          return `spec.template.spec.${field}[${i}] (${c.name ?? '?'}).ports[${j}].hostPort ${p.hostPort} with maxSurge ${String(strategy!.rollingUpdate!.maxSurge)}: the new pod would need the port the old pod on the same node holds, so it could never be scheduled and the update would stall; set maxSurge to 0 and use maxUnavailable, or drop the hostPort`;
        }
      }
    }
  }
  return undefined;
}

/** Resource quantities in the units the check compares: cpu in millicores, memory in bytes. */
export interface Resources { cpuMilli: number; memoryBytes: number }

const SUFFIX: Record<string, number> = {
  Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, Pi: 1024 ** 5, Ei: 1024 ** 6,
  n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
};

/** A Kubernetes quantity ("250m", "1.5", "128Mi", "1e3") as a number of base units, or undefined. */
export function parseQuantity(q: string | number | undefined): number | undefined {
  if (q === undefined) return undefined;
  if (typeof q === 'number') return q;
  const m = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|K|M|G|T|P|E))?$/.exec(q.trim());
  if (!m) return undefined;
  const base = Number(m[1] + (m[2] ?? ''));
  return m[3] ? base * SUFFIX[m[3]] : base;
}

type ResourceMap = Record<string, string | number> | undefined;
interface PodLike { spec?: { containers?: { resources?: { requests?: ResourceMap } }[]; initContainers?: { resources?: { requests?: ResourceMap } }[]; overhead?: ResourceMap } }

/** What a pod asks the scheduler for: the sum over its containers, or its largest init container if more, plus overhead. */
export function podRequests(pod: PodLike): Resources {
  const of = (r: ResourceMap): Resources => ({ cpuMilli: (parseQuantity(r?.cpu) ?? 0) * 1000, memoryBytes: parseQuantity(r?.memory) ?? 0 });
  const sum = (pod.spec?.containers ?? []).map((c) => of(c.resources?.requests)).reduce((a, b) => ({ cpuMilli: a.cpuMilli + b.cpuMilli, memoryBytes: a.memoryBytes + b.memoryBytes }), { cpuMilli: 0, memoryBytes: 0 });
  for (const c of pod.spec?.initContainers ?? []) {
    const r = of(c.resources?.requests);
    sum.cpuMilli = Math.max(sum.cpuMilli, r.cpuMilli);
    sum.memoryBytes = Math.max(sum.memoryBytes, r.memoryBytes);
  }
  const o = of(pod.spec?.overhead);
  return { cpuMilli: sum.cpuMilli + o.cpuMilli, memoryBytes: sum.memoryBytes + o.memoryBytes };
}

export interface NodeRoom {
  node: string;
  allocatable: Resources;
  /** Requests of the pods bound there that keep running through the update (not this DaemonSet's, not finished). */
  used: Resources;
}

/**
 * The desired nodes where the new template does not fit beside the pods that stay there, when
 * the template has no priorityClassName (with one, the scheduler can preempt lower-priority
 * pods; without, the agent would stay Pending: kubernetes#140984). Returns the refusal, or undefined.
 */
export function doesNotFit(template: PodLike & { spec?: { priorityClassName?: string } }, nodes: readonly NodeRoom[]): string | undefined {
  if (template.spec?.priorityClassName) return undefined;
  const need = podRequests(template);
  const short = nodes.filter((n) => n.used.cpuMilli + need.cpuMilli > n.allocatable.cpuMilli || n.used.memoryBytes + need.memoryBytes > n.allocatable.memoryBytes);
  if (short.length === 0) return undefined;
  const first = short[0];
  const what = first.used.cpuMilli + need.cpuMilli > first.allocatable.cpuMilli
    ? `cpu: ${need.cpuMilli}m requested, ${Math.max(0, first.allocatable.cpuMilli - first.used.cpuMilli)}m free on ${first.node}`
    : `memory: ${Math.round(need.memoryBytes / 1024 ** 2)}Mi requested, ${Math.max(0, Math.round((first.allocatable.memoryBytes - first.used.memoryBytes) / 1024 ** 2))}Mi free on ${first.node}`;
  const names = short.slice(0, 5).map((n) => n.node).join(', ') + (short.length > 5 ? ` and ${short.length - 5} more` : '');
  return `the new template does not fit on ${short.length} desired ${short.length === 1 ? 'node' : 'nodes'} (${names}; ${what}) and has no priorityClassName, so its pods would stay Pending after the old ones are deleted; lower the requests, or give the template a priorityClassName (e.g. system-node-critical) so the scheduler can make room`;
}
