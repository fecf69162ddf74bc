/**
 * The cluster adapter: the only module that imports @kubernetes/client-node. It talks to
 * the API server as kubectl does (server-side apply with one field manager, dry runs,
 * label-selected lists, watches, events) and hands back plain wire-format objects.
 */
import { hostname } from 'node:os';
import * as k8s from '@kubernetes/client-node';
import { ClusterError, DsGitopsError } from '../errors';
import { EVENT_COMPONENT, FIELD_MANAGER } from '../labels';
import { ApiAnswer, ApiRequest, DEFAULT_RETRY_POLICY, errorForAnswer, errorForNoAnswer, errorForTimeout, retryDelayMs, RetryPolicy } from './api-errors';
import type { BearerTokenSource } from './eks-token';
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
  /**
   * Server-side apply as a dry run: what the object would be. Throws ApplyError only when the
   * server rejects the manifest itself; PermissionDeniedError, CredentialsRejectedError or
   * ClusterError when the refusal is not the manifest's fault.
   */
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

export interface ClusterOptions {
  /** How long one request may take before it is cancelled. */
  requestTimeoutMs?: number;
  /** How requests that are safe to repeat are retried after overload, server failures or no answer. */
  retry?: RetryPolicy;
}

type Attempt<T> = { ok: true; value: T } | { ok: false; error: DsGitopsError; timedOut: boolean };

/**
 * client-node's models are classes whose property names equal the wire names for the
 * objects read here (DaemonSets, pods, nodes), with Date objects for timestamps. A JSON
 * round trip turns them into plain objects with ISO timestamp strings.
 */
function plain<T>(obj: unknown, _type: 'V1DaemonSet' | 'V1Pod' | 'V1Node'): T {
  return JSON.parse(JSON.stringify(obj)) as T;
}

/** Why a request that got no HTTP answer failed, in words (the network error under node-fetch's wrapper). */
function failureText(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string } } | undefined;
  return e?.cause?.message ?? e?.message ?? String(err);
}

/** The HTTP answer a failed call got, if it got one: client-node throws an ApiException carrying it. */
function answerOf(err: unknown): ApiAnswer | undefined {
  if (!(err instanceof k8s.ApiException)) return undefined;
  const headers = (err.headers ?? {}) as Record<string, string | undefined>;
  return { status: err.code, body: err.body as unknown, retryAfter: headers['retry-after'] };
}

/**
 * Request options that hand the request an AbortSignal: client-node 1.4 passes a signal set
 * on the RequestContext to fetch, so aborting it closes the connection instead of leaving a
 * request that the API server may still carry out after the caller gave up on it.
 */
function cancellable(signal: AbortSignal, options?: k8s.ConfigurationOptions): k8s.ConfigurationOptions {
  const setSignal: k8s.ObservableMiddleware = {
    pre: (context) => {
      context.setSignal(signal);
      return new k8s.Observable(Promise.resolve(context));
    },
    post: (response) => new k8s.Observable(Promise.resolve(response)),
  };
  return { ...options, middleware: [...(options?.middleware ?? []), setSignal], middlewareMergeStrategy: 'append' };
}

/** The kubeconfig user whose requests carry an EKS token. */
const EKS_USER = 'daemonset-gitops-eks-iam';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class KubernetesCluster implements Cluster {
  readonly server: string;
  private requests = 0;
  private readonly apps: k8s.AppsV1Api;
  private readonly core: k8s.CoreV1Api;
  private readonly requestTimeoutMs: number;
  private readonly retry: RetryPolicy;

  constructor(private readonly kc: k8s.KubeConfig, options: ClusterOptions = {}) {
    this.server = kc.getCurrentCluster()?.server ?? '(unknown server)';
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.retry = options.retry ?? DEFAULT_RETRY_POLICY;
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

  /**
   * Signs in to an EKS cluster with IAM: every request (and every watch opened) carries a
   * bearer token from the source, which signs a new one before the current one expires.
   */
  static forEks(endpoint: { endpoint: string; caData: string }, tokens: BearerTokenSource, options: ClusterOptions = {}): KubernetesCluster {
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'eks', server: endpoint.endpoint, caData: endpoint.caData, skipTLSVerify: false }],
      users: [{ name: EKS_USER }],
      contexts: [{ name: 'eks', cluster: 'eks', user: EKS_USER }],
      currentContext: 'eks',
    });
    kc.addAuthenticator({
      isAuthProvider: (user) => user.name === EKS_USER,
      applyAuthentication: async (_user, opts) => {
        opts.headers = { ...opts.headers, Authorization: `Bearer ${await tokens.token()}` };
      },
    });
    return new KubernetesCluster(kc, options);
  }

  get requestCount(): number {
    return this.requests;
  }

  /**
   * Sends a request, and sends it again while the policy says so (only requests that are safe
   * to repeat, only after overload, a server failure or no answer). Throws the typed error
   * of the last attempt.
   */
  private async call<T>(req: ApiRequest, send: (options: k8s.ConfigurationOptions) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.attempt(req, send);
      if (outcome.ok) return outcome.value;
      const wait = retryDelayMs({ error: outcome.error, attempt, repeatable: req.repeatable, timedOut: outcome.timedOut }, this.retry, Math.random);
      if (wait === undefined) throw outcome.error;
      await sleep(wait);
    }
  }

  /** One request, cancelled (its connection closed) if no answer comes within the timeout. */
  private async attempt<T>(req: ApiRequest, send: (options: k8s.ConfigurationOptions) => Promise<T>): Promise<Attempt<T>> {
    this.requests++;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.requestTimeoutMs);
    try {
      return { ok: true, value: await send(cancellable(controller.signal)) };
    } catch (err) {
      if (controller.signal.aborted) return { ok: false, error: errorForTimeout(req, this.server, this.requestTimeoutMs, err), timedOut: true };
      const answer = answerOf(err);
      const error = answer ? errorForAnswer(req, answer, this.server, err) : errorForNoAnswer(req, failureText(err), this.server, err);
      return { ok: false, error, timedOut: false };
    } finally {
      clearTimeout(timer);
    }
  }

  async listManagedDaemonSets(labelSelector: string): Promise<{ items: LiveDaemonSet[]; resourceVersion: string }> {
    const list = await this.call(
      { what: 'list DaemonSets', verb: 'list', resource: 'daemonsets', group: 'apps', repeatable: true },
      (options) => this.apps.listDaemonSetForAllNamespaces({ labelSelector }, options),
    );
    return {
      items: list.items.map((d) => ({ apiVersion: 'apps/v1', kind: 'DaemonSet', ...plain<LiveDaemonSet>(d, 'V1DaemonSet') })),
      resourceVersion: list.metadata?.resourceVersion ?? '',
    };
  }

  async getDaemonSet(namespace: string, name: string): Promise<LiveDaemonSet | undefined> {
    try {
      const ds = await this.call(
        { what: `get DaemonSet ${namespace}/${name}`, verb: 'get', resource: 'daemonsets', group: 'apps', namespace, repeatable: true },
        (options) => this.apps.readNamespacedDaemonSet({ name, namespace }, options),
      );
      return { apiVersion: 'apps/v1', kind: 'DaemonSet', ...plain<LiveDaemonSet>(ds, 'V1DaemonSet') };
    } catch (err) {
      if (err instanceof ClusterError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** Server-side apply with one field manager and force: applying the same manifest twice changes nothing the second time. */
  private async serverSideApply(manifest: object, dryRun: boolean): Promise<LiveDaemonSet> {
    const m = manifest as { metadata: { name: string; namespace: string } };
    const { name, namespace } = m.metadata;
    const object = `DaemonSet ${namespace}/${name}${dryRun ? ' (dry run)' : ''}`;
    const out = await this.call(
      { what: `apply ${object}`, verb: 'patch', resource: 'daemonsets', group: 'apps', namespace, manifest: object, repeatable: true },
      (options) => this.apps.patchNamespacedDaemonSet(
        { name, namespace, body: manifest, fieldManager: FIELD_MANAGER, force: true, dryRun: dryRun ? 'All' : undefined },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply, options),
      ),
    );
    return { apiVersion: 'apps/v1', kind: 'DaemonSet', ...plain<LiveDaemonSet>(out, 'V1DaemonSet') };
  }

  dryRunApply(manifest: object): Promise<LiveDaemonSet> {
    return this.serverSideApply(manifest, true);
  }

  apply(manifest: object): Promise<LiveDaemonSet> {
    return this.serverSideApply(manifest, false);
  }

  async deleteDaemonSet(namespace: string, name: string, options: { orphanPods?: boolean } = {}): Promise<void> {
    try {
      // No uid precondition: sent twice, the second could delete a DaemonSet created in between. Not repeated.
      await this.call(
        { what: `delete DaemonSet ${namespace}/${name}`, verb: 'delete', resource: 'daemonsets', group: 'apps', namespace, repeatable: false },
        (callOptions) => this.apps.deleteNamespacedDaemonSet({ name, namespace, propagationPolicy: options.orphanPods ? 'Orphan' : 'Background' }, callOptions),
      );
    } catch (err) {
      if (err instanceof ClusterError && err.status === 404) return;
      throw err;
    }
  }

  async listPods(namespace: string, labelSelector: string): Promise<{ items: LivePod[]; resourceVersion: string }> {
    const list = await this.call(
      { what: `list pods in ${namespace}`, verb: 'list', resource: 'pods', group: '', namespace, repeatable: true },
      (options) => this.core.listNamespacedPod({ namespace, labelSelector }, options),
    );
    return { items: list.items.map((p) => plain<LivePod>(p, 'V1Pod')), resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  async listControllerRevisions(namespace: string, labelSelector: string): Promise<{ hash?: string; revision: number; ownerUid?: string }[]> {
    const list = await this.call(
      { what: `list controllerrevisions in ${namespace}`, verb: 'list', resource: 'controllerrevisions', group: 'apps', namespace, repeatable: true },
      (options) => this.apps.listNamespacedControllerRevision({ namespace, labelSelector }, options),
    );
    return list.items.map((r) => ({
      hash: r.metadata?.labels?.['controller-revision-hash'],
      revision: r.revision,
      ownerUid: r.metadata?.ownerReferences?.find((o) => o.controller)?.uid,
    }));
  }

  async deletePod(namespace: string, name: string, uid: string): Promise<void> {
    try {
      // The uid precondition makes a repeat harmless: it can only delete this very pod.
      await this.call(
        { what: `delete pod ${namespace}/${name}`, verb: 'delete', resource: 'pods', group: '', namespace, repeatable: true },
        (options) => this.core.deleteNamespacedPod({ name, namespace, body: { preconditions: { uid } } }, options),
      );
    } catch (err) {
      // Gone already, or replaced by a pod of the same name: either way this pod is not there.
      if (err instanceof ClusterError && (err.status === 404 || err.status === 409)) return;
      throw err;
    }
  }

  async listNodes(): Promise<LiveNode[]> {
    const list = await this.call(
      { what: 'list nodes', verb: 'list', resource: 'nodes', group: '', repeatable: true },
      (options) => this.core.listNode({}, options),
    );
    return list.items.map((n) => plain<LiveNode>(n, 'V1Node'));
  }

  async createEvent(target: ObjectRef, type: EventType, reason: string, message: string): Promise<void> {
    const now = new Date();
    // Each create makes one more Event: not repeated.
    await this.call(
      { what: `create event on ${target.namespace}/${target.name}`, verb: 'create', resource: 'events', group: '', namespace: target.namespace, repeatable: false },
      (options) => this.core.createNamespacedEvent({
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
      }, options),
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
              finish(new ClusterError(`watch ${path}: ${failureText(err)}`, { cause: err }));
            } else finish();
          },
        )
        .then((c) => {
          controller = c;
          if (finished) c.abort();
        }, (err) => finish(new ClusterError(`watch ${path}: cannot reach the API server at ${this.server}: ${failureText(err)}`, { cause: err })));
    });
  }
}
