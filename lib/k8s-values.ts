/**
 * Small pure helpers on Kubernetes-shaped values, shared by every layer (source, plan,
 * rollout, store): canonical JSON, label selectors, and int-or-percent values. Nothing here
 * does I/O or knows about this product's records.
 */

/** JSON with keys sorted at every level, so equal objects give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** Whether a label set satisfies a selector, as the API server decides it. */
export function selectorMatches(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const values = e.values ?? [];
    if (e.operator === 'In' && !(has && values.includes(labels[e.key]))) return false;
    if (e.operator === 'NotIn' && has && values.includes(labels[e.key])) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** Whether a label set carries every label of `required` (a nodeSelector, a selector of matchLabels only). */
export function labelsMatch(required: Record<string, string>, labels: Record<string, string>): boolean {
  return selectorMatches({ matchLabels: required }, labels);
}

/** A label selector in the API's query syntax (`labelSelector=`). */
export function selectorQuery(selector: LabelSelector): string {
  const parts = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector.matchExpressions ?? []) {
    if (e.operator === 'In') parts.push(`${e.key} in (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

/** A selector for a message. */
export function describeSelector(selector: LabelSelector): string {
  const parts = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector.matchExpressions ?? []) parts.push(`${e.key} ${e.operator}${e.values ? ` (${e.values.join(',')})` : ''}`);
  return parts.join(',') || '(empty)';
}

/** An IntOrString such as maxUnavailable: a whole number, or a whole percentage ("25%"); undefined when it is neither. */
export function parseIntOrPercent(value: number | string): { percent: boolean; value: number } | undefined {
  if (typeof value === 'number') return Number.isInteger(value) ? { percent: false, value } : undefined;
  const match = /^(\d+)%$/.exec(value);
  return match ? { percent: true, value: Number(match[1]) } : undefined;
}
