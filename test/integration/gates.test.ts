/**
 * Gates on managed rollouts, on the local stack: a canary judged by its pods' restarts (kwok
 * restarts them on a schedule while they stay Ready), by Prometheus (a real Prometheus built
 * from Go modules, scraping an exporter this file runs with per-node values it controls) and
 * by CloudWatch (GetMetricData against the stack's moto server).
 */
import * as k8s from '@kubernetes/client-node';
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { resume } from '../../lib/pause';
import { formatStatus, status } from '../../lib/status';
import { formatHistory, history } from '../../lib/history';
import { formatReconcileReport } from '../../lib/report';
import { dsObject } from '../support/manifests';
import { stringify } from 'yaml';
import { reconcile } from '../../lib/reconcile';
import { autoRollback } from '../../lib/rollback';
import type { Measurement } from '../../lib/rollout/gates';
import { parseQuantity } from '../../lib/rollout/preflight';
import { startPrometheus, stopPrometheus } from '../../stack/prometheus';
import { stackPorts } from '../../stack/versions';
import { adminClients, AvailabilityWatcher, stackEnv, waitFor } from '../support/cluster';
import { MetricsExporter } from '../support/metrics-exporter';
import type { DsOptions } from '../support/manifests';
import { imagesByNode, managedYaml, useWorkers, workerNames } from '../support/managed';
import { cleanupScenarios, scenario } from '../support/scenario';

jest.setTimeout(900_000);

const NODES = 5;
/** The waves after a canary of 1 with maxUnavailable 2: each is held for its gates. */
const HELD_WAVES = Math.ceil((NODES - 1) / 2);
const READY_DELAY_SECONDS = 2;
const { kc, core } = adminClients();

afterAll(cleanupScenarios);
useWorkers(NODES);

type Scenario = Awaited<ReturnType<typeof scenario>>;

const managed = (o: DsOptions & { managedAnnotations?: Record<string, string> }) => managedYaml(o, READY_DELAY_SECONDS);

const awsEnv = stackEnv();
const cloudWatchEndpoint = `http://127.0.0.1:${stackPorts().awsEmulator}`;
const cw = new CloudWatchClient({ region: awsEnv.AWS_REGION, endpoint: cloudWatchEndpoint, credentials: { accessKeyId: awsEnv.AWS_ACCESS_KEY_ID, secretAccessKey: awsEnv.AWS_SECRET_ACCESS_KEY } });

/** PutMetricData: one DroppedRecords value per node, for the DaemonSet of namespace `ns`. */
async function putDropped(ns: string, values: Record<string, number>): Promise<void> {
  await cw.send(new PutMetricDataCommand({
    Namespace: 'NodeAgents',
    MetricData: Object.entries(values).map(([node, value]) => ({ MetricName: 'DroppedRecords', Dimensions: [{ Name: 'Node', Value: node }, { Name: 'Namespace', Value: ns }], Value: value, Timestamp: new Date() })),
  }));
}

function cloudWatchGate(count: number): string {
  return [
    '- name: dropped-records',
    '  cloudwatch:',
    '    namespace: NodeAgents',
    '    metricName: DroppedRecords',
    '    dimensions: { Node: "{node}", Namespace: "{namespace}" }',
    '    stat: Maximum',
    '    period: 60s',
    `    endpoint: ${cloudWatchEndpoint}`,
    '  interval: 2s',
    `  count: ${count}`,
    '  successCondition: result <= 10',
  ].join('\n');
}

describe('restarts gate', () => {
  it('fails a canary whose updated pod restarts more than allowed while Ready; the rollout stalls and is rolled back, no other node touched', async () => {
    const { ns, git, deps } = await scenario('gate-restarts');
    const nodes = await workerNames(core);
    const ann = {
      'daemonset-gitops.io/canary': '1',
      'daemonset-gitops.io/canary-hold': '30s',
      'daemonset-gitops.io/gates': 'restarts: 1',
      'daemonset-gitops.io/auto-rollback': 'true',
      'daemonset-gitops.io/progress-deadline': '120',
    };
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: 2, managedAnnotations: ann })).commit('v1');
    expect((await reconcile(deps(), {}, autoRollback)).daemonSets[0].rollout).toMatchObject({ phase: 'complete' });
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    git.write('a.yaml', managed({
      name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: 2, managedAnnotations: ann,
      podLabels: { 'pod-restart.stage.kwok.x-k8s.io': 'true' },
      podAnnotations: { 'pod-restart.stage.kwok.x-k8s.io/interval': '1s' },
    })).commit('v2: restarts every second');
    const started = Date.now();
    const r = await reconcile(deps(), {}, autoRollback);
    watcher.stop();

    // The gate failed well within the 30 s hold: Ready alone would have passed it.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(r.daemonSets[0]).toMatchObject({ revision: 2, rollout: { phase: 'stalled' } });
    expect(r.daemonSets[0].rollout!.message).toMatch(/stopped: gate restarts failed: an updated pod restarted more than 1 time \(agent-\w+ on kwok-\S+: [2-9]\)/);
    expect(r.daemonSets[0].message).toMatch(/rolled back from revision 2 to revision 1 \(recorded as revision 3\)/);
    // Only the canary node ever ran the new version; every node runs the old one again.
    expect([...(watcher.nodesByImage.get('registry.local/agent:2.0') ?? [])]).toEqual([nodes[0]]);
    expect(new Set(watcher.deletions.map((d) => d.node))).toEqual(new Set([nodes[0]]));
    expect(Object.values(await imagesByNode(core, ns, 'agent'))).toEqual(nodes.map(() => 'registry.local/agent:1.0'));
    const r2 = (await deps().store.getRevision(ns, 'agent', 2))!.value;
    expect(r2.outcome).toBe('rolled-back');
  });
});

/** The measurements kept in the rollout's record in S3 for `revision`. */
async function measurementsOf(deps: Scenario['deps'], ns: string, revision: number): Promise<Measurement[]> {
  const state = (await deps().store.getState(ns, 'agent'))!.value;
  expect(state.rollout?.revision).toBe(revision);
  return (state.rollout!.managed?.gates?.measurements ?? []) as Measurement[];
}

/** The gate Events about `revision`, oldest first. */
async function gateEvents(ns: string, revision = 2): Promise<k8s.CoreV1Event[]> {
  return (await core.listNamespacedEvent({ namespace: ns })).items
    .filter((e) => /^Gate/.test(e.reason ?? '') && e.message?.startsWith(`revision ${revision}:`))
    .sort((a, b) => Date.parse(String(a.eventTime ?? a.firstTimestamp)) - Date.parse(String(b.eventTime ?? b.firstTimestamp)));
}

function metricGate(address: string, extra: string): string {
  return [
    'metrics:',
    '- name: dropped',
    '  prometheus:',
    `    address: ${address}`,
    '    query: max by (node) (agent_dropped_ratio{node=~"{nodes}"})',
    '  interval: 2s',
    '  timeout: 1s',
    extra,
  ].join('\n');
}

describe('Prometheus gate', () => {
  const exporter = new MetricsExporter('agent_dropped_ratio');
  let address = '';
  let nodes: string[] = [];

  beforeAll(async () => {
    nodes = await workerNames(core);
    for (const n of nodes) exporter.set(n, 0);
    await exporter.start();
    address = (await startPrometheus([exporter.target])).address;
    await waitFor('Prometheus to have scraped the exporter', async () => {
      const body = await (await fetch(`${address}/api/v1/query?query=${encodeURIComponent('count(agent_dropped_ratio)')}`)).json() as { data: { result: { value: [number, string] }[] } };
      return Number(body.data.result[0]?.value[1]) === nodes.length;
    }, 60_000, 500);
  });
  beforeEach(() => {
    for (const n of nodes) exporter.set(n, 0);
  });
  afterAll(async () => {
    await stopPrometheus();
    await exporter.stop();
  });

  async function rollWith(prefix: string, gates: string, beforeUpdate?: () => void) {
    const s = await scenario(prefix);
    const ann = { 'daemonset-gitops.io/canary': '1', 'daemonset-gitops.io/canary-hold': '2s', 'daemonset-gitops.io/gates': gates, 'daemonset-gitops.io/progress-deadline': '120' };
    s.git.write('a.yaml', managed({ name: 'agent', namespace: s.ns, image: 'registry.local/agent:1.0', maxUnavailable: 2, managedAnnotations: ann })).commit('v1');
    expect((await reconcile(s.deps())).daemonSets[0].rollout).toMatchObject({ phase: 'complete' });
    beforeUpdate?.();
    s.git.write('a.yaml', managed({ name: 'agent', namespace: s.ns, image: 'registry.local/agent:2.0', maxUnavailable: 2, managedAnnotations: ann })).commit('v2');
    return s;
  }

  it('a canary whose exporter reports a bad value fails the gate after failureLimit, with the value recorded, shown and in Events; nothing beyond the canary is touched', async () => {
    exporter.set(nodes[0], 0.5);
    try {
      const { ns, deps } = await rollWith('gate-prom-bad', metricGate(address, '  count: 3\n  successCondition: result < 0.1\n  failureLimit: 1\n'));
      const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
      await watcher.start();
      const r = await reconcile(deps());
      watcher.stop();
      expect(r.daemonSets[0].rollout).toMatchObject({ phase: 'stalled' });
      expect(r.daemonSets[0].rollout!.message).toMatch(`stopped: gate dropped failed: 2 failed measurements, more than failureLimit 1; last on ${nodes[0]}: value 0.5, success: result < 0.1: failure`);
      expect([...(watcher.nodesByImage.get('registry.local/agent:2.0') ?? [])]).toEqual([nodes[0]]);
      const ms = await measurementsOf(deps, ns, 2);
      expect(ms.map((m) => [m.gate, m.round, m.nodes, m.value, m.outcome])).toEqual([
        ['dropped', 'canary', [nodes[0]], 0.5, 'failure'],
        ['dropped', 'canary', [nodes[0]], 0.5, 'failure'],
      ]);
      // On the gate's interval, not per pod event.
      expect(Date.parse(ms[1].at) - Date.parse(ms[0].at)).toBeGreaterThanOrEqual(2000);
      const events = await gateEvents(ns);
      expect(events.map((e) => [e.reason, e.type])).toEqual([['GateFailed', 'Warning'], ['GateFailed', 'Warning']]);
      expect(events[0].message).toBe(`revision 2: gate dropped (canary, node ${nodes[0]}): value 0.5, success: result < 0.1: failure`);
      const shown = formatStatus(await status(deps()));
      expect(shown).toContain(`${ns}/agent gate dropped: 2 measurements; last (canary, ${ms[1].at}) on ${nodes[0]}: value 0.5, success: result < 0.1: failure; verdict (canary): failed`);
      // plan shows each gate's verdict and last measurements, not only the rollout's message
      const plan = await reconcile(deps(), { dryRun: true });
      expect(plan.daemonSets[0].rollout?.gates?.[0]).toMatchObject({ gate: 'dropped', measurements: 2, verdict: { verdict: 'failed', round: 'canary' }, last: { value: 0.5, outcome: 'failure' } });
      expect(formatReconcileReport(plan)).toContain(`${ns}/agent gate dropped: 2 measurements; last (canary, ${ms[1].at}) on ${nodes[0]}: value 0.5, success: result < 0.1: failure; verdict (canary): failed`);
    } finally {
      exporter.set(nodes[0], 0);
    }
  });

  it('a wave after the canary whose exporter reports a bad value fails its gate: stalled and rolled back, no node beyond that wave touched; status and history name the gate and the value after the rollback', async () => {
    exporter.set(nodes[1], 0.5);
    try {
      const s = await scenario('gate-prom-wave');
      const ann = {
        'daemonset-gitops.io/canary': '1', 'daemonset-gitops.io/canary-hold': '2s', 'daemonset-gitops.io/progress-deadline': '120', 'daemonset-gitops.io/auto-rollback': 'true',
        'daemonset-gitops.io/gates': metricGate(address, '  count: 2\n  successCondition: result < 0.1\n'),
      };
      // The canary (nodes[0]) reports 0; the first wave after it (nodes[1], nodes[2]) includes a node reporting 0.5.
      s.git.write('a.yaml', managed({ name: 'agent', namespace: s.ns, image: 'registry.local/agent:1.0', maxUnavailable: 2, managedAnnotations: ann })).commit('v1');
      expect((await reconcile(s.deps())).daemonSets[0].rollout).toMatchObject({ phase: 'complete' });
      const watcher = new AvailabilityWatcher(kc, s.ns, 'app=agent', nodes);
      await watcher.start();
      s.git.write('a.yaml', managed({ name: 'agent', namespace: s.ns, image: 'registry.local/agent:2.0', maxUnavailable: 2, managedAnnotations: ann })).commit('v2');
      const r = await reconcile(s.deps(), {}, autoRollback);
      watcher.stop();
      const wave = [nodes[1], nodes[2]];
      expect(r.daemonSets[0].message).toMatch(/rolled back from revision 2 to revision 1 \(recorded as revision 3\)/);
      // The canary and that wave ran the update; the next wave never did.
      expect([...(watcher.nodesByImage.get('registry.local/agent:2.0') ?? [])].sort()).toEqual([nodes[0], ...wave].sort());
      expect(watcher.deletions.filter((d) => d.node === nodes[3] || d.node === nodes[4])).toEqual([]);

      // The failed revision's measurements: the canary passed, the wave failed on its own nodes.
      const r2 = (await s.deps().store.getRevision(s.ns, 'agent', 2))!.value;
      expect(r2.outcome).toBe('rolled-back');
      const ms = (r2.gates?.measurements ?? []) as Measurement[];
      expect(ms.map((m) => [m.round, m.wave, m.nodes, m.outcome])).toEqual([
        ['canary', undefined, [nodes[0]], 'success'],
        ['canary', undefined, [nodes[0]], 'success'],
        ['waves', 2, wave, 'failure'],
      ]);
      expect(ms[2].value).toBe(0.5);
      const waveEvents = await gateEvents(s.ns);
      expect(waveEvents.map((e) => e.reason)).toEqual(['GatePassed', 'GatePassed', 'GateFailed']);
      expect(waveEvents[2].message).toBe(`revision 2: gate dropped (wave 2, nodes ${wave.join(',')}): value 0.5, success: result < 0.1: failure`);

      // After the rollback: status and history still say which gate failed, with which value.
      const st = await status(s.deps());
      expect(st.daemonSets.find((d) => d.key === `${s.ns}/agent`)).toMatchObject({ revision: 3, rolledBack: { revision: 2, phase: 'stalled', gates: [{ gate: 'dropped', verdict: { verdict: 'failed', wave: 2 }, last: { value: 0.5, nodes: wave } }] } });
      const failLine = `gate dropped: 3 measurements; last (wave 2, ${ms[2].at}) on ${wave.join(',')}: value 0.5, success: result < 0.1: failure; verdict (wave 2): failed`;
      expect(formatStatus(st)).toContain(`${s.ns}/agent revision 2, rolled back (stalled: stopped: gate dropped failed: 1 failed measurement, more than failureLimit 0; last on ${wave.join(',')}: value 0.5`);
      expect(formatStatus(st)).toContain(`  revision 2 ${failLine}`);
      const h = await history(s.deps(), { namespace: s.ns, name: 'agent' });
      expect(h.revisions.find((x) => x.revision === 2)?.gates?.[0]).toMatchObject({ gate: 'dropped', last: { value: 0.5, outcome: 'failure' } });
      expect(formatHistory(h)).toContain(`  ${failLine}`);
    } finally {
      exporter.set(nodes[1], 0);
    }
  });

  it('a canary node without data pauses the rollout and says so; after resume, with data, it completes', async () => {
    const { ns, deps } = await rollWith('gate-prom-nodata', metricGate(address, '  count: 2\n  successCondition: result < 0.1\n'), () => exporter.remove(nodes[0]));
    // Gone from Prometheus' answers once it scraped the exporter without the series (a staleness marker).
    await waitFor('Prometheus to have no data for the canary node', async () => {
      const body = await (await fetch(`${address}/api/v1/query?query=${encodeURIComponent(`agent_dropped_ratio{node="${nodes[0]}"}`)}`)).json() as { data: { result: unknown[] } };
      return body.data.result.length === 0;
    }, 30_000, 250);
    const r = await reconcile(deps());
    expect(r.daemonSets[0].rollout!.message).toMatch(/^paused: paused: gate dropped inconclusive: 1 inconclusive measurement, more than inconclusiveLimit 0; last: no value, success: result < 0.1: inconclusive \(no data for the updated nodes \(noData: pause\)\); deleting nothing until resumed/);
    expect(Object.entries(await imagesByNode(core, ns, 'agent')).filter(([, image]) => image.endsWith(':2.0')).map(([n]) => n)).toEqual([nodes[0]]);
    expect((await gateEvents(ns)).map((e) => e.reason)).toEqual(['GateInconclusive']);

    exporter.set(nodes[0], 0);
    await waitFor('Prometheus to see the canary node again', async () => {
      const body = await (await fetch(`${address}/api/v1/query?query=${encodeURIComponent(`agent_dropped_ratio{node="${nodes[0]}"}`)}`)).json() as { data: { result: unknown[] } };
      return body.data.result.length === 1;
    }, 30_000, 250);
    await resume(deps(), { namespace: ns, name: 'agent' });
    const after = await reconcile(deps());
    expect(after.daemonSets[0].rollout).toMatchObject({ phase: 'complete' });
    const ms = await measurementsOf(deps, ns, 2);
    expect(ms.map((m) => [m.outcome, m.acknowledged ?? false])).toEqual([['inconclusive', true], ['success', false], ['success', false], ...ms.slice(3).map(() => ['success', false])]);
    expect(ms.slice(3).every((m) => m.round === 'waves')).toBe(true);
  });

  it('a good update with every gate takes no longer than the same update without gates plus the gates\' own intervals (within 10%)', async () => {
    const timed = async (prefix: string, gates: string | undefined): Promise<number> => {
      const { ns, git, deps } = await scenario(prefix);
      const ann: Record<string, string> = { 'daemonset-gitops.io/canary': '1', 'daemonset-gitops.io/canary-hold': '2s', ...(gates ? { 'daemonset-gitops.io/gates': gates } : {}) };
      git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: 2, managedAnnotations: ann })).commit('v1');
      await reconcile(deps());
      await putDropped(ns, Object.fromEntries(nodes.map((n) => [n, 1])));
      git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: 2, managedAnnotations: ann })).commit('v2');
      const r = await reconcile(deps());
      expect(r.daemonSets[0].rollout).toMatchObject({ phase: 'complete' });
      const rollout = (await deps().store.getState(ns, 'agent'))!.value.rollout!;
      if (gates) {
        expect(rollout.managed?.gates?.measurements.filter((m) => m.round === 'canary').map((m) => m.outcome)).toEqual(['success', 'success', 'success', 'success']);
        // Every wave after the canary was held for its own measurements: two gates, two each.
        const waves = new Map<number, string[]>();
        for (const m of rollout.managed?.gates?.measurements.filter((x) => x.round === 'waves') ?? []) waves.set(m.wave!, [...(waves.get(m.wave!) ?? []), m.outcome]);
        expect([...waves.values()]).toEqual([...Array(HELD_WAVES)].map(() => ['success', 'success', 'success', 'success']));
      }
      return (Date.parse(rollout.finishedAt!) - Date.parse(rollout.startedAt)) / 1000;
    };
    const every = `restarts: 0\n${metricGate(address, '  count: 2\n  successCondition: result < 0.1\n')}\n${cloudWatchGate(2)}`;
    // Each is timed twice, alternating, and the faster of each pair is compared: on a shared, loaded
    // machine a spell of load during one single run would otherwise decide the comparison; what the
    // gates themselves cost shows in both of their runs.
    const withoutRuns: number[] = [];
    const withRuns: number[] = [];
    for (let i = 1; i <= 2; i++) {
      withoutRuns.push(await timed(`gate-none-${i}`, undefined));
      withRuns.push(await timed(`gate-every-${i}`, every));
    }
    const without = Math.min(...withoutRuns);
    const withGates = Math.min(...withRuns);
    // Each metric gate measures at the end of each hold (the canary's, then every wave's) at the latest, then count - 1 intervals more.
    const gateTime = (1 + HELD_WAVES) * (2 - 1) * 2;
    const bound = without * 1.1 + gateTime;
    const runs = (xs: number[]) => xs.map((x) => `${x.toFixed(1)}s`).join(', ');
    // eslint-disable-next-line no-console
    console.log(`rollout of ${NODES} nodes, canary 1 with a 2s hold, maxUnavailable 2, ${HELD_WAVES} waves after it: without gates ${without.toFixed(1)}s (runs ${runs(withoutRuns)}), with restarts + Prometheus + CloudWatch gates ${withGates.toFixed(1)}s (runs ${runs(withRuns)}), bound (without x 1.1 + gates' own ${gateTime}s) ${bound.toFixed(1)}s`);
    expect(withGates).toBeLessThanOrEqual(bound);
  });

  it('Prometheus stopped mid-rollout: the gate is inconclusive and the rollout paused, naming the backend; never a pass', async () => {
    const { ns, deps } = await rollWith('gate-prom-down', metricGate(address, '  count: 5\n  successCondition: result < 0.1\n'));
    const running = reconcile(deps());
    await waitFor('the first measurement of revision 2', async () => {
      const rollout = (await deps().store.getState(ns, 'agent'))?.value.rollout;
      return rollout?.revision === 2 && rollout.managed?.gates?.measurements.length === 1;
    }, 60_000, 200);
    await stopPrometheus();
    const r = await running;
    const port = stackPorts().prometheus;
    expect(r.daemonSets[0].rollout!.message).toMatch(new RegExp(`^paused: paused: gate dropped inconclusive: .*prometheus did not answer: http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
    const ms = await measurementsOf(deps, ns, 2);
    expect(ms.map((m) => m.outcome)).toEqual(['success', 'inconclusive']);
    expect(Object.entries(await imagesByNode(core, ns, 'agent')).filter(([, image]) => image.endsWith(':2.0')).map(([n]) => n)).toEqual([nodes[0]]);
  });
});

describe('CloudWatch gate', () => {
  let nodes: string[] = [];
  beforeAll(async () => {
    nodes = await workerNames(core);
  });

  it.each([
    ['passes with values within the condition', 3, 'complete'],
    ['fails with a canary value beyond it', 50, 'stalled'],
  ])('%s', async (_, canaryValue, phase) => {
    const { ns, git, deps } = await scenario('gate-cw');
    const ann = { 'daemonset-gitops.io/canary': '1', 'daemonset-gitops.io/canary-hold': '2s', 'daemonset-gitops.io/gates': `metrics:\n${cloudWatchGate(2)}` };
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: 2, managedAnnotations: ann })).commit('v1');
    await reconcile(deps());
    await putDropped(ns, Object.fromEntries(nodes.map((n, i) => [n, i === 0 ? canaryValue : 1])));
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: 2, managedAnnotations: ann })).commit('v2');
    const r = await reconcile(deps());
    expect(r.daemonSets[0].rollout).toMatchObject({ phase });
    const canary = (await measurementsOf(deps, ns, 2)).filter((m) => m.round === 'canary');
    expect(canary[0]).toMatchObject({ gate: 'dropped-records', nodes: [nodes[0]], value: canaryValue, outcome: phase === 'complete' ? 'success' : 'failure' });
    if (phase === 'stalled') expect(r.daemonSets[0].rollout!.message).toMatch(`gate dropped-records failed: 1 failed measurement, more than failureLimit 0; last on ${nodes[0]}: value 50, success: result <= 10: failure`);
  });
});

describe('pre-flight', () => {
  it('refuses an update that does not fit on the nodes and has no priorityClassName: stalled with the reason before any pod is deleted', async () => {
    const { ns, git, deps } = await scenario('preflight-fit');
    const nodes = await workerNames(core);
    const ann = { 'daemonset-gitops.io/rollout': 'managed' };
    const withCpu = (image: string, cpu: string) => {
      const o = dsObject({ name: 'agent', namespace: ns, image, maxUnavailable: 2, annotations: ann, podAnnotations: { 'pod-ready.stage.kwok.x-k8s.io/delay': `${READY_DELAY_SECONDS}s` } }) as { spec: { template: { spec: { containers: { resources?: unknown }[] } } } };
      o.spec.template.spec.containers[0].resources = { requests: { cpu } };
      return stringify(o);
    };
    git.write('a.yaml', withCpu('registry.local/agent:1.0', '1')).commit('v1');
    expect((await reconcile(deps())).daemonSets[0].rollout).toMatchObject({ phase: 'complete' });
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    // kwok nodes have 32 cpus allocatable.
    git.write('a.yaml', withCpu('registry.local/agent:2.0', '40')).commit('v2: asks for more than a node has');
    // What the scheduler would count as free on the first node: its allocatable cpu less the
    // requests of every pod bound there that has not finished, this DaemonSet's own old pod
    // aside (the rollout replaces it). Pods of other suites may still be terminating there.
    const freeOnFirstNode = async (): Promise<number> => {
      const node = await core.readNode({ name: nodes[0] });
      const pods = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${nodes[0]}` });
      const milli = (q: string | undefined) => Math.round((parseQuantity(q) ?? 0) * 1000);
      const used = pods.items
        .filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed' && p.metadata?.namespace !== ns)
        .flatMap((p) => p.spec?.containers ?? [])
        .reduce((sum, c) => sum + milli(c.resources?.requests?.cpu as string | undefined), 0);
      return milli(node.status?.allocatable?.cpu) - used;
    };
    const freeBefore = await freeOnFirstNode();
    const r = await reconcile(deps());
    const freeAfter = await freeOnFirstNode();
    watcher.stop();
    expect(r.daemonSets[0].rollout).toMatchObject({ phase: 'stalled' });
    const message = r.daemonSets[0].rollout!.message!;
    expect(message).toMatch(new RegExp(`^stopped: pre-flight: the new template does not fit on ${nodes.length} desired nodes \\(${nodes[0]}, .*; cpu: 40000m requested, \\d+m free on ${nodes[0]}\\) and has no priorityClassName`));
    const reported = Number(/, (\d+)m free on /.exec(message)![1]);
    expect([freeBefore, freeAfter]).toContain(reported);
    expect(watcher.deletions).toEqual([]);
    expect(Object.values(await imagesByNode(core, ns, 'agent'))).toEqual(nodes.map(() => 'registry.local/agent:1.0'));
  });
});

describe('pre-pull', () => {
  it.each([
    ['a good image is pulled on each wave\'s nodes before its pods are deleted, and the pull pods are gone after', 'registry.local/agent:2.0', 'complete'],
    ['an image that cannot be pulled stops the rollout before any deletion, naming the image and the nodes', 'registry.invalid/agent:2.0', 'stalled'],
  ])('%s', async (_, image, phase) => {
    const { ns, git, deps } = await scenario('prepull');
    const nodes = await workerNames(core);
    const ann = { 'daemonset-gitops.io/pre-pull': '30s', 'daemonset-gitops.io/canary': '1', 'daemonset-gitops.io/canary-hold': '1s' };
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: 2, managedAnnotations: ann })).commit('v1');
    expect((await reconcile(deps())).daemonSets[0].rollout).toMatchObject({ phase: 'complete' });
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    const pullPods: { name: string; node: string; at: number }[] = [];
    const informer = setInterval(() => {
      void core.listNamespacedPod({ namespace: ns, labelSelector: 'daemonset-gitops.io/pre-pull-for=agent' }).then((l) => {
        for (const p of l.items) if (!pullPods.some((x) => x.name === p.metadata!.name)) pullPods.push({ name: p.metadata!.name!, node: p.spec!.nodeName!, at: Date.now() });
      });
    }, 100);
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image, maxUnavailable: 2, managedAnnotations: ann })).commit('v2');
    const r = await reconcile(deps());
    clearInterval(informer);
    watcher.stop();
    expect(r.daemonSets[0].rollout).toMatchObject({ phase });
    if (phase === 'stalled') {
      expect(r.daemonSets[0].rollout!.message).toMatch(`stopped: pre-pull: registry.invalid/agent:2.0 (ErrImagePull: failed to pull image "registry.invalid/agent:2.0": not found) could not be pulled on ${nodes[0]}; nothing of this wave was deleted`);
      expect(watcher.deletions.filter((d) => !d.name.includes('-pull-'))).toEqual([]);
      expect(Object.values(await imagesByNode(core, ns, 'agent'))).toEqual(nodes.map(() => 'registry.local/agent:1.0'));
    } else {
      // Every node had its pull pod before its old pod was deleted.
      const deletions = watcher.deletions.filter((d) => !d.name.includes('-pull-'));
      expect(deletions.map((d) => d.node).sort()).toEqual(nodes);
      for (const d of deletions) expect(pullPods.find((p) => p.node === d.node)?.at ?? Infinity).toBeLessThan(d.at);
    }
    await waitFor('the pull pods to be gone', async () => (await core.listNamespacedPod({ namespace: ns, labelSelector: 'daemonset-gitops.io/pre-pull-for=agent' })).items.length === 0, 30_000, 250);
  });
});
