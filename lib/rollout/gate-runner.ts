/**
 * Runs a managed rollout's gates for one decision of the driver: which round it is (the
 * canary during its hold, or the waves after it), which nodes are gated, which metric
 * gates are due, their queries (each bounded by its timeout), and what the gates say now.
 * The verdicts themselves are pure (gates.ts); this file only measures.
 *
 * Assumptions / invariants:
 * - A metric gate queries only when its interval has passed since its last measurement of
 *   the round (`dueGates`): pod events wake the driver often, the backend is asked no more often.
 * - The canary round measures only while the canary is held (every canary node updated and
 *   available); after it, each wave is measured on its own nodes while it is held (every node
 *   of it updated and available), until its gates have their `count` measurements. A rollout
 *   whose waves are not held (a rollback's) is measured on every node the update reached,
 *   while it goes on.
 * - A backend that fails or does not answer within the timeout gives an inconclusive
 *   measurement, never a pass.
 */
import type { Deps } from '../deps';
import { errorMessage } from '../errors';
import { queryCloudWatch } from '../metrics/cloudwatch';
import { queryPrometheus } from '../metrics/prometheus';
import type { ManagedRecord } from '../store/records';
import {
  appendMeasurements, combineGates, dueGates, GateOutcome, GateScope, GateSpec, gateVerdicts, RecordedVerdict, judgeSample, Measurement, MetricGate, nextMeasurementAt, RestartObservation, Sample, substitute,
} from './gates';
import type { WaveNode, WavePod } from './wave';

export interface GateRun {
  outcome: GateOutcome;
  round: Measurement['round'];
  /** The held wave this decision measures, when it is the waves round of a rollout whose waves are held. */
  wave?: number;
  /** Every measurement kept for this revision's rollout, the new ones included. */
  measurements: Measurement[];
  dropped: number;
  /** Measurements taken in this decision. */
  added: Measurement[];
  /** Each metric gate's verdict now, over the round (or held wave) this decision measures. */
  verdicts: RecordedVerdict[];
  /** When the next measurement is due (epoch ms). */
  nextAt?: number;
}

export interface GateTarget { namespace: string; name: string }

/** The updated pods that count for the restarts gate on `nodes` (created for this template, not going away). */
export function restartObservations(pods: readonly WavePod[], nodes: ReadonlySet<string> | undefined): RestartObservation[] {
  return pods
    .filter((p) => p.updated && !p.terminating && p.sinceApply !== false && (nodes === undefined || nodes.has(p.node)))
    .map((p) => ({ pod: p.name, node: p.node, restarts: p.restarts ?? 0 }));
}

async function measure(deps: Deps, target: GateTarget, gate: MetricGate, nodes: string[], baselineNodes: string[], at: Date, scope: GateScope): Promise<Measurement> {
  const timeoutMs = gate.timeoutSeconds * 1000;
  const vars = { daemonSet: target.name, namespace: target.namespace };
  const query = async (over: string[]): Promise<number[]> => {
    if (over.length === 0) return [];
    if (gate.prometheus) return queryPrometheus(gate.prometheus.address, substitute(gate.prometheus.query, { ...vars, nodes: over }), timeoutMs);
    return queryCloudWatch(gate.cloudwatch!, over, vars, deps.config.s3.region, timeoutMs, at);
  };
  let sample: Sample;
  try {
    const [values, baseline] = await Promise.all([query(nodes), gate.baseline ? query(baselineNodes) : Promise.resolve(undefined)]);
    sample = { values, ...(baseline ? { baseline } : {}) };
  } catch (err) {
    sample = { values: [], error: errorMessage(err) };
  }
  return judgeSample(gate, sample, at.toISOString(), nodes, scope.round, scope.wave);
}

/** What one decision's gates look at: the round (and held wave), the gated nodes, the baseline's nodes, and whether to measure now. */
export interface GatedScope {
  scope: GateScope;
  /** The nodes measured: the canary's, the held wave's, or (waves not held) every node the update reached. */
  gated: string[];
  /** The desired Ready nodes the update has not reached (gates with baseline: true). */
  baselineNodes: string[];
  /** Nodes whose pods the restarts gate reads (undefined: every node). */
  restartNodes?: string[];
  /** Metric gates measure in this decision (the canary or the wave is held, nothing has failed). */
  measuring: boolean;
}

/**
 * PURE: the scope of a decision's gates from the record the previous decision left. The
 * canary is measured while it is held; after it, the wave held for its gates (wave.ts,
 * `gatedWave`) on its own nodes once they are all available; a rollout whose waves are not
 * held, on every node the update reached until it is complete. A rollback's rollout
 * (`restores`) is not measured by the metric gates: it restores a template that proved
 * itself, and the metric that stopped the revision it replaces may take a while to recover.
 */
export function gatedScope(record: ManagedRecord | undefined, hasCanary: boolean, pods: readonly WavePod[], nodes: readonly WaveNode[]): GatedScope {
  const cp = record?.checkpoint;
  const round: Measurement['round'] = hasCanary && !cp?.canaryPassed ? 'canary' : 'waves';
  const reached = [...new Set(pods.filter((p) => p.updated && !p.terminating && p.sinceApply !== false).map((p) => p.node))].sort();
  const open = round === 'waves' && cp?.gatedWave && !cp.gatedWave.passed ? cp.gatedWave : undefined;
  const desired = nodes.filter((n) => n.desired && n.ready).map((n) => n.name);
  const gated = round === 'canary' ? [...(cp?.canaryNodes ?? [])].sort() : open ? open.nodes.filter((n) => desired.includes(n)).sort() : reached;
  const held = round === 'canary' ? cp?.canaryAvailableSince !== undefined : open ? open.availableSince !== undefined : record?.wavePhase !== 'complete';
  return {
    scope: open ? { round, wave: open.wave } : { round },
    gated,
    baselineNodes: desired.filter((n) => !reached.includes(n)).sort(),
    ...(round === 'canary' ? { restartNodes: gated } : {}),
    measuring: cp?.failed === undefined && cp?.restores !== true && gated.length > 0 && held,
  };
}

/**
 * The gates' outcome for this decision, measuring what is due. `record` is the rollout's
 * record as the previous decision left it.
 */
export async function runGates(deps: Deps, target: GateTarget, spec: GateSpec, record: ManagedRecord | undefined, hasCanary: boolean, pods: readonly WavePod[], nodes: readonly WaveNode[], now: Date): Promise<GateRun> {
  const kept = (record?.gates?.measurements ?? []) as Measurement[];
  const { scope, gated, baselineNodes, restartNodes, measuring } = gatedScope(record, hasCanary, pods, nodes);
  const restarts = restartObservations(pods, restartNodes ? new Set(restartNodes) : undefined);
  const nowMs = now.getTime();
  const due = measuring ? dueGates(spec, kept, scope, nowMs) : [];
  const added = await Promise.all(due.map((g) => measure(deps, target, g, gated, baselineNodes, now, scope)));
  const { measurements, dropped } = appendMeasurements(kept, added);
  const outcome = combineGates(spec, scope, restarts, measurements, nowMs);
  const nextAt = measuring ? nextMeasurementAt(spec, measurements, scope, nowMs) : undefined;
  const verdicts = gateVerdicts(spec, measurements, scope, nowMs);
  return { outcome, round: scope.round, ...(scope.wave !== undefined ? { wave: scope.wave } : {}), measurements, verdicts, dropped: (record?.gates?.dropped ?? 0) + dropped, added, ...(nextAt !== undefined ? { nextAt } : {}) };
}
