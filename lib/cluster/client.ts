/**
 * The cluster adapter: the only module that imports @kubernetes/client-node. It talks to
 * the API server as kubectl does (server-side apply with one field manager, dry runs,
 * label-selected lists, watches, events) and hands back plain wire-format objects.
 */
import { hostname } from 'node:os';
import * as k8s from '@kubernetes/client-node';
import { ApplyError, ClusterError } from '../errors';
import { EVENT_COMPONENT, FIELD_MANAGER } from '../labels';
import type { LiveDaemonSet, LiveNode, LivePod } from './types';

export interface ObjectRef {
  namespace: string;
  name: string;
  uid?: string;
}

export type EventType = 'Normal' | 'Warning';

export interface Cluster {
  /** Where the API server is, for messages. */
  readonly server: string;
  /** Requests this client has made (each call, each watch opened). */
  readonly requestCount: number;
  listManagedDaemonSets(labelSelector: string): Promise<{ items: LiveDaemonSet[]; resourceVersion: string }>;
  getDaemonSet(namespace: string, name: string): Promise<LiveDaemonSet | undefined>;
  /** Server-side apply as a dry run: what the object would be. Throws ApplyError when the server rejects it. */
  dryRunApply(manifest: object): Promise<LiveDaemonSet>;
  apply(manifest: object): Promise<LiveDaemonSet>;
  deleteDaemonSet(namespace: string, name: string, options?: { orphanPods?: boolean }): Promise<void>;
  listPods(namespace: string, labelSelector: string): Promise<{ items: LivePod[]; resourceVersion: string }>;
  /** ControllerRevisions of a DaemonSet: { name, hash label, revision, owner uid }. */
  listControllerRevisions(namespace: string, labelSelector: string): Promise<{ hash?: string; revision: number; ownerUid?: string }[]>;
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
  listNodes(): Promise<LiveNode[]>;
  createEvent(target: ObjectRef, type: EventType, reason: string, message: string): Promise<void>;
  /**
   * Watches one DaemonSet until `onChange` returns true, the timeout passes, or the signal
   * aborts. Resolves with the last object seen (undefined if it was deleted).
   */
  watchDaemonSet(
    namespace: string,
    name: string,
    fromResourceVersion: string | undefined,
    timeoutMs: number,
    onChange: (ds: LiveDaemonSet) => boolean,
  ): Promise<LiveDaemonSet | undefined>;
  /**
   * Watches every DaemonSet matching the selector, in all namespaces, starting with their
   * current state (one ADDED event each), until `onEvent` returns true or the timeout passes.
   */
  watchDaemonSets(labelSelector: string, timeoutMs: number, onEvent: (type: string, ds: LiveDaemonSet) => boolean): Promise<void>;
  watchPods(
    namespace: string,
    labelSelector: string,
    fromResourceVersion: string,
    timeoutMs: number,
    onEvent: (type: string, pod: LivePod) => boolean,
  ): Promise<void>;
}

const REQUEST_TIMEOUT_MS = 30_000;

/**
 * client-node's models are classes whose property names equal the wire names for the
 * objects read here (DaemonSets, pods, nodes), with Date objects for timestamps. A JSON
 * round trip turns them into plain objects with ISO timestamp strings.
 */
function plain<T>(obj: unknown, _type: 'V1DaemonSet' | 'V1Pod' | 'V1Node'): T {
  return JSON.parse(JSON.stringify(obj)) as T;
}

function statusMessage(err: unknown): { status?: number; message: string } {
  if (err instanceof k8s.ApiException) {
    const body = err.body as unknown;
    let message: string | undefined;
    if (typeof body === 'string') {
      try {
        message = (JSON.parse(body) as { message?: string }).message;
      } catch {
        message = body;
      }
    } else if (body && typeof body === 'object') {
      message = (body as { message?: string }).message;
    }
    return { status: err.code, message: message ?? err.message };
  }
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  return { message: e?.cause?.message ?? e?.message ?? String(err) };
}

async function withTimeout<T>(what: string, server: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ClusterError(`${what}: no answer from the API server at ${server} within ${REQUEST_TIMEOUT_MS / 1000}s`)), REQUEST_TIMEOUT_MS);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class KubernetesCluster implements Cluster {
  readonly server: string;
  private requests = 0;
  private readonly apps: k8s.AppsV1Api;
  private readonly core: k8s.CoreV1Api;
  private readonly applyOptions = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply);

  constructor(private readonly kc: k8s.KubeConfig) {
    this.server = kc.getCurrentCluster()?.server ?? '(unknown server)';
    this.apps = kc.makeApiClient(k8s.AppsV1Api);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  /** Loads KUBECONFIG (a path), or the default chain (~/.kube/config, in-cluster). */
  static fromKubeconfig(path?: string): KubernetesCluster {
    const kc = new k8s.KubeConfig();
    try {
      if (path) kc.loadFromFile(path);
      else kc.loadFromDefault();
    } catch (err) {
      throw new ClusterError(`cannot load kubeconfig ${path ?? '(default)'}: ${(err as Error).message}`, { retryable: false });
    }
    if (!kc.getCurrentCluster()) {
      throw new ClusterError(`kubeconfig ${path ?? '(default)'} has no current cluster: set current-context`, { retryable: false });
    }
    return new KubernetesCluster(kc);
  }

  get requestCount(): number {
    return this.requests;
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    this.requests++;
    try {
      return await withTimeout(what, this.server, fn());
    } catch (err) {
      if (err instanceof ClusterError) throw err;
      const { status, message } = statusMessage(err);
      if (status === undefined) {
        throw new ClusterError(`${what}: cannot reach the API server at ${this.server}: ${message} (check KUBECONFIG and that the cluster is up)`, { cause: err });
      }
      throw new ClusterError(`${what}: ${status} ${message}`, { status, cause: err, retryable: status >= 500 || status === 429 });
    }
  }

  async listManagedDaemonSets(labelSelector: string): Promise<{ items: LiveDaemonSet[]; resourceVersion: string }> {
    const list = await this.call('list DaemonSets', () => this.apps.listDaemonSetForAllNamespaces({ labelSelector }));
    return {
      items: list.items.map((d) => ({ apiVersion: 'apps/v1', kind: 'DaemonSet', ...plain<LiveDaemonSet>(d, 'V1DaemonSet') })),
      resourceVersion: list.metadata?.resourceVersion ?? '',
    };
  }

  async getDaemonSet(namespace: string, name: string): Promise<LiveDaemonSet | undefined> {
    try {
      const ds = await this.call(`get DaemonSet ${namespace}/${name}`, () => this.apps.readNamespacedDaemonSet({ name, namespace }));
      return { apiVersion: 'apps/v1', kind: 'DaemonSet', ...plain<LiveDaemonSet>(ds, 'V1DaemonSet') };
    } catch (err) {
      if (err instanceof ClusterError && err.status === 404) return undefined;
      throw err;
    }
  }

  private async serverSideApply(manifest: object, dryRun: boolean): Promise<LiveDaemonSet> {
    const m = manifest as { metadata: { name: string; namespace: string } };
    const { name, namespace } = m.metadata;
    this.requests++;
    try {
      const out = await withTimeout(`apply DaemonSet ${namespace}/${name}`, this.server, this.apps.patchNamespacedDaemonSet(
        { name, namespace, body: manifest, fieldManager: FIELD_MANAGER, force: true, dryRun: dryRun ? 'All' : undefined },
        this.applyOptions,
      ));
      return { apiVersion: 'apps/v1', kind: 'DaemonSet', ...plain<LiveDaemonSet>(out, 'V1DaemonSet') };
    } catch (err) {
      if (err instanceof ClusterError) throw err;
      const { status, message } = statusMessage(err);
      if (status === undefined) {
        throw new ClusterError(`apply DaemonSet ${namespace}/${name}: cannot reach the API server at ${this.server}: ${message}`, { cause: err });
      }
      throw new ApplyError(`the API server rejected DaemonSet ${namespace}/${name}${dryRun ? ' (dry run)' : ''}: ${message}`, { status, cause: err });
    }
  }

  dryRunApply(manifest: object): Promise<LiveDaemonSet> {
    return this.serverSideApply(manifest, true);
  }

  apply(manifest: object): Promise<LiveDaemonSet> {
    return this.serverSideApply(manifest, false);
  }

  async deleteDaemonSet(namespace: string, name: string, options: { orphanPods?: boolean } = {}): Promise<void> {
    try {
      await this.call(`delete DaemonSet ${namespace}/${name}`, () =>
        this.apps.deleteNamespacedDaemonSet({ name, namespace, propagationPolicy: options.orphanPods ? 'Orphan' : 'Background' }),
      );
    } catch (err) {
      if (err instanceof ClusterError && err.status === 404) return;
      throw err;
    }
  }

  async listPods(namespace: string, labelSelector: string): Promise<{ items: LivePod[]; resourceVersion: string }> {
    const list = await this.call(`list pods in ${namespace}`, () => this.core.listNamespacedPod({ namespace, labelSelector }));
    return { items: list.items.map((p) => plain<LivePod>(p, 'V1Pod')), resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  async listControllerRevisions(namespace: string, labelSelector: string): Promise<{ hash?: string; revision: number; ownerUid?: string }[]> {
    const list = await this.call(`list controllerrevisions in ${namespace}`, () => this.apps.listNamespacedControllerRevision({ namespace, labelSelector }));
    return list.items.map((r) => ({
      hash: r.metadata?.labels?.['controller-revision-hash'],
      revision: r.revision,
      ownerUid: r.metadata?.ownerReferences?.find((o) => o.controller)?.uid,
    }));
  }

  async deletePod(namespace: string, name: string, uid: string): Promise<void> {
    try {
      await this.call(`delete pod ${namespace}/${name}`, () =>
        this.core.deleteNamespacedPod({ name, namespace, body: { preconditions: { uid } } }),
      );
    } catch (err) {
      // Gone already, or replaced by a pod of the same name: either way this pod is not there.
      if (err instanceof ClusterError && (err.status === 404 || err.status === 409)) return;
      throw err;
    }
  }

  async listNodes(): Promise<LiveNode[]> {
    const list = await this.call('list nodes', () => this.core.listNode());
    return list.items.map((n) => plain<LiveNode>(n, 'V1Node'));
  }

  async createEvent(target: ObjectRef, type: EventType, reason: string, message: string): Promise<void> {
    const now = new Date();
    await this.call(`create event on ${target.namespace}/${target.name}`, () =>
      this.core.createNamespacedEvent({
        namespace: target.namespace,
        body: {
          metadata: { generateName: `${target.name}.`, namespace: target.namespace },
          involvedObject: { apiVersion: 'apps/v1', kind: 'DaemonSet', namespace: target.namespace, name: target.name, uid: target.uid },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: EVENT_COMPONENT },
          reportingComponent: EVENT_COMPONENT,
          reportingInstance: hostname(),
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      }),
    );
  }

  async watchDaemonSet(
    namespace: string,
    name: string,
    fromResourceVersion: string | undefined,
    timeoutMs: number,
    onChange: (ds: LiveDaemonSet) => boolean,
  ): Promise<LiveDaemonSet | undefined> {
    let last: LiveDaemonSet | undefined;
    await this.watch(
      `/apis/apps/v1/namespaces/${namespace}/daemonsets`,
      { fieldSelector: `metadata.name=${name}`, resourceVersion: fromResourceVersion, allowWatchBookmarks: false },
      timeoutMs,
      (type, obj) => {
        if (type === 'DELETED') {
          last = undefined;
          return true;
        }
        last = { apiVersion: 'apps/v1', kind: 'DaemonSet', ...(obj as LiveDaemonSet) };
        return onChange(last);
      },
    );
    return last;
  }

  async watchDaemonSets(labelSelector: string, timeoutMs: number, onEvent: (type: string, ds: LiveDaemonSet) => boolean): Promise<void> {
    await this.watch('/apis/apps/v1/daemonsets', { labelSelector }, timeoutMs, (type, obj) =>
      onEvent(type, { apiVersion: 'apps/v1', kind: 'DaemonSet', ...(obj as LiveDaemonSet) }),
    );
  }

  async watchPods(
    namespace: string,
    labelSelector: string,
    fromResourceVersion: string,
    timeoutMs: number,
    onEvent: (type: string, pod: LivePod) => boolean,
  ): Promise<void> {
    await this.watch(`/api/v1/namespaces/${namespace}/pods`, { labelSelector, resourceVersion: fromResourceVersion }, timeoutMs, (type, obj) =>
      onEvent(type, obj as LivePod),
    );
  }

  /** One watch request; resolves when the handler says stop, the timeout passes or the server ends it. */
  private watch(path: string, query: Record<string, string | boolean | undefined>, timeoutMs: number, handle: (type: string, obj: unknown) => boolean): Promise<void> {
    this.requests++;
    return new Promise((resolve, reject) => {
      let controller: AbortController | undefined;
      let finished = false;
      const finish = (err?: unknown) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        controller?.abort();
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => finish(), timeoutMs);
      new k8s.Watch(this.kc)
        .watch(
          path,
          { ...query, timeoutSeconds: Math.max(1, Math.ceil(timeoutMs / 1000)) },
          (type, obj) => {
            if (finished) return;
            if (type === 'ERROR') {
              // Typically 410 Gone: the resourceVersion is too old. The caller re-reads and watches again.
              finish();
              return;
            }
            try {
              if (handle(type, obj)) finish();
            } catch (err) {
              finish(err);
            }
          },
          (err) => {
            const aborted = (err as { name?: string })?.name === 'AbortError';
            if (err && !aborted && !finished) {
              finish(new ClusterError(`watch ${path}: ${statusMessage(err).message}`, { cause: err }));
            } else finish();
          },
        )
        .then((c) => {
          controller = c;
          if (finished) c.abort();
        }, (err) => finish(new ClusterError(`watch ${path}: cannot reach the API server at ${this.server}: ${statusMessage(err).message}`, { cause: err })));
    });
  }
}
