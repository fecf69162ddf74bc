/**
 * A DaemonSet document from Git, validated: its shape, its selector against its template
 * labels, its namespace against policy, the product's reserved labels. The result is a
 * DesiredDaemonSet with a digest, or a list of problems that each say what to fix.
 */
import type { ConfigEntry } from '../bundle/config-copies';
import { createHash } from 'node:crypto';
import * as z from 'zod/mini';
import '../schema';
import { defaultNamespaceOf, namespaceAllowed, Policy } from '../config';
import { MANAGED_BY_LABEL, PREFIX, USER_ANNOTATIONS } from '../labels';
import { canonicalJson, describeSelector, LabelSelector, selectorMatches } from '../k8s-values';
import { checkManagedStrategy, parseRolloutAnnotations } from '../rollout/annotations';
import { hostPortWithSurge } from '../rollout/preflight';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** The parts of a DaemonSet this product reads; everything else passes through untouched. */
export interface DaemonSetManifest {
  apiVersion: 'apps/v1';
  kind: 'DaemonSet';
  metadata: {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  spec: {
    selector: LabelSelector;
    template: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string>; [key: string]: unknown };
      spec: { containers: { name: string; image?: string; [key: string]: unknown }[]; [key: string]: unknown };
    };
    updateStrategy?: {
      type?: 'RollingUpdate' | 'OnDelete';
      rollingUpdate?: { maxUnavailable?: number | string; maxSurge?: number | string };
    };
    minReadySeconds?: number;
    revisionHistoryLimit?: number;
    [key: string]: unknown;
  };
}

export interface SourceLocation {
  /** Path relative to the repository root. */
  file: string;
  /** 1-based index of the document in a multi-document file. */
  document: number;
}

export interface DesiredDaemonSet {
  key: string;
  namespace: string;
  name: string;
  source: SourceLocation;
  manifest: DaemonSetManifest;
  digest: string;
  /** The document had no namespace: it went to DEFAULT_NAMESPACE. */
  defaultedNamespace?: boolean;
  /** The versioned copies of its ConfigMaps and Secrets that its template references (bundle/config-copies.ts). */
  config?: ConfigEntry[];
}

/** `info`: nothing is wrong, but the report says what was assumed (a namespace from DEFAULT_NAMESPACE). */
export type ProblemSeverity = 'error' | 'skipped' | 'info';

export interface ManifestProblem {
  file: string;
  document?: number;
  /** namespace/name when the document names a DaemonSet. */
  key?: string;
  /** Stable code: yaml-syntax, too-large, alias-limit, not-a-daemonset, old-api-version, schema, selector-mismatch, namespace-not-allowed, reserved-key, duplicate, selector-changed, dry-run-rejected, canary-unmatched. */
  code: string;
  severity: ProblemSeverity;
  message: string;
}

export function where(loc: { file: string; document?: number }): string {
  return loc.document === undefined ? loc.file : `${loc.file} (document ${loc.document})`;
}

/** Formats a problem the way people read it: `file (document n): message`. */
export function formatProblem(p: ManifestProblem): string {
  return `${where(p)}: ${p.message}`;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const stringMap = z.record(z.string(), z.string());

const schema = z.looseObject({
  metadata: z.looseObject({
    name: z.string().check(z.minLength(1), z.maxLength(63), z.regex(DNS_SUBDOMAIN, 'must be lower-case letters, digits, "-" and "."')),
    namespace: z.optional(z.string().check(z.maxLength(63), z.regex(DNS_LABEL, 'must be a lower-case DNS label'))),
    labels: z.optional(stringMap),
    annotations: z.optional(stringMap),
  }),
  spec: z.looseObject({
    selector: z.object({
      matchLabels: z.optional(stringMap),
      matchExpressions: z.optional(z.array(z.object({
        key: z.string(),
        operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
        values: z.optional(z.array(z.string())),
      }))),
    }, { error: 'spec.selector is required in apps/v1 (add matchLabels that match the pod template labels)' }),
    template: z.looseObject({
      metadata: z.looseObject({
        labels: z.record(z.string(), z.string(), { error: 'spec.template.metadata.labels is required (the selector must match them)' }),
      }, { error: 'spec.template.metadata.labels is required (the selector must match them)' }),
      spec: z.looseObject({
        containers: z.array(z.looseObject({ name: z.string().check(z.minLength(1)), image: z.optional(z.string()) })).check(z.minLength(1, 'needs at least one container')),
      }),
    }),
    updateStrategy: z.optional(z.looseObject({
      type: z.optional(z.enum(['RollingUpdate', 'OnDelete'])),
      rollingUpdate: z.optional(z.looseObject({
        maxUnavailable: z.optional(z.union([z.int(), z.string()])),
        maxSurge: z.optional(z.union([z.int(), z.string()])),
      })),
    })),
    minReadySeconds: z.optional(z.int().check(z.gte(0))),
  }, { error: 'spec is required' }),
});

function zodMessage(err: z.core.$ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`)
    .join('; ');
}

function describeLabels(labels: Record<string, string>): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',') || '(none)';
}

export function digestOf(manifest: unknown): string {
  return `sha256:${createHash('sha256').update(canonicalJson(manifest)).digest('hex')}`;
}

export type ValidationResult =
  | { ok: true; desired: DesiredDaemonSet }
  | { ok: false; problem: ManifestProblem };

/**
 * What is wrong with a DaemonSet that has the right shape: its selector, its namespace,
 * reserved labels and annotations, its rollout annotations and strategy. Undefined: nothing.
 */
function contentProblem(manifest: DaemonSetManifest, policy: Pick<Policy, 'allowedNamespaces'>): { code: string; message: string } | undefined {
  const namespace = manifest.metadata.namespace!;
  const { selector, template } = manifest.spec;
  if (Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0) {
    return { code: 'schema', message: 'spec.selector is empty: add matchLabels that match spec.template.metadata.labels' };
  }
  if (!selectorMatches(selector, template.metadata.labels)) {
    return { code: 'selector-mismatch', message: `spec.selector does not match spec.template.metadata.labels (${describeSelector(selector)} vs ${describeLabels(template.metadata.labels)})` };
  }
  if (!namespaceAllowed(policy, namespace)) {
    const allowed = policy.allowedNamespaces === '*' ? '*' : policy.allowedNamespaces.join(', ');
    return { code: 'namespace-not-allowed', message: `namespace ${namespace} is not in ALLOWED_NAMESPACES (${allowed}): move the DaemonSet to an allowed namespace or add ${namespace} to ALLOWED_NAMESPACES` };
  }
  for (const [where, map] of [['metadata.labels', manifest.metadata.labels], ['spec.template.metadata.labels', template.metadata.labels]] as const) {
    for (const k of Object.keys(map ?? {})) {
      if (k.startsWith(PREFIX) && k !== MANAGED_BY_LABEL) {
        return { code: 'reserved-key', message: `${where} ${k} uses the reserved prefix ${PREFIX}: remove it; daemonset-gitops sets its own labels` };
      }
    }
  }
  for (const k of Object.keys(manifest.metadata.annotations ?? {})) {
    if (k.startsWith(PREFIX) && !USER_ANNOTATIONS.has(k)) {
      return { code: 'reserved-key', message: `metadata.annotations ${k} is reserved: daemonset-gitops writes it; the annotations a manifest may set are ${[...USER_ANNOTATIONS].join(', ')}` };
    }
  }
  const rollout = parseRolloutAnnotations(manifest.metadata.annotations);
  if (!rollout.ok) return { code: 'rollout-annotation', message: rollout.message };
  if (rollout.value.mode === 'managed') {
    const strategy = manifest.spec.updateStrategy;
    if (strategy?.type === 'OnDelete') {
      return { code: 'rollout-annotation', message: 'a managed rollout drives the update itself: declare updateStrategy RollingUpdate (with maxUnavailable), not OnDelete' };
    }
    const problem = checkManagedStrategy(strategy?.rollingUpdate?.maxUnavailable, strategy?.rollingUpdate?.maxSurge);
    if (problem) return { code: 'rollout-annotation', message: `spec.updateStrategy.rollingUpdate: ${problem}` };
  }
  const hostPort = hostPortWithSurge(template as Parameters<typeof hostPortWithSurge>[0], manifest.spec.updateStrategy);
  if (hostPort) return { code: 'host-port-surge', message: hostPort };
  return undefined;
}

/**
 * Validates one parsed YAML document. `doc` is untrusted: anything may be in it.
 */
export function validateDocument(doc: unknown, loc: SourceLocation, policy: Pick<Policy, 'allowedNamespaces' | 'defaultNamespace'>): ValidationResult {
  const fail = (code: string, message: string, key?: string, severity: ProblemSeverity = 'error'): ValidationResult => ({
    ok: false,
    problem: { file: loc.file, document: loc.document, key, code, severity, message },
  });
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    return fail('schema', 'the document is not a mapping: a Kubernetes object starts with apiVersion, kind and metadata');
  }
  const obj = doc as Record<string, unknown>;
  const kind = typeof obj.kind === 'string' ? obj.kind : undefined;
  const apiVersion = typeof obj.apiVersion === 'string' ? obj.apiVersion : undefined;
  const meta = (obj.metadata && typeof obj.metadata === 'object' ? obj.metadata : {}) as Record<string, unknown>;
  const rawName = typeof meta.name === 'string' ? meta.name : undefined;
  const defaulted = !(typeof meta.namespace === 'string' && meta.namespace);
  const namespace = !defaulted ? (meta.namespace as string) : defaultNamespaceOf(policy);
  const key = rawName ? `${namespace}/${rawName}` : undefined;

  if (!kind || !apiVersion) {
    return fail('schema', 'the document has no apiVersion or kind: a DaemonSet needs apiVersion: apps/v1 and kind: DaemonSet');
  }
  if (kind !== 'DaemonSet') {
    return fail(
      'not-a-daemonset',
      `${kind}${rawName ? ` ${rawName}` : ''} is not applied: daemonset-gitops applies only apps/v1 DaemonSet documents (manage other kinds with another tool, or move this file out of GIT_PATH)`,
      undefined,
      'skipped',
    );
  }
  if (apiVersion !== 'apps/v1') {
    return fail(
      'old-api-version',
      `apiVersion ${apiVersion} is not served for DaemonSets by current Kubernetes: use apiVersion: apps/v1 (it also requires spec.selector)`,
      key,
    );
  }
  const parsed = schema.safeParse(doc);
  if (!parsed.success) return fail('schema', zodMessage(parsed.error), key);

  const manifest = structuredClone(doc) as DaemonSetManifest;
  manifest.metadata.namespace = namespace;
  const problem = contentProblem(manifest, policy);
  if (problem) return fail(problem.code, problem.message, key);
  return {
    ok: true,
    desired: { key: key!, namespace, name: manifest.metadata.name, source: loc, manifest, digest: digestOf(manifest), ...(defaulted ? { defaultedNamespace: true } : {}) },
  };
}

export function imagesOf(manifest: Pick<DaemonSetManifest, 'spec'>): string[] {
  const spec = manifest.spec.template.spec as { containers?: { image?: string }[]; initContainers?: { image?: string }[] };
  return [...(spec.initContainers ?? []), ...(spec.containers ?? [])].map((c) => c.image ?? '(none)');
}
