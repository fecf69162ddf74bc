/**
 * What the managed-rollout suites share: a fleet of kwok workers of a given size for the
 * whole file, managed DaemonSet manifests whose pods become Ready after a delay, and
 * looks at which image runs where.
 */
import type * as k8s from '@kubernetes/client-node';
import { listStackNodes, setWorkerCount, waitNodesReady } from '../../stack/nodes';
import { workerNodes } from './cluster';
import { dsYaml, DsOptions } from './manifests';

/** Resizes the fleet to `count` workers before the file's tests, and back afterwards (call at the top of a test file). */
export function useWorkers(count: number): void {
  let before = 0;
  beforeAll(async () => {
    before = listStackNodes().workers.length;
    setWorkerCount(count);
    await waitNodesReady();
  });
  afterAll(() => {
    setWorkerCount(before);
  });
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
