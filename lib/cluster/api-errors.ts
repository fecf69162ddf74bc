/**
 * What the API server's answers mean for this product. PURE: a request's description, the
 * HTTP status and the apiserver's Status body go in; one typed error comes out, and a
 * decision whether and when to send the request again. The adapter (client.ts) does the I/O.
 *
 * Only a refusal of the manifest itself (a validation failure) is the manifest's fault and
 * becomes an ApplyError, which the plan reports as `invalid`. A missing permission, rejected
 * credentials, an overloaded or failing API server, a webhook that cannot be reached: none
 * of these says anything about the manifest, and none may be reported as if it did.
 */
import { ApplyError, ClusterError, CredentialsRejectedError, DsGitopsError, PermissionDeniedError } from '../errors';

/** A request as this product describes it: in words for messages, and in RBAC terms. */
export interface ApiRequest {
  /** What was asked, as a person would say it: `apply DaemonSet kube-system/fluentd (dry run)`. */
  what: string;
  /** The RBAC verb, resource and API group ("" for the core group) the request needs. */
  verb: string;
  resource: string;
  group: string;
  /** Undefined for cluster-scoped and all-namespace requests. */
  namespace?: string;
  /** The manifest from Git the request sends (`DaemonSet kube-system/fluentd (dry run)`), if it sends one. */
  manifest?: string;
  /**
   * Sending it twice has the effect of sending it once: reads, dry runs, server-side apply,
   * deletes with a uid precondition. Creates and unconditional deletes are not.
   */
  repeatable: boolean;
}

/** What came back: the HTTP status, the body as read, and the Retry-After header. */
export interface ApiAnswer {
  status: number;
  body?: unknown;
  retryAfter?: string;
}

/** The fields of a metav1.Status (the apiserver's error body) this product reads. */
export interface ApiStatus {
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    retryAfterSeconds?: number;
    causes?: { reason?: string; message?: string; field?: string }[];
  };
}

/** The permission a 403 says the identity lacks, as the apiserver's RBAC message names it. */
export interface MissingPermission {
  user: string;
  verb: string;
  resource: string;
  group: string;
  /** Undefined when the request was at the cluster scope. */
  namespace?: string;
}

const LONGEST_QUOTED_BODY = 500;

/** The Status in a response body (a JSON string or an object), if it is one. */
export function parseStatus(body: unknown): ApiStatus | undefined {
  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const s = value as ApiStatus & { kind?: unknown };
  return s.kind === 'Status' || typeof s.message === 'string' ? s : undefined;
}

/**
 * The permission named by an RBAC refusal. The apiserver words it as
 * `User "u" cannot VERB resource "R" in API group "G" in the namespace "N"` (or `at the cluster
 * scope`), after `daemonsets.apps "x" is forbidden: ` and before any `: reason`.
 */
export function missingPermission(message: string | undefined): MissingPermission | undefined {
  const m = /User "([^"]*)" cannot (\S+) resource "([^"]+)" in API group "([^"]*)" (?:in the namespace "([^"]*)"|at the cluster scope)/.exec(message ?? '');
  if (!m) return undefined;
  return { user: m[1], verb: m[2], resource: m[3], group: m[4], namespace: m[5] };
}

/** An admission webhook or ValidatingAdmissionPolicy refused the object: the manifest breaks a cluster policy. */
export function isPolicyDenial(message: string | undefined): boolean {
  return /admission webhook "[^"]*" denied the request|ValidatingAdmissionPolicy '[^']*' with binding '[^']*' denied request/.test(message ?? '');
}

/**
 * Whether a refusal of a request that sends a manifest is that manifest's fault:
 * it is malformed (400), invalid (422), too large (413), names a namespace that does not
 * exist (404), or breaks an admission policy (a webhook's or a ValidatingAdmissionPolicy's denial).
 */
export function isManifestRefusal(status: number, message: string | undefined): boolean {
  return status === 400 || status === 404 || status === 413 || status === 422 || isPolicyDenial(message);
}

/** Whether the same request may succeed a moment later: the API server was overloaded or failed. */
export function isTransientStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/** Seconds to wait, from a Retry-After header in seconds, else from the Status details. */
export function retryAfterSeconds(header: string | undefined, status: ApiStatus | undefined): number | undefined {
  if (header !== undefined && /^\s*\d+\s*$/.test(header)) return Number(header);
  const fromDetails = status?.details?.retryAfterSeconds;
  return typeof fromDetails === 'number' && fromDetails >= 0 ? fromDetails : undefined;
}

function bodyText(answer: ApiAnswer, status: ApiStatus | undefined): string {
  if (status?.message) return status.message;
  if (typeof answer.body === 'string' && answer.body.trim()) return answer.body.trim().slice(0, LONGEST_QUOTED_BODY);
  return `HTTP ${answer.status}`;
}

function groupText(group: string): string {
  return group === '' ? 'the core API group ("")' : `API group "${group}"`;
}

function permissionDenied(req: ApiRequest, message: string, cause: unknown): PermissionDeniedError {
  const p = missingPermission(message);
  if (!p) {
    return new PermissionDeniedError(
      `${req.what}: forbidden: ${message}. Fix: let the identity daemonset-gitops runs as ${req.verb} ${req.resource} in ${groupText(req.group)}` +
        `${req.namespace ? ` in namespace "${req.namespace}"` : ''} (deploy/rbac.yaml lists every permission it needs), or change the policy that refuses it`,
      cause,
    );
  }
  const where = p.namespace === undefined ? 'at the cluster scope' : `in namespace "${p.namespace}"`;
  return new PermissionDeniedError(
    `${req.what}: permission denied: User "${p.user}" cannot ${p.verb} ${p.resource} in ${groupText(p.group)} ${where}. ` +
      `Fix: grant it in the Role or ClusterRole bound to this identity (a rule with apiGroups: ["${p.group}"], resources: ["${p.resource}"], verbs: ["${p.verb}"]); ` +
      'deploy/rbac.yaml lists every permission daemonset-gitops needs',
    cause,
  );
}

/** The typed error for an answer that is not a success. */
export function errorForAnswer(req: ApiRequest, answer: ApiAnswer, server: string, cause?: unknown): DsGitopsError {
  const { status } = answer;
  const parsed = parseStatus(answer.body);
  const message = bodyText(answer, parsed);
  if (status === 401) {
    return new CredentialsRejectedError(
      `${req.what}: the API server at ${server} rejected this client's credentials (401 Unauthorized): the token or client certificate in KUBECONFIG has expired or is not one this cluster trusts. ` +
        'Fix: renew the credentials KUBECONFIG points at (on EKS, check EKS_CLUSTER_NAME and that the function\'s IAM role has an access entry for the cluster)',
      cause,
    );
  }
  if (req.manifest !== undefined && isManifestRefusal(status, message)) {
    return new ApplyError(`the API server rejected ${req.manifest}: ${message}`, { status, cause });
  }
  if (status === 403) return permissionDenied(req, message, cause);
  if (isTransientStatus(status)) {
    const wait = retryAfterSeconds(answer.retryAfter, parsed);
    return new ClusterError(
      `${req.what}: the API server at ${server} answered ${status}${parsed?.reason ? ` ${parsed.reason}` : ''}: ${message}`,
      { status, retryable: true, retryAfterSeconds: wait, cause },
    );
  }
  return new ClusterError(`${req.what}: ${status} ${message}`, { status, retryable: false, cause });
}

/** The error for a request that got no HTTP answer at all (refused connection, reset, TLS failure). */
export function errorForNoAnswer(req: ApiRequest, reason: string, server: string, cause?: unknown): ClusterError {
  return new ClusterError(`${req.what}: cannot reach the API server at ${server}: ${reason} (check KUBECONFIG and that the cluster is up)`, { retryable: true, cause });
}

/** The error for a request cancelled because no answer came in time. */
export function errorForTimeout(req: ApiRequest, server: string, timeoutMs: number, cause?: unknown): ClusterError {
  return new ClusterError(`${req.what}: no answer from the API server at ${server} within ${timeoutMs / 1000}s: the request was cancelled`, { retryable: true, cause });
}

export interface RetryPolicy {
  /** Attempts in all, the first one included. */
  attempts: number;
  /** The longest wait before the second attempt; it doubles for each further attempt, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A Retry-After longer than this is left to the next pass rather than waited out in this one. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 4, baseDelayMs: 250, maxDelayMs: 4_000, maxRetryAfterMs: 10_000 };

export interface FailedAttempt {
  error: DsGitopsError;
  /** Attempts made so far, the failed one included (1 after the first). */
  attempt: number;
  repeatable: boolean;
  /** The client gave up waiting and cancelled the request. */
  timedOut: boolean;
}

/**
 * How long to wait before sending a failed request again, or undefined to give up now.
 *
 * Assumptions / invariants:
 * - Only a request whose repetition is harmless is sent again (`repeatable`), and only for a
 *   retryable error: overload (429), a server failure (5xx) or no answer.
 * - A request that timed out is not sent again in this pass: each try already cost the whole
 *   timeout, and the pass has a budget. The next pass tries again.
 * - The wait grows exponentially with "equal jitter" (half fixed, half random), so clients
 *   that failed together do not come back together, and a wait never shrinks to nothing.
 * - A Retry-After is a floor; one longer than the policy allows ends the attempts.
 */
export function retryDelayMs(failed: FailedAttempt, policy: RetryPolicy, random: () => number): number | undefined {
  if (!failed.repeatable || failed.timedOut || !failed.error.retryable) return undefined;
  if (failed.attempt >= policy.attempts) return undefined;
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (failed.attempt - 1));
  const jittered = ceiling / 2 + Math.min(Math.max(random(), 0), 1) * (ceiling / 2);
  const asked = failed.error instanceof ClusterError && failed.error.retryAfterSeconds !== undefined ? failed.error.retryAfterSeconds * 1000 : 0;
  if (asked > policy.maxRetryAfterMs) return undefined;
  return Math.max(asked, jittered);
}
