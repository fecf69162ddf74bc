/**
 * Test access to the real local cluster as admin: clients, throwaway namespaces, waiting
 * for conditions, and a pod watcher that records availability while a rollout runs.
 */
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { readStackEnv, StackEnv } from '../../stack/env';

export function stackEnv(): StackEnv {
  const env = readStackEnv();
  if (!env) throw new Error('the local stack has not been brought up (.stack/env is missing): run npm run stack:up');
  return env;
}

export function adminKubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(stackEnv().KUBECONFIG);
  return kc;
}

export interface Clients {
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
}

export function adminClients(): Clients {
  const kc = adminKubeConfig();
  return { kc, core: kc.makeApiClient(k8s.CoreV1Api), apps: kc.makeApiClient(k8s.AppsV1Api) };
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

export async function createNamespace(core: k8s.CoreV1Api, prefix = 'it'): Promise<string> {
  const name = uniqueName(prefix);
  await core.createNamespace({ body: { metadata: { name, labels: { 'daemonset-gitops.io/test': 'true' } } } });
  return name;
}

export async function deleteNamespace(core: k8s.CoreV1Api, name: string): Promise<void> {
  try {
    await core.deleteNamespace({ name });
  } catch {
    /* already gone */
  }
}

export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function workerNodes(core: k8s.CoreV1Api): Promise<k8s.V1Node[]> {
  const list = await core.listNode({ labelSelector: 'daemonset-gitops.io/stack-node=worker' });
  return list.items;
}

export async function allStackNodes(core: k8s.CoreV1Api): Promise<k8s.V1Node[]> {
  const list = await core.listNode({ labelSelector: 'daemonset-gitops.io/stack-node' });
  return list.items;
}

export function isPodReady(pod: k8s.V1Pod): boolean {
  return !pod.metadata?.deletionTimestamp && (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** A simple DaemonSet object for tests that talk to the API directly. */
export function daemonSet(name: string, namespace: string, overrides: { image?: string; spec?: Partial<k8s.V1DaemonSetSpec>; podLabels?: Record<string, string>; podAnnotations?: Record<string, string> } = {}): k8s.V1DaemonSet {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name, ...overrides.podLabels }, annotations: overrides.podAnnotations },
        spec: { containers: [{ name: 'main', image: overrides.image ?? 'registry.local/agent:1.0' }] },
      },
      ...overrides.spec,
    },
  };
}

/**
 * Watches the pods of one DaemonSet, and the nodes, and at every event counts the given
 * nodes that do not have an available pod: Kubernetes' definition, in which a pod on a
 * NotReady node is not available whatever its own condition says. `maxUnavailableSeen` is
 * what the invariant tests assert on.
 */
/**
 * A client-node Watch for the tests' observers. client-node 2.x gives a watch up after 30 s
 * without data, and a quiet stretch of a rollout (a stalled one, minReadySeconds) can last that
 * long: an observer whose watch ended would stop seeing what it checks. These wait as long as a
 * test runs (the API server ends a watch after its own timeout, 30 minutes or more).
 */
export function observerWatch(kc: k8s.KubeConfig): k8s.Watch {
  const watch = new k8s.Watch(kc);
  (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = 30 * 60_000;
  return watch;
}

export class AvailabilityWatcher {
  private readonly pods = new Map<string, k8s.V1Pod>();
  private readonly notReadyNodes = new Set<string>();
  private abort?: AbortController;
  private nodeAbort?: AbortController;
  private stopped = false;
  /** Why a watch ended before stop(): what the watcher saw after that is incomplete. */
  private lost?: string;
  maxUnavailableSeen = 0;
  /** What the watcher saw when it saw `maxUnavailableSeen` first: for a failure message. */
  worst = '';
  samples = 0;
  /** Every pod deletion seen (namespace-local pod names), with when it was seen. */
  readonly deletions: { name: string; node?: string; at: number }[] = [];
  /** Nodes that ever ran a pod with each image. */
  readonly nodesByImage = new Map<string, Set<string>>();

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly namespace: string,
    private readonly labelSelector: string,
    private readonly nodes: string[],
    /** A pod counts as available once Ready for this long, as the DaemonSet's minReadySeconds says. */
    private readonly minReadySeconds = 0,
  ) {}

  private available(p: k8s.V1Pod, now: number): boolean {
    if (!isPodReady(p)) return false;
    if (this.minReadySeconds === 0) return true;
    const since = p.status?.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime;
    return since !== undefined && now - new Date(since as unknown as string).getTime() >= this.minReadySeconds * 1000;
  }

  unavailableNow(): number {
    const now = Date.now();
    const readyNodes = new Set<string>();
    for (const p of this.pods.values()) if (this.available(p, now) && p.spec?.nodeName && !this.notReadyNodes.has(p.spec.nodeName)) readyNodes.add(p.spec.nodeName);
    return this.nodes.filter((n) => !readyNodes.has(n)).length;
  }

  private sample(): void {
    const n = this.unavailableNow();
    if (n <= this.maxUnavailableSeen) return;
    this.maxUnavailableSeen = n;
    const now = Date.now();
    const byNode = new Map<string, string[]>();
    for (const p of this.pods.values()) {
      const node = p.spec?.nodeName ?? '(unscheduled)';
      const what = `${p.metadata!.name} ${p.spec?.containers[0]?.image ?? ''}${p.metadata?.deletionTimestamp ? ' terminating' : ''}${this.available(p, now) ? ' available' : isPodReady(p) ? ' ready' : ' not-ready'}`;
      byNode.set(node, [...(byNode.get(node) ?? []), what]);
    }
    const lines = this.nodes.map((node) => `  ${node}${this.notReadyNodes.has(node) ? ' (node NotReady)' : ''}: ${(byNode.get(node) ?? ['no pod']).join('; ')}`);
    this.worst = `${n} unavailable at ${new Date(now).toISOString()}:\n${lines.join('\n')}`;
  }

  private noteNode(n: k8s.V1Node): void {
    const ready = n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    if (ready) this.notReadyNodes.delete(n.metadata!.name!);
    else this.notReadyNodes.add(n.metadata!.name!);
  }

  async start(): Promise<void> {
    const core = this.kc.makeApiClient(k8s.CoreV1Api);
    // The pods are listed before any node event is sampled: a sample taken with no pods known
    // yet would count every node as unavailable.
    const list = await core.listNamespacedPod({ namespace: this.namespace, labelSelector: this.labelSelector });
    for (const p of list.items) this.pods.set(p.metadata!.uid!, p);
    const nodes = await core.listNode();
    for (const n of nodes.items) this.noteNode(n);
    const ended = (what: string) => (err: unknown) => {
      if (!this.stopped) this.lost ??= `the watch of ${what} ended before the watcher was stopped (${err ? String(err) : 'closed'})`;
    };
    this.nodeAbort = await observerWatch(this.kc).watch('/api/v1/nodes', { resourceVersion: nodes.metadata?.resourceVersion }, (phase, n: k8s.V1Node) => {
      if (phase !== 'DELETED') this.noteNode(n);
      this.sample();
    }, ended('nodes'));
    this.abort = await observerWatch(this.kc).watch(
      `/api/v1/namespaces/${this.namespace}/pods`,
      { labelSelector: this.labelSelector, resourceVersion: list.metadata?.resourceVersion },
      (phase, obj: k8s.V1Pod) => {
        if (phase === 'DELETED') this.pods.delete(obj.metadata!.uid!);
        else this.pods.set(obj.metadata!.uid!, obj);
        if (phase === 'MODIFIED' && obj.metadata?.deletionTimestamp && !this.deletions.some((d) => d.name === obj.metadata!.name)) {
          this.deletions.push({ name: obj.metadata!.name!, node: obj.spec?.nodeName, at: Date.now() });
        }
        const image = obj.spec?.containers[0]?.image;
        if (image && obj.spec?.nodeName) {
          if (!this.nodesByImage.has(image)) this.nodesByImage.set(image, new Set());
          this.nodesByImage.get(image)!.add(obj.spec.nodeName);
        }
        this.samples++;
        this.sample();
      },
      ended('pods'),
    );
  }

  /** Stops watching; throws when a watch had ended before, since what was seen is then incomplete. */
  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    this.nodeAbort?.abort();
    if (this.lost) throw new Error(this.lost);
  }
}

const NOT_READY_LABEL = 'node-not-ready.stage.kwok.x-k8s.io';

/**
 * Plays a broken node agent (a CNI or storage plugin that takes its node down): as soon as
 * a pod running `image` lands on a node, kwok is told to report that node NotReady; when
 * that pod goes away again, the node recovers.
 */
export class NodeBreaker {
  /** Nodes this breaker took down, in order. */
  readonly broken: string[] = [];
  private readonly down = new Set<string>();
  private abort?: AbortController;

  constructor(private readonly kc: k8s.KubeConfig, private readonly namespace: string, private readonly labelSelector: string, private readonly image: string) {}

  private async setNotReady(node: string, notReady: boolean): Promise<void> {
    const core = this.kc.makeApiClient(k8s.CoreV1Api);
    await core.patchNode({ name: node, body: { metadata: { labels: { [NOT_READY_LABEL]: notReady ? 'true' : null } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch));
  }

  async start(): Promise<void> {
    this.abort = await observerWatch(this.kc).watch(`/api/v1/namespaces/${this.namespace}/pods`, { labelSelector: this.labelSelector }, (phase, pod: k8s.V1Pod) => {
      const node = pod.spec?.nodeName;
      if (!node || pod.spec?.containers[0]?.image !== this.image) return;
      const gone = phase === 'DELETED' || Boolean(pod.metadata?.deletionTimestamp);
      if (!gone && !this.down.has(node)) {
        this.down.add(node);
        this.broken.push(node);
        void this.setNotReady(node, true);
      } else if (gone && this.down.has(node)) {
        this.down.delete(node);
        void this.setNotReady(node, false);
      }
    }, () => undefined);
  }

  /** Stops watching and brings back every node still down. */
  async stop(): Promise<void> {
    this.abort?.abort();
    await Promise.all([...this.down].map((n) => this.setNotReady(n, false).catch(() => undefined)));
    this.down.clear();
  }
}
