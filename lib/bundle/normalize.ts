/**
 * What an object from Git means, apart from how its YAML was written: the form that is applied,
 * digested and compared. Published manifests carry fields that say nothing (`creationTimestamp:
 * null`, a `status:` stanza, a key with no value); they are dropped, so they never show as a
 * change. Empty maps stay: `emptyDir: {}` means something.
 */
import type { Json, JsonObject } from '../source/manifest';

function withoutNulls(value: Json): Json | undefined {
  if (value === null) return undefined;
  if (Array.isArray(value)) return value.map((v) => withoutNulls(v) ?? null);
  if (typeof value === 'object') {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) {
      const kept = withoutNulls(v);
      if (kept !== undefined) out[k] = kept;
    }
    return out;
  }
  return value;
}

/** The object as applied: no nulls, no status, no creationTimestamp; a cluster-scoped object has no namespace. */
export function normalizeObject(doc: JsonObject, options: { namespace?: string }): JsonObject {
  const out = (withoutNulls(structuredClone(doc)) ?? {}) as JsonObject;
  delete out.status;
  const metadata = { ...((out.metadata ?? {}) as JsonObject) };
  delete metadata.creationTimestamp;
  delete metadata.namespace;
  out.metadata = options.namespace ? { ...metadata, namespace: options.namespace } : metadata;
  return out;
}

const BINARY_SUFFIX: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL_SUFFIX: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/** A Kubernetes quantity's value (`500m`, `0.5`, `1Gi`, `1e3`), or undefined when the text is not one. */
export function quantityValue(text: string): number | undefined {
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1] + (m[2] ?? ''));
  const suffix = m[3] ?? '';
  return n * (BINARY_SUFFIX[suffix] ?? DECIMAL_SUFFIX[suffix]);
}

/** Two scalars the API server treats as the same value: equal, or the same quantity written two ways (`0.5` and `500m`). */
function sameScalar(want: Json, have: unknown): boolean {
  if (want === have) return true;
  if (typeof want === 'string' && typeof have === 'string') {
    const a = quantityValue(want);
    const b = quantityValue(have);
    return a !== undefined && b !== undefined && Math.abs(a - b) <= Math.abs(a) * 1e-12;
  }
  if (typeof want === 'number' && typeof have === 'string') return quantityValue(have) === want;
  return false;
}

/**
 * The first path at which `live` does not hold what `want` says, or undefined when it holds all
 * of it. Fields the API server defaulted are extra in `live` and do not count; list items are
 * compared in order, each the same way.
 */
export function firstDifference(want: Json, live: unknown, path = ''): string | undefined {
  if (Array.isArray(want)) {
    if (!Array.isArray(live) || live.length !== want.length) return path || '.';
    for (let i = 0; i < want.length; i++) {
      const d = firstDifference(want[i], live[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (want && typeof want === 'object') {
    if (!live || typeof live !== 'object' || Array.isArray(live)) return path || '.';
    for (const [k, v] of Object.entries(want)) {
      const d = firstDifference(v, (live as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
      if (d) return d;
    }
    return undefined;
  }
  return sameScalar(want, live) ? undefined : path || '.';
}

/**
 * What the live object must hold for `desired` to be in place: everything but the metadata
 * the API server owns. A Secret's `stringData` is written to `data` (base64) by the server.
 */
export function expectedInLive(desired: JsonObject): JsonObject {
  const out: JsonObject = { ...desired };
  delete out.apiVersion;
  delete out.kind;
  const metadata = (desired.metadata ?? {}) as JsonObject;
  out.metadata = { ...(metadata.labels ? { labels: metadata.labels } : {}), ...(metadata.annotations ? { annotations: metadata.annotations } : {}) };
  if (desired.kind === 'Secret' && desired.stringData && typeof desired.stringData === 'object') {
    const data: JsonObject = { ...((desired.data ?? {}) as JsonObject) };
    for (const [k, v] of Object.entries(desired.stringData as JsonObject)) data[k] = Buffer.from(String(v), 'utf8').toString('base64');
    out.data = data;
    delete out.stringData;
  }
  return out;
}

/**
 * What of `live` stands where `want` has something: the same shape, with the live values (and
 * nothing the API server added elsewhere), so a diff of the two shows only what Git sets.
 */
export function projection(want: Json, live: unknown): Json | undefined {
  if (live === undefined || live === null) return undefined;
  if (Array.isArray(want)) {
    if (!Array.isArray(live)) return live as Json;
    return live.map((l, i) => (i < want.length ? projection(want[i], l) ?? null : (l as Json)));
  }
  if (want && typeof want === 'object') {
    if (typeof live !== 'object' || Array.isArray(live)) return live as Json;
    const out: JsonObject = {};
    for (const k of Object.keys(want)) {
      const p = projection(want[k], (live as Record<string, unknown>)[k]);
      if (p !== undefined) out[k] = p;
    }
    return out;
  }
  return live as Json;
}

/** A Secret's values replaced by a mark that says only whether each changed: a diff of Secrets never shows a value. */
export function redactSecret(o: JsonObject | undefined, other: JsonObject | undefined): JsonObject | undefined {
  if (!o) return o;
  const data = (o.data ?? {}) as JsonObject;
  const otherData = ((other?.data ?? {}) as JsonObject);
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(data)) out[k] = otherData[k] === v ? '(unchanged value)' : '(changed value)';
  return { ...o, data: out };
}
