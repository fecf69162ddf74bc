import fc from 'fast-check';
import { describeRevisions } from '../../lib/history';

/** Reads "1-4, 7" back into [1, 2, 3, 4, 7]. */
function expand(text: string): number[] {
  return text.split(', ').flatMap((part) => {
    const [from, to = from] = part.split('-').map(Number);
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
}

describe('describeRevisions', () => {
  it.each<[number[], string]>([
    [[], 'none'],
    [[1], '1'],
    [[1, 2], '1-2'],
    [[1, 2, 3, 4, 7], '1-4, 7'],
    [[1, 3, 5], '1, 3, 5'],
    [[2, 3, 5, 6, 9, 10, 11], '2-3, 5-6, 9-11'],
    [[7, 12, 13], '7, 12-13'],
  ])('describes %j as %j', (numbers, text) => {
    expect(describeRevisions(numbers)).toBe(text);
  });

  it('describes any sorted set of revisions so that it reads back to the same set', () => {
    const sorted = fc.uniqueArray(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 60 }).map((a) => a.sort((x, y) => x - y));
    fc.assert(fc.property(sorted, (numbers) => {
      expect(expand(describeRevisions(numbers))).toEqual(numbers);
    }));
  });
});
