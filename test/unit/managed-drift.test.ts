import { changedOutsideSinceApply } from '../../lib/rollout/managed';
import type { LiveDaemonSet } from '../../lib/cluster/types';

/*
 * The driver judges a revision only on the DaemonSet this tool applied (or accepted) for it:
 * a spec changed by someone else since (the API server moves metadata.generation with every
 * spec change) runs a template that is not the revision's, and nothing is decided on it.
 */
const live = (generation: number | undefined): Pick<LiveDaemonSet, 'metadata'> => ({ metadata: { name: 'agent', namespace: 'agents', ...(generation !== undefined ? { generation } : {}) } });

describe('changedOutsideSinceApply', () => {
  it('names a spec changed since the apply (kubectl set image moved the generation past the one recorded)', () => {
    expect(changedOutsideSinceApply({ currentRevision: 3, generation: 4 }, live(5))).toBe(
      "the DaemonSet's spec was changed outside daemonset-gitops since revision 3 was applied (generation 5, applied as 4): its pods are not judged for revision 3",
    );
  });

  it.each<[string, number | undefined, number | undefined]>([
    ['the generation the apply returned', 4, 4],
    ['a cache that has not seen the apply yet (an older generation)', 4, 3],
    ['a state written before generations were recorded', undefined, 5],
    ['an object without a generation', 4, undefined],
  ])('says nothing for %s', (_what, recorded, seen) => {
    expect(changedOutsideSinceApply({ currentRevision: 3, generation: recorded }, live(seen))).toBeUndefined();
  });
});
