/**
 * PURE: versioned copies of a DaemonSet's configuration (as kustomize's configMapGenerator names
 * a ConfigMap after a hash of its data, and Flagger keeps primary copies). For each ConfigMap
 * and Secret of the same source that the pod template references (volumes, projected volumes,
 * envFrom, env[].valueFrom), the pass applies an immutable copy named `<name>-<short digest of
 * its content>` and the template references the copy instead. A new configuration is a new
 * copy, so a pod of an older revision that restarts mid-rollout still reads the configuration
 * it was rolled out with; Git's own object is applied too, for other consumers.
 *
 * Assumptions / Invariants
 * - A copy's name is a function of its content only: the same content always has the same
 *   name, so re-applying it changes nothing and a rollback can recreate it from its snapshot.
 * - A copy carries none of the original's labels (a sidecar that selects ConfigMaps by label,
 *   as dashboard loaders do, must not see every old version), only this tool's.
 * - Secret values never leave the cluster: a Secret's entry in a snapshot is its digest.
 */
import { PREFIX } from '../labels';
import { DaemonSetManifest, digestOf, DesiredDaemonSet, JsonObject } from '../source/manifest';
import type { DesiredObject } from './objects';

/** The label that marks a versioned copy, valued with the name of the object it copies (at most 63 characters). */
export const CONFIG_COPY_LABEL = `${PREFIX}config-copy-of`;
/** The full name of the copied object (a label value cannot hold a name over 63 characters). */
export const CONFIG_COPY_ANNOTATION = `${PREFIX}config-copy-of`;

export type ConfigKind = 'ConfigMap' | 'Secret';

/** A revision's configuration as its snapshot in S3 holds it (records.ts, `config`). */
export interface ConfigEntry {
  kind: ConfigKind;
  namespace: string;
  name: string;
  copyName: string;
  /** sha256 of the content (type, data, binaryData, stringData): the copy's name ends in its first 10 hex digits. */
  digest: string;
  /** A ConfigMap's data, so a rollback can recreate a pruned copy. Never set for a Secret. */
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

/** Where a pod template names a ConfigMap or Secret by a field that can be pointed at a copy. */
export interface ConfigReference {
  kind: ConfigKind;
  /** Path for messages: `volumes[0].configMap`. */
  field: string;
  /** The object holding the name, and the key of the name in it. */
  holder: JsonObject;
  key: 'name' | 'secretName';
}

const SHORT_DIGEST = 10;
const MAX_NAME = 253;
const MAX_LABEL_VALUE = 63;

type Obj = JsonObject;

function obj(v: unknown): Obj | undefined {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined;
}

function list(v: unknown): Obj[] {
  return Array.isArray(v) ? v.map(obj).filter((o): o is Obj => o !== undefined) : [];
}

/**
 * Every reference of a pod spec to a ConfigMap or Secret that a copy can replace: volumes
 * (configMap, secret), projected volume sources, envFrom and env[].valueFrom of every
 * container list. imagePullSecrets are not among them (the kubelet reads them at pull time
 * only, and a dockerconfigjson Secret is not configuration). Optional references are included.
 */
export function configReferences(podSpec: Obj): ConfigReference[] {
  const out: ConfigReference[] = [];
  const add = (kind: ConfigKind, holder: Obj | undefined, key: 'name' | 'secretName', field: string) => {
    if (holder && typeof holder[key] === 'string' && holder[key]) out.push({ kind, holder, key, field });
  };
  list(podSpec.volumes).forEach((v, i) => {
    add('ConfigMap', obj(v.configMap), 'name', `volumes[${i}].configMap`);
    add('Secret', obj(v.secret), 'secretName', `volumes[${i}].secret`);
    list(obj(v.projected)?.sources).forEach((s, j) => {
      add('ConfigMap', obj(s.configMap), 'name', `volumes[${i}].projected.sources[${j}].configMap`);
      add('Secret', obj(s.secret), 'name', `volumes[${i}].projected.sources[${j}].secret`);
    });
  });
  for (const containers of ['initContainers', 'containers', 'ephemeralContainers']) {
    for (const c of list(podSpec[containers])) {
      const at = `${containers}[${typeof c.name === 'string' ? c.name : '?'}]`;
      list(c.envFrom).forEach((e, i) => {
        add('ConfigMap', obj(e.configMapRef), 'name', `${at}.envFrom[${i}]`);
        add('Secret', obj(e.secretRef), 'name', `${at}.envFrom[${i}]`);
      });
      for (const e of list(c.env)) {
        const from = obj(e.valueFrom);
        const env = `${at}.env[${typeof e.name === 'string' ? e.name : '?'}]`;
        add('ConfigMap', obj(from?.configMapKeyRef), 'name', env);
        add('Secret', obj(from?.secretKeyRef), 'name', env);
      }
    }
  }
  return out;
}

/** The content a copy is named after: what the pods read, nothing of the metadata. */
function contentOf(o: Obj): Obj {
  const content: Obj = {};
  for (const key of ['type', 'data', 'binaryData', 'stringData']) if (o[key] !== undefined) content[key] = o[key];
  return content;
}

export function contentDigest(o: Obj): string {
  return digestOf(contentOf(o));
}

/** `<name>-<first 10 hex digits of the content digest>`, the name shortened to keep it within 253 characters. */
export function copyNameOf(name: string, digest: string): string {
  const short = digest.replace(/^sha256:/, '').slice(0, SHORT_DIGEST);
  const room = MAX_NAME - SHORT_DIGEST - 1;
  const base = name.length > room ? name.slice(0, room).replace(/[-.]+$/, '') : name;
  return `${base}-${short}`;
}

/** The copy label's value: the original's name, or its first 63 characters (ending in a letter or digit). */
export function copyLabelValue(name: string): string {
  return name.length <= MAX_LABEL_VALUE ? name : name.slice(0, MAX_LABEL_VALUE).replace(/[^a-z0-9]+$/, '');
}

/** Secrets that are not configuration a pod reads as such: a ServiceAccount token is issued by the cluster for its name. */
function copyable(o: DesiredObject): boolean {
  return !(o.kind === 'Secret' && o.manifest.type === 'kubernetes.io/service-account-token');
}

/** The immutable copy of a ConfigMap or Secret of the source. */
export function copyOf(o: DesiredObject): { copy: DesiredObject; entry: ConfigEntry } {
  const digest = contentDigest(o.manifest);
  const copyName = copyNameOf(o.name, digest);
  const namespace = o.namespace!;
  const manifest: JsonObject = {
    apiVersion: 'v1',
    kind: o.kind,
    metadata: {
      name: copyName,
      namespace,
      labels: { [CONFIG_COPY_LABEL]: copyLabelValue(o.name) },
      annotations: { [CONFIG_COPY_ANNOTATION]: o.name },
    },
    immutable: true,
    ...contentOf(o.manifest),
  };
  const kind = o.kind as ConfigKind;
  const entry: ConfigEntry = { kind, namespace, name: o.name, copyName, digest };
  if (kind === 'ConfigMap') {
    if (o.manifest.data) entry.data = o.manifest.data as Record<string, string>;
    if (o.manifest.binaryData) entry.binaryData = o.manifest.binaryData as Record<string, string>;
  }
  return {
    copy: { ...o, id: `${o.kind} ${namespace}/${copyName}`, name: copyName, defaultedNamespace: undefined, manifest, digest: digestOf(manifest) },
    entry,
  };
}

/** The copy as it is recreated from a snapshot's entry (a ConfigMap: its data is there; a Secret's never is). */
export function copyFromEntry(e: ConfigEntry): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: e.copyName,
      namespace: e.namespace,
      labels: { [CONFIG_COPY_LABEL]: copyLabelValue(e.name) },
      annotations: { [CONFIG_COPY_ANNOTATION]: e.name },
    },
    immutable: true,
    ...(e.data ? { data: e.data } : {}),
    ...(e.binaryData ? { binaryData: e.binaryData } : {}),
  };
}

export interface Versioned {
  /** The DaemonSets, each referencing the copies of its configuration, with `config` listing them. */
  desired: DesiredDaemonSet[];
  /** One copy per ConfigMap or Secret that some DaemonSet references, to apply with the other objects. */
  copies: DesiredObject[];
}

/**
 * Points each DaemonSet's template at copies of the ConfigMaps and Secrets of the source it
 * references, and lists the copies to apply. A reference to an object not in the source is
 * left as it is (nothing to copy from).
 */
export function withConfigCopies(desired: DesiredDaemonSet[], objects: DesiredObject[]): Versioned {
  const copies = new Map<string, { copy: DesiredObject; entry: ConfigEntry }>();
  const out = desired.map((d) => {
    const manifest = structuredClone(d.manifest) as DaemonSetManifest;
    const refs = configReferences(manifest.spec.template.spec as unknown as Obj);
    const entries = new Map<string, ConfigEntry>();
    for (const ref of refs) {
      const name = ref.holder[ref.key] as string;
      const o = objects.find((x) => x.group === '' && x.kind === ref.kind && x.name === name && x.namespace === d.namespace);
      if (!o || !copyable(o)) continue;
      const id = `${o.kind}/${o.namespace}/${o.name}`;
      const made = copies.get(id) ?? copyOf(o);
      copies.set(id, made);
      entries.set(id, made.entry);
      ref.holder[ref.key] = made.entry.copyName;
    }
    if (entries.size === 0) return d;
    const config = [...entries.values()].sort((a, b) => (`${a.kind}/${a.name}` < `${b.kind}/${b.name}` ? -1 : 1));
    return { ...d, manifest, digest: digestOf(manifest), config };
  });
  return { desired: out, copies: [...copies.values()].map((c) => c.copy) };
}

/** The copies a template references, by `Kind/name` (what a running revision needs). */
export function copiesReferenced(podSpec: Obj): Set<string> {
  return new Set(configReferences(podSpec).map((r) => `${r.kind}/${r.holder[r.key] as string}`));
}

/**
 * Which revisions' copies are kept (docs/bundles.md): the `kept` latest revisions of the
 * DaemonSet, and every revision since the last one that rolled out completely (older pods
 * may still run until then). Revisions are numbered from 1; undefined lastHealthy: none ever
 * completed, so every revision is kept.
 */
export function revisionsKept(current: number, lastHealthy: number | undefined, kept: number): { from: number; to: number } {
  const byWindow = Math.max(1, current - kept + 1);
  const byRollout = lastHealthy === undefined ? 1 : Math.min(lastHealthy, current);
  return { from: Math.max(1, Math.min(byWindow, byRollout)), to: current };
}

/**
 * The copies to delete: those in the cluster that nothing keeps (`Kind/name` per namespace in
 * `needed`). A namespace absent from `needed` could not be judged (a record unreadable): nothing
 * in it is deleted.
 */
export function copiesToPrune<C extends { kind: string; namespace: string; name: string }>(live: C[], needed: Map<string, Set<string>>): C[] {
  return live.filter((c) => {
    const keep = needed.get(c.namespace);
    return keep !== undefined && !keep.has(`${c.kind}/${c.name}`);
  });
}
