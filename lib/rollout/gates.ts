/**
 * PURE: gates that judge a managed rollout's canary and waves by what the agent does, not only
 * by Ready. Declared in one annotation, `daemonset-gitops.io/gates`, holding a small YAML
 * document (docs/gates.md):
 *
 *   restarts: 1                      updated pods on gated nodes may restart at most once
 *   metrics:
 *   - name: dropped-records
 *     prometheus:
 *       address: http://prometheus.monitoring:9090
 *       query: max by (node) (agent_dropped_ratio{node=~"{nodes}"})
 *     interval: 10s                   one measurement per interval, never per pod event
 *     count: 3                        measurements the canary, and then each wave, needs before it passes
 *     successCondition: result < 0.01
 *     failureLimit: 0                 failed measurements tolerated
 *     inconclusiveLimit: 1            inconclusive measurements tolerated before the rollout pauses
 *     noData: pause                   fail | pause | ignore (default pause)
 *     timeout: 5s                     a backend slower than this is an inconclusive measurement (default 10s or the interval)
 *     baseline: true                  also measure the nodes not yet updated; conditions may use `baseline`
 *
 * Nothing here does I/O or reads the clock: samples come in, measurements and verdicts go out.
 */
import { parse as parseYaml } from 'yaml';
import { parseDuration } from './duration';

export const GATE_NO_DATA_POLICIES = ['fail', 'pause', 'ignore'] as const;
export type NoDataPolicy = (typeof GATE_NO_DATA_POLICIES)[number];

export type ComparisonOp = '<' | '<=' | '>' | '>=' | '==' | '!=';
/** `result <op> <number>`, or `result <op> baseline [* | + | - <number>]`. */
export interface Condition {
  text: string;
  op: ComparisonOp;
  /** Compared with a constant, or with the baseline transformed by `factor` then `offset`. */
  rhs: { constant: number } | { baseline: true; factor: number; offset: number };
}

export interface PrometheusQuery { address: string; query: string }
export interface CloudWatchQuery {
  namespace: string;
  metricName: string;
  /** Dimension name -> value; `{node}` in a value makes one metric per gated node. */
  dimensions: Record<string, string>;
  stat: string;
  periodSeconds: number;
  /** An endpoint other than the region's (an emulator); the region comes from AWS_REGION unless given. */
  endpoint?: string;
  region?: string;
}

export interface MetricGate {
  name: string;
  provider: 'prometheus' | 'cloudwatch';
  prometheus?: PrometheusQuery;
  cloudwatch?: CloudWatchQuery;
  intervalSeconds: number;
  count: number;
  successCondition?: Condition;
  failureCondition?: Condition;
  failureLimit: number;
  inconclusiveLimit: number;
  noData: NoDataPolicy;
  timeoutSeconds: number;
  baseline: boolean;
}

export interface GateSpec {
  /** Most restarts an updated pod on a gated node may make; undefined: no restarts gate. */
  restarts?: number;
  metrics: MetricGate[];
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

const NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const CONDITION = /^\s*result\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$/;
const NUMBER = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;
const BASELINE = /^baseline(?:\s*([*+-])\s*(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?))?$/;

export function parseCondition(text: string): Parsed<Condition> {
  const m = CONDITION.exec(text);
  const fail = (): Parsed<Condition> => ({ ok: false, message: `"${text}" is not a condition: write "result < 5", "result >= 0.99" or, with baseline: true, "result <= baseline * 1.5" (operators < <= > >= == !=; baseline may be followed by * + or - and a number)` });
  if (!m) return fail();
  const op = m[1] as ComparisonOp;
  const rhs = m[2];
  if (NUMBER.test(rhs)) return { ok: true, value: { text: text.trim(), op, rhs: { constant: Number(rhs) } } };
  const b = BASELINE.exec(rhs);
  if (!b) return fail();
  const n = b[2] === undefined ? undefined : Number(b[2]);
  const factor = b[1] === '*' ? n! : 1;
  const offset = b[1] === '+' ? n! : b[1] === '-' ? -n! : 0;
  return { ok: true, value: { text: text.trim(), op, rhs: { baseline: true, factor, offset } } };
}

function usesBaseline(c: Condition | undefined): boolean {
  return c !== undefined && 'baseline' in c.rhs;
}

function compare(value: number, op: ComparisonOp, rhs: number): boolean {
  switch (op) {
    case '<': return value < rhs;
    case '<=': return value <= rhs;
    case '>': return value > rhs;
    case '>=': return value >= rhs;
    case '==': return value === rhs;
    case '!=': return value !== rhs;
  }
}

/** Whether `value` meets the condition, given the baseline (required when the condition uses it). */
export function holds(c: Condition, value: number, baseline: number | undefined): boolean {
  const rhs = 'constant' in c.rhs ? c.rhs.constant : (baseline ?? Number.NaN) * c.rhs.factor + c.rhs.offset;
  return compare(value, c.op, rhs);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function wholeNumber(v: unknown, min: number): number | undefined {
  const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) && n >= min ? n : undefined;
}

function duration(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  return typeof v === 'string' ? parseDuration(v) : undefined;
}

const METRIC_KEYS = new Set(['name', 'prometheus', 'cloudwatch', 'interval', 'count', 'successCondition', 'failureCondition', 'failureLimit', 'inconclusiveLimit', 'noData', 'timeout', 'baseline']);

function parseMetric(raw: unknown, index: number): Parsed<MetricGate> {
  const where = `metrics[${index}]`;
  const fail = (message: string): Parsed<MetricGate> => ({ ok: false, message: `${where}${isRecord(raw) && typeof raw.name === 'string' ? ` (${raw.name})` : ''}: ${message}` });
  if (!isRecord(raw)) return fail('must be a mapping with name, prometheus or cloudwatch, interval, count and a condition');
  const unknown = Object.keys(raw).filter((k) => !METRIC_KEYS.has(k));
  if (unknown.length) return fail(`unknown ${unknown.length === 1 ? 'key' : 'keys'} ${unknown.join(', ')}: the keys are ${[...METRIC_KEYS].join(', ')}`);
  const name = raw.name;
  if (typeof name !== 'string' || !NAME.test(name)) return fail('name must be a short lower-case name such as "dropped-records" (letters, digits and -)');
  if ((raw.prometheus === undefined) === (raw.cloudwatch === undefined)) return fail('give exactly one of prometheus: {address, query} or cloudwatch: {namespace, metricName, dimensions, stat, period}');
  const gate: MetricGate = {
    name,
    provider: raw.prometheus !== undefined ? 'prometheus' : 'cloudwatch',
    intervalSeconds: 0,
    count: 0,
    failureLimit: 0,
    inconclusiveLimit: 0,
    noData: 'pause',
    timeoutSeconds: 10,
    baseline: false,
  };
  if (raw.prometheus !== undefined) {
    const p = raw.prometheus;
    if (!isRecord(p) || typeof p.address !== 'string' || !/^https?:\/\/[^\s]+$/.test(p.address)) return fail('prometheus.address must be a URL such as http://prometheus.monitoring:9090');
    if (typeof p.query !== 'string' || p.query.trim() === '') return fail('prometheus.query must be a PromQL expression, e.g. max by (node) (agent_dropped_ratio{node=~"{nodes}"})');
    gate.prometheus = { address: p.address.replace(/\/+$/, ''), query: p.query };
  } else {
    const c = raw.cloudwatch;
    if (!isRecord(c)) return fail('cloudwatch must be a mapping with namespace, metricName, dimensions, stat and period');
    if (typeof c.namespace !== 'string' || !c.namespace) return fail('cloudwatch.namespace must name the metric namespace, e.g. "NodeAgents"');
    if (typeof c.metricName !== 'string' || !c.metricName) return fail('cloudwatch.metricName must name the metric, e.g. "DroppedRecords"');
    const dims = c.dimensions ?? {};
    if (!isRecord(dims) || Object.values(dims).some((v) => typeof v !== 'string')) return fail('cloudwatch.dimensions must map dimension names to values, e.g. {Node: "{node}"}');
    const stat = c.stat ?? 'Average';
    if (typeof stat !== 'string' || !/^(Average|Sum|Minimum|Maximum|SampleCount|p\d{1,2}(\.\d+)?)$/.test(stat)) return fail(`cloudwatch.stat "${String(stat)}" must be Average, Sum, Minimum, Maximum, SampleCount or a percentile such as p99`);
    const period = duration(c.period ?? 60);
    if (period === undefined || period < 1) return fail('cloudwatch.period must be a duration such as "60s"');
    if (c.endpoint !== undefined && (typeof c.endpoint !== 'string' || !/^https?:\/\//.test(c.endpoint))) return fail('cloudwatch.endpoint must be a URL such as http://127.0.0.1:5000');
    if (c.region !== undefined && typeof c.region !== 'string') return fail('cloudwatch.region must be a region name such as eu-west-1');
    gate.cloudwatch = {
      namespace: c.namespace, metricName: c.metricName, dimensions: dims as Record<string, string>, stat, periodSeconds: period,
      ...(typeof c.endpoint === 'string' ? { endpoint: c.endpoint } : {}),
      ...(typeof c.region === 'string' ? { region: c.region } : {}),
    };
  }
  const interval = duration(raw.interval);
  if (interval === undefined) return fail(`interval "${String(raw.interval)}" must be a duration such as "10s" or "1m"`);
  gate.intervalSeconds = interval;
  const count = wholeNumber(raw.count ?? 1, 1);
  if (count === undefined) return fail(`count "${String(raw.count)}" must be a whole number of measurements, at least 1`);
  gate.count = count;
  for (const key of ['successCondition', 'failureCondition'] as const) {
    if (raw[key] === undefined) continue;
    if (typeof raw[key] !== 'string') return fail(`${key} must be a string such as "result < 5"`);
    const c = parseCondition(raw[key]);
    if (!c.ok) return fail(`${key}: ${c.message}`);
    gate[key] = c.value;
  }
  if (!gate.successCondition && !gate.failureCondition) return fail('give a successCondition (e.g. "result < 5"), a failureCondition, or both');
  for (const key of ['failureLimit', 'inconclusiveLimit'] as const) {
    const n = wholeNumber(raw[key] ?? 0, 0);
    if (n === undefined) return fail(`${key} "${String(raw[key])}" must be a whole number, 0 or more`);
    gate[key] = n;
  }
  const noData = raw.noData ?? 'pause';
  if (!GATE_NO_DATA_POLICIES.includes(noData as NoDataPolicy)) return fail(`noData "${String(noData)}" must be fail, pause or ignore`);
  gate.noData = noData as NoDataPolicy;
  // Default: 10 s, or the interval when it is shorter.
  const timeout = duration(raw.timeout ?? Math.min(10, interval));
  if (timeout === undefined) return fail(`timeout "${String(raw.timeout)}" must be a duration such as "5s"`);
  if (timeout > interval) return fail(`timeout ${timeout}s is longer than the interval ${interval}s: a measurement must end before the next one is due`);
  gate.timeoutSeconds = timeout;
  if (raw.baseline !== undefined && typeof raw.baseline !== 'boolean') return fail('baseline must be true or false');
  gate.baseline = raw.baseline === true;
  if (!gate.baseline && (usesBaseline(gate.successCondition) || usesBaseline(gate.failureCondition))) {
    return fail('a condition uses baseline but baseline is not enabled: add "baseline: true" so the nodes not yet updated are measured too');
  }
  if (gate.baseline && !usesBaseline(gate.successCondition) && !usesBaseline(gate.failureCondition)) {
    return fail('baseline: true but no condition uses it: compare with it, e.g. "result <= baseline * 1.5"');
  }
  return { ok: true, value: gate };
}

/** Parses the `daemonset-gitops.io/gates` annotation; every message says what to write instead. */
export function parseGates(text: string): Parsed<GateSpec> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    return { ok: false, message: `is not YAML: ${(err as Error).message.split('\n')[0]}` };
  }
  if (!isRecord(doc)) return { ok: false, message: 'must be a YAML mapping with restarts and/or metrics, e.g. "restarts: 1"' };
  const unknown = Object.keys(doc).filter((k) => k !== 'restarts' && k !== 'metrics');
  if (unknown.length) return { ok: false, message: `unknown ${unknown.length === 1 ? 'key' : 'keys'} ${unknown.join(', ')}: the keys are restarts and metrics` };
  const spec: GateSpec = { metrics: [] };
  if (doc.restarts !== undefined) {
    const n = wholeNumber(doc.restarts, 0);
    if (n === undefined) return { ok: false, message: `restarts "${String(doc.restarts)}" must be a whole number, 0 or more (the most restarts an updated pod may make)` };
    spec.restarts = n;
  }
  if (doc.metrics !== undefined) {
    if (!Array.isArray(doc.metrics)) return { ok: false, message: 'metrics must be a list of gates' };
    for (const [i, raw] of doc.metrics.entries()) {
      const m = parseMetric(raw, i);
      if (!m.ok) return m;
      if (spec.metrics.some((g) => g.name === m.value.name)) return { ok: false, message: `metrics[${i}]: the name ${m.value.name} is used twice: give each gate its own name` };
      spec.metrics.push(m.value);
    }
  }
  if (spec.restarts === undefined && spec.metrics.length === 0) return { ok: false, message: 'declares no gate: give restarts, metrics, or remove the annotation' };
  return { ok: true, value: spec };
}

// ---------------------------------------------------------------------------------------------
// Measurements and verdicts

/** What a backend returned for one query: one value per series (per node, when the query keeps the node), or an error. */
export interface Sample {
  values: number[];
  /** The same query over the nodes not yet updated (gates with baseline: true). */
  baseline?: number[];
  /** The backend could not answer within the timeout, or answered with an error. */
  error?: string;
}

export type MeasurementOutcome = 'success' | 'failure' | 'inconclusive';

/** One measurement as recorded in the rollout's record and shown by status and in Events. */
export interface Measurement {
  gate: string;
  /**
   * `canary`: measured on the canary nodes during its hold; `waves`: after it, on the nodes of
   * the wave numbered `wave` during that wave's hold (or, without `wave`, on every updated node
   * of a rollout whose waves are not held: a rollback's).
   */
  round: 'canary' | 'waves';
  /** The wave (its decision number, as the rollout's message counts waves) this measurement judged. */
  wave?: number;
  at: string;
  nodes: string[];
  /** The worst value measured (the one furthest from meeting the success condition), absent without data. */
  value?: number;
  baseline?: number;
  condition: string;
  outcome: MeasurementOutcome;
  /** no-data, backend error, or neither condition decided. */
  note?: string;
  /** A resume acknowledged this inconclusive measurement: it no longer counts against inconclusiveLimit. */
  acknowledged?: boolean;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function conditionText(gate: MetricGate): string {
  return [gate.successCondition && `success: ${gate.successCondition.text}`, gate.failureCondition && `failure: ${gate.failureCondition.text}`].filter(Boolean).join('; ');
}

/**
 * Judges one sample, as Argo Rollouts judges a measurement: a failureCondition met by any value
 * fails it; a successCondition met by every value passes it; with only a successCondition, a
 * value that misses it fails it; with both and neither decided, it is inconclusive. Every
 * series must pass, because each is a node (or a group of them) the update reached.
 *
 * Assumptions / invariants:
 * - No data is never a pass by accident: it follows the gate's noData policy (fail, pause =
 *   inconclusive, ignore = success, marked as such). A baseline without data is no data too.
 * - A backend that errs or times out gives an inconclusive measurement, whatever the policy:
 *   a gate whose backend is down pauses the rollout once inconclusiveLimit is used up.
 * - A value that is not a number (NaN from a division by zero) cannot pass a condition.
 */
export function judgeSample(gate: MetricGate, sample: Sample, at: string, nodes: string[], round: Measurement['round'], wave?: number): Measurement {
  const m = judge(gate, sample, at, nodes, round, wave);
  // A record holds JSON, which has no NaN: the value is left out and the note says why.
  if (m.value !== undefined && Number.isNaN(m.value)) {
    const { value: _nan, ...rest } = m;
    return { ...rest, note: 'the value is not a number (NaN)' };
  }
  return m;
}

function judge(gate: MetricGate, sample: Sample, at: string, nodes: string[], round: Measurement['round'], wave: number | undefined): Measurement {
  const base = { gate: gate.name, round, ...(wave !== undefined ? { wave } : {}), at, nodes: [...nodes], condition: conditionText(gate) };
  if (sample.error !== undefined) return { ...base, outcome: 'inconclusive', note: `${gate.provider} did not answer: ${sample.error}` };
  const baselineValues = gate.baseline ? sample.baseline ?? [] : [];
  const missing = sample.values.length === 0 ? 'no data for the updated nodes' : gate.baseline && baselineValues.length === 0 ? 'no data for the baseline (nodes not yet updated)' : undefined;
  if (missing) {
    const outcome: MeasurementOutcome = gate.noData === 'fail' ? 'failure' : gate.noData === 'ignore' ? 'success' : 'inconclusive';
    return { ...base, outcome, note: `${missing} (noData: ${gate.noData})` };
  }
  const baseline = gate.baseline ? mean(baselineValues) : undefined;
  const withBaseline = baseline === undefined ? {} : { baseline };
  const failing = gate.failureCondition ? sample.values.filter((v) => Number.isNaN(v) || holds(gate.failureCondition!, v, baseline)) : [];
  if (failing.length > 0) return { ...base, ...withBaseline, value: worst(failing, gate), outcome: 'failure' };
  if (gate.successCondition) {
    const missed = sample.values.filter((v) => Number.isNaN(v) || !holds(gate.successCondition!, v, baseline));
    if (missed.length === 0) return { ...base, ...withBaseline, value: worst(sample.values, gate), outcome: 'success' };
    if (!gate.failureCondition) return { ...base, ...withBaseline, value: worst(missed, gate), outcome: 'failure' };
    return { ...base, ...withBaseline, value: worst(missed, gate), outcome: 'inconclusive', note: 'neither the success nor the failure condition holds' };
  }
  return { ...base, ...withBaseline, value: worst(sample.values, gate), outcome: 'success' };
}

/** The value to show: NaN if any, else the one furthest in the direction the conditions warn of. */
function worst(values: readonly number[], gate: MetricGate): number {
  if (values.some((v) => Number.isNaN(v))) return Number.NaN;
  const c = gate.failureCondition ?? gate.successCondition!;
  const highIsBad = gate.failureCondition ? c.op === '>' || c.op === '>=' : c.op === '<' || c.op === '<=';
  return highIsBad ? Math.max(...values) : Math.min(...values);
}

export type GateVerdict =
  | { kind: 'passed'; reason: string }
  | { kind: 'failed'; reason: string }
  | { kind: 'inconclusive'; reason: string }
  | { kind: 'running'; reason: string; nextAt: number };

function describe(m: Measurement): string {
  const value = m.value === undefined ? 'no value' : `value ${formatValue(m.value)}${m.baseline !== undefined ? ` (baseline ${formatValue(m.baseline)})` : ''}`;
  return `${value}, ${m.condition}: ${m.outcome}${m.note ? ` (${m.note})` : ''}`;
}

export function formatValue(v: number): string {
  return Number.isNaN(v) ? 'NaN' : Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
}

/** One line for a measurement, as Events and logs show it. */
export function describeMeasurement(m: Measurement): string {
  return `gate ${m.gate} (${m.wave !== undefined ? `wave ${m.wave}` : m.round}, ${m.nodes.length === 1 ? 'node' : 'nodes'} ${m.nodes.join(',')}): ${describe(m)}`;
}

/** Which measurements a verdict is over: a round, and within the waves round one held wave (or none: the unheld waves). */
export interface GateScope { round: Measurement['round']; wave?: number }

function inScope(m: Measurement, scope: GateScope): boolean {
  return m.round === scope.round && (scope.round === 'canary' || m.wave === scope.wave);
}

/** A round that passes after `count` measurements: the canary's, and each held wave's. */
function passes(scope: GateScope): boolean {
  return scope.round === 'canary' || scope.wave !== undefined;
}

function asScope(round: Measurement['round'] | GateScope): GateScope {
  return typeof round === 'string' ? { round } : round;
}

/**
 * The verdict of one metric gate over its measurements of one round, or of one held wave (in time order).
 *
 * Assumptions / invariants:
 * - Failure wins: more failed measurements than failureLimit fail the gate, whatever else.
 * - More inconclusive measurements (not acknowledged by a resume) than inconclusiveLimit make
 *   the gate inconclusive: the rollout pauses and says why, as Argo Rollouts does.
 * - The canary round, and each held wave, passes after `count` measurements; the waves round
 *   of a rollout whose waves are not held never passes (it runs while the rollout does) and
 *   only fails or pauses it. A wave's verdict is over its own measurements only: each wave is
 *   judged afresh, as the canary is.
 * - The next measurement is due one interval after the last one (at once when there is none):
 *   queries run on the gate's interval, never per pod event.
 */
export function gateVerdict(gate: MetricGate, measurements: readonly Measurement[], round: Measurement['round'] | GateScope, nowMs: number): GateVerdict {
  const scope = asScope(round);
  const mine = measurements.filter((m) => m.gate === gate.name && inScope(m, scope));
  const failures = mine.filter((m) => m.outcome === 'failure');
  const inconclusive = mine.filter((m) => m.outcome === 'inconclusive' && !m.acknowledged);
  const last = mine[mine.length - 1];
  if (failures.length > gate.failureLimit) {
    const f = failures[failures.length - 1];
    return { kind: 'failed', reason: `gate ${gate.name} failed: ${failures.length} failed ${failures.length === 1 ? 'measurement' : 'measurements'}, more than failureLimit ${gate.failureLimit}; last on ${f.nodes.join(',')}: ${describe(f)}` };
  }
  if (inconclusive.length > gate.inconclusiveLimit) {
    const i = inconclusive[inconclusive.length - 1];
    return { kind: 'inconclusive', reason: `gate ${gate.name} inconclusive: ${inconclusive.length} inconclusive ${inconclusive.length === 1 ? 'measurement' : 'measurements'}, more than inconclusiveLimit ${gate.inconclusiveLimit}; last: ${describe(i)}` };
  }
  if (passes(scope) && mine.filter((m) => m.outcome !== 'inconclusive').length >= gate.count) {
    return { kind: 'passed', reason: `gate ${gate.name} passed: ${gate.count} ${gate.count === 1 ? 'measurement' : 'measurements'}${failures.length ? `, ${failures.length} failed within failureLimit ${gate.failureLimit}` : ''}` };
  }
  const nextAt = last ? Date.parse(last.at) + gate.intervalSeconds * 1000 : nowMs;
  return { kind: 'running', reason: `gate ${gate.name}: ${mine.length} of ${gate.count} ${gate.count === 1 ? 'measurement' : 'measurements'}${last ? `; last: ${describe(last)}` : ''}`, nextAt };
}

/** The updated pods on gated nodes, as the restarts gate sees them. */
export interface RestartObservation { pod: string; node: string; restarts: number }

/** Pods that restarted more often than the gate allows (`max`), worst first. */
export function restartsOver(max: number, pods: readonly RestartObservation[]): RestartObservation[] {
  return pods.filter((p) => p.restarts > max).sort((a, b) => b.restarts - a.restarts || (a.pod < b.pod ? -1 : 1));
}

/** What the gates say about the current decision, as `nextWave` takes it. */
export interface GateOutcome {
  /** A gate failed: the rollout stops (stalled) and, when asked, is rolled back. */
  failed?: { reason: string; nodes: string[] };
  /** A gate is inconclusive: the rollout pauses until resumed. */
  inconclusive?: string;
  /** The canary's (or the held wave's) gates are still measuring: its hold lasts until they pass, and the driver looks again at `nextAt`. */
  pending?: { reason: string; nextAt: number };
}

/**
 * Combines the restarts gate and every metric gate of a round into the one outcome a wave
 * decision needs. Failure beats inconclusive beats pending.
 */
export function combineGates(spec: GateSpec | undefined, round: Measurement['round'] | GateScope, restarts: readonly RestartObservation[], measurements: readonly Measurement[], nowMs: number): GateOutcome {
  if (!spec) return {};
  const scope = asScope(round);
  const over = spec.restarts === undefined ? [] : restartsOver(spec.restarts, restarts);
  if (over.length > 0) {
    const list = over.slice(0, 5).map((p) => `${p.pod} on ${p.node}: ${p.restarts}`).join(', ');
    return { failed: { reason: `gate restarts failed: ${over.length === 1 ? 'an updated pod' : `${over.length} updated pods`} restarted more than ${spec.restarts} ${spec.restarts === 1 ? 'time' : 'times'} (${list})`, nodes: [...new Set(over.map((p) => p.node))].sort() } };
  }
  const verdicts = spec.metrics.map((g) => ({ g, v: gateVerdict(g, measurements, scope, nowMs) }));
  const failed = verdicts.find((x) => x.v.kind === 'failed');
  if (failed) {
    const last = measurements.filter((m) => m.gate === failed.g.name && inScope(m, scope) && m.outcome === 'failure').pop();
    return { failed: { reason: failed.v.reason, nodes: last?.nodes ?? [] } };
  }
  const inconclusive = verdicts.find((x) => x.v.kind === 'inconclusive');
  if (inconclusive) return { inconclusive: inconclusive.v.reason };
  const running = verdicts.filter((x) => x.v.kind === 'running');
  if (passes(scope) && running.length > 0) {
    const nextAt = Math.min(...running.map((x) => (x.v as { nextAt: number }).nextAt));
    return { pending: { reason: running.map((x) => x.v.reason).join('; '), nextAt } };
  }
  return {};
}

/** A metric gate's verdict as a rollout's record keeps it: over which round (and held wave), and why. */
export interface RecordedVerdict { gate: string; round: Measurement['round']; wave?: number; verdict: GateVerdict['kind']; reason: string }

/** Each metric gate's verdict over the measurements of one round (or held wave), in the order the gates are declared. */
export function gateVerdicts(spec: GateSpec | undefined, measurements: readonly Measurement[], round: Measurement['round'] | GateScope, nowMs: number): RecordedVerdict[] {
  const scope = asScope(round);
  return (spec?.metrics ?? []).map((g) => {
    const v = gateVerdict(g, measurements, scope, nowMs);
    return { gate: g.name, round: scope.round, ...(scope.wave !== undefined ? { wave: scope.wave } : {}), verdict: v.kind, reason: v.reason };
  });
}

/** The metric gates whose next measurement of this round is due now. */
export function dueGates(spec: GateSpec | undefined, measurements: readonly Measurement[], round: Measurement['round'] | GateScope, nowMs: number): MetricGate[] {
  return (spec?.metrics ?? []).filter((g) => {
    const v = gateVerdict(g, measurements, round, nowMs);
    return v.kind === 'running' && v.nextAt <= nowMs;
  });
}

/** When the next measurement of any metric gate of this round is due (undefined: none). */
export function nextMeasurementAt(spec: GateSpec | undefined, measurements: readonly Measurement[], round: Measurement['round'] | GateScope, nowMs: number): number | undefined {
  const times = (spec?.metrics ?? []).flatMap((g) => {
    const v = gateVerdict(g, measurements, round, nowMs);
    return v.kind === 'running' ? [v.nextAt] : [];
  });
  return times.length ? Math.min(...times) : undefined;
}

/** Substitutes the gated nodes and the DaemonSet into a query: `{nodes}` is a regex alternation, `{node}` one node, `{daemonset}`, `{namespace}`. */
export function substitute(text: string, vars: { nodes: readonly string[]; daemonSet: string; namespace: string; node?: string }): string {
  const alternation = vars.nodes.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\\\$&')).join('|');
  return text
    .replaceAll('{nodes}', alternation)
    .replaceAll('{node}', vars.node ?? vars.nodes[0] ?? '')
    .replaceAll('{daemonset}', vars.daemonSet)
    .replaceAll('{namespace}', vars.namespace);
}

/** At most this many measurements are kept in a rollout's record (the newest; older ones are counted). */
export const MEASUREMENTS_KEPT = 60;

/**
 * Appends measurements to a record's list, keeping it bounded. The verdict needs every
 * failure and unacknowledged inconclusive of the round: those are kept first, then the newest.
 */
export function appendMeasurements(kept: readonly Measurement[], added: readonly Measurement[]): { measurements: Measurement[]; dropped: number } {
  const all = [...kept, ...added];
  if (all.length <= MEASUREMENTS_KEPT) return { measurements: all, dropped: 0 };
  const important = new Set(all.filter((m) => m.outcome === 'failure' || (m.outcome === 'inconclusive' && !m.acknowledged)));
  const room = Math.max(0, MEASUREMENTS_KEPT - important.size);
  const others = all.filter((m) => !important.has(m));
  const keepOthers = new Set(others.slice(others.length - room));
  const measurements = all.filter((m) => important.has(m) || keepOthers.has(m)).slice(-MEASUREMENTS_KEPT);
  return { measurements, dropped: all.length - measurements.length };
}
