/**
 * What each refusal of the API server becomes. The bodies are metav1.Status objects as
 * kube-apiserver writes them (client-node hands the body over as the text it read).
 */
import {
  ApiRequest,
  DEFAULT_RETRY_POLICY,
  errorForAnswer,
  errorForNoAnswer,
  errorForTimeout,
  missingPermission,
  retryDelayMs,
  RetryPolicy,
} from '../../lib/cluster/api-errors';
import { ApplyError, ClusterError, CredentialsRejectedError, DsGitopsError, PermissionDeniedError } from '../../lib/errors';

const SERVER = 'https://127.0.0.1:6443';

const dryRun: ApiRequest = {
  what: 'apply DaemonSet logging/fluentd (dry run)',
  verb: 'patch',
  resource: 'daemonsets',
  group: 'apps',
  namespace: 'logging',
  manifest: 'DaemonSet logging/fluentd (dry run)',
  repeatable: true,
};
const listAll: ApiRequest = { what: 'list DaemonSets', verb: 'list', resource: 'daemonsets', group: 'apps', repeatable: true };
const getOne: ApiRequest = { what: 'get DaemonSet logging/fluentd', verb: 'get', resource: 'daemonsets', group: 'apps', namespace: 'logging', repeatable: true };
const deletePod: ApiRequest = { what: 'delete pod logging/fluentd-x7k2p', verb: 'delete', resource: 'pods', group: '', namespace: 'logging', repeatable: true };
const createEvent: ApiRequest = { what: 'create event on logging/fluentd', verb: 'create', resource: 'events', group: '', namespace: 'logging', repeatable: false };

/** A metav1.Status as the apiserver serialises it. */
function status(code: number, reason: string, message: string, details?: object): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code });
}

const bodies = {
  invalid: status(422, 'Invalid', 'DaemonSet.apps "fluentd" is invalid: spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: "150%": must not be greater than 100%', {
    name: 'fluentd', group: 'apps', kind: 'DaemonSet',
    causes: [{ reason: 'FieldValueInvalid', message: 'Invalid value: "150%": must not be greater than 100%', field: 'spec.updateStrategy.rollingUpdate.maxUnavailable' }],
  }),
  badRequest: status(400, 'BadRequest', 'failed to create typed patch object (logging/fluentd; apps/v1, Kind=DaemonSet): .spec.template.spec.containers: expected list, got &{map[image:fluentd:1.16 name:fluentd]}'),
  namespaceMissing: status(404, 'NotFound', 'namespaces "logging" not found', { name: 'logging', kind: 'namespaces' }),
  forbiddenPatch: status(403, 'Forbidden', 'daemonsets.apps "fluentd" is forbidden: User "daemonset-gitops" cannot patch resource "daemonsets" in API group "apps" in the namespace "logging"', {
    name: 'fluentd', group: 'apps', kind: 'daemonsets',
  }),
  forbiddenList: status(403, 'Forbidden', 'daemonsets.apps is forbidden: User "system:serviceaccount:ci:reconciler" cannot list resource "daemonsets" in API group "apps" at the cluster scope', {
    group: 'apps', kind: 'daemonsets',
  }),
  forbiddenPodDelete: status(403, 'Forbidden', 'pods "fluentd-x7k2p" is forbidden: User "daemonset-gitops" cannot delete resource "pods" in API group "" in the namespace "logging": RBAC: clusterrole.rbac.authorization.k8s.io "daemonset-gitops" not found', {
    name: 'fluentd-x7k2p', kind: 'pods',
  }),
  quota: status(403, 'Forbidden', 'daemonsets.apps "fluentd" is forbidden: exceeded quota: object-counts, requested: count/daemonsets.apps=1, used: count/daemonsets.apps=2, limited: count/daemonsets.apps=2', {
    name: 'fluentd', group: 'apps', kind: 'daemonsets',
  }),
  webhookDenied: status(403, 'Forbidden', 'admission webhook "validation.gatekeeper.sh" denied the request: [require-team-label] you must provide labels: {"team"}'),
  tooMany: status(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds: 1 }),
  webhookUnreachable: status(500, 'InternalError', 'Internal error occurred: failed calling webhook "policy.example.com": failed to call webhook: Post "https://policy.policy-system.svc:443/validate?timeout=10s": context deadline exceeded', {
    causes: [{ message: 'failed calling webhook "policy.example.com": failed to call webhook: Post "https://policy.policy-system.svc:443/validate?timeout=10s": context deadline exceeded' }],
  }),
  timeout: status(504, 'Timeout', 'Timeout: request did not complete within requested timeout - context deadline exceeded', {}),
  unavailable: status(503, 'ServiceUnavailable', 'the server is currently unable to handle the request', { retryAfterSeconds: 3 }),
  notFound: status(404, 'NotFound', 'daemonsets.apps "fluentd" not found', { name: 'fluentd', group: 'apps', kind: 'daemonsets' }),
  preconditionFailed: status(409, 'Conflict', 'Operation cannot be fulfilled on Pod "fluentd-x7k2p": Precondition failed: UID in precondition: 1b2f0e4c-8a1d-4c55-9a43-5b0c3f6b7d10, UID in object meta: 9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a', {
    name: 'fluentd-x7k2p', kind: 'Pod',
  }),
  eventInvalid: status(422, 'Invalid', 'Event "fluentd.17a2b3c4d5e6f708" is invalid: involvedObject.namespace: Invalid value: "other": does not match event.namespace', {
    name: 'fluentd.17a2b3c4d5e6f708', kind: 'Event',
  }),
};

type ErrorClass = new (...args: never[]) => DsGitopsError;

describe('errorForAnswer', () => {
  it.each<[string, ApiRequest, { status: number; body?: string; retryAfter?: string }, ErrorClass, string, boolean, RegExp]>([
    ['a 422 Invalid on a dry run is the manifest\'s fault', dryRun, { status: 422, body: bodies.invalid }, ApplyError, 'ApplyFailed', false,
      /^the API server rejected DaemonSet logging\/fluentd \(dry run\): DaemonSet.apps "fluentd" is invalid: .*maxUnavailable.*must not be greater than 100%$/],
    ['a 400 BadRequest on a dry run is the manifest\'s fault', dryRun, { status: 400, body: bodies.badRequest }, ApplyError, 'ApplyFailed', false,
      /^the API server rejected DaemonSet logging\/fluentd \(dry run\): failed to create typed patch object .*expected list/],
    ['a 404 for the manifest\'s namespace is the manifest\'s fault', dryRun, { status: 404, body: bodies.namespaceMissing }, ApplyError, 'ApplyFailed', false,
      /namespaces "logging" not found/],
    ['an admission webhook\'s denial is the manifest\'s fault (it breaks a cluster policy)', dryRun, { status: 403, body: bodies.webhookDenied }, ApplyError, 'ApplyFailed', false,
      /^the API server rejected DaemonSet logging\/fluentd \(dry run\): admission webhook "validation.gatekeeper.sh" denied the request: .*team/],
    ['a 403 from RBAC on a dry run names the verb, resource, group, namespace and the fix', dryRun, { status: 403, body: bodies.forbiddenPatch }, PermissionDeniedError, 'PermissionDenied', false,
      /^apply DaemonSet logging\/fluentd \(dry run\): permission denied: User "daemonset-gitops" cannot patch daemonsets in API group "apps" in namespace "logging"\. Fix: grant it in the Role or ClusterRole bound to this identity \(a rule with apiGroups: \["apps"\], resources: \["daemonsets"\], verbs: \["patch"\]\); deploy\/rbac.yaml lists every permission daemonset-gitops needs$/],
    ['a 403 on a list across namespaces says it is at the cluster scope', listAll, { status: 403, body: bodies.forbiddenList }, PermissionDeniedError, 'PermissionDenied', false,
      /^list DaemonSets: permission denied: User "system:serviceaccount:ci:reconciler" cannot list daemonsets in API group "apps" at the cluster scope\. Fix: grant it/],
    ['a 403 in the core group says so, without the RBAC reason that follows', deletePod, { status: 403, body: bodies.forbiddenPodDelete }, PermissionDeniedError, 'PermissionDenied', false,
      /cannot delete pods in the core API group \(""\) in namespace "logging"\. Fix: .*apiGroups: \[""\], resources: \["pods"\], verbs: \["delete"\]/],
    ['a 403 that is not RBAC\'s quotes the API server and names the permission asked for', dryRun, { status: 403, body: bodies.quota }, PermissionDeniedError, 'PermissionDenied', false,
      /^apply DaemonSet logging\/fluentd \(dry run\): forbidden: .*exceeded quota: object-counts.*\. Fix: let the identity daemonset-gitops runs as patch daemonsets in API group "apps" in namespace "logging" \(deploy\/rbac.yaml/],
    ['a 401 (client-node drops its body) is rejected credentials, with the fix', listAll, { status: 401 }, CredentialsRejectedError, 'CredentialsRejected', false,
      /^list DaemonSets: the API server at https:\/\/127.0.0.1:6443 rejected this client's credentials \(401 Unauthorized\): .*expired.*Fix: renew the credentials KUBECONFIG points at/],
    ['a 429 on a dry run is overload, not the manifest', dryRun, { status: 429, body: bodies.tooMany, retryAfter: '1' }, ClusterError, 'ClusterUnavailable', true,
      /^apply DaemonSet logging\/fluentd \(dry run\): the API server at https:\/\/127.0.0.1:6443 answered 429 TooManyRequests: Too many requests/],
    ['a 500 "failed calling webhook" on a dry run is a failing cluster, not the manifest', dryRun, { status: 500, body: bodies.webhookUnreachable }, ClusterError, 'ClusterUnavailable', true,
      /answered 500 InternalError: Internal error occurred: failed calling webhook "policy.example.com"/],
    ['a 504 Timeout on a dry run is a failing cluster, not the manifest', dryRun, { status: 504, body: bodies.timeout }, ClusterError, 'ClusterUnavailable', true,
      /answered 504 Timeout: Timeout: request did not complete within requested timeout/],
    ['a 503 is a failing cluster', getOne, { status: 503, body: bodies.unavailable }, ClusterError, 'ClusterUnavailable', true,
      /^get DaemonSet logging\/fluentd: the API server at .* answered 503 ServiceUnavailable: the server is currently unable to handle the request$/],
    ['a 502 with a proxy\'s text body quotes the text', getOne, { status: 502, body: '<html><body>502 Bad Gateway</body></html>' }, ClusterError, 'ClusterUnavailable', true,
      /answered 502: <html><body>502 Bad Gateway<\/body><\/html>$/],
    ['a 404 on a read is a plain not-found the caller can test for', getOne, { status: 404, body: bodies.notFound }, ClusterError, 'ClusterUnavailable', false,
      /^get DaemonSet logging\/fluentd: 404 daemonsets.apps "fluentd" not found$/],
    ['a 409 failed uid precondition is a plain conflict the caller can test for', deletePod, { status: 409, body: bodies.preconditionFailed }, ClusterError, 'ClusterUnavailable', false,
      /^delete pod logging\/fluentd-x7k2p: 409 Operation cannot be fulfilled/],
    ['a 422 on a request that sends no manifest is not an invalid manifest', createEvent, { status: 422, body: bodies.eventInvalid }, ClusterError, 'ClusterUnavailable', false,
      /^create event on logging\/fluentd: 422 Event .* is invalid/],
  ])('%s', (_, req, answer, errorClass, reason, retryable, message) => {
    const err = errorForAnswer(req, answer, SERVER);

    expect(err).toBeInstanceOf(errorClass);
    expect(err.reason).toBe(reason);
    expect(err.retryable).toBe(retryable);
    expect(err.message).toMatch(message);
  });

  it('never turns a 429 or a 5xx on a dry run into an ApplyError', () => {
    for (const code of [429, 500, 502, 503, 504]) {
      const err = errorForAnswer(dryRun, { status: code, body: bodies.timeout }, SERVER);
      expect(err).not.toBeInstanceOf(ApplyError);
      expect(err).toMatchObject({ reason: 'ClusterUnavailable', retryable: true, status: code });
    }
  });

  it('keeps the HTTP status on the errors callers test it on', () => {
    expect(errorForAnswer(getOne, { status: 404, body: bodies.notFound }, SERVER)).toMatchObject({ status: 404 });
    expect(errorForAnswer(deletePod, { status: 409, body: bodies.preconditionFailed }, SERVER)).toMatchObject({ status: 409 });
    expect(errorForAnswer(dryRun, { status: 422, body: bodies.invalid }, SERVER)).toMatchObject({ status: 422 });
    expect(errorForAnswer(dryRun, { status: 403, body: bodies.forbiddenPatch }, SERVER)).toMatchObject({ status: 403 });
  });

  it('takes the wait from the Retry-After header, else from the Status details', () => {
    expect(errorForAnswer(dryRun, { status: 429, body: bodies.tooMany, retryAfter: '2' }, SERVER)).toMatchObject({ retryAfterSeconds: 2 });
    expect(errorForAnswer(getOne, { status: 503, body: bodies.unavailable }, SERVER)).toMatchObject({ retryAfterSeconds: 3 });
    expect(errorForAnswer(getOne, { status: 504, body: bodies.timeout }, SERVER)).toMatchObject({ retryAfterSeconds: undefined });
  });
});

describe('missingPermission', () => {
  it('reads the user, verb, resource, group and namespace of an RBAC refusal', () => {
    expect(missingPermission(JSON.parse(bodies.forbiddenPatch).message)).toEqual({ user: 'daemonset-gitops', verb: 'patch', resource: 'daemonsets', group: 'apps', namespace: 'logging' });
    expect(missingPermission(JSON.parse(bodies.forbiddenList).message)).toEqual({ user: 'system:serviceaccount:ci:reconciler', verb: 'list', resource: 'daemonsets', group: 'apps', namespace: undefined });
    expect(missingPermission('pods "p" is forbidden: User "u" cannot get resource "pods/log" in API group "" in the namespace "n"')).toMatchObject({ resource: 'pods/log', group: '' });
  });

  it('finds nothing in a refusal that is not RBAC\'s', () => {
    expect(missingPermission(JSON.parse(bodies.quota).message)).toBeUndefined();
    expect(missingPermission(undefined)).toBeUndefined();
  });
});

describe('errors for requests without an answer', () => {
  it('reports a connection failure as a retryable ClusterError that names the server', () => {
    const err = errorForNoAnswer(listAll, 'connect ECONNREFUSED 127.0.0.1:6443', SERVER);
    expect(err).toMatchObject({ reason: 'ClusterUnavailable', retryable: true });
    expect(err.message).toBe('list DaemonSets: cannot reach the API server at https://127.0.0.1:6443: connect ECONNREFUSED 127.0.0.1:6443 (check KUBECONFIG and that the cluster is up)');
  });

  it('says a timed-out request was cancelled', () => {
    const err = errorForTimeout(dryRun, SERVER, 30_000);
    expect(err).toMatchObject({ reason: 'ClusterUnavailable', retryable: true });
    expect(err.message).toBe('apply DaemonSet logging/fluentd (dry run): no answer from the API server at https://127.0.0.1:6443 within 30s: the request was cancelled');
  });
});

describe('retryDelayMs', () => {
  const policy: RetryPolicy = { attempts: 4, baseDelayMs: 200, maxDelayMs: 600, maxRetryAfterMs: 5_000 };
  const overloaded = (retryAfterSeconds?: number) => new ClusterError('overloaded', { status: 429, retryable: true, retryAfterSeconds });
  const failed = (error: DsGitopsError, attempt: number, extra: { repeatable?: boolean; timedOut?: boolean } = {}) =>
    ({ error, attempt, repeatable: extra.repeatable ?? true, timedOut: extra.timedOut ?? false });

  it.each([
    ['a request that is not safe to repeat', failed(overloaded(), 1, { repeatable: false })],
    ['a request that timed out (it already took the whole timeout)', failed(errorForTimeout(getOne, SERVER, 30_000), 1, { timedOut: true })],
    ['a permission the identity lacks', failed(errorForAnswer(dryRun, { status: 403, body: bodies.forbiddenPatch }, SERVER), 1)],
    ['an invalid manifest', failed(errorForAnswer(dryRun, { status: 422, body: bodies.invalid }, SERVER), 1)],
    ['rejected credentials', failed(errorForAnswer(listAll, { status: 401 }, SERVER), 1)],
    ['the last allowed attempt', failed(overloaded(), 4)],
    ['a Retry-After longer than the policy waits', failed(overloaded(6), 1)],
  ])('gives up on %s', (_, attempt) => {
    expect(retryDelayMs(attempt, policy, () => 0.5)).toBeUndefined();
  });

  it.each([
    // attempt, random, expected wait: half of the ceiling fixed, half random; the ceiling doubles up to maxDelayMs.
    [1, 0, 100], [1, 1, 200],
    [2, 0, 200], [2, 1, 400],
    [3, 0, 300], [3, 1, 600],
  ])('after attempt %i with random %d waits %i ms', (attempt, random, expected) => {
    expect(retryDelayMs(failed(overloaded(), attempt), policy, () => random)).toBe(expected);
  });

  it('waits at least as long as Retry-After asks', () => {
    expect(retryDelayMs(failed(overloaded(2), 1), policy, () => 0)).toBe(2_000);
  });

  it('retries a 5xx and a connection failure', () => {
    expect(retryDelayMs(failed(errorForAnswer(dryRun, { status: 504, body: bodies.timeout }, SERVER), 1), policy, () => 0)).toBe(100);
    expect(retryDelayMs(failed(errorForNoAnswer(listAll, 'read ECONNRESET', SERVER), 2), policy, () => 0)).toBe(200);
  });

  it('by default tries four times within a few seconds', () => {
    let total = 0;
    for (let attempt = 1; ; attempt++) {
      const wait = retryDelayMs(failed(overloaded(), attempt), DEFAULT_RETRY_POLICY, () => 1);
      if (wait === undefined) {
        expect(attempt).toBe(4);
        break;
      }
      total += wait;
    }
    expect(total).toBeLessThanOrEqual(2_000);
  });
});
