import { slimmed } from '../../lib/cluster/client';

describe('slimmed (what the watch caches keep of a node or pod)', () => {
  it('drops managedFields and a node\'s image list, and keeps what scheduling and readiness decisions read', () => {
    const node = {
      metadata: { name: 'n1', labels: { 'kubernetes.io/os': 'linux' }, managedFields: [{ manager: 'kubelet' }] },
      spec: { taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }], unschedulable: false },
      status: { conditions: [{ type: 'Ready', status: 'True' }], images: [{ names: ['a'], sizeBytes: 1 }], allocatable: { cpu: '4' } },
    };
    const kept = slimmed(JSON.parse(JSON.stringify(node)) as typeof node);

    expect(kept).toEqual({
      metadata: { name: 'n1', labels: { 'kubernetes.io/os': 'linux' } },
      spec: node.spec,
      status: { conditions: node.status.conditions, allocatable: { cpu: '4' } },
    });
  });

  it('leaves an object without either as it is', () => {
    const pod = { metadata: { name: 'p', namespace: 'ns' }, status: { phase: 'Running' } };
    expect(slimmed(JSON.parse(JSON.stringify(pod)))).toEqual(pod);
  });
});
