/**
 * The objects of a bundle: every document under GIT_PATH that is not a DaemonSet, validated
 * against the kinds policy and ALLOWED_NAMESPACES. A refused or invalid document is reported
 * by file, document, kind and the fix, and blocks nothing else, except a DaemonSet of the same
 * source that runs with it (companions.ts holds that one).
 */
import { allowedKindsOf, defaultNamespaceOf, namespaceAllowed, Policy } from '../config';
import { digestOf, Json, JsonObject, ManifestProblem, SourceLocation, where } from '../source/manifest';
import { describeKinds, entryFor, groupOf, kindAllowed } from './kinds';
import { normalizeObject } from './normalize';
import { knownKind } from './scope';

export type BundlePolicy = Pick<Policy, 'allowedNamespaces' | 'allowedKinds' | 'defaultNamespace'>;

export interface DesiredObject {
  /** `Kind namespace/name`, or `Kind name` for a cluster-scoped object: how reports name it. */
  id: string;
  apiVersion: string;
  group: string;
  kind: string;
  name: string;
  /** Set for a namespaced object (DEFAULT_NAMESPACE when the document had none). */
  namespace?: string;
  /** Whether the kind is namespaced; undefined until discovery says (a kind no CRD of the source defines). */
  namespaced?: boolean;
  /** The document had no namespace: it went to DEFAULT_NAMESPACE. */
  defaultedNamespace?: boolean;
  source: SourceLocation;
  /** The object as applied (normalize.ts), without this product's stamp. */
  manifest: JsonObject;
  digest: string;
}

/** A document that names an object but is not applied: a DaemonSet that runs with it is held. */
export interface RefusedObject {
  kind: string;
  namespace?: string;
  name: string;
  source: SourceLocation;
  why: string;
}

/** One document, read as an object: not yet placed in a namespace (that needs every CRD of the source). */
export interface ObjectCandidate {
  group: string;
  kind: string;
  name: string;
  namespace?: string;
  source: SourceLocation;
  doc: JsonObject;
}

const NAME = /^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export type ObjectRead =
  | { ok: true; candidate: ObjectCandidate }
  | { ok: false; problem: ManifestProblem; refused?: RefusedObject };

/** A document of a kind other than DaemonSet: its shape, and the kinds policy. */
export function readObject(doc: JsonObject, loc: SourceLocation, policy: BundlePolicy): ObjectRead {
  const apiVersion = doc.apiVersion as string;
  const kind = doc.kind as string;
  const group = groupOf(apiVersion);
  const meta = (doc.metadata && typeof doc.metadata === 'object' && !Array.isArray(doc.metadata) ? doc.metadata : {}) as JsonObject;
  const name = typeof meta.name === 'string' ? meta.name : undefined;
  const namespace = typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : undefined;
  const fail = (code: string, message: string, severity: ManifestProblem['severity'] = 'error'): ObjectRead => ({
    ok: false,
    problem: { file: loc.file, document: loc.document, code, severity, message },
    refused: name ? { kind, namespace, name, source: loc, why: message } : undefined,
  });
  const policyKinds = allowedKindsOf(policy);
  if (!kindAllowed(policyKinds, group, kind)) {
    const scope = knownKind(group, kind);
    return fail(
      'kind-not-allowed',
      `${kind}${name ? ` ${name}` : ''} (${apiVersion}) is not applied: ALLOWED_KINDS (${describeKinds(policyKinds)}) does not allow it; add ${entryFor(group, kind)} to ALLOWED_KINDS to apply it${scope && !scope.namespaced ? ' (a cluster-scoped kind: it is applied only when listed by name, or with *)' : ''}`,
      'skipped',
    );
  }
  if (!name || !NAME.test(name) || name.length > 253) {
    return fail('schema', `${kind}: metadata.name ${name === undefined ? 'is required' : `"${name}" is not a valid name (lower-case letters, digits, "-", "." and ":")`}`);
  }
  if (namespace !== undefined && !DNS_LABEL.test(namespace)) {
    return fail('schema', `${kind} ${name}: metadata.namespace "${namespace}" is not a namespace name (a lower-case DNS label)`);
  }
  for (const field of ['labels', 'annotations'] as const) {
    const map = meta[field];
    if (map !== undefined && map !== null && (typeof map !== 'object' || Array.isArray(map) || Object.values(map).some((v) => typeof v !== 'string'))) {
      return fail('schema', `${kind} ${name}: metadata.${field} must map names to strings (quote numbers and booleans)`);
    }
  }
  return { ok: true, candidate: { group, kind, name, namespace, source: loc, doc } };
}

/** The scope of each kind the source's own CRDs define, by `group/Kind`. */
function scopesFromCrds(candidates: ObjectCandidate[]): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const c of candidates) {
    if (c.group !== 'apiextensions.k8s.io' || c.kind !== 'CustomResourceDefinition') continue;
    const spec = (c.doc.spec ?? {}) as { group?: Json; scope?: Json; names?: { kind?: Json } };
    if (typeof spec.group === 'string' && typeof spec.names?.kind === 'string') out.set(`${spec.group}/${spec.names.kind}`, spec.scope !== 'Cluster');
  }
  return out;
}

export interface SettledObjects {
  objects: DesiredObject[];
  problems: ManifestProblem[];
  refused: RefusedObject[];
}

/**
 * Places each object: a namespaced one without a namespace goes to DEFAULT_NAMESPACE (said in
 * a note), a namespaced one outside ALLOWED_NAMESPACES is refused, a cluster-scoped one loses
 * any namespace it was given; the same object twice is refused both times.
 */
export function settleObjects(candidates: ObjectCandidate[], policy: BundlePolicy): SettledObjects {
  const crdScopes = scopesFromCrds(candidates);
  const problems: ManifestProblem[] = [];
  const refused: RefusedObject[] = [];
  const placed: DesiredObject[] = [];
  for (const c of candidates) {
    const namespaced = knownKind(c.group, c.kind)?.namespaced ?? crdScopes.get(`${c.group}/${c.kind}`);
    const defaulted = namespaced !== false && !c.namespace;
    const namespace = namespaced === false ? undefined : c.namespace ?? (namespaced ? defaultNamespaceOf(policy) : undefined);
    if (namespace && !namespaceAllowed(policy, namespace)) {
      const allowed = policy.allowedNamespaces === '*' ? '*' : policy.allowedNamespaces.join(', ');
      const why = `${c.kind} ${namespace}/${c.name}: namespace ${namespace} is not in ALLOWED_NAMESPACES (${allowed}): move it to an allowed namespace or add ${namespace} to ALLOWED_NAMESPACES`;
      problems.push({ file: c.source.file, document: c.source.document, code: 'namespace-not-allowed', severity: 'error', message: why });
      refused.push({ kind: c.kind, namespace, name: c.name, source: c.source, why });
      continue;
    }
    const manifest = normalizeObject(c.doc, { namespace });
    const id = `${c.kind} ${namespace ? `${namespace}/` : ''}${c.name}`;
    placed.push({
      id,
      apiVersion: c.doc.apiVersion as string,
      group: c.group,
      kind: c.kind,
      name: c.name,
      namespace,
      namespaced,
      ...(defaulted && namespace ? { defaultedNamespace: true } : {}),
      source: c.source,
      manifest,
      digest: digestOf(manifest),
    });
    if (defaulted && namespace) {
      problems.push({ file: c.source.file, document: c.source.document, code: 'default-namespace', severity: 'info', message: `${c.kind} ${c.name} has no namespace: applied in ${namespace} (DEFAULT_NAMESPACE)` });
    }
  }
  const byId = new Map<string, DesiredObject[]>();
  for (const o of placed) byId.set(`${o.group}/${o.id}`, [...(byId.get(`${o.group}/${o.id}`) ?? []), o]);
  const objects: DesiredObject[] = [];
  for (const list of byId.values()) {
    if (list.length === 1) {
      objects.push(list[0]);
      continue;
    }
    const places = list.map((o) => where(o.source)).join(' and ');
    for (const o of list) {
      const why = `${o.id} is defined more than once (${places}): neither is applied until only one remains`;
      problems.push({ file: o.source.file, document: o.source.document, code: 'duplicate', severity: 'error', message: why });
      refused.push({ kind: o.kind, namespace: o.namespace, name: o.name, source: o.source, why });
    }
  }
  return { objects: objects.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)), problems, refused };
}
