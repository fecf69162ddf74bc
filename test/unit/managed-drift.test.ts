import { changedOutsideSinceApply, isPaused } from '../../lib/rollout/managed';
import { specChangedByOthersSinceApply } from '../../lib/apply';
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

/*
 * A run killed between its apply and its record: the next pass takes the live generation as the
 * one this tool left only when managedFields show no other field manager writing the spec at or
 * after this tool's apply.
 */
describe('specChangedByOthersSinceApply', () => {
  const ours = { manager: 'daemonset-gitops', operation: 'Apply', time: '2025-03-01T10:00:05Z', fieldsV1: { 'f:metadata': {}, 'f:spec': {} } };
  const withFields = (...entries: object[]) => ({ metadata: { name: 'agent', managedFields: entries } });

  it.each<[string, object[], boolean]>([
    ['only this tool\'s apply', [ours], false],
    ['kubectl set image after the apply', [ours, { manager: 'kubectl-set', operation: 'Update', time: '2025-03-01T10:00:09Z', fieldsV1: { 'f:spec': { 'f:template': {} } } }], true],
    ['kubectl set image in the same second (times are whole seconds)', [ours, { manager: 'kubectl-set', operation: 'Update', time: '2025-03-01T10:00:05Z', fieldsV1: { 'f:spec': {} } }], true],
    ['a manager that wrote the spec before the apply', [ours, { manager: 'kubectl-rollout', operation: 'Update', time: '2025-03-01T09:00:00Z', fieldsV1: { 'f:spec': {} } }], false],
    ['the controller\'s status after the apply', [ours, { manager: 'kube-controller-manager', operation: 'Update', subresource: 'status', time: '2025-03-01T10:00:09Z', fieldsV1: { 'f:status': {} } }], false],
    ['a label by hand after the apply (no spec field)', [ours, { manager: 'kubectl-label', operation: 'Update', time: '2025-03-01T10:00:09Z', fieldsV1: { 'f:metadata': {} } }], false],
    ['no apply of this tool to compare with', [{ manager: 'kubectl-client-side-apply', operation: 'Update', time: '2025-03-01T09:00:00Z', fieldsV1: { 'f:spec': {} } }], true],
  ])('%s', (_what, entries, changed) => {
    expect(specChangedByOthersSinceApply(withFields(...entries))).toBe(changed);
  });
});

describe('isPaused', () => {
  it.each<[string, boolean, boolean, { restores?: boolean } | undefined, boolean]>([
    ['the manifest\'s pause annotation', true, false, undefined, true],
    ['a pause by hand', false, true, undefined, true],
    ['a rollback restoring a revision whose manifest was paused (its repairs must not wait)', true, false, { restores: true }, false],
    ['a rollback paused by hand', false, true, { restores: true }, true],
    ['nothing', false, false, {}, false],
  ])('%s', (_what, annotation, byHand, checkpoint, paused) => {
    expect(isPaused(annotation, byHand, checkpoint)).toBe(paused);
  });
});
