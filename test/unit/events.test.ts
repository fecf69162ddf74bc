import { InvalidRequestError } from '../../lib/errors';
import { historyEvent, parseEvent, parseReconcileEvent, rollbackEvent, statusEvent, targetEvent } from '../../lib/events';

/** An EventBridge schedule event as Lambda receives it. */
const scheduleEvent = {
  version: '0',
  id: '53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa',
  'detail-type': 'Scheduled Event',
  source: 'aws.events',
  account: '123456789012',
  time: '2025-03-01T10:00:00Z',
  region: 'eu-west-1',
  resources: ['arn:aws:events:eu-west-1:123456789012:rule/daemonset-gitops-reconcile'],
  detail: {},
};

/** The message of the InvalidRequestError that `parse` throws, or a failure when it throws none. */
function refusal(parse: () => unknown): string {
  try {
    parse();
  } catch (err) {
    if (err instanceof InvalidRequestError) return err.message;
    throw err;
  }
  throw new Error('expected the event to be refused');
}

const parseRollback = (e: unknown) => parseEvent(rollbackEvent, e, 'rollback', '{"namespace": "kube-system", "name": "fluentd"}');
const parseHistory = (e: unknown) => parseEvent(historyEvent, e, 'history', '{"namespace": "kube-system", "name": "fluentd", "limit": 10}');
const parseTarget = (e: unknown) => parseEvent(targetEvent, e, 'unpin', '{"namespace": "kube-system", "name": "fluentd"}');

describe('parseReconcileEvent', () => {
  it('runs a plain reconcile for an EventBridge schedule event', () => {
    expect(parseReconcileEvent(scheduleEvent)).toEqual({});
  });

  it.each([
    ['its source', { source: 'aws.events', detail: {} }],
    ['its detail-type', { 'detail-type': 'Scheduled Event', detail: {} }],
  ])('recognises a schedule event by %s, ignoring fields a manual event would not have', (_, event) => {
    expect(parseReconcileEvent(event)).toEqual({});
  });

  it.each([undefined, null, '', {}])('runs a plain reconcile for an empty event (%j)', (event) => {
    expect(parseReconcileEvent(event)).toEqual({});
  });

  it('accepts a dry run limited to some DaemonSets', () => {
    const event = { dryRun: true, only: ['kube-system/fluentd', 'monitoring/node-exporter'], wait: false };

    expect(parseReconcileEvent(event)).toEqual(event);
  });

  it('refuses an unknown field, naming it and showing an example', () => {
    const message = refusal(() => parseReconcileEvent({ dryrun: true }));

    expect(message).toMatch(/^invalid reconcile event: /);
    expect(message).toContain('dryrun');
    expect(message).toContain('Expected for example {"dryRun": true, "only": ["kube-system/fluentd"]}');
  });

  it.each(['fluentd', 'kube-system/', '/fluentd', 'Kube-System/fluentd', 'kube-system/fluentd/extra', 'kube_system/fluentd'])(
    'refuses %j in only: it must be namespace/name',
    (bad) => {
      const message = refusal(() => parseReconcileEvent({ only: ['kube-system/ok', bad] }));

      expect(message).toContain('only.1: must be namespace/name');
    },
  );

  it.each([{ dryRun: 'yes' }, { only: 'kube-system/fluentd' }, ['kube-system/fluentd'], 'reconcile'])('refuses a malformed event %j', (event) => {
    expect(refusal(() => parseReconcileEvent(event))).toMatch(/^invalid reconcile event: /);
  });
});

describe('parseEvent with rollbackEvent', () => {
  it('accepts a rollback to a chosen revision with a reason', () => {
    const event = { namespace: 'kube-system', name: 'fluentd', toRevision: 3, reason: 'v1.17 crashes', recreate: true, wait: false };

    expect(parseRollback(event)).toEqual(event);
  });

  it('accepts a rollback to the previous revision', () => {
    expect(parseRollback({ namespace: 'kube-system', name: 'fluentd' })).toEqual({ namespace: 'kube-system', name: 'fluentd' });
  });

  it.each([0, -1, 1.5, '3'])('refuses toRevision %j', (toRevision) => {
    const message = refusal(() => parseRollback({ namespace: 'kube-system', name: 'fluentd', toRevision }));

    expect(message).toMatch(/^invalid rollback event: toRevision: /);
  });

  it('names every missing field', () => {
    const message = refusal(() => parseRollback({}));

    expect(message).toContain('namespace: ');
    expect(message).toContain('name: ');
    expect(message).toContain('Expected for example {"namespace": "kube-system", "name": "fluentd"}');
  });

  it.each([
    ['namespace', 'Kube_System', 'namespace: must be a namespace name'],
    ['name', 'Fluentd', 'name: must be a DaemonSet name'],
  ])('refuses a %s that is not a Kubernetes name', (field, value, says) => {
    const message = refusal(() => parseRollback({ namespace: 'kube-system', name: 'fluentd', [field]: value }));

    expect(message).toContain(says);
  });

  it('refuses an unknown field', () => {
    expect(refusal(() => parseRollback({ namespace: 'kube-system', name: 'fluentd', revision: 3 }))).toContain('revision');
  });

  it('refuses a reason longer than 500 characters', () => {
    expect(refusal(() => parseRollback({ namespace: 'kube-system', name: 'fluentd', reason: 'x'.repeat(501) }))).toContain('reason: ');
  });
});

describe('parseEvent with historyEvent', () => {
  it.each([1, 1000])('accepts limit %d', (limit) => {
    expect(parseHistory({ namespace: 'kube-system', name: 'fluentd', limit })).toEqual({ namespace: 'kube-system', name: 'fluentd', limit });
  });

  it.each([0, 1001, 2.5])('refuses limit %d', (limit) => {
    expect(refusal(() => parseHistory({ namespace: 'kube-system', name: 'fluentd', limit }))).toMatch(/^invalid history event: limit: /);
  });
});

describe('parseEvent with targetEvent', () => {
  it('accepts an unpin with a reason', () => {
    expect(parseTarget({ namespace: 'kube-system', name: 'fluentd', reason: 'fixed in Git' })).toEqual({ namespace: 'kube-system', name: 'fluentd', reason: 'fixed in Git' });
  });

  it('refuses a field that belongs to another event', () => {
    expect(refusal(() => parseTarget({ namespace: 'kube-system', name: 'fluentd', toRevision: 2 }))).toMatch(/^invalid unpin event: .*toRevision/);
  });
});

describe('parseEvent with statusEvent', () => {
  it.each([undefined, {}])('accepts %j', (event) => {
    expect(parseEvent(statusEvent, event, 'status', '{}')).toEqual({});
  });

  it('refuses any field', () => {
    expect(refusal(() => parseEvent(statusEvent, { verbose: true }, 'status', '{}'))).toMatch(/^invalid status event: .*verbose/);
  });
});
