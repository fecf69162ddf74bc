/**
 * What the managed-rollout suites share: a fleet of kwok workers of a given size for the
 * whole file, managed DaemonSet manifests whose pods become Ready after a delay, and
 * looks at which image runs where.
 */
import * as k8s from '@kubernetes/client-node';
import { listStackNodes, setWorkerCount, waitNodesReady } from '../../stack/nodes';
import { adminClients, waitFor, workerNodes } from './cluster';
import { dsYaml, DsOptions } from './manifests';

/** Taints the node lifecycle controller keeps on a node that is not (yet) Ready: the scheduler and the DaemonSet controller skip it while they are there. */
const NOT_READY_TAINTS = new Set(['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']);
/** The label that makes kwok report a node NotReady (stack/kwok-stages.yaml). */
const KWOK_NOT_READY_LABEL = 'node-not-ready.stage.kwok.x-k8s.io';

/**
 * What a test set on a worker and left there (a NoSchedule taint, kwok's NotReady label, a
 * cordon) is taken off, so the worker is again as the stack made it; each one is logged, naming
 * the node, so the file that left it can be found. The lifecycle controller's own taints stay.
 */
async function resetWorkers(core: k8s.CoreV1Api): Promise<void> {
  for (const n of await workerNodes(core)) {
    const name = n.metadata!.name!;
    const taints = n.spec?.taints ?? [];
    const foreign = taints.filter((t) => !NOT_READY_TAINTS.has(t.key));
    const labelled = n.metadata?.labels?.[KWOK_NOT_READY_LABEL] !== undefined;
    if (foreign.length === 0 && !labelled && !n.spec?.unschedulable) continue;
    // eslint-disable-next-line no-console
    console.warn(`${name} was left with ${[...foreign.map((t) => `taint ${t.key}=${t.value ?? ''}:${t.effect}`), ...(labelled ? [`label ${KWOK_NOT_READY_LABEL}`] : []), ...(n.spec?.unschedulable ? ['unschedulable'] : [])].join(', ')}: taken off`);
    await core.patchNode({
      name,
      body: { metadata: { labels: { [KWOK_NOT_READY_LABEL]: null } }, spec: { unschedulable: null, taints: taints.filter((t) => NOT_READY_TAINTS.has(t.key)) } },
    }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch));
  }
}

/**
 * Makes the stack have exactly `count` workers (kwok-node-0 … count-1), as the stack made them
 * (what a test left on one is taken off), and waits until the API server lists exactly those,
 * each Ready and without the node lifecycle controller's not-ready taints: what a test counts on
 * (a DaemonSet's desired nodes) is then settled. A node that another file added a moment ago is
 * still NotReady and tainted; until the taint goes the DaemonSet controller does not count it.
 */
export async function resizeWorkers(count: number): Promise<void> {
  setWorkerCount(count);
  const { core } = adminClients();
  await resetWorkers(core);
  await waitNodesReady();
  const wanted = Array.from({ length: count }, (_, i) => `kwok-node-${i}`).sort();
  await waitFor(`exactly ${count} workers (${wanted.join(', ')}), each Ready, schedulable and without a taint`, async () => {
    const nodes = await workerNodes(core);
    const names = nodes.map((n) => n.metadata!.name!).sort();
    if (names.join(',') !== wanted.join(',')) return false;
    return nodes.every((n) => n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' && !n.spec?.unschedulable && (n.spec?.taints ?? []).length === 0);
  }, 120_000, 300);
}

/** What a resize may take: kwok's nodes becoming Ready (60 s) and the taints going (120 s), with room. */
const RESIZE_TIMEOUT_MS = 240_000;

/**
 * Resizes the fleet to `count` workers before the file's tests, and back afterwards (call at the
 * top of a test file). Every file that counts on the number or names of the workers calls it: the
 * files run one after another on one stack, in no fixed order, and the one before may have left
 * another size (or be restoring its own size still).
 */
export function useWorkers(count: number): void {
  let before: number | undefined;
  beforeAll(async () => {
    before = listStackNodes().workers.length;
    await resizeWorkers(count);
  }, RESIZE_TIMEOUT_MS);
  afterAll(async () => {
    // A file whose setup failed before it read the size leaves the fleet alone.
    if (before !== undefined) await resizeWorkers(before);
  }, RESIZE_TIMEOUT_MS);
}

/** A DaemonSet in managed mode, its pods Ready `readyDelaySeconds` after they start. */
export function managedYaml(o: DsOptions & { managedAnnotations?: Record<string, string> }, readyDelaySeconds: number): string {
  return dsYaml({
    ...o,
    annotations: { 'daemonset-gitops.io/rollout': 'managed', ...o.managedAnnotations, ...o.annotations },
    podAnnotations: { 'pod-ready.stage.kwok.x-k8s.io/delay': `${readyDelaySeconds}s`, ...o.podAnnotations },
  });
}

export async function workerNames(core: k8s.CoreV1Api): Promise<string[]> {
  return (await workerNodes(core)).map((n) => n.metadata!.name!).sort();
}

/** The image each node runs for the DaemonSet's pods that are not going away. */
export async function imagesByNode(core: k8s.CoreV1Api, ns: string, app: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const p of (await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` })).items) {
    if (!p.metadata!.deletionTimestamp) out[p.spec!.nodeName!] = p.spec!.containers[0].image!;
  }
  return out;
}
