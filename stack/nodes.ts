/**
 * The stack's fake nodes: N workers spread over zones a, b and c, and one control-plane
 * node tainted NoSchedule, all handled by kwok. `setWorkerCount` adds or removes workers
 * while the stack runs; pods on a removed node are cleaned up by the cluster's pod GC.
 */
import { kubectl } from './kubectl';
import { log } from './log';

export const STACK_NODE_LABEL = 'daemonset-gitops.io/stack-node';
export const ZONES = ['a', 'b', 'c'];
export const CONTROL_PLANE_NODE = 'kwok-control-plane';

export function workerName(index: number): string {
  return `kwok-node-${index}`;
}

function nodeDocument(name: string, zone: string, role: 'worker' | 'control-plane'): object {
  const labels: Record<string, string> = {
    'kubernetes.io/arch': 'amd64',
    'kubernetes.io/os': 'linux',
    'kubernetes.io/hostname': name,
    'node.kubernetes.io/instance-type': 'kwok',
    'topology.kubernetes.io/zone': zone,
    type: 'kwok',
    [STACK_NODE_LABEL]: role,
  };
  if (role === 'control-plane') labels['node-role.kubernetes.io/control-plane'] = '';
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels,
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
    },
    spec: role === 'control-plane'
      ? { taints: [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }] }
      : {},
  };
}

interface NodeList {
  items: { metadata: { name: string; labels?: Record<string, string> } }[];
}

/** The stack's nodes in the first cluster, or in the cluster whose admin kubeconfig is given. */
export function listStackNodes(kubeconfig?: string): { workers: string[]; controlPlane: boolean } {
  const list = JSON.parse(kubectl(['get', 'nodes', '-l', STACK_NODE_LABEL, '-o', 'json'], undefined, kubeconfig)) as NodeList;
  const workers = list.items.filter((n) => n.metadata.labels?.[STACK_NODE_LABEL] === 'worker').map((n) => n.metadata.name);
  const controlPlane = list.items.some((n) => n.metadata.name === CONTROL_PLANE_NODE);
  return { workers, controlPlane };
}

/** Makes the stack have exactly `count` workers (kwok-node-0 … count-1) and the control-plane node. */
export function setWorkerCount(count: number, kubeconfig?: string): { added: string[]; removed: string[] } {
  if (!Number.isInteger(count) || count < 0 || count > 500) {
    throw new Error(`node count ${count}: expected a whole number from 0 to 500`);
  }
  const { workers, controlPlane } = listStackNodes(kubeconfig);
  const wanted = new Set(Array.from({ length: count }, (_, i) => workerName(i)));
  const docs: object[] = [];
  if (!controlPlane) docs.push(nodeDocument(CONTROL_PLANE_NODE, 'a', 'control-plane'));
  const added: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = workerName(i);
    if (!workers.includes(name)) {
      docs.push(nodeDocument(name, ZONES[i % ZONES.length], 'worker'));
      added.push(name);
    }
  }
  if (docs.length > 0) {
    kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs }), kubeconfig);
  }
  const removed = workers.filter((w) => !wanted.has(w));
  if (removed.length > 0) kubectl(['delete', 'node', ...removed, '--wait=false'], undefined, kubeconfig);
  if (added.length || removed.length) {
    log(`nodes: ${count} workers (${added.length ? `added ${added.join(', ')}` : ''}${added.length && removed.length ? '; ' : ''}${removed.length ? `removed ${removed.join(', ')}` : ''})`);
  }
  return { added, removed };
}

/** Waits until every stack node reports Ready (kwok has picked it up). */
export async function waitNodesReady(timeoutSeconds = 60, kubeconfig?: string): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const out = kubectl(['get', 'nodes', '-l', STACK_NODE_LABEL, '-o',
      'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}'], undefined, kubeconfig);
    const notReady = out.split('\n').filter(Boolean).filter((l) => !l.endsWith('=True'));
    if (notReady.length === 0) return;
    if (Date.now() > deadline) throw new Error(`nodes not Ready after ${timeoutSeconds}s: ${notReady.join(', ')} (see .stack/logs/kwok*.log)`);
    await new Promise((r) => setTimeout(r, 300));
  }
}
