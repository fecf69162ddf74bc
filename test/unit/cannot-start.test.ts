import { refusalSince, withRefusal } from '../../lib/rollout/cannot-start';
import type { RolloutState } from '../../lib/store/records';

const progressing: RolloutState = {
  revision: 2, mode: 'native', phase: 'progressing', startedAt: '2026-12-06T10:00:00Z', lastProgressAt: '2026-12-06T10:00:00Z',
  message: 'progressing: 0 of 5 updated',
} as RolloutState;
const refused = (count: number, lastAt: string) => ({ message: 'Error creating: pods "a-" is forbidden: error looking up service account n/a: serviceaccount "a" not found', count, lastAt });

describe('why a rollout cannot start', () => {
  it('ignores refusals from before this rollout started (an older revision\'s)', () => {
    expect(refusalSince([refused(3, '2026-12-06T09:00:00Z')], progressing.startedAt)).toBeUndefined();
    expect(refusalSince([refused(3, '2026-12-06T09:00:00Z'), refused(1, '2026-12-06T10:00:05Z')], progressing.startedAt)).toMatchObject({ lastAt: '2026-12-06T10:00:05Z' });
  });

  it('names the Event at the first sight and stays progressing while the controller was refused once', () => {
    const next = withRefusal(progressing, refused(1, '2026-12-06T10:00:01Z'), undefined);
    expect(next.phase).toBe('progressing');
    expect(next.message).toContain('cannot create pods (FailedCreate, 1 time');
    expect(next.message).toContain('serviceaccount "a" not found');
  });

  it('is stalled, with the Event\'s message, once the controller was refused again', () => {
    expect(withRefusal(progressing, refused(4, '2026-12-06T10:00:09Z'), undefined)).toMatchObject({ phase: 'stalled', message: expect.stringMatching(/^stalled: the DaemonSet controller cannot create pods \(FailedCreate, 4 times/) });
    expect(withRefusal(progressing, refused(1, '2026-12-06T10:00:09Z'), refused(1, '2026-12-06T10:00:01Z')).phase).toBe('stalled');
  });

  it('leaves a complete rollout, and one with no refusal, as they are', () => {
    const complete = { ...progressing, phase: 'complete' } as RolloutState;
    expect(withRefusal(complete, refused(9, '2026-12-06T10:00:09Z'), undefined)).toBe(complete);
    expect(withRefusal(progressing, undefined, undefined)).toBe(progressing);
  });
});
