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
import { Cache, ListWatch, WatchCache } from './watch-cache';

export interface ObjectRef {
  namespace: string;
  name: string;
  uid?: string;
}

export type EventType = 'Normal' | 'Warning';

/** The kinds a watch cache can hold, and what each holds. */
export interface CachedKinds {
  pods: LivePod;
  nodes: LiveNode;
  daemonsets: LiveDaemonSet;
}

/** Which objects of a kind a cache follows: a namespace (none: cluster-wide), and selectors in the API's query syntax. */
export interface CacheScope {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

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
  deleteDaemonSet(namespace: string, name: string): Promise<void>;
  /** ControllerRevisions of a DaemonSet: { name, hash label, revision, owner uid }. */
  listControllerRevisions(namespace: string, labelSelector: string): Promise<{ hash?: string; revision: number; ownerUid?: string }[]>;
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
  listNodes(): Promise<LiveNode[]>;
  createEvent(target: ObjectRef, type: EventType, reason: string, message: string): Promise<void>;
  /**
   * One LIST, then one WATCH at a time resumed from the last resourceVersion (a new LIST
   * only after 410 Gone): a cache of the kind's objects in scope that costs no request to
   * read. Resolves once the LIST is in; the caller must `stop()` it.
   */
  watchCache<K extends keyof CachedKinds>(kind: K, scope: CacheScope): Promise<Cache<CachedKinds[K]>>;
}

/** How long the server keeps one watch of a cache open before the cache resumes it (client-go uses 5 to 10 minutes). */
const CACHE_WATCH_SECONDS = 300;

const REQUEST_TIMEOUT_MS = 30_000;

/**
 * Who is asking, as the API server's audit log records it: the product, the host and the
 * process, so that one run's requests can be told from another's under the same identity.
 */
export const USER_AGENT = `daemonset-gitops (${hostname()}; pid ${process.pid})`;

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
      context.setHeaderParam('User-Agent', USER_AGENT);
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

  /** The kubeconfig as watches use it: the same, with this product's User-Agent. */
  private readonly watchConfig: k8s.KubeConfig;

  constructor(kc: k8s.KubeConfig, options: ClusterOptions = {}) {
    this.server = kc.getCurrentCluster()?.server ?? '(unknown server)';
    this.watchConfig = Object.create(kc) as k8s.KubeConfig;
    this.watchConfig.applyToFetchOptions = (opts) => kc.applyToFetchOptions({ ...opts, headers: { ...opts.headers, 'User-Agent': USER_AGENT } });
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.retry = options.retry ?? DEFAULT_RETRY_POLICY;
    this.apps = kc.makeApiClient(k8s.AppsV1Api);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  /** Loads KUBECONFIG (a path), or the default chain (~/.kube/config, in-cluster). */
  static fromKubeconfig(path?: string, options: ClusterOptions = {}): KubernetesCluster {
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
    return new KubernetesCluster(kc, options);
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

  async deleteDaemonSet(namespace: string, name: string): Promise<void> {
    try {
      // No uid precondition: sent twice, the second could delete a DaemonSet created in between. Not repeated.
      await this.call(
        { what: `delete DaemonSet ${namespace}/${name}`, verb: 'delete', resource: 'daemonsets', group: 'apps', namespace, repeatable: false },
        (callOptions) => this.apps.deleteNamespacedDaemonSet({ name, namespace, propagationPolicy: 'Background' }, callOptions),
      );
    } catch (err) {
      if (err instanceof ClusterError && err.status === 404) return;
      throw err;
    }
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

  watchCache<K extends keyof CachedKinds>(kind: K, scope: CacheScope): Promise<Cache<CachedKinds[K]>> {
    return WatchCache.start(this.listWatch(kind, scope) as ListWatch<CachedKinds[K]>);
  }

  private listWatch(kind: keyof CachedKinds, scope: CacheScope): ListWatch<LivePod> | ListWatch<LiveNode> | ListWatch<LiveDaemonSet> {
    const { namespace, labelSelector, fieldSelector } = scope;
    const where = namespace ? ` in ${namespace}` : '';
    if (kind === 'pods') {
      if (!namespace) throw new ClusterError('a pod cache needs a namespace', { retryable: false });
      return {
        list: async () => {
          const list = await this.call(
            { what: `list pods${where}`, verb: 'list', resource: 'pods', group: '', namespace, repeatable: true },
            (options) => this.core.listNamespacedPod({ namespace, labelSelector, fieldSelector }, options),
          );
          return { items: list.items.map((p) => plain<LivePod>(p, 'V1Pod')), resourceVersion: list.metadata?.resourceVersion ?? '' };
        },
        watch: (rv, onEvent, onEnd) => this.openWatch(`/api/v1/namespaces/${namespace}/pods`, { labelSelector, fieldSelector, resourceVersion: rv }, onEvent, onEnd),
      };
    }
    if (kind === 'nodes') {
      return {
        list: async () => {
          const list = await this.call(
            { what: 'list nodes', verb: 'list', resource: 'nodes', group: '', repeatable: true },
            (options) => this.core.listNode({ labelSelector, fieldSelector }, options),
          );
          return { items: list.items.map((n) => plain<LiveNode>(n, 'V1Node')), resourceVersion: list.metadata?.resourceVersion ?? '' };
        },
        watch: (rv, onEvent, onEnd) => this.openWatch('/api/v1/nodes', { labelSelector, fieldSelector, resourceVersion: rv }, onEvent, onEnd),
      };
    }
    const asDaemonSet = (d: unknown): LiveDaemonSet => ({ apiVersion: 'apps/v1', kind: 'DaemonSet', ...(d as LiveDaemonSet) });
    return {
      list: async () => {
        const list = await this.call(
          { what: `list DaemonSets${where}`, verb: 'list', resource: 'daemonsets', group: 'apps', namespace, repeatable: true },
          (options) => namespace
            ? this.apps.listNamespacedDaemonSet({ namespace, labelSelector, fieldSelector }, options)
            : this.apps.listDaemonSetForAllNamespaces({ labelSelector, fieldSelector }, options),
        );
        return { items: list.items.map((d) => asDaemonSet(plain<LiveDaemonSet>(d, 'V1DaemonSet'))), resourceVersion: list.metadata?.resourceVersion ?? '' };
      },
      watch: (rv, onEvent, onEnd) => this.openWatch(
        namespace ? `/apis/apps/v1/namespaces/${namespace}/daemonsets` : '/apis/apps/v1/daemonsets',
        { labelSelector, fieldSelector, resourceVersion: rv },
        (type, obj) => onEvent(type, type === 'ERROR' || type === 'BOOKMARK' ? obj : asDaemonSet(obj)),
        onEnd,
      ),
    };
  }

  /**
   * Opens one watch for a cache: bookmarks on, ended by the server after CACHE_WATCH_SECONDS.
   * Returns the function that closes it (also before the server has answered).
   */
  private openWatch(path: string, query: Record<string, string | undefined>, onEvent: (type: string, obj: unknown) => void, onEnd: (err?: unknown) => void): () => void {
    this.requests++;
    let controller: AbortController | undefined;
    let closed = false;
    let ended = false;
    const end = (err?: unknown) => {
      if (ended) return;
      ended = true;
      onEnd(err);
    };
    new k8s.Watch(this.watchConfig)
      .watch(
        path,
        { ...query, allowWatchBookmarks: true, timeoutSeconds: CACHE_WATCH_SECONDS },
        (type, obj) => {
          if (!closed && !ended) onEvent(type, obj);
        },
        (err) => {
          const aborted = (err as { name?: string } | null)?.name === 'AbortError';
          end(err && !aborted ? new ClusterError(`watch ${path}: ${failureText(err)}`, { cause: err, status: (err as { statusCode?: number }).statusCode }) : undefined);
        },
      )
      .then((c) => {
        controller = c;
        if (closed) c.abort();
      }, (err) => end(new ClusterError(`watch ${path}: cannot reach the API server at ${this.server}: ${failureText(err)}`, { cause: err })));
    return () => {
      closed = true;
      controller?.abort();
      end();
    };
  }
}
