/**
 * PURE view models of `dsgitops ui`: what each row, tile, series and band of the page shows,
 * as functions of the records in S3 and what the watch caches hold. No I/O, no clock: `now`
 * is an argument. The page only draws what these return.
 */
import type { LiveDaemonSet, LiveEvent, LiveNode, LivePod } from '../cluster/types';
import { COMMIT_ANNOTATION, REVISION_ANNOTATION } from '../labels';
import { availableFrom, effectiveMaxUnavailable } from '../rollout/wave';
import { isPodUpdated, toWaveNode, toWavePod } from '../rollout/managed';
import type { PlacementSpec } from '../rollout/eligibility';
import { countsOf, evaluateNative } from '../rollout/status';
import type { DaemonSetState, RevisionSnapshot } from '../store/records';

/** One ConfigMap or Secret a revision runs with (revisionSchema's `config`). */
type RevisionConfig = NonNullable<RevisionSnapshot['config']>[number];
import type { PassDaemonSet, PassRecord } from '../store/pass-record';
import { MAX_PASS_RECORD_BYTES } from '../pass-summary';
import type { TimelinePoint } from '../store/timeline-store';
import { stringify } from 'yaml';
import { unifiedDiff } from '../plan/diff';

// ---- the cluster: one row per DaemonSet ----------------------------------------------------

export interface ClusterRow {
  key: string;
  namespace: string;
  name: string;
  inCluster: boolean;
  revision?: number;
  mode: 'native' | 'managed';
  /** progressing, complete, stalled; or "not in cluster" / "pruned". */
  phase: string;
  paused: boolean;
  message?: string;
  commit?: { sha: string; short: string; subject: string };
  pin?: { revision: number; reason: string; by?: string };
  desired?: number;
  upToDate?: number;
  available?: number;
  /** The last pass that looked at this DaemonSet: when, what it did, and why. */
  lastPass?: { at: string; result: 'applied' | 'failed' | 'unchanged'; revision?: number; message?: string };
  /** The file and document a refused manifest came from, with what is wrong: the problem by file. */
  problem?: { file?: string; message: string };
}

export interface ClusterRowInput {
  key: string;
  state?: DaemonSetState;
  live?: LiveDaemonSet;
  /** The state cannot be read: the message that says how to repair it. */
  unreadable?: string;
  /** What the last recorded pass said of it, when it had something to say. */
  pass?: PassDaemonSet;
}

/** The one line a pass entry's trouble is told in, with its file (undefined: nothing wrong). */
export function passProblem(p: PassDaemonSet | undefined): { file?: string; message: string } | undefined {
  if (!p) return undefined;
  const first = p.problems?.find((x) => x.severity === 'error') ?? p.problems?.[0];
  const file = first ? `${first.file}${first.document !== undefined ? ` (document ${first.document})` : ''}` : p.source ? `${p.source.file}${p.source.document !== undefined ? ` (document ${p.source.document})` : ''}` : undefined;
  if (p.action === 'failed') return { file, message: p.error ? `${p.error.reason}: ${p.error.message}` : p.message };
  if (p.action === 'invalid') return { file, message: first?.message ?? p.message };
  if (p.held) return { file, message: `held: ${p.held}` };
  if (first) return { file, message: first.message };
  return undefined;
}

function liveRevisionOf(ds: LiveDaemonSet | undefined): number | undefined {
  const n = Number(ds?.metadata.annotations?.[REVISION_ANNOTATION]);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

export function clusterRow(input: ClusterRowInput, now: Date, deadlineSeconds: number): ClusterRow {
  const { key, state, live } = input;
  const [namespace, name] = key.split('/');
  const revision = state?.currentRevision ?? liveRevisionOf(live);
  const commit = state?.commit
    ? { sha: state.commit.sha, short: state.commit.sha.slice(0, 7), subject: state.commit.subject }
    : live?.metadata.annotations?.[COMMIT_ANNOTATION] ? { sha: live.metadata.annotations[COMMIT_ANNOTATION], short: live.metadata.annotations[COMMIT_ANNOTATION].slice(0, 7), subject: '' } : undefined;
  const row: ClusterRow = {
    key, namespace, name, inCluster: Boolean(live), revision,
    mode: state?.rollout?.mode ?? 'native',
    phase: 'unknown',
    paused: Boolean(state?.paused),
    commit,
    pin: state?.pin ? { revision: state.pin.revision, reason: state.pin.reason, by: state.pin.by } : undefined,
    lastPass: state?.lastAttempt ? { ...state.lastAttempt } : undefined,
  };
  if (state?.lastAttempt?.result === 'failed') row.problem = { file: state.source?.file, message: state.lastAttempt.message ?? 'the last apply failed' };
  const fromPass = passProblem(input.pass);
  if (fromPass) row.problem = fromPass;
  if (input.unreadable) return { ...row, phase: 'unreadable', message: input.unreadable, problem: { message: input.unreadable } };
  // In Git, never applied: only the last pass's record knows of it.
  if (!live && !state && input.pass) return { ...row, phase: 'never applied', message: input.pass.message };
  if (!live) return { ...row, phase: state?.deleted ? 'pruned' : 'not in cluster', message: state?.deleted ? `pruned at ${state.deleted.at}` : 'not in the cluster' };
  const counts = countsOf(live);
  const withCounts = { ...row, desired: counts.desired, upToDate: counts.upToDate, available: counts.available };
  const previous = state?.rollout?.revision === revision ? state?.rollout : undefined;
  if (previous?.mode === 'managed') return { ...withCounts, mode: 'managed', phase: previous.phase, message: previous.message, paused: row.paused || Boolean(previous.managed?.paused) };
  const r = evaluateNative(previous, live, revision ?? 0, now, deadlineSeconds);
  return { ...withCounts, mode: 'native', phase: r.phase, message: r.message };
}

/** Every DaemonSet, sorted by key; problems first is the page's choice, not this one's. */
export function clusterView(inputs: readonly ClusterRowInput[], now: Date, deadlineSeconds: number): ClusterRow[] {
  return [...inputs].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((i) => clusterRow(i, now, deadlineSeconds));
}

// ---- the last pass ---------------------------------------------------------------------------

export type ProblemKind = 'invalid' | 'refused' | 'held' | 'failed' | 'warning';

export interface FileProblem {
  document?: number;
  /** The DaemonSet (namespace/name) or object (`Kind namespace/name`) it concerns. */
  subject?: string;
  kind: ProblemKind;
  code?: string;
  message: string;
  /** The DaemonSet was never applied: no revision of it is in the cluster. */
  neverApplied?: boolean;
}

export interface FileProblems {
  /** The file in Git; "(no file)" for a failure the pass could not tie to one. */
  file: string;
  problems: FileProblem[];
}

/** The codes of documents refused as they are (another kind, another namespace, a reserved key): not the DaemonSet's own schema. */
const REFUSED_CODES = new Set(['not-a-daemonset', 'namespace-not-allowed', 'reserved-key', 'duplicate', 'kind-not-allowed', 'too-large', 'alias-limit', 'yaml-syntax', 'path-missing']);

/**
 * Everything the last pass found wrong, by file in Git, documents in order: invalid manifests,
 * refused documents, DaemonSets held back, applies that failed, and objects of the bundle that
 * failed. A DaemonSet with no revision applied (`revision` unset) is marked as never applied.
 */
export function problemsByFile(record: PassRecord | undefined): FileProblems[] {
  if (!record) return [];
  const byFile = new Map<string, FileProblem[]>();
  const add = (file: string | undefined, p: FileProblem) => {
    const f = file ?? '(no file)';
    byFile.set(f, [...(byFile.get(f) ?? []), p]);
  };
  const kindOfCode = (code: string, severity: string): ProblemKind => (REFUSED_CODES.has(code) ? 'refused' : severity === 'error' ? 'invalid' : 'warning');
  for (const p of record.problems) add(p.file, { document: p.document, subject: p.key, kind: kindOfCode(p.code, p.severity), code: p.code, message: p.message });
  for (const d of record.daemonSets) {
    const neverApplied = d.revision === undefined ? { neverApplied: true } : {};
    for (const p of d.problems ?? []) add(p.file, { document: p.document, subject: d.key, kind: kindOfCode(p.code, p.severity), code: p.code, message: p.message, ...neverApplied });
    if (d.held) add(d.source?.file, { document: d.source?.document, subject: d.key, kind: 'held', message: d.held, ...neverApplied });
    else if (d.action === 'failed') add(d.source?.file, { document: d.source?.document, subject: d.key, kind: 'failed', code: d.error?.reason, message: d.error?.message ?? d.message, ...neverApplied });
    else if (d.action === 'invalid' && !d.problems?.length) add(d.source?.file, { document: d.source?.document, subject: d.key, kind: 'invalid', message: d.message, ...neverApplied });
  }
  for (const o of record.objects) if (o.action === 'failed') add(o.source.file, { document: o.source.document, subject: o.id, kind: 'failed', code: o.error?.reason, message: o.error?.message ?? o.message });
  return [...byFile].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([file, problems]) => ({
    file,
    problems: problems.sort((a, b) => (a.document ?? 0) - (b.document ?? 0)),
  }));
}

export interface PassLine {
  key: string;
  action: string;
  revision?: number;
  /** "applied revision 3 (git-change)", "held: …", "failed: …". */
  text: string;
  serious: boolean;
}

export interface LastPassView {
  at: string;
  startedAt: string;
  runId: string;
  result: string;
  commit?: { short: string; subject: string; author: string };
  error?: string;
  /** "3 updated, 1 invalid, 296 unchanged". */
  counts: string;
  lines: PassLine[];
  /** Entries left out of the stored record to keep it small. */
  omitted?: string;
  byFile: FileProblems[];
  /** Why the record is missing or unreadable, when it is. */
  note?: string;
}

/** One DaemonSet's entry of the last pass, in a line. */
export function passLine(d: PassDaemonSet): PassLine {
  const trouble = passProblem(d);
  const rollout = d.rollout && d.rollout.phase !== 'complete' ? `; rollout ${d.rollout.phase}${d.rollout.desired !== undefined ? ` (${d.rollout.upToDate ?? 0}/${d.rollout.desired} updated)` : ''}` : '';
  const text = d.applied
    ? `${d.action === 'pruned' ? 'pruned' : `applied revision ${d.revision}${d.cause ? ` (${d.cause})` : ''}`}${rollout}`
    : trouble
      ? `${d.held ? '' : `${d.action}: `}${trouble.file ? `${trouble.file}: ` : ''}${trouble.message}`
      : `${d.action}${d.pin ? ` to revision ${d.pin.revision} (${d.pin.reason})` : ''}${rollout}${d.message ? ` — ${d.message}` : ''}`;
  return { key: d.key, action: d.action, revision: d.revision, text, serious: Boolean(trouble) || d.rollout?.phase === 'stalled' };
}

/** The last pass, as the page tells it; `problem` when the record cannot be read. */
export function lastPassView(record: PassRecord | undefined, problem?: string): LastPassView | undefined {
  if (!record) return problem ? { at: '', startedAt: '', runId: '', result: 'unknown', counts: '', lines: [], byFile: [], note: problem } : undefined;
  const counts = Object.entries(record.summary).filter(([k]) => k !== 'total').sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, n]) => `${n} ${k}`).join(', ');
  const o = record.omitted;
  const left = o ? [o.daemonSets && `${o.daemonSets} DaemonSets`, o.objects && `${o.objects} objects`, o.problems && `${o.problems} problems`].filter(Boolean).join(', ') : '';
  const commit = record.source?.commit;
  return {
    at: record.finishedAt,
    startedAt: record.startedAt,
    runId: record.runId,
    result: record.result,
    ...(commit ? { commit: { short: commit.sha.slice(0, 7), subject: commit.subject, author: commit.author } } : {}),
    ...(record.error ? { error: `${record.error.reason}: ${record.error.message}` } : {}),
    counts: counts || 'no DaemonSets',
    lines: record.daemonSets.map(passLine),
    ...(left ? { omitted: `${left} left out of the stored report (it is kept under ${MAX_PASS_RECORD_BYTES / 1024} KiB)` } : {}),
    byFile: problemsByFile(record),
  };
}

// ---- a DaemonSet's nodes -------------------------------------------------------------------

export const TILE_STATES = ['available', 'updating', 'unavailable', 'skipped', 'broken', 'canary', 'not-desired'] as const;
export type TileState = (typeof TILE_STATES)[number];

/** How each state is told apart without colour: a glyph and a word. */
export const TILE_LEGEND: Record<TileState, { glyph: string; label: string }> = {
  available: { glyph: '●', label: 'available' },
  updating: { glyph: '◐', label: 'updating' },
  unavailable: { glyph: '✕', label: 'unavailable' },
  skipped: { glyph: '–', label: 'skipped (NotReady)' },
  broken: { glyph: '⚠', label: 'broken by the update' },
  canary: { glyph: '◆', label: 'canary' },
  'not-desired': { glyph: '○', label: 'not desired' },
};

export interface NodeTile {
  node: string;
  state: TileState;
  /** The product revision the node's pod runs (undefined: no pod, or a revision no record names). */
  revision?: number;
  /** The pod runs the DaemonSet's current template. */
  updated: boolean;
  canary: boolean;
  /** Why the tile shows what it shows (the page's hover text). */
  reason: string;
}

export interface NodeGroup {
  /** "canary", "wave 3", "not reached yet", "not desired". */
  label: string;
  wave?: number;
  tiles: NodeTile[];
}

export interface GridInput {
  ds: LiveDaemonSet;
  pods: readonly LivePod[];
  nodes: readonly LiveNode[];
  /** The newest ControllerRevision's hash: pods with it run the current template. */
  currentHash?: string;
  /** ControllerRevision hash -> the product revision it carries (the DaemonSet's revision annotation, copied). */
  revisionByHash: Readonly<Record<string, number>>;
  state?: DaemonSetState;
}

/**
 * The DaemonSet's nodes as tiles, grouped by the wave that reached them (the canary first,
 * then each wave in order, then the nodes no wave reached yet, then the nodes it should not
 * run on that still have one of its pods or are simply there).
 *
 * Assumptions:
 * - "Available" is Kubernetes' meaning: a Ready pod on a Ready node, Ready for
 *   minReadySeconds, not being deleted.
 * - A wave is the set of nodes whose first deletion by this rollout came from one decision:
 *   the checkpoint records the decision's time on each node it touched.
 * - Broken and skipped are the driver's own verdicts, from its last recorded decision.
 */
export function nodeGrid(input: GridInput, now: Date): NodeGroup[] {
  const { ds, state } = input;
  const currentRevision = liveRevisionOf(ds) ?? state?.currentRevision;
  const record = state?.rollout?.mode === 'managed' && state.rollout.revision === state.currentRevision ? state.rollout.managed : undefined;
  const cp = record?.checkpoint;
  const broken = new Set([...(record?.brokenNodes ?? []), ...(cp?.failed?.nodes ?? [])]);
  const skipped = new Set(record?.notReadyNodes ?? []);
  const canaryNodes = new Set(cp?.canaryNodes ?? []);
  const canaryHolding = canaryNodes.size > 0 && !cp?.canaryPassed;
  const inFlight = new Set((cp?.inFlight ?? []).map((e) => e.node));
  // While the rollout goes on, an updated pod that is not Ready yet is one being started, not a failure.
  const rolling = state?.rollout?.phase === 'progressing';
  const templateGeneration = ds.metadata.annotations?.['deprecated.daemonset.template.generation'];
  const minReadySeconds = ds.spec.minReadySeconds ?? 0;
  const template = ds.spec.template.spec as PlacementSpec;
  const podsByNode = new Map<string, LivePod[]>();
  for (const p of input.pods) {
    if (!p.metadata.ownerReferences?.some((o) => o.controller && o.uid === ds.metadata.uid)) continue;
    const n = p.spec.nodeName ?? '';
    podsByNode.set(n, [...(podsByNode.get(n) ?? []), p]);
  }
  const waveOfAt = new Map([...new Set((cp?.touched ?? []).map((t) => t.at))].sort().map((at, i) => [at, i + 1]));
  const waveOfNode = new Map((cp?.touched ?? []).map((t) => [t.node, waveOfAt.get(t.at)!]));

  const tiles = [...input.nodes].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1)).map((n): NodeTile & { wave?: number; desired: boolean } => {
    const node = toWaveNode(n, template);
    const pods = (podsByNode.get(node.name) ?? []).map((p) => ({ live: p, wave: toWavePod(p, isPodUpdated(p, templateGeneration, input.currentHash)) }));
    const running = pods.filter((p) => !p.wave.terminating);
    const newest = running.find((p) => p.wave.updated) ?? running[0] ?? pods[0];
    const updated = Boolean(newest?.wave.updated);
    const hash = newest?.live.metadata.labels?.['controller-revision-hash'];
    const revision = newest ? (updated ? currentRevision : hash !== undefined ? input.revisionByHash[hash] : undefined) : undefined;
    const isCanary = canaryNodes.has(node.name);
    const base = { node: node.name, revision, updated, canary: isCanary, wave: waveOfNode.get(node.name), desired: node.desired };
    const rev = revision !== undefined ? `revision ${revision}` : 'no known revision';
    if (!node.desired) return { ...base, state: 'not-desired', reason: pods.length ? `the DaemonSet should not run here (selector, affinity or taints); its pod (${rev}) is left alone` : 'the DaemonSet should not run here (selector, affinity or taints)' };
    if (broken.has(node.name)) return { ...base, state: 'broken', reason: `NotReady after this rollout replaced its pod while it was Ready: the update is taken to break nodes${cp?.failed ? ` (${cp.failed.reason})` : ''}` };
    if (skipped.has(node.name) || (!node.ready && !waveOfNode.has(node.name) && record)) return { ...base, state: 'skipped', reason: 'NotReady before this rollout reached it: skipped, outside the budget' };
    const availableAt = newest && node.ready ? availableFrom(newest.wave, minReadySeconds) : undefined;
    const available = availableAt !== undefined && availableAt <= now.getTime();
    const terminating = pods.some((p) => p.wave.terminating);
    if (isCanary && canaryHolding && !available) return { ...base, state: 'canary', reason: `canary node: ${updated ? `${rev} starting` : 'waiting for the update'}; the rest waits for it` };
    if (terminating || inFlight.has(node.name) || (updated && !available && node.ready && (rolling || newest?.wave.ready))) {
      return { ...base, state: 'updating', reason: terminating ? `old pod terminating; the ${currentRevision !== undefined ? `revision ${currentRevision}` : 'new'} pod follows` : inFlight.has(node.name) && !updated ? 'old pod deleted; its replacement is not seen yet' : newest?.wave.ready ? `${rev} Ready, inside minReadySeconds (${minReadySeconds}s)` : `${rev} starting (not Ready yet)` };
    }
    if (available) {
      if (isCanary && canaryHolding) return { ...base, state: 'canary', reason: `canary node: ${rev} available; holding before the rest` };
      return { ...base, state: 'available', reason: `${rev} available${updated ? '' : ' (not updated yet)'}` };
    }
    if (!node.ready) return { ...base, state: 'unavailable', reason: `node NotReady; its pod (${rev}) serves nothing` };
    if (!newest) return { ...base, state: 'unavailable', reason: 'no pod on this node yet' };
    return { ...base, state: 'unavailable', reason: `${rev} not Ready${newest.live.status?.phase ? ` (pod ${newest.live.status.phase})` : ''}` };
  });

  const groups: NodeGroup[] = [];
  const strip = (t: NodeTile & { wave?: number; desired: boolean }): NodeTile => ({ node: t.node, state: t.state, revision: t.revision, updated: t.updated, canary: t.canary, reason: t.reason });
  const desired = tiles.filter((t) => t.desired);
  const canary = desired.filter((t) => t.canary);
  if (canary.length) groups.push({ label: 'canary', tiles: canary.map(strip) });
  const waves = [...new Set(desired.filter((t) => !t.canary && t.wave !== undefined).map((t) => t.wave!))].sort((a, b) => a - b);
  for (const w of waves) groups.push({ label: `wave ${w}`, wave: w, tiles: desired.filter((t) => !t.canary && t.wave === w).map(strip) });
  const rest = desired.filter((t) => !t.canary && t.wave === undefined);
  if (rest.length) groups.push({ label: cp ? 'not reached by a wave' : 'nodes', tiles: rest.map(strip) });
  const notDesired = tiles.filter((t) => !t.desired);
  if (notDesired.length) groups.push({ label: 'not desired', tiles: notDesired.map(strip) });
  return groups;
}

/** The counts under the grid: how many tiles of each state. */
export function tileCounts(groups: readonly NodeGroup[]): Record<TileState, number> {
  const out = Object.fromEntries(TILE_STATES.map((s) => [s, 0])) as Record<TileState, number>;
  for (const g of groups) for (const t of g.tiles) out[t.state]++;
  return out;
}

// ---- the rollout over time -----------------------------------------------------------------

export interface Band {
  kind: 'canary-hold' | 'wave' | 'paused' | 'stalled';
  label: string;
  from: number;
  to: number;
}

export interface RolloutChart {
  /** Seconds since the epoch, one per point. */
  t: number[];
  unavailable: number[];
  budget: number[];
  updated: number[];
  desired: number[];
  bands: Band[];
}

/**
 * The chart's series and bands from a revision's timeline. A band runs from the point that
 * entered a phase (or a wave) to the point that left it, or to `now` for the last one while
 * the rollout goes on.
 */
export function rolloutChart(points: readonly TimelinePoint[], now: Date): RolloutChart {
  const sorted = [...points].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const t = sorted.map((p) => Date.parse(p.at) / 1000);
  const ended = sorted.length > 0 && ['complete', 'stalled'].includes(sorted[sorted.length - 1].phase);
  const end = ended ? t[t.length - 1] : Math.max(now.getTime() / 1000, t[t.length - 1] ?? 0);
  const bands: Band[] = [];
  const runs = (keyOf: (p: TimelinePoint) => string | undefined, make: (key: string, p: TimelinePoint) => Omit<Band, 'from' | 'to'>) => {
    let open: { key: string; from: number; p: TimelinePoint } | undefined;
    sorted.forEach((p, i) => {
      const key = keyOf(p);
      if (open && open.key !== key) {
        bands.push({ ...make(open.key, open.p), from: open.from, to: t[i] });
        open = undefined;
      }
      if (key !== undefined && !open) open = { key, from: t[i], p };
    });
    if (open) bands.push({ ...make(open.key, open.p), from: open.from, to: open.p.phase === 'stalled' ? Math.max(end, open.from) : end });
  };
  runs((p) => (p.phase === 'canary-hold' ? 'canary' : undefined), () => ({ kind: 'canary-hold', label: 'canary hold' }));
  runs((p) => (p.phase === 'paused' ? 'paused' : undefined), () => ({ kind: 'paused', label: 'paused' }));
  runs((p) => (p.wave > 0 && p.phase !== 'complete' ? String(p.wave) : undefined), (k) => ({ kind: 'wave', label: `wave ${k}` }));
  runs((p) => (p.phase === 'stalled' ? 'stalled' : undefined), () => ({ kind: 'stalled', label: 'stalled' }));
  return {
    t,
    unavailable: sorted.map((p) => p.unavailable),
    budget: sorted.map((p) => p.budget),
    updated: sorted.map((p) => p.updated),
    desired: sorted.map((p) => p.desired),
    bands,
  };
}

/** The budget the live DaemonSet would get now (its declared maxUnavailable over its desired nodes), for a rollout with no timeline yet. */
export function budgetOf(maxUnavailable: number | string, desired: number): number {
  return effectiveMaxUnavailable(maxUnavailable, desired);
}

// ---- revisions -----------------------------------------------------------------------------

export interface RevisionRow {
  revision: number;
  current: boolean;
  pinned: boolean;
  cause: string;
  rollbackTo?: number;
  reason?: string;
  commit?: { short: string; subject: string; author: string };
  appliedAt?: string;
  outcome: string;
  outcomeReason?: string;
  images: string[];
}

function imagesOfManifest(manifest: Record<string, unknown>): string[] {
  const spec = (manifest.spec as { template?: { spec?: { containers?: { image?: string }[]; initContainers?: { image?: string }[] } } } | undefined)?.template?.spec;
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])].map((c) => c.image ?? '').filter(Boolean);
}

/** Newest first: what each revision was, why it exists and how it ended. */
export function revisionRows(snapshots: readonly RevisionSnapshot[], state: DaemonSetState | undefined): RevisionRow[] {
  return [...snapshots].sort((a, b) => b.revision - a.revision).map((s) => ({
    revision: s.revision,
    current: state?.currentRevision === s.revision,
    pinned: state?.pin?.revision === s.revision || (s.cause === 'rollback' && state?.pin !== undefined && state.currentRevision === s.revision),
    cause: s.cause,
    rollbackTo: s.rollbackTo,
    reason: s.reason,
    commit: s.commit ? { short: s.commit.sha.slice(0, 7), subject: s.commit.subject, author: s.commit.author } : undefined,
    appliedAt: s.appliedAt,
    outcome: s.outcome,
    outcomeReason: s.outcomeReason,
    images: imagesOfManifest(s.manifest),
  }));
}

/**
 * The configuration of two revisions compared, one entry per ConfigMap or Secret either
 * references (by kind, namespace and name): a ConfigMap's data as a unified diff; a Secret only
 * as its digest changed or not (its values are never kept). Older first.
 */
export interface ConfigChange {
  kind: 'ConfigMap' | 'Secret';
  namespace: string;
  name: string;
  change: 'added' | 'removed' | 'changed' | 'unchanged';
  /** ConfigMaps: the diff of their data (empty when unchanged). */
  diff?: string;
  /** The content-addressed copies each revision mounts. */
  copies: { from?: string; to?: string };
}

export function configChanges(from: readonly RevisionConfig[] | undefined, to: readonly RevisionConfig[] | undefined, labels: { before: string; after: string }): ConfigChange[] {
  const id = (c: RevisionConfig) => `${c.kind} ${c.namespace}/${c.name}`;
  const a = new Map((from ?? []).map((c) => [id(c), c]));
  const b = new Map((to ?? []).map((c) => [id(c), c]));
  // A ConfigMap's binaryData is shown as it is kept (base64), under its own key.
  const text = (c: RevisionConfig | undefined) => {
    const shown = { ...(c?.data ?? {}), ...Object.fromEntries(Object.entries(c?.binaryData ?? {}).map(([k, v]) => [`${k} (binary, base64)`, v])) };
    return Object.keys(shown).length ? stringify(shown, { sortMapEntries: true }) : '';
  };
  return [...new Set([...a.keys(), ...b.keys()])].sort().map((k) => {
    const x = a.get(k);
    const y = b.get(k);
    const c = (x ?? y)!;
    const change = !x ? 'added' : !y ? 'removed' : x.digest === y.digest ? 'unchanged' : 'changed';
    const out: ConfigChange = { kind: c.kind, namespace: c.namespace, name: c.name, change, copies: { from: x?.copyName, to: y?.copyName } };
    if (c.kind === 'ConfigMap') out.diff = change === 'unchanged' ? '' : unifiedDiff(text(x), text(y), { before: `${labels.before} ${k}`, after: `${labels.after} ${k}` });
    return out;
  });
}

export interface RevisionDiffView {
  from: number;
  to: number;
  /** The manifests as applied (template and metadata): a unified diff, empty when equal. */
  template: string;
  config: ConfigChange[];
  /** Neither revision records its configuration (snapshots from before configuration was kept). */
  configUnknown: boolean;
}

/** The diff between two revisions, older first: the manifest as applied, and the configuration. */
export function revisionDiffView(a: RevisionSnapshot, b: RevisionSnapshot): RevisionDiffView {
  const [from, to] = a.revision <= b.revision ? [a, b] : [b, a];
  const text = (s: RevisionSnapshot) => stringify(s.manifest, { sortMapEntries: true });
  const labels = { before: `revision ${from.revision}`, after: `revision ${to.revision}` };
  return {
    from: from.revision,
    to: to.revision,
    template: unifiedDiff(text(from), text(to), labels),
    config: configChanges(from.config, to.config, labels),
    configUnknown: from.config === undefined && to.config === undefined,
  };
}

/** The diff between two revisions as text (template, then configuration), older first. */
export function revisionDiff(a: RevisionSnapshot, b: RevisionSnapshot): string {
  const v = revisionDiffView(a, b);
  const template = v.template || `revisions ${v.from} and ${v.to} apply the same manifest\n`;
  if (v.configUnknown) return template;
  const config = v.config.map((c) => {
    const head = `${c.kind} ${c.namespace}/${c.name}: ${c.change}${c.copies.from && c.copies.to && c.copies.from !== c.copies.to ? ` (${c.copies.from} -> ${c.copies.to})` : ''}`;
    if (c.kind === 'Secret') return `${head}${c.change === 'changed' ? ' (values not shown: only their digest is kept)' : ''}\n`;
    return `${head}\n${c.diff ?? ''}`;
  });
  return `${template}\n# configuration\n${config.join('') || 'no ConfigMaps or Secrets referenced\n'}`;
}

// ---- Events --------------------------------------------------------------------------------

export interface EventRow {
  type: string;
  reason: string;
  message: string;
  count: number;
  last: string;
}

/** The DaemonSet's Events, newest first, as `kubectl describe` lists them. */
export function eventRows(events: readonly LiveEvent[], limit = 50): EventRow[] {
  return events
    .map((e) => ({ type: e.type ?? 'Normal', reason: e.reason ?? '', message: e.message ?? '', count: e.count ?? 1, last: e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? '' }))
    .sort((a, b) => (a.last < b.last ? 1 : a.last > b.last ? -1 : 0))
    .slice(0, limit);
}
