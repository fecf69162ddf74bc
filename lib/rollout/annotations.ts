/**
 * PURE: the rollout annotations a manifest in Git may carry, parsed and validated.
 *
 *   daemonset-gitops.io/rollout: managed            the reconciler drives the update in waves
 *   daemonset-gitops.io/canary: "2"                 first wave: 2 nodes (or a selector: "topology.kubernetes.io/zone=a")
 *   daemonset-gitops.io/canary-hold: "60s"          canary pods must stay available this long (s, m or h)
 *   daemonset-gitops.io/paused: "true"              no waves until it is removed or "false"
 *   daemonset-gitops.io/auto-rollback: "true"       roll back when stalled (overrides AUTO_ROLLBACK)
 *   daemonset-gitops.io/progress-deadline: "300"    seconds without progress before stalled (overrides PROGRESS_DEADLINE_SECONDS)
 *   daemonset-gitops.io/pre-pull: "2m"              pull the new images on each wave's nodes first ("true": 2m deadline)
 *   daemonset-gitops.io/gates: |                    restarts and metric gates on the canary and the waves (gates.ts, docs/gates.md)
 */
import { parseIntOrPercent } from '../k8s-values';
import {
  AUTO_ROLLBACK_ANNOTATION,
  CANARY_ANNOTATION,
  CANARY_HOLD_ANNOTATION,
  GATES_ANNOTATION,
  PAUSED_ANNOTATION,
  PRE_PULL_ANNOTATION,
  PROGRESS_DEADLINE_ANNOTATION,
  ROLLOUT_ANNOTATION,
} from '../labels';
import type { CanaryPolicy } from './wave';
import { parseDuration } from './duration';
import { GateSpec, parseGates } from './gates';

export interface RolloutAnnotations {
  mode: 'native' | 'managed';
  canary?: CanaryPolicy;
  paused: boolean;
  autoRollback?: boolean;
  progressDeadlineSeconds?: number;
  gates?: GateSpec;
  /** Pre-pull before each wave, with this pull deadline in seconds. */
  prePullSeconds?: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

export { parseDuration } from './duration';

function parseBool(text: string | undefined): boolean | undefined | 'invalid' {
  if (text === undefined) return undefined;
  if (text === 'true') return true;
  if (text === 'false') return false;
  return 'invalid';
}

const LABEL_PAIR = /^([A-Za-z0-9][-A-Za-z0-9_./]*)=([-A-Za-z0-9_.]*)$/;

export function parseRolloutAnnotations(annotations: Record<string, string> | undefined): Parsed<RolloutAnnotations> {
  const a = annotations ?? {};
  const fail = (message: string): Parsed<RolloutAnnotations> => ({ ok: false, message });
  const modeText = a[ROLLOUT_ANNOTATION] ?? 'native';
  if (modeText !== 'native' && modeText !== 'managed') {
    return fail(`${ROLLOUT_ANNOTATION}: "${modeText}" is not a rollout mode: use "native" or "managed"`);
  }
  const out: RolloutAnnotations = { mode: modeText, paused: false };
  const paused = parseBool(a[PAUSED_ANNOTATION]);
  if (paused === 'invalid') return fail(`${PAUSED_ANNOTATION}: "${a[PAUSED_ANNOTATION]}" must be "true" or "false"`);
  out.paused = paused ?? false;
  const auto = parseBool(a[AUTO_ROLLBACK_ANNOTATION]);
  if (auto === 'invalid') return fail(`${AUTO_ROLLBACK_ANNOTATION}: "${a[AUTO_ROLLBACK_ANNOTATION]}" must be "true" or "false"`);
  out.autoRollback = auto;
  if (a[PROGRESS_DEADLINE_ANNOTATION] !== undefined) {
    const s = parseDuration(a[PROGRESS_DEADLINE_ANNOTATION]);
    if (!s || s < 10) return fail(`${PROGRESS_DEADLINE_ANNOTATION}: "${a[PROGRESS_DEADLINE_ANNOTATION]}" must be a duration of at least 10s, such as "300" or "5m"`);
    out.progressDeadlineSeconds = s;
  }
  const canaryText = a[CANARY_ANNOTATION];
  const holdText = a[CANARY_HOLD_ANNOTATION];
  if (canaryText !== undefined || holdText !== undefined) {
    if (out.mode !== 'managed') {
      return fail(`${CANARY_ANNOTATION} needs managed rollouts: add the annotation ${ROLLOUT_ANNOTATION}: managed`);
    }
    if (canaryText === undefined) return fail(`${CANARY_HOLD_ANNOTATION} is set without ${CANARY_ANNOTATION}: say which nodes go first, e.g. "1" or "topology.kubernetes.io/zone=a"`);
    const holdSeconds = holdText === undefined ? 0 : parseDuration(holdText);
    if (holdSeconds === undefined) return fail(`${CANARY_HOLD_ANNOTATION}: "${holdText}" is not a duration such as "60s" or "5m"`);
    if (/^\d+$/.test(canaryText.trim())) {
      const count = Number(canaryText.trim());
      if (count < 1) return fail(`${CANARY_ANNOTATION}: "${canaryText}" must name at least one node`);
      out.canary = { count, holdSeconds };
    } else {
      const selector: Record<string, string> = {};
      for (const part of canaryText.split(',').map((p) => p.trim()).filter(Boolean)) {
        const m = LABEL_PAIR.exec(part);
        if (!m) return fail(`${CANARY_ANNOTATION}: "${canaryText}" is neither a node count nor label=value pairs (e.g. "topology.kubernetes.io/zone=a")`);
        selector[m[1]] = m[2];
      }
      if (Object.keys(selector).length === 0) return fail(`${CANARY_ANNOTATION} is empty: give a node count or label=value pairs`);
      out.canary = { selector, holdSeconds };
    }
  }
  const prePull = a[PRE_PULL_ANNOTATION];
  if (prePull !== undefined && prePull !== 'false') {
    if (out.mode !== 'managed') return fail(`${PRE_PULL_ANNOTATION} needs managed rollouts: add the annotation ${ROLLOUT_ANNOTATION}: managed`);
    const seconds = prePull === 'true' ? 120 : parseDuration(prePull);
    if (seconds === undefined || seconds < 5) return fail(`${PRE_PULL_ANNOTATION}: "${prePull}" must be "true", "false" or a pull deadline of at least 5s such as "2m"`);
    out.prePullSeconds = seconds;
  }
  const gatesText = a[GATES_ANNOTATION];
  if (gatesText !== undefined) {
    if (out.mode !== 'managed') return fail(`${GATES_ANNOTATION} needs managed rollouts: add the annotation ${ROLLOUT_ANNOTATION}: managed`);
    const gates = parseGates(gatesText);
    if (!gates.ok) return fail(`${GATES_ANNOTATION}: ${gates.message}`);
    out.gates = gates.value;
  }
  return { ok: true, value: out };
}

/**
 * Managed rollouts replace a pod by deleting it, so there is no surge: the declared
 * strategy must allow at least one unavailable pod and no surge.
 */
export function checkManagedStrategy(maxUnavailable: number | string | undefined, maxSurge: number | string | undefined): string | undefined {
  const surge = maxSurge ?? 0;
  if (surge !== 0 && surge !== '0' && surge !== '0%') {
    return `managed rollouts replace pods by deleting them, so maxSurge (${surge}) is not supported: set maxSurge to 0 and use maxUnavailable`;
  }
  const mu = maxUnavailable ?? 1;
  const parsed = parseIntOrPercent(mu);
  if (!parsed) return `maxUnavailable "${mu}" must be a whole number or a percentage such as "25%"`;
  if (!parsed.percent) return parsed.value >= 1 ? undefined : `maxUnavailable must be at least 1 for a managed rollout (it is ${mu})`;
  return parsed.value >= 1 && parsed.value <= 100 ? undefined : `maxUnavailable "${mu}" must be between 1% and 100%`;
}
