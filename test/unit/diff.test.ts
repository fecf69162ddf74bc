import fc from 'fast-check';
import { unifiedDiff } from '../../lib/plan/diff';

const labels = { before: 'live/kube-system/fluentd', after: 'git/kube-system/fluentd' };

/** "1\n2\n…\nn\n" */
function numbered(n: number): string[] {
  return Array.from({ length: n }, (_, i) => String(i + 1));
}

function text(lines: string[]): string {
  return lines.map((l) => `${l}\n`).join('');
}

function hunkHeaders(diff: string): string[] {
  return diff.split('\n').filter((l) => l.startsWith('@@'));
}

/** Applies a unified diff to `before` the way `patch` would, checking every context and removed line. */
function applyPatch(before: string[], diff: string): string[] {
  const lines = diff.split('\n');
  lines.pop(); // the text ends with a newline
  const out: string[] = [];
  let cursor = 0;
  let i = 2; // after the ---/+++ headers
  while (i < lines.length) {
    const m = /^@@ -(\d+),(\d+) \+(\d+),(\d+) @@$/.exec(lines[i]);
    if (!m) throw new Error(`not a hunk header: ${lines[i]}`);
    const [oldStart, oldLen, newStart, newLen] = m.slice(1).map(Number);
    const from = oldLen === 0 ? oldStart : oldStart - 1;
    out.push(...before.slice(cursor, from));
    cursor = from;
    if (newLen > 0 && out.length !== newStart - 1) throw new Error(`hunk ${lines[i]} starts at new line ${out.length + 1}`);
    i++;
    while (i < lines.length && !lines[i].startsWith('@@')) {
      const tag = lines[i][0];
      const line = lines[i].slice(1);
      if (tag === ' ' || tag === '-') {
        if (before[cursor] !== line) throw new Error(`line ${cursor + 1} is ${before[cursor]}, the diff expects ${line}`);
        cursor++;
      }
      if (tag === ' ' || tag === '+') out.push(line);
      i++;
    }
  }
  out.push(...before.slice(cursor));
  return out;
}

describe('unifiedDiff', () => {
  it.each([
    ['two empty texts', ''],
    ['one line', 'image: fluent/fluentd:v1.16\n'],
    ['a whole manifest', text(numbered(40))],
  ])('returns an empty string for equal texts (%s)', (_, same) => {
    expect(unifiedDiff(same, same, labels)).toBe('');
  });

  it('names the two sides in the ---/+++ headers', () => {
    const diff = unifiedDiff('a\n', 'b\n', labels);

    expect(diff.split('\n').slice(0, 2)).toEqual(['--- live/kube-system/fluentd', '+++ git/kube-system/fluentd']);
  });

  it('shows a replaced line as the old line then the new one, with 3 lines of context on each side', () => {
    const before = numbered(10);
    const after = before.map((l) => (l === '5' ? 'five' : l));

    const diff = unifiedDiff(text(before), text(after), labels);

    expect(diff).toBe([
      '--- live/kube-system/fluentd',
      '+++ git/kube-system/fluentd',
      '@@ -2,7 +2,7 @@',
      ' 2',
      ' 3',
      ' 4',
      '-5',
      '+five',
      ' 6',
      ' 7',
      ' 8',
      '',
    ].join('\n'));
  });

  it('lists every removed line of a replaced block before the added ones', () => {
    const before = ['a', 'b', 'old-1', 'old-2', 'c', 'd'];
    const after = ['a', 'b', 'new-1', 'new-2', 'c', 'd'];

    const body = unifiedDiff(text(before), text(after), labels).split('\n').slice(3, -1);

    expect(body).toEqual([' a', ' b', '-old-1', '-old-2', '+new-1', '+new-2', ' c', ' d']);
  });

  it.each([
    ['a line inserted in the middle', (l: string[]) => [...l.slice(0, 5), 'new', ...l.slice(5)], '@@ -3,6 +3,7 @@'],
    ['a line deleted in the middle', (l: string[]) => l.filter((x) => x !== '5'), '@@ -2,7 +2,6 @@'],
    ['lines added at the end', (l: string[]) => [...l, '11', '12'], '@@ -8,3 +8,5 @@'],
    ['a line added at the start', (l: string[]) => ['0', ...l], '@@ -1,3 +1,4 @@'],
    ['the first line deleted', (l: string[]) => l.slice(1), '@@ -1,4 +1,3 @@'],
    ['the last line deleted', (l: string[]) => l.slice(0, -1), '@@ -7,4 +7,3 @@'],
  ])('numbers the hunk header as diff -u does for %s', (_, edit, header) => {
    const before = numbered(10);

    const diff = unifiedDiff(text(before), text(edit(before)), labels);

    expect(hunkHeaders(diff)).toEqual([header]);
  });

  it('merges changes separated by 6 unchanged lines into one hunk', () => {
    const before = numbered(16);
    const after = before.map((l) => (l === '2' ? 'X' : l === '9' ? 'Y' : l));

    const diff = unifiedDiff(text(before), text(after), labels);

    expect(hunkHeaders(diff)).toEqual(['@@ -1,12 +1,12 @@']);
    expect(diff).toContain(' 3\n 4\n 5\n 6\n 7\n 8\n-9\n+Y\n');
  });

  it('keeps changes separated by 7 unchanged lines in two hunks', () => {
    const before = numbered(16);
    const after = before.map((l) => (l === '2' ? 'X' : l === '10' ? 'Y' : l));

    const diff = unifiedDiff(text(before), text(after), labels);

    expect(hunkHeaders(diff)).toEqual(['@@ -1,5 +1,5 @@', '@@ -7,7 +7,7 @@']);
    expect(diff).not.toContain(' 6\n');
  });

  it('shifts a later hunk\'s new-side line number by the lines an earlier hunk added', () => {
    const before = numbered(20);
    const after = [...before.slice(0, 2), 'n1', 'n2', ...before.slice(2)].map((l) => (l === '15' ? 'X' : l));

    const diff = unifiedDiff(text(before), text(after), labels);

    expect(hunkHeaders(diff)).toEqual(['@@ -1,5 +1,7 @@', '@@ -12,7 +14,7 @@']);
  });

  it('honours a different amount of context', () => {
    const before = numbered(10);
    const after = before.map((l) => (l === '5' ? 'five' : l));

    const diff = unifiedDiff(text(before), text(after), labels, 1);

    expect(diff.split('\n').slice(2, -1)).toEqual(['@@ -4,3 +4,3 @@', ' 4', '-5', '+five', ' 6']);
  });

  it('shows a text created from nothing as additions only', () => {
    const diff = unifiedDiff('', 'a\nb\nc\n', { before: '/dev/null', after: 'git/kube-system/fluentd' });

    expect(diff).toBe('--- /dev/null\n+++ git/kube-system/fluentd\n@@ -0,0 +1,3 @@\n+a\n+b\n+c\n');
  });

  it('shows a text emptied completely as removals only', () => {
    const diff = unifiedDiff('a\nb\nc\n', '', labels);

    expect(diff).toBe('--- live/kube-system/fluentd\n+++ git/kube-system/fluentd\n@@ -1,3 +0,0 @@\n-a\n-b\n-c\n');
  });

  it('gives a diff that turns the old text into the new one when applied', () => {
    const lines = fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e'), { minLength: 1, maxLength: 30 });
    fc.assert(
      fc.property(lines, lines, (before, after) => {
        const diff = unifiedDiff(text(before), text(after), labels);
        if (before.join('\n') === after.join('\n')) return diff === '';
        expect(applyPatch(before, diff)).toEqual(after);
        return true;
      }),
      { numRuns: 300 },
    );
  });

  it('shows every line of both texts when the context is large enough', () => {
    const lines = fc.array(fc.constantFrom('a', 'b', 'c'), { minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(lines, lines, (before, after) => {
        fc.pre(before.join('\n') !== after.join('\n'));
        const body = unifiedDiff(text(before), text(after), labels, 1000).split('\n').slice(3, -1);
        expect(body.filter((l) => !l.startsWith('+')).map((l) => l.slice(1))).toEqual(before);
        expect(body.filter((l) => !l.startsWith('-')).map((l) => l.slice(1))).toEqual(after);
      }),
    );
  });
});
