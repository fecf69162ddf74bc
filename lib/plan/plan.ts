/**
 * PURE planning: desired (Git) + live (cluster) + recorded (S3) -> one action per DaemonSet.
 *
 * Planning happens in two steps around the one piece of I/O it needs, the server-side
 * dry run: `triage` decides everything it can without the API server (pinned, invalid,
 * orphaned, and the cheap steady-state case) and says which DaemonSets need a dry run;
 * `decide` turns a dry-run result into the action.
 */
import { stringify } from 'yaml';
import { namespaceAllowed, Policy } from '../config';
import type { LiveDaemonSet } from '../cluster/types';
import { CHANGE_CAUSE_ANNOTATION, COMMIT_ANNOTATION, REVISION_ANNOTATION } from '../labels';
import { canonicalJson } from '../k8s-values';
import { DesiredDaemonSet, ManifestProblem, where } from '../source/manifest';
import type { Cause, DaemonSetState } from '../store/records';
import { unifiedDiff } from './diff';
import { render } from './render';

export type PlanAction = 'create' | 'update' | 'update-metadata' | 'unchanged' | 'drifted' | 'pinned' | 'invalid' | 'orphaned';

export interface Observed {
  key: string;
  namespace: string;
  name: string;
  desired?: DesiredDaemonSet;
  /** Problems found in Git for this namespace/name. */
  problems: ManifestProblem[];
  live?: LiveDaemonSet;
  state?: DaemonSetState;
}

export interface PlanItem {
  key: string;
  namespace: string;
  name: string;
  action: PlanAction;
  cause?: Cause;
  /** Whether this pass changes the cluster for it. */
  apply: boolean;
  /** Delete it (an orphan, with PRUNE on). */
  prune?: boolean;
  /** A pin that Git's new digest releases in this pass. */
  releasesPin?: boolean;
  /** A `rollback --recreate` that stopped between its delete and its apply: this pass applies that revision (written ahead), not Git's. */
  completesRecreate?: number;
  /** The pinned revision whose DaemonSet was changed outside Git: this pass applies that revision again (its snapshot), not Git's, and keeps the pin. */
  restoresPinned?: number;
  templateChanged?: boolean;
  /**
   * The live generation to record: a dry run found nothing to change although the
   * generation moved since this tool last left it (kubectl rollout restart, kubectl set env
   * of a field Git does not set). Recorded once, it lets the next pass skip the dry run.
   */
  acceptGeneration?: number;
  diff?: string;
  message: string;
  problems: ManifestProblem[];
  /** Why the pass holds this change back (see reconcile's holdUnfilled). */
  held?: string;
}

export type Triage =
  | { key: string; decided: PlanItem }
  | { key: string; dryRun: object };

export interface TriageContext {
  policy: Policy;
  /** False when some file could not be read: what it held is unknown, so nothing is pruned. */
  sourceComplete: boolean;
}

export function liveRevision(live: LiveDaemonSet | undefined): number | undefined {
  const v = live?.metadata.annotations?.[REVISION_ANNOTATION];
  const n = v === undefined ? NaN : Number(v);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

function item(o: Observed, action: PlanAction, message: string, extra: Partial<PlanItem> = {}): PlanItem {
  return { key: o.key, namespace: o.namespace, name: o.name, action, apply: false, message, problems: o.problems, ...extra };
}

/** The pin holds while Git's digest is the one it was pinned at. */
export function pinHolds(state: DaemonSetState | undefined, desired: DesiredDaemonSet | undefined): boolean {
  return Boolean(state?.pin) && (desired?.digest ?? null) === state!.pin!.gitDigest;
}

/**
 * The revision of a `rollback --recreate` that this pass must complete (it is still recorded:
 * nobody unpinned): the DaemonSet is missing (deleted, then the run stopped or its apply
 * failed), or its pin still holds and the DaemonSet is still the object the rollback replaces
 * (the run stopped before deleting it).
 *
 * A missing DaemonSet is re-created from the revision the rollback restores even when a new
 * commit in Git has released the pin since: the nodes have no pods left, so whatever is created
 * reaches every node at once, and only the restored revision has proven itself there. Git's new
 * version then rolls out over it as an update (in waves, for a managed rollout).
 */
export function pendingRecreate(o: Pick<Observed, 'state' | 'desired' | 'live'>): number | undefined {
  const r = o.state?.recreate;
  if (!r) return undefined;
  if (!o.live) return r.revision;
  if (!pinHolds(o.state, o.desired)) return undefined;
  const replacing = r.replacedUid !== undefined && o.live.metadata.uid === r.replacedUid && (liveRevision(o.live) ?? 0) < r.revision;
  return replacing ? r.revision : undefined;
}

/**
 * The pinned revision to restore: the pin holds, and the live DaemonSet, still that revision,
 * had its spec changed outside this tool since it was applied (its generation moved past the
 * recorded one: `kubectl set image` during a rollback), or nobody knows which generation the
 * apply left (none recorded: a run killed between its apply and its record, and another field
 * manager changed the spec since: apply.ts, `specChangedByOthersSinceApply`). A pin keeps Git's
 * version out, not the pinned revision's own: left as it is, the pinned revision's rollout
 * would be judged on someone else's template (and never on its own). No dry run compares the
 * two, so a change that equals the revision (a `kubectl rollout restart`) is re-applied once,
 * which changes nothing that runs, and the generation it returns is recorded.
 */
export function pinnedChangedOutside(o: Pick<Observed, 'state' | 'desired' | 'live'>): number | undefined {
  const s = o.state;
  if (!s || !o.live || !pinHolds(s, o.desired) || s.recreate || liveRevision(o.live) !== s.currentRevision) return undefined;
  const live = o.live.metadata.generation;
  return live !== undefined && (s.generation === undefined || live > s.generation) ? s.currentRevision : undefined;
}

export function triage(o: Observed, ctx: TriageContext): Triage {
  const { policy } = ctx;
  const decided = (action: PlanAction, message: string, extra: Partial<PlanItem> = {}): Triage => ({ key: o.key, decided: item(o, action, message, extra) });

  const recreate = pendingRecreate(o);
  if (recreate !== undefined) {
    const p = o.state!.pin!;
    const how = o.live ? 'the DaemonSet it replaces is still there: deleting it, then creating' : 'the DaemonSet is missing: creating it';
    return decided('create', `completing the rollback to revision ${p.revision} with recreate (written ahead as revision ${recreate}): ${how} from that revision, not from Git`, {
      cause: 'rollback', apply: true, templateChanged: true, completesRecreate: recreate,
    });
  }
  const restore = pinnedChangedOutside(o);
  if (restore !== undefined) {
    const p = o.state!.pin!;
    const applied = o.state!.generation;
    const what = applied === undefined
      ? `revision ${restore}, pinned (${p.reason}), may have been changed outside daemonset-gitops (generation ${o.live!.metadata.generation}; which one its apply left is not recorded)`
      : `revision ${restore}, pinned (${p.reason}), was changed outside daemonset-gitops (generation ${o.live!.metadata.generation}, applied as ${applied})`;
    return decided('drifted', policy.selfHeal ? `${what}: restoring revision ${restore}, keeping the pin` : `${what}; not restored because SELF_HEAL=false`, {
      cause: 'drift-correction', apply: policy.selfHeal, templateChanged: true, ...(policy.selfHeal ? { restoresPinned: restore } : {}),
    });
  }
  if (pinHolds(o.state, o.desired)) {
    const p = o.state!.pin!;
    return decided('pinned', `pinned to revision ${p.revision} since ${p.at}${p.by ? ` by ${p.by}` : ''}: ${p.reason}. Git's version is not applied until it changes or the DaemonSet is unpinned`);
  }
  const errors = o.problems.filter((p) => p.severity === 'error');
  if (errors.length > 0) {
    const first = errors[0];
    return decided('invalid', `${where(first)}: ${first.message}${o.live ? ' (the live DaemonSet is left as it is)' : ''}`);
  }
  if (!namespaceAllowed(policy, o.namespace)) {
    return decided(o.desired ? 'invalid' : 'orphaned', `namespace ${o.namespace} is outside ALLOWED_NAMESPACES: left alone`);
  }
  if (!o.desired) {
    if (!o.live) return decided('unchanged', 'not in Git and not in the cluster');
    if (policy.prune && ctx.sourceComplete) return decided('orphaned', 'no longer in Git: deleting it (PRUNE=true) after a snapshot', { prune: true, apply: true });
    return decided('orphaned', policy.prune
      ? 'no longer in Git, but some manifests could not be read this pass, so nothing is pruned'
      : 'no longer in Git: left running (set PRUNE=true to delete DaemonSets removed from Git)');
  }
  const d = o.desired;
  if (o.live && canonicalJson(o.live.spec.selector) !== canonicalJson(d.manifest.spec.selector)) {
    return decided('invalid', `${where(d.source)}: spec.selector changed (live ${canonicalJson(o.live.spec.selector)}, Git ${canonicalJson(d.manifest.spec.selector)}) but it is immutable: to change it, delete the DaemonSet (kubectl delete ds ${o.name} -n ${o.namespace} --cascade=orphan) so the next pass creates it anew, or give the new version another name`);
  }
  const releasesPin = Boolean(o.state?.pin);
  const s = o.state;
  if (
    o.live && s && !releasesPin &&
    s.appliedDigest === d.digest &&
    o.live.metadata.generation === s.generation &&
    liveRevision(o.live) === s.currentRevision
  ) {
    return decided('unchanged', `revision ${s.currentRevision} is applied`);
  }
  // Stamped as the live object is stamped (revision, commit, change-cause), so that only what
  // Git changes shows as a difference: a pass whose commit moved but not this manifest is a no-op.
  return {
    key: o.key,
    dryRun: render(d.manifest, {
      revision: liveRevision(o.live) ?? 0,
      commit: o.live?.metadata.annotations?.[COMMIT_ANNOTATION],
      changeCause: o.live?.metadata.annotations?.[CHANGE_CAUSE_ANNOTATION],
      digest: d.digest,
      sourcePath: d.source.file,
    }),
  };
}

/** The parts of a DaemonSet that apply can change, in a stable form for comparing and diffing. */
export function comparable(ds: { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: unknown }): object {
  const annotations = { ...ds.metadata.annotations };
  delete annotations['deprecated.daemonset.template.generation'];
  delete annotations['kubectl.kubernetes.io/last-applied-configuration'];
  return JSON.parse(canonicalJson({ metadata: { labels: ds.metadata.labels ?? {}, annotations }, spec: ds.spec }));
}

export function diffText(live: LiveDaemonSet | undefined, next: { metadata: object; spec: unknown }, key: string): string {
  const before = live ? stringify(comparable(live), { sortMapEntries: true }) : '';
  const after = stringify(comparable(next as LiveDaemonSet), { sortMapEntries: true });
  return unifiedDiff(before, after, { before: live ? `live/${key}` : '/dev/null', after: `git/${key}` });
}

/**
 * After a dry run said `unchanged`: the live generation, when recording it is all that keeps
 * `triage`'s steady-state check from passing (same revision, same digest, another generation).
 */
function generationToAccept(o: Observed): number | undefined {
  const s = o.state;
  const generation = o.live?.metadata.generation;
  if (!s || generation === undefined || generation === s.generation) return undefined;
  const sameRevision = s.appliedDigest === o.desired?.digest && liveRevision(o.live) === s.currentRevision;
  return sameRevision ? generation : undefined;
}

export type DryRunResult = { ok: true; object: LiveDaemonSet } | { ok: false; message: string };

export function decide(o: Observed, dryRun: DryRunResult, policy: Pick<Policy, 'selfHeal'>): PlanItem {
  const d = o.desired!;
  const releasesPin = Boolean(o.state?.pin);
  const pinNote = releasesPin ? ` (releases the pin on revision ${o.state!.pin!.revision}: Git's manifest changed)` : '';
  if (!dryRun.ok) {
    return item(o, 'invalid', `${where(d.source)}: ${dryRun.message}`, {
      problems: [...o.problems, { file: d.source.file, document: d.source.document, key: o.key, code: 'dry-run-rejected', severity: 'error', message: dryRun.message }],
    });
  }
  const diff = diffText(o.live, dryRun.object, o.key);
  if (!o.live) {
    if (o.state && o.state.appliedDigest === d.digest && !releasesPin) {
      return item(o, 'drifted', policy.selfHeal
        ? `revision ${o.state.currentRevision} was deleted from the cluster outside Git: re-creating it`
        : `revision ${o.state.currentRevision} was deleted from the cluster outside Git; not re-created because SELF_HEAL=false`, {
        cause: 'drift-correction', apply: policy.selfHeal, templateChanged: true, diff,
      });
    }
    return item(o, 'create', `create from ${where(d.source)}${pinNote}`, { cause: 'create', apply: true, templateChanged: true, diff, releasesPin });
  }
  const live = comparable(o.live) as { spec: { template: unknown } };
  const next = comparable(dryRun.object) as { spec: { template: unknown } };
  if (canonicalJson(live) === canonicalJson(next)) {
    if (releasesPin) {
      return item(o, 'update-metadata', `Git's manifest changed and equals what is applied${pinNote}`, { cause: 'git-change', apply: true, templateChanged: false, releasesPin });
    }
    return item(o, 'unchanged', `matches ${where(d.source)}`, { acceptGeneration: generationToAccept(o) });
  }
  const templateChanged = canonicalJson(live.spec.template) !== canonicalJson(next.spec.template);
  const gitChanged = !o.state || o.state.appliedDigest !== d.digest || releasesPin;
  if (gitChanged) {
    const adopted = liveRevision(o.live) === undefined ? ' (adopting a DaemonSet that daemonset-gitops did not create)' : '';
    return item(o, templateChanged ? 'update' : 'update-metadata', `${templateChanged ? 'roll out' : 'update'} ${where(d.source)}${adopted}${pinNote}`, {
      cause: 'git-change', apply: true, templateChanged, diff, releasesPin,
    });
  }
  return item(o, 'drifted', policy.selfHeal
    ? `the live DaemonSet differs from revision ${o.state!.currentRevision} (changed outside Git): restoring it`
    : `the live DaemonSet differs from revision ${o.state!.currentRevision} (changed outside Git); not corrected because SELF_HEAL=false`, {
    cause: 'drift-correction', apply: policy.selfHeal, templateChanged, diff,
  });
}
