/**
 * The one apply path for every allowed kind: API discovery (kind -> resource and scope), one
 * label-selected LIST per kind present in the source (per namespace when ALLOWED_NAMESPACES is
 * a list, since that is where the reconciler may read), the decision (plan.ts), and server-side
 * apply with the product's field manager, stage by stage. A CRD applied in a pass is waited for
 * until Established, so an object of that CRD in the same commit applies in the same pass.
 * One object's failure is reported for it and blocks nothing else.
 */
import { defaultNamespaceOf, namespaceAllowed } from '../config';
import type { Deps } from '../deps';
import { Discovery } from '../cluster/discovery';
import { describeObject, LiveObject, ResourceRef } from '../cluster/resources';
import { DsGitopsError, errorMessage, LeaseLostError } from '../errors';
import { MANAGED_SELECTOR } from '../labels';
import { mapLimit } from '../util';
import type { DesiredObject } from './objects';
import { CONFIG_COPY_LABEL } from './config-copies';
import { decideObject, ObjectPlanItem, Stage, stageOf, stamped } from './plan';

const CONCURRENCY = 8;
/** How long a CRD applied in this pass may take to become Established before its objects fail. */
const ESTABLISHED_WITHIN_MS = 30_000;

export interface BundleLook {
  items: ObjectPlanItem[];
  /** The versioned config copies the LISTs found (config-copies.ts): what copy pruning judges, with no request of its own. */
  copies?: LiveObject[];
}

const CRD = { group: 'apiextensions.k8s.io', kind: 'CustomResourceDefinition' };

function isCrd(o: Pick<DesiredObject, 'group' | 'kind'>): boolean {
  return o.group === CRD.group && o.kind === CRD.kind;
}

/** The kinds the source's own CRDs define, by `group/Kind`. */
function kindsDefinedBy(objects: DesiredObject[]): Set<string> {
  const out = new Set<string>();
  for (const o of objects.filter(isCrd)) {
    const spec = (o.manifest.spec ?? {}) as { group?: unknown; names?: { kind?: unknown } };
    if (typeof spec.group === 'string' && typeof spec.names?.kind === 'string') out.add(`${spec.group}/${spec.names.kind}`);
  }
  return out;
}

function failedItem(object: DesiredObject, message: string, stage: Stage = 2): ObjectPlanItem {
  return { object, stage, action: 'failed', apply: false, message };
}

/**
 * The object placed by what discovery says of its kind: a namespaced kind the loader did not
 * know (a CRD's) gets DEFAULT_NAMESPACE and the ALLOWED_NAMESPACES check here.
 */
function placed(deps: Deps, o: DesiredObject, resource: ResourceRef): { object: DesiredObject } | { problem: string } {
  if (o.namespaced !== undefined) return { object: o };
  if (!resource.namespaced) {
    const metadata = { ...(o.manifest.metadata as object) } as Record<string, unknown>;
    delete metadata.namespace;
    return { object: { ...o, namespace: undefined, namespaced: false, id: `${o.kind} ${o.name}`, manifest: { ...o.manifest, metadata: metadata as never } } };
  }
  const namespace = o.namespace ?? defaultNamespaceOf(deps.config.policy);
  if (!namespaceAllowed(deps.config.policy, namespace)) return { problem: `namespace ${namespace} is not in ALLOWED_NAMESPACES: move it to an allowed namespace or add ${namespace} to ALLOWED_NAMESPACES` };
  const metadata = { ...(o.manifest.metadata as object), namespace };
  return { object: { ...o, namespace, namespaced: true, id: `${o.kind} ${namespace}/${o.name}`, manifest: { ...o.manifest, metadata } } };
}

/**
 * Looks at the bundle, reading only: each object's resource, the live objects this tool
 * manages (one LIST per kind, or per kind and namespace), and the decision for each.
 */
export async function lookAtBundle(deps: Deps, objects: DesiredObject[]): Promise<BundleLook> {
  if (objects.length === 0) return { items: [] };
  const discovery = new Discovery(deps.cluster);
  const pendingCrd = kindsDefinedBy(objects);
  const resolved: { object: DesiredObject; resource?: ResourceRef }[] = [];
  const items: ObjectPlanItem[] = [];
  for (const o of objects) {
    const resource = await discovery.resourceFor(o.apiVersion, o.kind);
    if (!resource) {
      if (pendingCrd.has(`${o.group}/${o.kind}`)) resolved.push({ object: o });
      else items.push(failedItem(o, `${o.source.file} (document ${o.source.document}): the API server does not serve ${o.kind} at ${o.apiVersion}: install its CRD (list CustomResourceDefinition in ALLOWED_KINDS to apply it from Git) or fix apiVersion`));
      continue;
    }
    const p = placed(deps, o, resource);
    if ('problem' in p) items.push(failedItem(o, `${o.source.file} (document ${o.source.document}): ${o.id}: ${p.problem}`));
    else resolved.push({ object: p.object, resource });
  }
  const { live, unlisted } = await listManaged(deps, resolved.flatMap((r) => (r.resource ? [{ object: r.object, resource: r.resource }] : [])));
  const copies = [...live.values()].filter((o) => o.metadata.labels?.[CONFIG_COPY_LABEL] !== undefined && (o.kind === 'ConfigMap' || o.kind === 'Secret'));
  for (const { object, resource } of resolved) {
    const stage = stageOf(object, resource ? resource.namespaced : object.namespace !== undefined);
    const notListed = resource && unlisted.get(listKey(deps, resource, object));
    if (notListed) {
      items.push(failedItem(object, notListed, stage));
      continue;
    }
    if (!resource) {
      items.push({ object, stage, action: 'create', apply: true, message: 'its CRD is applied first in this pass: created once it is Established' });
      continue;
    }
    items.push({ object, resource, stage, ...decideObject(object, live.get(liveKey(resource, object.namespace, object.name)), deps.config.policy.selfHeal) });
  }
  return { items: items.sort((a, b) => a.stage - b.stage || (a.object.id < b.object.id ? -1 : 1)), copies };
}

function liveKey(r: ResourceRef, namespace: string | undefined, name: string): string {
  return `${r.group}/${r.resource}/${r.namespaced ? namespace : ''}/${name}`;
}

/** Which LIST reads an object: its resource's, in its namespace when namespaces are listed (where the reconciler may read). */
function listKey(deps: Deps, resource: ResourceRef, object: Pick<DesiredObject, 'namespace'>): string {
  const namespace = resource.namespaced && deps.config.policy.allowedNamespaces !== '*' ? object.namespace : undefined;
  return `${resource.group}/${resource.resource}/${namespace ?? ''}`;
}

/**
 * The managed objects of each resource in the source: one LIST per resource (and per namespace,
 * when namespaces are listed). A LIST that fails fails the objects it was for, and no other.
 */
async function listManaged(deps: Deps, wanted: { object: DesiredObject; resource: ResourceRef }[]): Promise<{ live: Map<string, LiveObject>; unlisted: Map<string, string> }> {
  const lists = new Map<string, { resource: ResourceRef; namespace?: string }>();
  for (const { object, resource } of wanted) {
    const key = listKey(deps, resource, object);
    lists.set(key, { resource, namespace: key.endsWith('/') ? undefined : object.namespace });
  }
  const live = new Map<string, LiveObject>();
  const unlisted = new Map<string, string>();
  await mapLimit([...lists], CONCURRENCY, async ([key, { resource, namespace }]) => {
    try {
      for (const item of await deps.cluster.listObjects(resource, { namespace, labelSelector: MANAGED_SELECTOR })) {
        live.set(liveKey(resource, item.metadata.namespace, item.metadata.name), item);
      }
    } catch (err) {
      if (!(err instanceof DsGitopsError)) throw err;
      unlisted.set(key, errorMessage(err));
      deps.logger.log('error', err.message, { action: 'list-failed', resource: resource.resource, namespace: namespace ?? null });
    }
  });
  return { live, unlisted };
}

export interface ObjectApplied {
  item: ObjectPlanItem;
  applied: boolean;
  error?: { reason: string; message: string };
}

/** What the API server said, in the words a user needs: RBAC from Git that grants more than the reconciler holds says so. */
function failureMessage(id: string, err: unknown): string {
  const message = errorMessage(err);
  if (/attempting to grant RBAC permissions not currently held|escalat/i.test(message)) {
    return `${id} is refused by the API server: it grants permissions the reconciler does not hold itself, and daemonset-gitops is never granted bind or escalate, so RBAC from Git can grant no more than it holds (remove the grant, or apply it by hand): ${message}`;
  }
  return message;
}

/**
 * Applies the planned objects of these stages, in order; within a stage at once. CRDs applied
 * are waited for until Established, and discovery is read again so that objects of their
 * kinds find their resource. A lost lease stops everything (LeaseLostError is thrown).
 */
export async function applyStages(deps: Deps, look: BundleLook, stages: Stage[], confirmLease: () => Promise<void>): Promise<Map<string, ObjectApplied>> {
  const done = new Map<string, ObjectApplied>();
  const discovery = new Discovery(deps.cluster);
  for (const stage of stages) {
    const items = look.items.filter((i) => i.stage === stage && i.apply);
    if (items.length === 0) continue;
    await confirmLease();
    await mapLimit(items, CONCURRENCY, async (item) => {
      done.set(item.object.id, await applyOne(deps, discovery, item));
    });
    const crds = items.filter((i) => isCrd(i.object) && done.get(i.object.id)?.applied);
    if (crds.length > 0) {
      await Promise.all(crds.map(async (i) => {
        const problem = await established(deps, i);
        if (problem) done.set(i.object.id, { item: i, applied: true, error: { reason: 'CrdNotEstablished', message: problem } });
      }));
      discovery.invalidate();
    }
  }
  return done;
}

async function applyOne(deps: Deps, discovery: Discovery, item: ObjectPlanItem): Promise<ObjectApplied> {
  const o = item.object;
  try {
    let resource = item.resource;
    if (!resource) {
      resource = await servedSoon(discovery, o);
      if (!resource) return { item, applied: false, error: { reason: 'KindNotServed', message: `${o.id}: the API server does not serve ${o.kind} at ${o.apiVersion}, although its CRD is in the source: check the CRD's group, versions and names` } };
      const p = placed(deps, o, resource);
      if ('problem' in p) return { item, applied: false, error: { reason: 'NamespaceNotAllowed', message: `${o.id}: ${p.problem}` } };
      item = { ...item, object: p.object, resource };
    }
    await deps.cluster.applyObject(resource, stamped(item.object) as LiveObject);
    deps.logger.log('info', `${item.object.id}: ${item.message}`, { object: item.object.id, action: item.action });
    return { item, applied: true };
  } catch (err) {
    if (err instanceof LeaseLostError) throw err;
    const error = { reason: (err as DsGitopsError).reason ?? 'Error', message: failureMessage(o.id, err) };
    deps.logger.log('error', error.message, { object: o.id, action: 'apply-failed', reason: error.reason });
    return { item, applied: false, error };
  }
}

/**
 * The resource of a kind whose CRD was just Established: discovery may list it a moment later
 * than the condition says, so it is read again a few times (within about 3 s) before giving up.
 */
async function servedSoon(discovery: Discovery, o: DesiredObject): Promise<ResourceRef | undefined> {
  for (let delay = 200; ; delay *= 2) {
    const found = await discovery.resourceFor(o.apiVersion, o.kind);
    if (found || delay > 1600) return found;
    await new Promise((r) => setTimeout(r, delay));
    discovery.invalidate();
  }
}

/** Undefined once the CRD is Established; else why not, at the bound. */
async function established(deps: Deps, item: ObjectPlanItem): Promise<string | undefined> {
  const until = Date.now() + ESTABLISHED_WITHIN_MS;
  let last = 'no Established condition yet';
  for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
    const crd = await deps.cluster.getObject(item.resource!, undefined, item.object.name);
    const conditions = ((crd?.status as { conditions?: { type: string; status: string; message?: string }[] } | undefined)?.conditions) ?? [];
    const est = conditions.find((c) => c.type === 'Established');
    if (est?.status === 'True') return undefined;
    const refused = conditions.find((c) => c.type === 'NamesAccepted' && c.status === 'False');
    if (refused) return `${describeObject(item.resource!, undefined, item.object.name)} is not Established: its names are not accepted: ${refused.message ?? ''}`;
    last = est?.message ?? last;
    if (Date.now() + delay > until) return `${describeObject(item.resource!, undefined, item.object.name)} is not Established within ${ESTABLISHED_WITHIN_MS / 1000} s (${last})`;
    await new Promise((r) => setTimeout(r, delay));
  }
}
