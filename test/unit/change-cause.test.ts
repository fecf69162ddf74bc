import { CHANGE_CAUSE_MAX, changeCauseOf } from '../../lib/plan/change-cause';

const commit = { sha: '4f2d9c81e0b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3', subject: 'fluent-bit 3.1.10: fix the multiline parser' };

describe('changeCauseOf', () => {
  it.each([
    ['create', '4f2d9c8 fluent-bit 3.1.10: fix the multiline parser'],
    ['git-change', '4f2d9c8 fluent-bit 3.1.10: fix the multiline parser'],
    ['drift-correction', '4f2d9c8 fluent-bit 3.1.10: fix the multiline parser (restored after a change outside Git)'],
  ] as const)('names the short commit and its subject for %s', (cause, expected) => {
    expect(changeCauseOf({ cause, commit })).toBe(expected);
  });

  it('names the restored revision, who asked and why for a rollback', () => {
    expect(changeCauseOf({ cause: 'rollback', commit, rollbackTo: 3, by: 'alice', reason: '3.1.10 drops logs' }))
      .toBe('rollback to revision 3 by alice: 3.1.10 drops logs');
  });

  it('does not repeat a rollback\'s default reason, and leaves out an unknown requester', () => {
    expect(changeCauseOf({ cause: 'rollback', rollbackTo: 3, reason: 'rollback to revision 3' })).toBe('rollback to revision 3');
  });

  it('has nothing to say without a commit', () => {
    expect(changeCauseOf({ cause: 'create' })).toBeUndefined();
  });

  it('keeps a multi-line reason on one line and clips what kubectl would print too long', () => {
    const out = changeCauseOf({ cause: 'rollback', rollbackTo: 1, by: 'bob', reason: `line one\nline two ${'x'.repeat(400)}` })!;

    expect(out).toMatch(/^rollback to revision 1 by bob: line one line two x+…$/);
    expect(out).toHaveLength(CHANGE_CAUSE_MAX);
  });
});
