/**
 * The cluster adapter: the only module that imports @kubernetes/client-node. It talks to
 * the API server as kubectl does (server-side apply with one field manager, dry runs,
 * label-selected lists, watches, events) and hands back plain wire-format objects.
 *
 * client-node is used for what a kubeconfig means (credentials, TLS, proxies, auth plugins)
 * and for watches; the few REST calls are made here directly, as JSON in and out, rather than
 * through its generated API classes and model serializer: those are most of its code, and a
 * cold start parses every byte of a bundle.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { hostname } from 'node:os';
import * as k8s from '@kubernetes/client-node';
import { ClusterError, DsGitopsError } from '../errors';
import { EVENT_COMPONENT, FIELD_MANAGER } from '../labels';
import { ApiAnswer, ApiRequest, DEFAULT_RETRY_POLICY, errorForAnswer, errorForNoAnswer, errorForTimeout, retryDelayMs, RetryPolicy } from './api-errors';
import type { BearerTokenSource } from './eks-token';
import type { LiveDaemonSet, LiveEvent, LiveNode, LivePod, ObjectMeta } from './types';
import { collectionPath, DAEMONSETS, describeObject, LiveObject, objectPath, ResourceRef } from './resources';
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
  events: LiveEvent;
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
  listControllerRevisions(namespace: string, labelSelector: string): Promise<{ hash?: string; revision: number; ownerUid?: string; annotations?: Record<string, string> }[]>;
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
  listNodes(): Promise<LiveNode[]>;
  createEvent(target: ObjectRef, type: EventType, reason: string, message: string): Promise<void>;
  /**
   * One LIST, then one WATCH at a time resumed from the last resourceVersion (a new LIST
   * only after 410 Gone): a cache of the kind's objects in scope that costs no request to
   * read. Resolves once the LIST is in; the caller must `stop()` it.
   */
  watchCache<K extends keyof CachedKinds>(kind: K, scope: CacheScope): Promise<Cache<CachedKinds[K]>>;
  /** The FailedCreate Events of one DaemonSet (what its controller could not create, and why). */
  listFailedCreate(namespace: string, name: string): Promise<{ message: string; count: number; lastAt: string }[]>;
  /** A GET of a discovery document (`/api`, `/apis`), with the Accept header given: lib/cluster/discovery.ts reads it. */
  getDiscovery(path: string, accept: string): Promise<unknown>;
  /** Objects of any kind, in one namespace or across all, label-selected: one LIST. */
  listObjects(resource: ResourceRef, scope: { namespace?: string; labelSelector?: string }): Promise<LiveObject[]>;
  getObject(resource: ResourceRef, namespace: string | undefined, name: string): Promise<LiveObject | undefined>;
  /**
   * Server-side apply of any kind, with the one field manager, as for DaemonSets (`apply` and
   * `dryRunApply` are this call for apps/v1 DaemonSets). Throws ApplyError only when the server
   * rejects the object itself.
   */
  applyObject(resource: ResourceRef, manifest: LiveObject, options?: { dryRun?: boolean }): Promise<LiveObject>;
  /**
   * Deletes exactly the object with this uid (a precondition: an object created again under the
   * same name is not touched). False when it was already gone or is another object now.
   */
  deleteObject(resource: ResourceRef, namespace: string | undefined, name: string, uid: string): Promise<boolean>;
}

/** How long the server keeps one watch of a cache open before the cache resumes it (client-go uses 5 to 10 minutes). */
const CACHE_WATCH_SECONDS = 300;

/** How long past the server's own end a watch may stay silent before the client takes its connection as lost. */
const WATCH_SILENCE_MARGIN_SECONDS = 30;

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

/** One REST call: the path under the server, the query, and a JSON body. */
interface RestCall {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | boolean | undefined>;
  body?: unknown;
  /** The body's media type: JSON unless said (server-side apply sends application/apply-patch+yaml). */
  contentType?: string;
  /** The answer's media type: JSON unless said (aggregated discovery asks for its own). */
  accept?: string;
}

/** The API server answered with a status other than 2xx. */
class HttpAnswer extends Error {
  constructor(readonly answer: ApiAnswer) {
    super(`HTTP ${answer.status}`);
  }
}

function queryString(query: RestCall['query']): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined) params.set(key, String(value));
  const q = params.toString();
  return q ? `?${q}` : '';
}

/** An answer's body: JSON when it parses (a metav1.Status, an object, a list), else the text. */
function bodyOf(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

const segment = encodeURIComponent;

/** A list as the API server sends it. */
interface WireList<T> {
  metadata?: { resourceVersion?: string };
  items: T[];
}

function daemonSetPath(namespace: string, name: string): string {
  return `/apis/apps/v1/namespaces/${segment(namespace)}/daemonsets/${segment(name)}`;
}

/** List items carry no apiVersion and kind: they are set, as on a single object. */
function asDaemonSet(d: unknown): LiveDaemonSet {
  return { ...(d as LiveDaemonSet), apiVersion: 'apps/v1', kind: 'DaemonSet' };
}

/** Why a request that got no HTTP answer failed, in words (the network error under node-fetch's wrapper). */
function failureText(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string } } | undefined;
  return e?.cause?.message ?? e?.message ?? String(err);
}

/** The HTTP answer a failed call got, if it got one. */
function answerOf(err: unknown): ApiAnswer | undefined {
  return err instanceof HttpAnswer ? err.answer : undefined;
}

/**
 * A node, pod or Event as the caches keep it: without managedFields, and a node without
 * status.images (every image pulled on it, often tens of KB). Nothing reads them, and at
 * 2,000 nodes they were most of a managed rollout's memory (docs/aws.md, "Memory").
 */
export function slimmed<T>(o: T): T {
  const object = o as { metadata?: { managedFields?: unknown }; status?: { images?: unknown } } | undefined;
  if (object?.metadata?.managedFields !== undefined) delete object.metadata.managedFields;
  if (object?.status?.images !== undefined) delete object.status.images;
  return o;
}

/** The same for each object a watch delivers (an ERROR or BOOKMARK event's object is passed on as it is). */
function slimEvents(onEvent: (type: string, obj: unknown) => void): (type: string, obj: unknown) => void {
  return (type, obj) => onEvent(type, type === 'ERROR' || type === 'BOOKMARK' ? obj : slimmed(obj));
}

/** The kubeconfig user whose requests carry an EKS token. */
const EKS_USER = 'daemonset-gitops-eks-iam';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class KubernetesCluster implements Cluster {
  readonly server: string;
  private requests = 0;
  private readonly kc: k8s.KubeConfig;
  private readonly requestTimeoutMs: number;
  private readonly retry: RetryPolicy;

  /** The kubeconfig as watches use it: the same, with this product's User-Agent. */
  private readonly watchConfig: k8s.KubeConfig;

  constructor(kc: k8s.KubeConfig, options: ClusterOptions = {}) {
    this.server = kc.getCurrentCluster()?.server ?? '(unknown server)';
    // A watch asks the kubeconfig for its credentials, TLS and headers through applySecurityAuthentication.
    this.watchConfig = Object.create(kc) as k8s.KubeConfig;
    this.watchConfig.applySecurityAuthentication = async (context) => {
      await kc.applySecurityAuthentication(context);
      context.setHeaderParam('User-Agent', USER_AGENT);
    };
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.retry = options.retry ?? DEFAULT_RETRY_POLICY;
    this.kc = kc;
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
  private async call<T>(req: ApiRequest, rest: RestCall): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.attempt<T>(req, rest);
      if (outcome.ok) return outcome.value;
      const wait = retryDelayMs({ error: outcome.error, attempt, repeatable: req.repeatable, timedOut: outcome.timedOut }, this.retry, Math.random);
      if (wait === undefined) throw outcome.error;
      await sleep(wait);
    }
  }

  /** One request, cancelled (its connection closed) if no answer comes within the timeout. */
  private async attempt<T>(req: ApiRequest, rest: RestCall): Promise<Attempt<T>> {
    this.requests++;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.requestTimeoutMs);
    try {
      return { ok: true, value: await this.send(rest, controller.signal) as T };
    } catch (err) {
      if (controller.signal.aborted) return { ok: false, error: errorForTimeout(req, this.server, this.requestTimeoutMs, err), timedOut: true };
      const answer = answerOf(err);
      const error = answer ? errorForAnswer(req, answer, this.server, err) : errorForNoAnswer(req, failureText(err), this.server, err);
      return { ok: false, error, timedOut: false };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Sends one call with the kubeconfig's credentials and TLS settings (as watches do) and
   * reads the JSON answer. Aborting the signal closes the connection, so a request the
   * caller gave up on is not left for the API server to carry out later.
   */
  private async send(rest: RestCall, signal: AbortSignal): Promise<unknown> {
    const url = new URL(`${this.server.replace(/\/+$/, '')}${rest.path}${queryString(rest.query)}`);
    const body = rest.body === undefined ? undefined : JSON.stringify(rest.body);
    const headers: Record<string, string | number> = { Accept: rest.accept ?? 'application/json', 'User-Agent': USER_AGENT };
    if (body !== undefined) {
      headers['Content-Type'] = rest.contentType ?? 'application/json';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    const options: https.RequestOptions = { method: rest.method, headers };
    await this.kc.applyToHTTPSOptions(options);
    const request = url.protocol === 'http:' ? http.request : https.request;
    return new Promise((resolve, reject) => {
      // Settled whatever the socket does: an abort (the timeout) or a connection closed in the
      // middle of the answer fails the call instead of leaving it waiting.
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      const req = request(url, { ...options, signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('close', () => {
          if (!res.complete) reject(new Error(`the connection closed before the whole answer (HTTP ${res.statusCode}) arrived`));
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status < 200 || status > 299) {
            const retryAfter = res.headers['retry-after'];
            reject(new HttpAnswer({ status, body: bodyOf(text), retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter }));
            return;
          }
          const parsed = text ? bodyOf(text) : undefined;
          if (typeof parsed === 'string') reject(new Error(`the answer (HTTP ${status}) is not JSON: ${text.slice(0, 200)}`));
          else resolve(parsed);
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  async listManagedDaemonSets(labelSelector: string): Promise<{ items: LiveDaemonSet[]; resourceVersion: string }> {
    const list = await this.call<WireList<LiveDaemonSet>>(
      { what: 'list DaemonSets', verb: 'list', resource: 'daemonsets', group: 'apps', repeatable: true },
      { method: 'GET', path: '/apis/apps/v1/daemonsets', query: { labelSelector } },
    );
    return {
      items: list.items.map(asDaemonSet),
      resourceVersion: list.metadata?.resourceVersion ?? '',
    };
  }

  async getDaemonSet(namespace: string, name: string): Promise<LiveDaemonSet | undefined> {
    try {
      const ds = await this.call<LiveDaemonSet>(
        { what: `get DaemonSet ${namespace}/${name}`, verb: 'get', resource: 'daemonsets', group: 'apps', namespace, repeatable: true },
        { method: 'GET', path: daemonSetPath(namespace, name) },
      );
      return asDaemonSet(ds);
    } catch (err) {
      if (err instanceof ClusterError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** Server-side apply with one field manager and force: applying the same manifest twice changes nothing the second time. */
  private async serverSideApply(manifest: object, dryRun: boolean): Promise<LiveDaemonSet> {
    return asDaemonSet(await this.applyObject(DAEMONSETS, manifest as LiveObject, { dryRun }));
  }

  async applyObject(resource: ResourceRef, manifest: LiveObject, options: { dryRun?: boolean } = {}): Promise<LiveObject> {
    const { name, namespace } = manifest.metadata;
    const object = `${describeObject(resource, namespace, name)}${options.dryRun ? ' (dry run)' : ''}`;
    return this.call<LiveObject>(
      { what: `apply ${object}`, verb: 'patch', resource: resource.resource, group: resource.group, namespace: resource.namespaced ? namespace : undefined, manifest: object, repeatable: true },
      {
        method: 'PATCH',
        path: objectPath(resource, namespace, name),
        query: { fieldManager: FIELD_MANAGER, force: true, dryRun: options.dryRun ? 'All' : undefined },
        // JSON is YAML: the apply patch is the manifest as JSON.
        body: manifest,
        contentType: 'application/apply-patch+yaml',
      },
    );
  }

  async listObjects(resource: ResourceRef, scope: { namespace?: string; labelSelector?: string }): Promise<LiveObject[]> {
    const where = resource.namespaced && scope.namespace ? ` in ${scope.namespace}` : '';
    const list = await this.call<WireList<LiveObject>>(
      { what: `list ${resource.resource}${where}`, verb: 'list', resource: resource.resource, group: resource.group, namespace: resource.namespaced ? scope.namespace : undefined, repeatable: true },
      { method: 'GET', path: collectionPath(resource, scope.namespace), query: { labelSelector: scope.labelSelector } },
    );
    return list.items.map((o) => ({ ...o, apiVersion: resource.group ? `${resource.group}/${resource.version}` : resource.version, kind: resource.kind }));
  }

  async getObject(resource: ResourceRef, namespace: string | undefined, name: string): Promise<LiveObject | undefined> {
    try {
      return await this.call<LiveObject>(
        { what: `get ${describeObject(resource, namespace, name)}`, verb: 'get', resource: resource.resource, group: resource.group, namespace: resource.namespaced ? namespace : undefined, repeatable: true },
        { method: 'GET', path: objectPath(resource, namespace, name) },
      );
    } catch (err) {
      if (err instanceof ClusterError && err.status === 404) return undefined;
      throw err;
    }
  }

  async deleteObject(resource: ResourceRef, namespace: string | undefined, name: string, uid: string): Promise<boolean> {
    try {
      // The uid precondition makes a repeat harmless: it can only delete this very object.
      await this.call(
        { what: `delete ${describeObject(resource, namespace, name)}`, verb: 'delete', resource: resource.resource, group: resource.group, namespace: resource.namespaced ? namespace : undefined, repeatable: true },
        { method: 'DELETE', path: objectPath(resource, namespace, name), body: { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background', preconditions: { uid } } },
      );
      return true;
    } catch (err) {
      if (err instanceof ClusterError && (err.status === 404 || err.status === 409)) return false;
      throw err;
    }
  }

  async listFailedCreate(namespace: string, name: string): Promise<{ message: string; count: number; lastAt: string }[]> {
    const list = await this.call<WireList<{ message?: string; count?: number; series?: { count?: number }; lastTimestamp?: string; eventTime?: string; metadata?: ObjectMeta }>>(
      { what: `list events of DaemonSet ${namespace}/${name}`, verb: 'list', resource: 'events', group: '', namespace, repeatable: true },
      {
        method: 'GET',
        path: `/api/v1/namespaces/${segment(namespace)}/events`,
        query: { fieldSelector: `involvedObject.kind=DaemonSet,involvedObject.name=${name},reason=FailedCreate` },
      },
    );
    return list.items.map((e) => ({
      message: e.message ?? '',
      count: e.series?.count ?? e.count ?? 1,
      lastAt: e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp ?? new Date(0).toISOString(),
    }));
  }

  getDiscovery(path: string, accept: string): Promise<unknown> {
    return this.call<unknown>(
      { what: `read API discovery ${path}`, verb: 'get', resource: '', group: '', repeatable: true },
      { method: 'GET', path, accept },
    );
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
        { method: 'DELETE', path: daemonSetPath(namespace, name), query: { propagationPolicy: 'Background' } },
      );
    } catch (err) {
      if (err instanceof ClusterError && err.status === 404) return;
      throw err;
    }
  }

  async listControllerRevisions(namespace: string, labelSelector: string): Promise<{ hash?: string; revision: number; ownerUid?: string; annotations?: Record<string, string> }[]> {
    const list = await this.call<WireList<{ metadata?: ObjectMeta; revision: number }>>(
      { what: `list controllerrevisions in ${namespace}`, verb: 'list', resource: 'controllerrevisions', group: 'apps', namespace, repeatable: true },
      { method: 'GET', path: `/apis/apps/v1/namespaces/${segment(namespace)}/controllerrevisions`, query: { labelSelector } },
    );
    return list.items.map((r) => ({
      hash: r.metadata?.labels?.['controller-revision-hash'],
      revision: r.revision,
      ownerUid: r.metadata?.ownerReferences?.find((o) => o.controller)?.uid,
      annotations: r.metadata?.annotations,
    }));
  }

  async deletePod(namespace: string, name: string, uid: string): Promise<void> {
    try {
      // The uid precondition makes a repeat harmless: it can only delete this very pod.
      await this.call(
        { what: `delete pod ${namespace}/${name}`, verb: 'delete', resource: 'pods', group: '', namespace, repeatable: true },
        { method: 'DELETE', path: `/api/v1/namespaces/${segment(namespace)}/pods/${segment(name)}`, body: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid } } },
      );
    } catch (err) {
      // Gone already, or replaced by a pod of the same name: either way this pod is not there.
      if (err instanceof ClusterError && (err.status === 404 || err.status === 409)) return;
      throw err;
    }
  }

  async listNodes(): Promise<LiveNode[]> {
    const list = await this.call<WireList<LiveNode>>(
      { what: 'list nodes', verb: 'list', resource: 'nodes', group: '', repeatable: true },
      { method: 'GET', path: '/api/v1/nodes' },
    );
    return list.items;
  }

  async createEvent(target: ObjectRef, type: EventType, reason: string, message: string): Promise<void> {
    const now = new Date().toISOString();
    // Each create makes one more Event: not repeated.
    await this.call(
      { what: `create event on ${target.namespace}/${target.name}`, verb: 'create', resource: 'events', group: '', namespace: target.namespace, repeatable: false },
      {
        method: 'POST',
        path: `/api/v1/namespaces/${segment(target.namespace)}/events`,
        body: {
          apiVersion: 'v1',
          kind: 'Event',
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
      },
    );
  }

  watchCache<K extends keyof CachedKinds>(kind: K, scope: CacheScope): Promise<Cache<CachedKinds[K]>> {
    return WatchCache.start(this.listWatch(kind, scope) as ListWatch<CachedKinds[K]>);
  }

  /** A LIST+WATCH of a core resource in one namespace (pods, Events), as the watch caches use it (slimmed). */
  private namespacedListWatch<T>(resource: 'pods' | 'events', { namespace, labelSelector, fieldSelector }: CacheScope): ListWatch<T> {
    if (!namespace) throw new ClusterError(`a cache of ${resource} needs a namespace`, { retryable: false });
    return {
      list: async () => {
        const list = await this.call<WireList<T>>(
          { what: `list ${resource} in ${namespace}`, verb: 'list', resource, group: '', namespace, repeatable: true },
          { method: 'GET', path: `/api/v1/namespaces/${segment(namespace)}/${resource}`, query: { labelSelector, fieldSelector } },
        );
        return { items: list.items.map(slimmed), resourceVersion: list.metadata?.resourceVersion ?? '' };
      },
      watch: (rv, onEvent, onEnd) => this.openWatch(`/api/v1/namespaces/${namespace}/${resource}`, { labelSelector, fieldSelector, resourceVersion: rv }, slimEvents(onEvent), onEnd),
    };
  }

  private listWatch(kind: keyof CachedKinds, scope: CacheScope): ListWatch<LivePod> | ListWatch<LiveNode> | ListWatch<LiveDaemonSet> | ListWatch<LiveEvent> {
    const { namespace, labelSelector, fieldSelector } = scope;
    const where = namespace ? ` in ${namespace}` : '';
    if (kind === 'events') return this.namespacedListWatch<LiveEvent>('events', scope);
    if (kind === 'pods') return this.namespacedListWatch<LivePod>('pods', scope);
    if (kind === 'nodes') {
      return {
        list: async () => {
          const list = await this.call<WireList<LiveNode>>(
            { what: 'list nodes', verb: 'list', resource: 'nodes', group: '', repeatable: true },
            { method: 'GET', path: '/api/v1/nodes', query: { labelSelector, fieldSelector } },
          );
          return { items: list.items.map(slimmed), resourceVersion: list.metadata?.resourceVersion ?? '' };
        },
        watch: (rv, onEvent, onEnd) => this.openWatch('/api/v1/nodes', { labelSelector, fieldSelector, resourceVersion: rv }, slimEvents(onEvent), onEnd),
      };
    }
    return {
      list: async () => {
        const list = await this.call<WireList<LiveDaemonSet>>(
          { what: `list DaemonSets${where}`, verb: 'list', resource: 'daemonsets', group: 'apps', namespace, repeatable: true },
          { method: 'GET', path: namespace ? `/apis/apps/v1/namespaces/${segment(namespace)}/daemonsets` : '/apis/apps/v1/daemonsets', query: { labelSelector, fieldSelector } },
        );
        return { items: list.items.map(asDaemonSet), resourceVersion: list.metadata?.resourceVersion ?? '' };
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
    const watch = new k8s.Watch(this.watchConfig);
    // client-node ends a watch that has been silent for 30 s with a TimeoutError. The API server
    // sends a bookmark only about once a minute, so a quiet kind (nodes, during a rollout) would
    // fail and be resumed twice a minute; the server ends each watch after CACHE_WATCH_SECONDS, so
    // only a connection silent for longer than that is taken as lost.
    (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = (CACHE_WATCH_SECONDS + WATCH_SILENCE_MARGIN_SECONDS) * 1000;
    watch
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
