import { pullVerdict } from '../../lib/rollout/pre-pull';
import { doesNotFit, hostPortWithSurge, parseQuantity, podRequests } from '../../lib/rollout/preflight';
import { parseRolloutAnnotations } from '../../lib/rollout/annotations';
import {
  appendMeasurements, combineGates, dueGates, gateVerdict, judgeSample, Measurement, MEASUREMENTS_KEPT, MetricGate, parseCondition, parseGates, substitute,
} from '../../lib/rollout/gates';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

function gate(yaml: string): MetricGate {
  const parsed = parseGates(yaml);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.value.metrics[0];
}

const PROM = `metrics:
- name: errors
  prometheus: { address: "http://127.0.0.1:9090", query: 'max by (node) (errors{node=~"{nodes}"})' }
  interval: 10s
  count: 3
`;

describe('parseGates', () => {
  it('reads a restarts gate and a Prometheus gate with defaults: noData pause, limits 0, timeout 10s', () => {
    const r = parseGates(`restarts: 2\n${PROM}  successCondition: result < 5\n`);
    expect(r).toEqual({ ok: true, value: { restarts: 2, metrics: [expect.objectContaining({ name: 'errors', provider: 'prometheus', intervalSeconds: 10, count: 3, failureLimit: 0, inconclusiveLimit: 0, noData: 'pause', timeoutSeconds: 10, baseline: false })] } });
  });

  it.each([
    ['restarts: -1', /restarts "-1" must be a whole number/],
    ['restart: 1', /unknown key restart: the keys are restarts and metrics/],
    ['{}', /declares no gate/],
    ['restarts: [', /is not YAML/],
    [`${PROM}`, /errors\): give a successCondition/],
    [`${PROM}  successCondition: errors < 5\n`, /"errors < 5" is not a condition: write "result < 5"/],
    [`${PROM}  successCondition: result < baseline\n`, /uses baseline but baseline is not enabled: add "baseline: true"/],
    [`${PROM}  successCondition: result < 5\n  baseline: true\n`, /baseline: true but no condition uses it/],
    [`${PROM}  successCondition: result < 5\n  noData: skip\n`, /noData "skip" must be fail, pause or ignore/],
    [`${PROM}  successCondition: result < 5\n  timeout: 30s\n`, /timeout 30s is longer than the interval 10s/],
    [`${PROM}  successCondition: result < 5\n  intervall: 5s\n`, /unknown key intervall/],
    ['metrics:\n- name: x\n  interval: 5s\n  successCondition: result < 1\n', /give exactly one of prometheus/],
    [`metrics:\n- name: a\n  cloudwatch: { namespace: N, metricName: M, stat: Median }\n  interval: 5s\n  successCondition: result < 1\n`, /cloudwatch.stat "Median"/],
  ])('refuses %j naming the fix', (text, message) => {
    const r = parseGates(text);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toMatch(message);
  });

  it('is refused through the manifest annotations without managed rollouts, and named', () => {
    const r = parseRolloutAnnotations({ 'daemonset-gitops.io/gates': 'restarts: 1' });
    expect(r).toEqual({ ok: false, message: expect.stringMatching(/^daemonset-gitops.io\/gates needs managed rollouts/) });
    const bad = parseRolloutAnnotations({ 'daemonset-gitops.io/rollout': 'managed', 'daemonset-gitops.io/gates': 'restarts: x' });
    expect(bad).toEqual({ ok: false, message: expect.stringMatching(/^daemonset-gitops.io\/gates: restarts "x"/) });
  });
});

describe('parseCondition', () => {
  it.each([
    ['result < 5', 4.9, undefined, true],
    ['result < 5', 5, undefined, false],
    ['result >= 0.99', 0.99, undefined, true],
    ['result != 0', 0, undefined, false],
    ['result <= baseline * 1.5', 15, 10, true],
    ['result <= baseline * 1.5', 15.1, 10, false],
    ['result < baseline + 3', 12.9, 10, true],
    ['result > baseline - 1', 8.9, 10, false],
  ])('%s with result %d and baseline %p holds: %p', (text, value, baseline, expected) => {
    const c = parseCondition(text);
    if (!c.ok) throw new Error(c.message);
    const g = gate(`${PROM}  successCondition: "${text}"\n${baseline === undefined ? '' : '  baseline: true\n'}`);
    const m = judgeSample(g, { values: [value], baseline: baseline === undefined ? undefined : [baseline] }, at(0), ['n1'], 'canary');
    expect(m.outcome).toBe(expected ? 'success' : 'failure');
  });
});

describe('judgeSample', () => {
  const success = gate(`${PROM}  successCondition: result < 5\n`);
  const both = gate(`${PROM}  successCondition: result < 5\n  failureCondition: result > 10\n`);
  const failureOnly = gate(`${PROM}  failureCondition: result > 10\n`);

  it.each([
    ['every node meets the success condition', success, [1, 4], 'success', 4],
    ['one node misses it (only a success condition): failure, the worst value shown', success, [1, 7, 6], 'failure', 7],
    ['between the two conditions: inconclusive', both, [1, 7], 'inconclusive', 7],
    ['any node meets the failure condition: failure', both, [1, 11], 'failure', 11],
    ['only a failure condition, not met: success', failureOnly, [9], 'success', 9],
    ['NaN never passes (and is not recorded as a value)', success, [Number.NaN], 'failure', undefined],
  ])('%s', (_, g, values, outcome, value) => {
    const m = judgeSample(g, { values }, at(0), ['n1', 'n2'], 'canary');
    expect(m).toMatchObject({ outcome, gate: 'errors', nodes: ['n1', 'n2'] });
    expect(m.value).toEqual(value);
  });

  it.each([
    ['fail', 'failure'],
    ['pause', 'inconclusive'],
    ['ignore', 'success'],
  ])('no data with noData %s: %s, and says so', (policy, outcome) => {
    const g = gate(`${PROM}  successCondition: result < 5\n  noData: ${policy}\n`);
    const m = judgeSample(g, { values: [] }, at(0), ['n1'], 'canary');
    expect(m).toMatchObject({ outcome, note: `no data for the updated nodes (noData: ${policy})` });
    expect(m.value).toBeUndefined();
  });

  it('a backend error is inconclusive whatever the no-data policy: never a silent pass', () => {
    const g = gate(`${PROM}  successCondition: result < 5\n  noData: ignore\n`);
    expect(judgeSample(g, { values: [], error: 'connect ECONNREFUSED 127.0.0.1:9090' }, at(0), ['n1'], 'canary')).toMatchObject({ outcome: 'inconclusive', note: 'prometheus did not answer: connect ECONNREFUSED 127.0.0.1:9090' });
  });

  it('compares with the mean of the nodes not yet updated, and a missing baseline is no data', () => {
    const g = gate(`${PROM}  successCondition: result <= baseline * 1.2\n  baseline: true\n`);
    expect(judgeSample(g, { values: [11], baseline: [8, 12] }, at(0), ['n1'], 'canary')).toMatchObject({ outcome: 'success', value: 11, baseline: 10 });
    expect(judgeSample(g, { values: [13], baseline: [8, 12] }, at(0), ['n1'], 'canary')).toMatchObject({ outcome: 'failure', value: 13, baseline: 10 });
    expect(judgeSample(g, { values: [1], baseline: [] }, at(0), ['n1'], 'canary')).toMatchObject({ outcome: 'inconclusive', note: 'no data for the baseline (nodes not yet updated) (noData: pause)' });
  });
});

describe('gateVerdict', () => {
  const g = gate(`${PROM}  successCondition: result < 5\n  failureLimit: 1\n  inconclusiveLimit: 1\n`);
  const m = (s: number, outcome: Measurement['outcome'], extra: Partial<Measurement> = {}): Measurement => ({ gate: 'errors', round: 'canary', at: at(s), nodes: ['n1'], condition: 'success: result < 5', outcome, ...extra });

  it.each<[string, Measurement[], string]>([
    ['nothing measured: running, due now', [], 'running'],
    ['count successes: passed', [m(0, 'success'), m(10, 'success'), m(20, 'success')], 'passed'],
    ['failures within failureLimit still pass at count', [m(0, 'failure'), m(10, 'success'), m(20, 'success')], 'passed'],
    ['failures beyond failureLimit: failed', [m(0, 'failure'), m(10, 'failure')], 'failed'],
    ['inconclusive within the limit does not count towards count', [m(0, 'inconclusive'), m(10, 'success'), m(20, 'success')], 'running'],
    ['inconclusive beyond the limit: inconclusive (pause)', [m(0, 'inconclusive'), m(10, 'inconclusive')], 'inconclusive'],
    ['acknowledged inconclusive measurements no longer count', [m(0, 'inconclusive', { acknowledged: true }), m(10, 'inconclusive', { acknowledged: true }), m(20, 'success')], 'running'],
    ['failure beats inconclusive', [m(0, 'inconclusive'), m(10, 'inconclusive'), m(20, 'failure'), m(30, 'failure')], 'failed'],
    ['measurements of another round do not count', [m(0, 'failure', { round: 'waves' }), m(10, 'failure', { round: 'waves' })], 'running'],
  ])('%s', (_, ms, kind) => {
    expect(gateVerdict(g, ms, 'canary', T0 + 25_000).kind).toBe(kind);
  });

  it('the next measurement is due one interval after the last, never sooner', () => {
    const spec = { metrics: [g] };
    const ms = [m(0, 'success')];
    expect(dueGates(spec, ms, 'canary', T0 + 9_999)).toEqual([]);
    expect(dueGates(spec, ms, 'canary', T0 + 10_000)).toEqual([g]);
    expect(gateVerdict(g, ms, 'canary', T0 + 1)).toMatchObject({ kind: 'running', nextAt: T0 + 10_000 });
  });

  it('the waves round never passes: it runs while the rollout does', () => {
    const ms = [0, 10, 20, 30].map((s) => m(s, 'success', { round: 'waves' }));
    expect(gateVerdict(g, ms, 'waves', T0 + 31_000).kind).toBe('running');
  });

  it.each<[string, Measurement[], string]>([
    ['count successes on the wave: passed', [m(0, 'success', { round: 'waves', wave: 3 }), m(10, 'success', { round: 'waves', wave: 3 }), m(20, 'success', { round: 'waves', wave: 3 })], 'passed'],
    ['measurements of an earlier wave do not count towards this one', [m(0, 'success', { round: 'waves', wave: 2 }), m(10, 'success', { round: 'waves', wave: 2 }), m(20, 'success', { round: 'waves', wave: 3 })], 'running'],
    ['an earlier wave\'s failures are that wave\'s verdict, not this one\'s', [m(0, 'failure', { round: 'waves', wave: 2 }), m(10, 'failure', { round: 'waves', wave: 2 })], 'running'],
    ['failures on the wave beyond failureLimit: failed', [m(0, 'failure', { round: 'waves', wave: 3 }), m(10, 'failure', { round: 'waves', wave: 3 })], 'failed'],
    ['the unheld waves round is not this wave', [m(0, 'success', { round: 'waves' }), m(10, 'success', { round: 'waves' }), m(20, 'success', { round: 'waves' })], 'running'],
  ])('a held wave: %s', (_, ms, kind) => {
    expect(gateVerdict(g, ms, { round: 'waves', wave: 3 }, T0 + 25_000).kind).toBe(kind);
  });
});

describe('combineGates', () => {
  const g = gate(`${PROM}  successCondition: result < 5\n`);
  const spec = { restarts: 1, metrics: [g] };

  it('fails on a pod that restarted more than allowed, naming pod, node and count', () => {
    const out = combineGates(spec, 'canary', [{ pod: 'agent-a', node: 'n1', restarts: 1 }, { pod: 'agent-b', node: 'n2', restarts: 3 }], [], T0);
    expect(out.failed).toEqual({ reason: 'gate restarts failed: an updated pod restarted more than 1 time (agent-b on n2: 3)', nodes: ['n2'] });
  });

  it('holds the canary while measurements are due, and passes it when every gate passed', () => {
    const pending = combineGates(spec, 'canary', [], [], T0);
    expect(pending.pending).toMatchObject({ nextAt: T0 });
    const ms: Measurement[] = [0, 10, 20].map((s) => ({ gate: 'errors', round: 'canary', at: at(s), nodes: ['n1'], condition: '', outcome: 'success' }));
    expect(combineGates(spec, 'canary', [], ms, T0 + 21_000)).toEqual({});
  });

  it('names the failing gate, its value and its nodes', () => {
    const ms = [judgeSample(g, { values: [9] }, at(0), ['n1'], 'canary')];
    const out = combineGates(spec, 'canary', [], ms, T0 + 1000);
    expect(out.failed?.nodes).toEqual(['n1']);
    expect(out.failed?.reason).toBe('gate errors failed: 1 failed measurement, more than failureLimit 0; last on n1: value 9, success: result < 5: failure');
  });
});

describe('substitute', () => {
  it('puts the nodes in as an escaped regex alternation, and the DaemonSet by name', () => {
    expect(substitute('x{node=~"{nodes}",ds="{daemonset}",ns="{namespace}"}', { nodes: ['kwok-1', 'a.b'], daemonSet: 'agent', namespace: 'ns' })).toBe('x{node=~"kwok-1|a\\\\.b",ds="agent",ns="ns"}');
  });
});

describe('appendMeasurements', () => {
  it('keeps at most MEASUREMENTS_KEPT, and never drops a failure the verdict needs', () => {
    const failure: Measurement = { gate: 'g', round: 'canary', at: at(0), nodes: [], condition: '', outcome: 'failure' };
    const successes: Measurement[] = Array.from({ length: 100 }, (_, i) => ({ gate: 'g', round: 'waves', at: at(i + 1), nodes: [], condition: '', outcome: 'success' }));
    const { measurements, dropped } = appendMeasurements([failure], successes);
    expect(measurements).toHaveLength(MEASUREMENTS_KEPT);
    expect(measurements[0]).toBe(failure);
    expect(measurements[measurements.length - 1]).toBe(successes[99]);
    expect(dropped).toBe(101 - MEASUREMENTS_KEPT);
  });
});

describe('pre-flight', () => {

  const template = (ports: { hostPort?: number; containerPort: number }[]) => ({ spec: { containers: [{ name: 'agent', ports }] } });

  it.each<[string, { hostPort?: number; containerPort: number }[], string | number | undefined, boolean]>([
    ['hostPort with maxSurge 1', [{ hostPort: 9100, containerPort: 9100 }], 1, true],
    ['hostPort with maxSurge "10%"', [{ hostPort: 9100, containerPort: 9100 }], '10%', true],
    ['hostPort with maxSurge 0', [{ hostPort: 9100, containerPort: 9100 }], 0, false],
    ['hostPort without maxSurge', [{ hostPort: 9100, containerPort: 9100 }], undefined, false],
    ['maxSurge without hostPort', [{ containerPort: 9100 }], 1, false],
  ])('%s: refused %p', (_, ports, maxSurge, refused) => {
    const r = hostPortWithSurge(template(ports), { type: 'RollingUpdate', rollingUpdate: { maxSurge } });
    expect(Boolean(r)).toBe(refused);
    if (refused) expect(r).toMatch(/^spec\.template\.spec\.containers\[0\] \(agent\)\.ports\[0\]\.hostPort 9100 with maxSurge \S+: .*; set maxSurge to 0 and use maxUnavailable/);
  });

  it.each([
    ['250m', 0.25], ['2', 2], ['1.5', 1.5], ['128Mi', 128 * 1024 ** 2], ['1G', 1e9], ['1e3', 1000], ['10Ki', 10240], ['bogus', undefined],
  ])('parses the quantity %s as Kubernetes does', (q, v) => {
    expect(parseQuantity(q)).toBe(v);
  });

  it('sums container requests, takes the larger init container, adds overhead', () => {
    expect(podRequests({ spec: { containers: [{ resources: { requests: { cpu: '100m', memory: '64Mi' } } }, { resources: { requests: { cpu: '200m' } } }], initContainers: [{ resources: { requests: { cpu: '500m' } } }], overhead: { memory: '1Mi' } } }))
      .toEqual({ cpuMilli: 500, memoryBytes: 65 * 1024 ** 2 });
  });

  it('refuses a template that does not fit beside the pods that stay, unless it has a priorityClassName', () => {
    const rooms = [
      { node: 'n1', allocatable: { cpuMilli: 4000, memoryBytes: 8 * 1024 ** 3 }, used: { cpuMilli: 3500, memoryBytes: 0 } },
      { node: 'n2', allocatable: { cpuMilli: 4000, memoryBytes: 8 * 1024 ** 3 }, used: { cpuMilli: 0, memoryBytes: 0 } },
    ];
    const t = { spec: { containers: [{ resources: { requests: { cpu: '1' } } }] } };
    expect(doesNotFit(t, rooms)).toMatch(/^the new template does not fit on 1 desired node \(n1; cpu: 1000m requested, 500m free on n1\) and has no priorityClassName/);
    expect(doesNotFit({ spec: { ...t.spec, priorityClassName: 'system-node-critical' } }, rooms)).toBeUndefined();
    expect(doesNotFit({ spec: { containers: [{ resources: { requests: { cpu: '500m' } } }] } }, rooms)).toBeUndefined();
  });
});

describe('pullVerdict', () => {
  const running = (node: string) => ({ node, phase: 'Running', containers: [{ image: 'a:2', started: true }] });
  const pending = (node: string) => ({ node, phase: 'Pending', containers: [] });
  const pullFailed = (node: string, reason = 'ErrImagePull') => ({ node, phase: 'Pending', containers: [{ image: 'registry.invalid/a:2', waitingReason: reason, waitingMessage: 'not found', started: false }] });

  it.each([
    ['every node started the pod: pulled', [running('n1'), running('n2')], T0, 'pulled'],
    ['a pod not started yet, before the deadline: waiting', [running('n1'), pending('n2')], T0, 'waiting'],
    ['a pod missing, before the deadline: waiting', [running('n1')], T0, 'waiting'],
    ['past the deadline with a node not pulled: failed', [running('n1'), pending('n2')], T0 + 60_000, 'failed'],
    ['ErrImagePull: failed at once', [running('n1'), pullFailed('n2')], T0, 'failed'],
    ['ImagePullBackOff: failed at once', [pullFailed('n1', 'ImagePullBackOff'), pending('n2')], T0, 'failed'],
  ])('%s', (_, pods, now, kind) => {
    expect(pullVerdict(['n1', 'n2'], pods, T0 + 60_000, now).kind).toBe(kind);
  });

  it('names the image, the reason and the nodes', () => {
    expect(pullVerdict(['n1', 'n2', 'n3'], [pullFailed('n2'), pullFailed('n1'), running('n3')], T0 + 1000, T0)).toEqual({
      kind: 'failed',
      reason: 'pre-pull: registry.invalid/a:2 (ErrImagePull: not found) could not be pulled on n1, n2; nothing of this wave was deleted: fix the image or its pull secret',
      nodes: ['n1', 'n2'],
    });
  });
});
