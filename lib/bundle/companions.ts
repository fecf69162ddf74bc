/**
 * A DaemonSet's companions: the ConfigMaps, Secrets and ServiceAccount its pod template names
 * (volumes, projected volumes, envFrom, env[].valueFrom, imagePullSecrets, serviceAccountName).
 * Applying a DaemonSet whose companion from the same source is refused or invalid would break
 * its pods (the controller cannot create a pod without its ServiceAccount; a pod without its
 * ConfigMap does not start), so that DaemonSet is held, naming the companion.
 */
import type { DesiredDaemonSet, ManifestProblem } from '../source/manifest';
import { where } from '../source/manifest';
import type { RefusedObject } from './objects';

export type CompanionKind = 'ConfigMap' | 'Secret' | 'ServiceAccount';

export interface CompanionRef {
  kind: CompanionKind;
  name: string;
  /** Where the template names it, for messages. */
  field: string;
}

type Obj = Record<string, unknown>;

function asObject(v: unknown): Obj | undefined {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined;
}

function asList(v: unknown): Obj[] {
  return Array.isArray(v) ? v.map(asObject).filter((o): o is Obj => o !== undefined) : [];
}

function named(o: Obj | undefined, key = 'name'): string | undefined {
  const n = o?.[key];
  return typeof n === 'string' && n ? n : undefined;
}

/** The companions a pod template needs (references marked `optional: true` are not needed). */
export function companionsOf(podSpec: Obj): CompanionRef[] {
  const out: CompanionRef[] = [];
  const add = (kind: CompanionKind, name: string | undefined, field: string, ref?: Obj) => {
    if (name && ref?.optional !== true && !out.some((r) => r.kind === kind && r.name === name)) out.push({ kind, name, field });
  };
  add('ServiceAccount', named(podSpec, 'serviceAccountName') ?? named(podSpec, 'serviceAccount'), 'serviceAccountName', {});
  asList(podSpec.imagePullSecrets).forEach((s, i) => add('Secret', named(s), `imagePullSecrets[${i}]`, {}));
  asList(podSpec.volumes).forEach((v, i) => {
    const cm = asObject(v.configMap);
    const secret = asObject(v.secret);
    add('ConfigMap', named(cm), `volumes[${i}].configMap`, cm);
    add('Secret', named(secret, 'secretName'), `volumes[${i}].secret`, secret);
    asList(asObject(v.projected)?.sources).forEach((s, j) => {
      const pcm = asObject(s.configMap);
      const ps = asObject(s.secret);
      add('ConfigMap', named(pcm), `volumes[${i}].projected.sources[${j}].configMap`, pcm);
      add('Secret', named(ps), `volumes[${i}].projected.sources[${j}].secret`, ps);
    });
  });
  for (const list of ['initContainers', 'containers', 'ephemeralContainers']) {
    for (const c of asList(podSpec[list])) {
      const cname = named(c) ?? '?';
      asList(c.envFrom).forEach((e, i) => {
        const cm = asObject(e.configMapRef);
        const s = asObject(e.secretRef);
        add('ConfigMap', named(cm), `${list}[${cname}].envFrom[${i}]`, cm);
        add('Secret', named(s), `${list}[${cname}].envFrom[${i}]`, s);
      });
      for (const e of asList(c.env)) {
        const from = asObject(e.valueFrom);
        const cm = asObject(from?.configMapKeyRef);
        const s = asObject(from?.secretKeyRef);
        add('ConfigMap', named(cm), `${list}[${cname}].env[${named(e) ?? '?'}]`, cm);
        add('Secret', named(s), `${list}[${cname}].env[${named(e) ?? '?'}]`, s);
      }
    }
  }
  return out;
}

/** The companion of this DaemonSet among `refused`, if any: the first its template needs. */
export function refusedCompanion(d: DesiredDaemonSet, refused: RefusedObject[]): { ref: CompanionRef; refused: RefusedObject } | undefined {
  for (const ref of companionsOf(d.manifest.spec.template.spec as Obj)) {
    const r = refused.find((x) => x.kind === ref.kind && x.name === ref.name && (x.namespace ?? d.namespace) === d.namespace);
    if (r) return { ref, refused: r };
  }
  return undefined;
}

/**
 * The DaemonSets that may be applied, and a problem for each one held because a companion from
 * the same source is refused or invalid (it names the companion, where it is, and why).
 */
export function holdDaemonSets(desired: DesiredDaemonSet[], refused: RefusedObject[]): { kept: DesiredDaemonSet[]; problems: ManifestProblem[] } {
  const kept: DesiredDaemonSet[] = [];
  const problems: ManifestProblem[] = [];
  for (const d of desired) {
    const found = refusedCompanion(d, refused);
    if (!found) {
      kept.push(d);
      continue;
    }
    problems.push({
      file: d.source.file,
      document: d.source.document,
      key: d.key,
      code: 'companion-refused',
      severity: 'error',
      message: `held: its ${found.ref.kind} ${d.namespace}/${found.ref.name} (${found.ref.field}) at ${where(found.refused.source)} is not applied, so its pods could not run: ${found.refused.why}`,
    });
  }
  return { kept, problems };
}

/** An object of the source that failed to apply in this pass. */
export interface FailedObject {
  kind: string;
  namespace?: string;
  name: string;
  id: string;
  message: string;
}

/** Why this DaemonSet is held in this pass: a companion of the same source failed to apply. Undefined: it is not. */
export function failedCompanion(d: DesiredDaemonSet, failed: FailedObject[]): string | undefined {
  for (const ref of companionsOf(d.manifest.spec.template.spec as Obj)) {
    const f = failed.find((x) => x.kind === ref.kind && x.name === ref.name && x.namespace === d.namespace);
    if (f) return `held: its ${f.id} (${ref.field}) failed to apply, so its pods could not run: ${f.message}`;
  }
  return undefined;
}
