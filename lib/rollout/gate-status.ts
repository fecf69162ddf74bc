/**
 * PURE: what a rollout's gate record (state.json `rollout.managed.gates`, or a revision's
 * `gates` once its rollout ended) says per gate: its verdict, its last measurements (value,
 * condition, outcome), and one line each for `status`, `plan` and `history`.
 */
import type { GateRecord } from '../store/records';
import { formatValue } from './gates';

/** How many of a gate's newest measurements `status --json` and the report show. */
export const RECENT_MEASUREMENTS = 5;

export interface MeasurementView {
  at: string;
  round: 'canary' | 'waves';
  wave?: number;
  nodes: string[];
  value?: number;
  baseline?: number;
  condition: string;
  outcome: 'success' | 'failure' | 'inconclusive';
  note?: string;
  acknowledged?: boolean;
}

export interface GateStatus {
  gate: string;
  /** Measurements of this gate kept in the record. */
  measurements: number;
  /** The metric gate's verdict at the rollout's last decision, over the round (or wave) it judged, and why. */
  verdict?: { verdict: 'passed' | 'failed' | 'inconclusive' | 'running'; round: 'canary' | 'waves'; wave?: number; reason: string };
  /** The newest measurement. */
  last: MeasurementView;
  /** The newest measurements (at most RECENT_MEASUREMENTS), oldest first. */
  recent: MeasurementView[];
}

/** Each gate of a record, in the order the gates first measured; undefined without measurements. */
export function gateStatus(record: GateRecord | undefined): GateStatus[] | undefined {
  const ms = record?.measurements ?? [];
  if (ms.length === 0) return undefined;
  const byGate = new Map<string, MeasurementView[]>();
  for (const { gate, ...view } of ms) byGate.set(gate, [...(byGate.get(gate) ?? []), view]);
  return [...byGate.entries()].map(([gate, views]) => {
    const v = record?.verdicts?.find((x) => x.gate === gate);
    return {
      gate,
      measurements: views.length,
      ...(v ? { verdict: { verdict: v.verdict, round: v.round, ...(v.wave !== undefined ? { wave: v.wave } : {}), reason: v.reason } } : {}),
      last: views[views.length - 1],
      recent: views.slice(-RECENT_MEASUREMENTS),
    };
  });
}

function roundText(m: { round: 'canary' | 'waves'; wave?: number }): string {
  return m.wave !== undefined ? `wave ${m.wave}` : m.round;
}

/** `value 0.5 (baseline 0.1), success: result < 0.1: failure (note)` */
export function describeView(m: MeasurementView): string {
  const value = m.value === undefined ? 'no value' : `value ${formatValue(m.value)}${m.baseline !== undefined ? ` (baseline ${formatValue(m.baseline)})` : ''}`;
  return `${value}, ${m.condition}: ${m.outcome}${m.note ? ` (${m.note})` : ''}`;
}

/** One line per gate: how many measurements, the last one (round, time, nodes, value, condition, outcome) and the verdict. */
export function formatGateLines(prefix: string, gates: readonly GateStatus[] | undefined): string[] {
  return (gates ?? []).map((g) => {
    const l = g.last;
    const verdict = g.verdict ? `; verdict (${roundText(g.verdict)}): ${g.verdict.verdict}` : '';
    return `${prefix ? `${prefix} ` : ''}gate ${g.gate}: ${g.measurements} ${g.measurements === 1 ? 'measurement' : 'measurements'}; last (${roundText(l)}, ${l.at}) on ${l.nodes.join(',')}: ${describeView(l)}${verdict}`;
  });
}
