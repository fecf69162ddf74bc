/** Labels and annotations under the product's prefix: the stamp on every applied DaemonSet. */
export const PREFIX = 'daemonset-gitops.io/';

export const MANAGED_BY_LABEL = `${PREFIX}managed-by`;
export const MANAGED_BY_VALUE = 'daemonset-gitops';
/** The label selector for the one LIST that reads every DaemonSet this tool manages. */
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;

export const REVISION_ANNOTATION = `${PREFIX}revision`;
export const COMMIT_ANNOTATION = `${PREFIX}git-commit`;
export const SOURCE_ANNOTATION = `${PREFIX}source-path`;
export const DIGEST_ANNOTATION = `${PREFIX}manifest-digest`;
export const PINNED_ANNOTATION = `${PREFIX}pinned`;
/**
 * Kubernetes' own record of why a revision exists: the DaemonSet controller copies the
 * DaemonSet's annotations into each ControllerRevision it creates, and `kubectl rollout
 * history` prints this one as CHANGE-CAUSE.
 */
export const CHANGE_CAUSE_ANNOTATION = 'kubernetes.io/change-cause';
/** Managed rollouts: the strategy Git declared, kept while the live object runs OnDelete. */
export const DECLARED_STRATEGY_ANNOTATION = `${PREFIX}declared-strategy`;

/** Annotations a manifest in Git may set to choose how it is rolled out. */
export const ROLLOUT_ANNOTATION = `${PREFIX}rollout`;
export const CANARY_ANNOTATION = `${PREFIX}canary`;
export const CANARY_HOLD_ANNOTATION = `${PREFIX}canary-hold`;
export const PAUSED_ANNOTATION = `${PREFIX}paused`;
export const AUTO_ROLLBACK_ANNOTATION = `${PREFIX}auto-rollback`;
export const PROGRESS_DEADLINE_ANNOTATION = `${PREFIX}progress-deadline`;
/** Managed rollouts: the gates that judge the canary and the waves (rollout/gates.ts, docs/gates.md). */
export const GATES_ANNOTATION = `${PREFIX}gates`;
/** Managed rollouts: pull the new images on a wave's nodes before deleting its pods ("true", or the pull deadline). */
export const PRE_PULL_ANNOTATION = `${PREFIX}pre-pull`;

export const USER_ANNOTATIONS = new Set([
  ROLLOUT_ANNOTATION,
  CANARY_ANNOTATION,
  CANARY_HOLD_ANNOTATION,
  PAUSED_ANNOTATION,
  AUTO_ROLLBACK_ANNOTATION,
  PROGRESS_DEADLINE_ANNOTATION,
  GATES_ANNOTATION,
  PRE_PULL_ANNOTATION,
]);

export const FIELD_MANAGER = 'daemonset-gitops';
export const EVENT_COMPONENT = 'daemonset-gitops';
