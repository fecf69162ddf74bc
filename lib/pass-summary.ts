/**
 * PURE: the record of a pass kept in S3 (store/pass-record.ts) from its report: what a person
 * needs to see what the last pass did and what is wrong, file by file, within a size bound.
 *
 * Assumptions / invariants:
 * - The record is never larger than MAX_PASS_RECORD_BYTES, whatever the report: messages are
 *   cut, and the longest lists lose their least serious entries (counted in `omitted`).
 * - DaemonSets that are unchanged, without a problem, an error, a hold or a rollout under way
 *   are only counted (`quiet`): 300 quiet DaemonSets cost a number, not 300 entries.
 * - The digest covers what is wrong only (the pass's error, the problems, and the entries that
 *   failed, are invalid, held or stalled, or carry a problem), so a quiet pass after one that
 *   applied something has the same digest as that one when it found nothing new wrong (and
 *   writes nothing: the record stays that of the pass that changed something).
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from './k8s-values';
import type { DaemonSetReport, ObjectReport, ReconcileReport } from './report';
import type { ManifestProblem } from './source/manifest';
import type { PassDaemonSet, PassObject, PassProblem, PassRecord } from './store/pass-record';

export const MAX_PASS_RECORD_BYTES = 64 * 1024;
const MAX_MESSAGE_CHARS = 600;
const MAX_PROBLEMS_PER_DAEMONSET = 10;
/** Before the byte bound is even looked at. */
const MAX_LISTED = 500;

function cut(s: string, max = MAX_MESSAGE_CHARS): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

function problemOf(p: ManifestProblem): PassProblem {
  return { file: p.file, ...(p.document !== undefined ? { document: p.document } : {}), ...(p.key ? { key: p.key } : {}), code: p.code, severity: p.severity, message: cut(p.message) };
}

/** Why the pass held a DaemonSet back, if it did. */
function heldReason(d: DaemonSetReport): string | undefined {
  if (d.held) return d.held;
  if (d.error?.reason === 'CompanionFailed') return d.error.message;
  return undefined;
}

/** Whether a DaemonSet's entry says anything beyond "unchanged, all well". */
export function isQuiet(d: DaemonSetReport): boolean {
  return d.action === 'unchanged' && !d.problems?.length && !d.error && !heldReason(d) && (d.rollout === undefined || d.rollout.phase === 'complete');
}

/** Most serious first: failed, invalid, held, stalled; then what changed; then the rest. */
function seriousness(d: PassDaemonSet): number {
  if (d.action === 'failed') return 0;
  if (d.action === 'invalid') return 1;
  if (d.held) return 2;
  if (d.rollout?.phase === 'stalled') return 3;
  if (d.problems?.some((p) => p.severity === 'error')) return 4;
  if (d.applied) return 5;
  return 6;
}

function daemonSetOf(d: DaemonSetReport): PassDaemonSet {
  const held = heldReason(d);
  return {
    key: d.key,
    action: d.action,
    applied: d.applied,
    ...(d.revision !== undefined ? { revision: d.revision } : {}),
    ...(d.previousRevision !== undefined ? { previousRevision: d.previousRevision } : {}),
    ...(d.cause ? { cause: d.cause } : {}),
    ...(d.source ? { source: { file: d.source.file, document: d.source.document } } : {}),
    message: cut(d.message),
    ...(d.problems?.length ? { problems: d.problems.slice(0, MAX_PROBLEMS_PER_DAEMONSET).map(problemOf) } : {}),
    ...(d.rollout ? { rollout: { phase: d.rollout.phase, mode: d.rollout.mode, revision: d.rollout.revision, desired: d.rollout.desired, upToDate: d.rollout.upToDate, available: d.rollout.available } } : {}),
    ...(d.pin ? { pin: { revision: d.pin.revision, reason: cut(d.pin.reason, 200) } } : {}),
    ...(d.error ? { error: { reason: d.error.reason, message: cut(d.error.message) } } : {}),
    ...(held ? { held: cut(held) } : {}),
  };
}

function objectOf(o: ObjectReport): PassObject {
  return {
    id: o.id, kind: o.kind, action: o.action, applied: o.applied,
    source: { file: o.source.file, document: o.source.document },
    message: cut(o.message),
    ...(o.error ? { error: { reason: o.error.reason, message: cut(o.error.message) } } : {}),
  };
}

/** Whether a pass's report is kept as the cluster's last pass: a full pass that ran (not a dry run, not limited, not skipped). */
export function isRecordedPass(report: ReconcileReport, request: { dryRun?: boolean; only?: string[] }): boolean {
  return !request.dryRun && !request.only?.length && report.result !== 'skipped';
}

/** Whether an entry says something is wrong (as opposed to: changed, pinned, rolling). */
function isWrong(d: PassDaemonSet): boolean {
  return seriousness(d) <= 4 || Boolean(d.problems?.length);
}

/** The digest of what is wrong in a pass (see the module comment); counts and messages of rollouts under way are not in it. */
export function passDigest(record: Pick<PassRecord, 'error' | 'daemonSets' | 'objects' | 'problems'>): string {
  const wrong = {
    error: record.error,
    daemonSets: record.daemonSets.filter(isWrong).map((d) => ({ key: d.key, action: d.action, error: d.error, held: d.held, problems: d.problems, stalled: d.rollout?.phase === 'stalled' ? d.rollout.revision : undefined })),
    objects: record.objects.filter((o) => o.action === 'failed').map((o) => ({ id: o.id, error: o.error })),
    problems: record.problems,
  };
  return createHash('sha256').update(canonicalJson(wrong)).digest('hex').slice(0, 32);
}

/** The pass's record: at most MAX_PASS_RECORD_BYTES of JSON (`maxBytes` for tests). */
export function passRecord(report: ReconcileReport, maxBytes = MAX_PASS_RECORD_BYTES): PassRecord {
  const daemonSets = report.daemonSets.filter((d) => !isQuiet(d)).map(daemonSetOf)
    .sort((a, b) => seriousness(a) - seriousness(b) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const objects = (report.objects ?? []).filter((o) => o.action !== 'unchanged').map(objectOf)
    .sort((a, b) => Number(b.action === 'failed') - Number(a.action === 'failed'));
  const problems = [...report.problems].sort((a, b) => Number(b.severity === 'error') - Number(a.severity === 'error')).map(problemOf);
  const commit = report.source?.commit;
  const base = {
    schema: 1 as const,
    cluster: report.cluster,
    runId: report.runId,
    startedAt: report.startedAt,
    finishedAt: report.finishedAt,
    result: report.result,
    ...(report.source ? { source: { url: report.source.url, ref: report.source.ref, path: report.source.path, ...(commit ? { commit: { sha: commit.sha, subject: cut(commit.subject, 200), author: commit.author } } : {}) } } : {}),
    summary: report.summary,
    ...(report.error ? { error: { reason: report.error.reason, message: cut(report.error.message) } } : {}),
    ...(report.stopped ? { stopped: cut(report.stopped.message) } : {}),
    ...(report.preempted ? { preempted: cut(report.preempted) } : {}),
    ...(report.deferred?.length ? { deferred: report.deferred.slice(0, 50) } : {}),
    quiet: report.daemonSets.length - daemonSets.length,
  };
  const keep = { daemonSets: Math.min(daemonSets.length, MAX_LISTED), objects: Math.min(objects.length, MAX_LISTED), problems: Math.min(problems.length, MAX_LISTED) };
  const build = (): PassRecord => {
    const omitted = { daemonSets: daemonSets.length - keep.daemonSets, objects: objects.length - keep.objects, problems: problems.length - keep.problems };
    const body = {
      ...base,
      daemonSets: daemonSets.slice(0, keep.daemonSets),
      objects: objects.slice(0, keep.objects),
      problems: problems.slice(0, keep.problems),
      ...(omitted.daemonSets || omitted.objects || omitted.problems ? { omitted } : {}),
    };
    return { ...body, digest: passDigest(body) };
  };
  let record = build();
  // The longest list gives up its least serious quarter until the record fits.
  while (Buffer.byteLength(JSON.stringify(record)) > maxBytes && keep.daemonSets + keep.objects + keep.problems > 0) {
    const longest = (Object.keys(keep) as (keyof typeof keep)[]).sort((a, b) => keep[b] - keep[a])[0];
    keep[longest] = Math.floor(keep[longest] * 0.75);
    record = build();
  }
  return record;
}
