/**
 * The records kept in S3, and their schemas. Everything read back from S3 is validated:
 * a hand-edited or truncated object is reported, never trusted.
 */
import * as z from 'zod/mini';
import '../schema';

/** adopted: found running in the cluster, stamped by this tool, with no record in this store (a new bucket, prefix or CLUSTER_NAME). */
export const CAUSES = ['create', 'git-change', 'drift-correction', 'rollback', 'adopted'] as const;
export type Cause = (typeof CAUSES)[number];

/**
 * pending: written ahead of its apply; progressing/healthy/stalled: the rollout's state;
 * rolled-back: a later rollback replaced it; failed: the API server refused the apply;
 * superseded: a newer revision was applied before this one finished rolling out.
 */
export const OUTCOMES = ['pending', 'progressing', 'healthy', 'stalled', 'rolled-back', 'failed', 'superseded'] as const;
export type Outcome = (typeof OUTCOMES)[number];

const commitSchema = z.object({
  sha: z.string(),
  author: z.string(),
  email: z.string(),
  time: z.string(),
  subject: z.string(),
});

const sourceSchema = z.object({ file: z.string(), document: z.int() });

export const pinSchema = z.object({
  revision: z.int(),
  reason: z.string(),
  by: z.optional(z.string()),
  at: z.string(),
  /** Git's digest of this DaemonSet when the pin was set; a different digest in Git releases the pin. */
  gitDigest: z.nullable(z.string()),
});
export type Pin = z.infer<typeof pinSchema>;

/**
 * What a managed rollback's rollout starts from, written ahead with its snapshot (as its pin
 * is), so that a run killed between the apply and the state write leaves it where the next
 * run finds it: the nodes the replaced rollout deleted pods from while they were Ready (it
 * may have broken them, so their pods may be replaced although they are NotReady now), and
 * the canary verdict (a rollback restores a revision that ran before: no canary).
 */
export const managedSeedSchema = z.object({
  repairNodes: z.array(z.string()),
  canaryPassed: z.boolean(),
});
export type ManagedSeed = z.infer<typeof managedSeedSchema>;

/**
 * One ConfigMap or Secret a revision runs with, and the versioned copy its template references
 * (lib/bundle/config-copies.ts). A ConfigMap's data is kept so a rollback can recreate a pruned
 * copy; a Secret is only its digest, never a value.
 */
export const configEntrySchema = z.object({
  kind: z.enum(['ConfigMap', 'Secret']),
  namespace: z.string(),
  name: z.string(),
  copyName: z.string(),
  digest: z.string(),
  data: z.optional(z.record(z.string(), z.string())),
  binaryData: z.optional(z.record(z.string(), z.string())),
});

/** What rendered a revision's manifest (lib/source/render.ts). */
export const renderedSchema = z.object({
  renderer: z.literal('kustomize'),
  kustomization: z.string(),
  kustomizeVersion: z.string(),
  helmVersion: z.string(),
});

/** One gate measurement (rollout/gates.ts `Measurement`), as kept in the rollout's record. */
export const gateMeasurementSchema = z.object({
  gate: z.string(),
  round: z.enum(['canary', 'waves']),
  wave: z.optional(z.int()),
  at: z.string(),
  nodes: z.array(z.string()),
  value: z.optional(z.number()),
  baseline: z.optional(z.number()),
  condition: z.string(),
  outcome: z.enum(['success', 'failure', 'inconclusive']),
  note: z.optional(z.string()),
  acknowledged: z.optional(z.boolean()),
});

/** A metric gate's verdict at a rollout's last decision (rollout/gates.ts `RecordedVerdict`). */
export const gateVerdictSchema = z.object({
  gate: z.string(),
  round: z.enum(['canary', 'waves']),
  wave: z.optional(z.int()),
  verdict: z.enum(['passed', 'failed', 'inconclusive', 'running']),
  reason: z.string(),
});

/** What a managed rollout's gates measured and concluded; also kept with a revision whose rollout ended (revisionSchema `gates`). */
export const gateRecordSchema = z.object({
  measurements: z.array(gateMeasurementSchema),
  dropped: z.optional(z.int()),
  verdicts: z.optional(z.array(gateVerdictSchema)),
});
export type GateRecord = z.infer<typeof gateRecordSchema>;

export const revisionSchema = z.object({
  schema: z.literal(1),
  cluster: z.string(),
  namespace: z.string(),
  name: z.string(),
  revision: z.int().check(z.positive()),
  cause: z.enum(CAUSES),
  /** For cause rollback: the revision whose manifest this one restores. */
  rollbackTo: z.optional(z.int().check(z.positive())),
  reason: z.optional(z.string()),
  manifest: z.record(z.string(), z.unknown()),
  digest: z.string(),
  rolloutMode: z._default(z.enum(['native', 'managed']), 'native'),
  source: z.optional(sourceSchema),
  commit: z.optional(commitSchema),
  /** The live object this revision replaced (managedFields dropped), or null when it created or adopted the DaemonSet. */
  replaced: z.nullable(z.record(z.string(), z.unknown())),
  runId: z.string(),
  createdAt: z.string(),
  appliedAt: z.optional(z.string()),
  outcome: z.enum(OUTCOMES),
  outcomeAt: z.string(),
  outcomeReason: z.optional(z.string()),
  /**
   * The pin this revision is applied under (a rollback's), written ahead with the rest, so a
   * run killed between the apply and the state write leaves the pin where the next run finds it.
   */
  pin: z.optional(pinSchema),
  /** A managed rollback's: where its rollout starts (see managedSeedSchema). */
  managedSeed: z.optional(managedSeedSchema),
  /** The ConfigMaps and Secrets of the source its template references, as versioned copies (configEntrySchema). */
  config: z.optional(z.array(configEntrySchema)),
  /**
   * When the manifest was rendered (GIT_PATH holds a kustomization): by what, from which
   * kustomization. The manifest above is the rendered one: a rollback applies it as stored and
   * never renders again. `commit` is the source commit that was rendered.
   */
  rendered: z.optional(renderedSchema),
  /**
   * A managed rollout with gates: what its gates measured and concluded when its rollout ended
   * (stalled, complete, or replaced by a rollback), so the record says which gate failed with
   * which value after the rollout's own record in state.json has given way to the next revision's.
   */
  gates: z.optional(gateRecordSchema),
});
export type RevisionSnapshot = z.infer<typeof revisionSchema>;

export const PHASES = ['progressing', 'complete', 'stalled'] as const;
export type RolloutPhase = (typeof PHASES)[number];

const countsSchema = z.object({
  desired: z.int(),
  current: z.int(),
  ready: z.int(),
  upToDate: z.int(),
  available: z.int(),
});
export type RolloutCounts = z.infer<typeof countsSchema>;

/** A node the update of a managed rollout reached (its pod deleted, or filled by the controller), and whether the node was Ready then. */
const touchedNodeSchema = z.object({ node: z.string(), readyAtDelete: z.boolean(), at: z.string() });
export type TouchedNode = z.infer<typeof touchedNodeSchema>;

/** Evidence that the update breaks nodes: once set, the rollout deletes nothing more. */
const waveFailureSchema = z.object({ at: z.string(), reason: z.string(), nodes: z.array(z.string()) });
export type WaveFailure = z.infer<typeof waveFailureSchema>;

/** Where a managed rollout stands between decisions (rollout/wave.ts decides from and returns it). */
export const waveCheckpointSchema = z.object({
  startedAt: z.string(),
  /** Fixed at the first decision that finds canary nodes. */
  canaryNodes: z.optional(z.array(z.string())),
  /** When every canary node last became updated and available. */
  canaryAvailableSince: z.optional(z.string()),
  canaryPassed: z.optional(z.boolean()),
  lastProgressAt: z.string(),
  /** When the decision that wrote this checkpoint was taken (a driver records one at least every 30 s while it drives). */
  decidedAt: z.optional(z.string()),
  /** Time since lastProgressAt that nobody drove the rollout (after a run that ended uncleanly); not counted against the deadline. */
  undrivenMs: z.optional(z.int().check(z.nonnegative())),
  /** Set by a run that stopped driving cleanly (its time was up, or nothing was left for it to do now): the gap until the next decision counts. */
  handedOffAt: z.optional(z.string()),
  /** Since when the rollout has been waiting on something outside it (NotReady nodes, a canary that selects nothing); its end restarts the clock. */
  waitingSince: z.optional(z.string()),
  /** Updated and available nodes at the last decision. */
  updatedAvailable: z.int(),
  /** Decisions that deleted at least one pod. */
  waves: z.int(),
  /** Pods this rollout deleted whose replacement is not yet seen. */
  inFlight: z.array(z.object({ node: z.string(), uid: z.string(), deletedAt: z.string() })),
  /**
   * Every node the update reached: whose pod this rollout deleted (first deletion only), or
   * that the controller filled without a deletion; `readyAtDelete` says whether the node was
   * Ready then (or seen Ready since, before the update arrived).
   */
  touched: z.optional(z.array(touchedNodeSchema)),
  /** Nodes an earlier revision of this DaemonSet broke (or may have): unavailable, and their old pods may go although NotReady. */
  repairNodes: z.optional(z.array(z.string())),
  failed: z.optional(waveFailureSchema),
  /**
   * Set by a drift correction: the template was applied earlier in this same rollout, so its pods
   * that predate the latest apply (an older template generation) reached their nodes with it too.
   */
  earlierPodsReached: z.optional(z.boolean()),
  /**
   * A rollback's rollout: it restores a template that proved itself, so it repairs every NotReady
   * node running a pod of another template, and only the availability budget limits it.
   */
  restores: z.optional(z.boolean()),
  /**
   * With metric gates, after the canary: the last wave, held once its nodes run the update and
   * are available until every metric gate has taken its `count` measurements on them
   * (`availableSince`: when that hold began; `passed`: its gates passed). Its `wave` is the
   * decision number of the deletions that began it, as `waves` counts them.
   */
  gatedWave: z.optional(z.object({
    wave: z.int(),
    nodes: z.array(z.string()),
    availableSince: z.optional(z.string()),
    passed: z.optional(z.boolean()),
  })),
});
export type WaveCheckpoint = z.infer<typeof waveCheckpointSchema>;

/** What state.rollout.managed holds for a managed rollout: the checkpoint and the last decision's summary. */

export const managedRecordSchema = z.object({
  checkpoint: z.optional(waveCheckpointSchema),
  wavePhase: z.optional(z.string()),
  reason: z.optional(z.string()),
  notReadyNodes: z.optional(z.array(z.string())),
  brokenNodes: z.optional(z.array(z.string())),
  readyNodesDone: z.optional(z.boolean()),
  paused: z.optional(z.boolean()),
  /** The gates' measurements (bounded: rollout/gates.ts MEASUREMENTS_KEPT), how many older ones were dropped, and each metric gate's verdict at the last decision. */
  gates: z.optional(gateRecordSchema),
});
export type ManagedRecord = z.infer<typeof managedRecordSchema>;

export const rolloutSchema = z.object({
  revision: z.int(),
  mode: z.enum(['native', 'managed']),
  phase: z.enum(PHASES),
  /** The DaemonSet generation this rollout is for. */
  generation: z.optional(z.int()),
  startedAt: z.string(),
  lastProgressAt: z.string(),
  finishedAt: z.optional(z.string()),
  counts: z.optional(countsSchema),
  onDelete: z.optional(z.boolean()),
  message: z.optional(z.string()),
  /** Managed mode: where the driver stopped, so the next run resumes there. */
  managed: z.optional(managedRecordSchema),
});
export type RolloutState = z.infer<typeof rolloutSchema>;

export const stateSchema = z.object({
  schema: z.literal(1),
  namespace: z.string(),
  name: z.string(),
  /** The revision that is in the cluster. */
  currentRevision: z.int(),
  /** Digest of currentRevision's manifest. */
  appliedDigest: z.string(),
  /** The DaemonSet's metadata.generation as this tool last left or accepted it. */
  generation: z.optional(z.int()),
  /** Git's digest the last time a pass read it (null: not in Git). */
  gitDigest: z.optional(z.nullable(z.string())),
  source: z.optional(sourceSchema),
  commit: z.optional(commitSchema),
  lastHealthyRevision: z.optional(z.int()),
  rollout: z.optional(rolloutSchema),
  pin: z.optional(pinSchema),
  /**
   * A rollback replaced a managed rollout that had gates: that revision, how its rollout ended
   * and what its gates measured and concluded, so `status` still says which gate failed with
   * which value. Replaced by the next apply.
   */
  rolledBack: z.optional(z.object({ revision: z.int(), phase: z.enum(PHASES), message: z.optional(z.string()), gates: gateRecordSchema })),
  /** Managed rollouts: paused by hand (pause/resume); no pod is deleted while set. */
  paused: z.optional(z.object({ at: z.string(), by: z.optional(z.string()), reason: z.optional(z.string()) })),
  /**
   * A `rollback --recreate` between its delete and its apply: written (with its pin) before the
   * DaemonSet is deleted. While the pin holds, a pass that finds the DaemonSet missing (or still
   * the object being replaced, `replacedUid`) completes this rollback from revision `revision`
   * (its snapshot, written ahead), never Git's version. Cleared by the apply of any revision.
   */
  recreate: z.optional(z.object({ revision: z.int(), at: z.string(), replacedUid: z.optional(z.string()) })),
  /** Set when the DaemonSet was pruned: the live object as it was just before the delete. */
  deleted: z.optional(z.object({ at: z.string(), runId: z.string(), live: z.record(z.string(), z.unknown()) })),
  lastAttempt: z.optional(z.object({
    at: z.string(),
    revision: z.optional(z.int()),
    result: z.enum(['applied', 'failed', 'unchanged']),
    message: z.optional(z.string()),
  })),
  updatedAt: z.string(),
});
export type DaemonSetState = z.infer<typeof stateSchema>;

export const leaseSchema = z.object({
  holder: z.string(),
  operation: z.string(),
  acquiredAt: z.string(),
  renewedAt: z.string(),
  /** For people, by the holder's clock. Runs judge expiry by the store's clock (lease.ts). */
  expiresAt: z.string(),
  released: z._default(z.boolean(), false),
  /** The holder's LEASE_SECONDS: its lease is judged by its duration, not the reader's. */
  seconds: z.optional(z.int().check(z.positive())),
  /** The holder is only watching rollouts: an operator's rollback may take the lease over. */
  preemptible: z._default(z.boolean(), false),
  preemptibleReason: z.optional(z.string()),
});
export type LeaseRecord = z.infer<typeof leaseSchema>;

/**
 * Every node an unfinished managed rollout may have left broken: the nodes its update reached
 * (a pod deleted, Ready or not, or filled by the controller without a deletion: all of
 * `touched`), the nodes it failed on, and the nodes it still had to repair for an earlier
 * revision. Pure.
 *
 * Assumptions / invariants:
 * - A node that an update which breaks nodes reached is in `touched` (wave.ts records every
 *   node that receives the update, with or without a deletion, Ready or not, and also after a
 *   run died between its apply and its first decision), so this set holds every node the
 *   rollout's template may have broken. It may hold nodes the template did not break: a
 *   repair node that is Ready is an ordinary node, so that costs nothing.
 */
export function nodesReachedBy(cp: WaveCheckpoint): string[] {
  return [...new Set([...(cp.repairNodes ?? []), ...(cp.failed?.nodes ?? []), ...(cp.touched ?? []).map((t) => t.node)])].sort();
}

/**
 * What a new revision's managed rollout starts from, given the rollout of the revision it
 * replaces (`previous`). Undefined: nothing to carry, the first decision starts afresh.
 *
 * Assumptions / invariants:
 * - Same pod template (a change of annotations or labels only, or a drift correction, which
 *   restores the recorded revision's template): the pods are the same, so it is the same
 *   rollout, continued exactly where it stands: deletions in flight, nodes touched while Ready,
 *   the canary, a failure, the progress clock.
 * - New template (a forward fix, a drift correction, a rollback): a new rollout, but what the
 *   earlier ones learnt about nodes stays. Every node an unfinished earlier rollout reached
 *   while Ready, failed on, or still had to repair becomes a repair node: while NotReady it is
 *   unavailable by this product's doing (it never unlocks the one extra deletion allowed for
 *   NotReady nodes) and its pod may be replaced. A completed rollout proved its nodes: nothing
 *   of it is carried.
 * - A canary that did not pass keeps its nodes (repaired first, they prove the new template
 *   there); one that passed proved the old template only, so a new canary is chosen. A
 *   rollback restores a revision that ran before and goes without a canary.
 */
export function checkpointForNextRevision(
  previous: RolloutState | undefined,
  next: { sameTemplate: boolean; cause?: Cause; at: string },
): WaveCheckpoint | undefined {
  const cp = previous?.mode === 'managed' ? previous.managed?.checkpoint : undefined;
  if (cp && next.sameTemplate) return structuredClone(cp);
  // A drift correction re-applies the recorded revision's own template (the live one it replaces is
  // what drifted): the same rollout goes on, and the pods of that template created before the drift
  // (the controller labels them with an older template generation) were this rollout's doing.
  if (next.cause === 'drift-correction' && previous?.mode === 'managed') {
    const base: WaveCheckpoint = cp ? structuredClone(cp) : { startedAt: previous.startedAt, lastProgressAt: previous.lastProgressAt, decidedAt: next.at, updatedAvailable: 0, waves: 0, inFlight: [] };
    return { ...base, earlierPodsReached: true };
  }
  const unfinished = cp !== undefined && previous?.phase !== 'complete';
  const repairNodes = unfinished ? nodesReachedBy(cp) : [];
  const rollback = next.cause === 'rollback';
  const canaryNodes = unfinished && !rollback && !cp.canaryPassed ? cp.canaryNodes : undefined;
  if (repairNodes.length === 0 && canaryNodes === undefined && !rollback) return undefined;
  const fresh: WaveCheckpoint = { startedAt: next.at, lastProgressAt: next.at, decidedAt: next.at, updatedAvailable: 0, waves: 0, inFlight: [] };
  if (repairNodes.length > 0) fresh.repairNodes = repairNodes;
  if (canaryNodes !== undefined) fresh.canaryNodes = [...canaryNodes];
  if (rollback) {
    fresh.canaryPassed = true;
    fresh.restores = true;
  }
  return fresh;
}

/**
 * The state of a DaemonSet whose revision `applied` was just applied (or found applied): that
 * revision is current and rolling out from `at`. What the revision does not say (the last
 * healthy revision, a pause, source and commit when it has none) is kept from `current`; a
 * managed rollout starts from what the replaced revision's rollout learnt
 * (`checkpointForNextRevision`: `sameTemplate` says whether the pod template is unchanged,
 * `cause` whether it is a rollback).
 */
export function stateAfterApply(
  current: DaemonSetState | undefined,
  applied: {
    namespace: string;
    name: string;
    revision: number;
    digest: string;
    mode: RolloutState['mode'];
    generation?: number;
    at: string;
    gitDigest?: string | null;
    source?: DaemonSetState['source'];
    commit?: DaemonSetState['commit'];
    pin?: DaemonSetState['pin'];
    message?: string;
    /** The applied pod template equals the one of the revision it replaces (undefined: not known, taken as changed). */
    sameTemplate?: boolean;
    cause?: Cause;
  },
): DaemonSetState {
  const { revision, at, generation } = applied;
  const replaced = current?.rollout;
  const rolledBack = applied.cause === 'rollback' && replaced?.revision !== revision && replaced?.managed?.gates?.measurements.length
    ? { revision: replaced.revision, phase: replaced.phase, ...(replaced.message ? { message: replaced.message } : {}), gates: replaced.managed.gates }
    : undefined;
  const rollout: RolloutState = { revision, mode: applied.mode, phase: 'progressing', generation, startedAt: at, lastProgressAt: at };
  const carried = applied.mode === 'managed' && current?.currentRevision !== revision
    ? checkpointForNextRevision(current?.rollout, { sameTemplate: applied.sameTemplate === true, cause: applied.cause, at })
    : undefined;
  if (carried) {
    rollout.startedAt = carried.startedAt;
    rollout.lastProgressAt = carried.lastProgressAt;
    rollout.managed = { checkpoint: carried };
  }
  return {
    schema: 1,
    namespace: applied.namespace,
    name: applied.name,
    currentRevision: revision,
    appliedDigest: applied.digest,
    generation,
    gitDigest: applied.gitDigest,
    source: applied.source ?? current?.source,
    commit: applied.commit ?? current?.commit,
    lastHealthyRevision: current?.lastHealthyRevision,
    rollout,
    pin: applied.pin,
    ...(rolledBack ? { rolledBack } : {}),
    paused: current?.paused,
    lastAttempt: { at, revision, result: 'applied', ...(applied.message ? { message: applied.message } : {}) },
    updatedAt: at,
  };
}

/**
 * `state`, as just built for its current revision (stateAfterApply), with a managed rollback's
 * seed in the checkpoint of its rollout. Pure. A checkpoint already there (one carried over
 * from an earlier revision) keeps what it holds: the seed adds its repair nodes and sets its
 * canary verdict. A native rollout, or no seed, leaves the state as it is.
 */
export function seedManagedRollout(state: DaemonSetState, seed: ManagedSeed | undefined): DaemonSetState {
  const r = state.rollout;
  if (!seed || !r || r.mode !== 'managed' || r.revision !== state.currentRevision) return state;
  const base: WaveCheckpoint = r.managed?.checkpoint ?? { startedAt: r.startedAt, lastProgressAt: r.startedAt, updatedAvailable: 0, waves: 0, inFlight: [] };
  const repairNodes = [...new Set([...(base.repairNodes ?? []), ...seed.repairNodes])].sort();
  // Only a rollback has a seed.
  const checkpoint: WaveCheckpoint = { ...base, canaryPassed: seed.canaryPassed || base.canaryPassed, restores: true };
  if (repairNodes.length > 0) checkpoint.repairNodes = repairNodes;
  return { ...state, rollout: { ...r, managed: { ...r.managed, checkpoint } } };
}

/**
 * The seed of a managed rollback that replaces the rollout recorded in `before`: every node
 * that rollout may have left broken (`nodesReachedBy`), and no canary. Pure.
 */
export function managedRollbackSeed(before: DaemonSetState | undefined): ManagedSeed {
  const replaced = before?.rollout?.mode === 'managed' ? before.rollout.managed?.checkpoint : undefined;
  return { repairNodes: replaced ? nodesReachedBy(replaced) : [], canaryPassed: true };
}
