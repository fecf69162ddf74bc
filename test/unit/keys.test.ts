import fc from 'fast-check';
import { StoreKeys } from '../../lib/store/keys';

describe('StoreKeys', () => {
  const keys = new StoreKeys('daemonset-gitops', 'prod-eu-1');

  it('puts the lease at <prefix>/<cluster>/lease.json', () => {
    expect(keys.lease()).toBe('daemonset-gitops/prod-eu-1/lease.json');
  });

  it('puts revision n at <prefix>/<cluster>/daemonsets/<ns>/<name>/revisions/<n>.json', () => {
    expect(keys.revision('kube-system', 'fluentd', 12)).toBe('daemonset-gitops/prod-eu-1/daemonsets/kube-system/fluentd/revisions/12.json');
  });

  it('puts the state at <prefix>/<cluster>/daemonsets/<ns>/<name>/state.json', () => {
    expect(keys.state('kube-system', 'fluentd')).toBe('daemonset-gitops/prod-eu-1/daemonsets/kube-system/fluentd/state.json');
  });

  it('lists DaemonSets and revisions under prefixes that contain their keys', () => {
    expect(keys.daemonSets()).toBe('daemonset-gitops/prod-eu-1/daemonsets/');
    expect(keys.daemonSet('kube-system', 'fluentd')).toBe('daemonset-gitops/prod-eu-1/daemonsets/kube-system/fluentd/');
    expect(keys.revisions('kube-system', 'fluentd')).toBe('daemonset-gitops/prod-eu-1/daemonsets/kube-system/fluentd/revisions/');
    expect(keys.revision('kube-system', 'fluentd', 1).startsWith(keys.revisions('kube-system', 'fluentd'))).toBe(true);
    expect(keys.state('kube-system', 'fluentd').startsWith(keys.revisions('kube-system', 'fluentd'))).toBe(false);
  });

  it('names the DaemonSet a key of its records belongs to, and none for the cluster\'s own objects', () => {
    expect(keys.daemonSetOf(keys.state('kube-system', 'fluentd'))).toBe('kube-system/fluentd');
    expect(keys.daemonSetOf(keys.revision('logging', 'fluent-bit', 3))).toBe('logging/fluent-bit');
    expect(keys.daemonSetOf(keys.lease())).toBeUndefined();
    expect(keys.daemonSetOf(keys.index())).toBeUndefined();
    expect(keys.daemonSetOf(new StoreKeys('other', 'prod-eu-1').state('kube-system', 'fluentd'))).toBeUndefined();
  });

  it('starts at the cluster when the prefix is empty', () => {
    expect(new StoreKeys('', 'dev').lease()).toBe('dev/lease.json');
  });

  it('keeps clusters apart under one prefix', () => {
    const other = new StoreKeys('daemonset-gitops', 'prod-us-1');

    expect(other.state('kube-system', 'fluentd')).not.toBe(keys.state('kube-system', 'fluentd'));
    expect(other.daemonSets().startsWith(keys.root)).toBe(false);
  });
});

describe('StoreKeys.revisionNumber', () => {
  it('reads back the number of any revision key', () => {
    const keys = new StoreKeys('daemonset-gitops', 'prod-eu-1');
    fc.assert(fc.property(fc.integer({ min: 1, max: 1_000_000_000 }), (n) => StoreKeys.revisionNumber(keys.revision('kube-system', 'fluentd', n)) === n));
  });

  it.each([
    'daemonset-gitops/prod-eu-1/daemonsets/kube-system/fluentd/state.json',
    'daemonset-gitops/prod-eu-1/lease.json',
    'daemonset-gitops/prod-eu-1/daemonsets/kube-system/fluentd/revisions/latest.json',
    'daemonset-gitops/prod-eu-1/daemonsets/kube-system/fluentd/revisions/12.json.tmp',
    'daemonset-gitops/prod-eu-1/daemonsets/kube-system/fluentd/revisions/-1.json',
    'daemonset-gitops/prod-eu-1/daemonsets/kube-system/fluentd/revisions/',
  ])('finds no revision number in %s', (key) => {
    expect(StoreKeys.revisionNumber(key)).toBeUndefined();
  });
});
