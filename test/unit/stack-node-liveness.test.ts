/**
 * The stack's node liveness settings (stack/node-liveness.ts). Oracles: Kubernetes 1.34's
 * kube-controller-manager reference (--node-monitor-grace-period defaults to 50s; a kubelet's
 * node lease lasts 40 s and is renewed every quarter of it) and kwok's configuration API
 * (config.kwok.x-k8s.io/v1alpha1 KwokConfiguration: nodeLeaseParallelism,
 * nodePlayStageParallelism and podPlayStageParallelism default to 4).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';

describe('node liveness of the local stack', () => {
  const dir = mkdtempSync(join(tmpdir(), 'liveness-'));
  let mod: typeof import('../../stack/node-liveness');
  beforeAll(() => {
    process.env.STACK_DIR = dir;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require('../../stack/node-liveness');
    });
  });
  afterAll(() => {
    delete process.env.STACK_DIR;
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps a kubelet\'s lease and Kubernetes\' grace period, and kwok\'s and the components\' defaults, when nothing is set', () => {
    const l = mod.nodeLiveness({});
    expect(l).toEqual({ leaseSeconds: 40, gracePeriodSeconds: 50, parallelism: 4, controlPlaneQps: undefined });
    expect(mod.controlPlaneQpsArgs(l)).toEqual([]);
  });

  it('stretches the grace period with the lease, so a node is silent after about five missed renewals', () => {
    const l = mod.nodeLiveness({ STACK_KWOK_LEASE_SECONDS: '120', STACK_KWOK_PARALLELISM: '16', STACK_CONTROL_PLANE_QPS: '100' });
    expect(l.leaseSeconds).toBe(120);
    // kwok renews every 30 s; 150 s is five renewals, as 50 s is for a 40 s lease.
    expect(l.gracePeriodSeconds).toBe(150);
    expect(mod.controlPlaneQpsArgs(l)).toEqual(['--kube-api-qps=100', '--kube-api-burst=200']);
  });

  it.each([
    ['STACK_KWOK_LEASE_SECONDS', '39'],
    ['STACK_KWOK_LEASE_SECONDS', '1.5'],
    ['STACK_KWOK_PARALLELISM', '0'],
    ['STACK_KWOK_PARALLELISM', 'many'],
    ['STACK_CONTROL_PLANE_QPS', '-1'],
  ])('refuses %s=%s, naming the variable and the range', (name, value) => {
    expect(() => mod.nodeLiveness({ [name]: value })).toThrow(new RegExp(`^${name}=${value.replace('.', '\\.')}: expected a whole number from \\d+ to \\d+`));
  });

  it('writes a KwokConfiguration kwok reads its workers from, named by the value so a change restarts kwok', () => {
    const file = mod.kwokConfigFile(mod.nodeLiveness({ STACK_KWOK_PARALLELISM: '16' }));
    expect(file).toBe(join(dir, 'config', 'kwok-parallelism-16.yaml'));
    expect(parse(readFileSync(file, 'utf8'))).toEqual({
      apiVersion: 'config.kwok.x-k8s.io/v1alpha1',
      kind: 'KwokConfiguration',
      options: { nodeLeaseParallelism: 16, nodePlayStageParallelism: 16, podPlayStageParallelism: 16 },
    });
  });
});
