/**
 * The text of `kubernetes.io/change-cause` on an applied DaemonSet. Pure.
 *
 * The DaemonSet controller copies the DaemonSet's annotations into the ControllerRevision it
 * creates for a new template, so `kubectl rollout history ds/NAME` shows this text beside
 * each revision, from the cluster alone: the short commit and its subject for what Git
 * changed, or the rollback with who asked and why.
 */
import type { GitCommit } from '../source/git';
import type { Cause } from '../store/records';

export interface ChangeCauseInput {
  cause: Cause;
  commit?: Pick<GitCommit, 'sha' | 'subject'>;
  /** The stored revision a rollback restores. */
  rollbackTo?: number;
  /** Who asked for the rollback. */
  by?: string;
  reason?: string;
}

/** Long enough for a subject line and a reason; kubectl prints it on one line. */
export const CHANGE_CAUSE_MAX = 250;

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function clip(text: string): string {
  return text.length <= CHANGE_CAUSE_MAX ? text : `${text.slice(0, CHANGE_CAUSE_MAX - 1)}…`;
}

export function changeCauseOf(input: ChangeCauseInput): string | undefined {
  const { cause, commit } = input;
  if (cause === 'rollback') {
    const head = `rollback to revision ${input.rollbackTo ?? '?'}${input.by ? ` by ${oneLine(input.by)}` : ''}`;
    const reason = input.reason ? oneLine(input.reason) : '';
    // The default reason only repeats the head.
    return clip(reason && reason !== `rollback to revision ${input.rollbackTo}` ? `${head}: ${reason}` : head);
  }
  if (!commit) return undefined;
  const what = `${commit.sha.slice(0, 7)} ${oneLine(commit.subject)}`.trim();
  return clip(cause === 'drift-correction' ? `${what} (restored after a change outside Git)` : what);
}
