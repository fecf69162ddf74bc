/**
 * Benchmark: the memory a managed rollout's watch caches hold at fleet scale, with the objects
 * as the API server sends them and as the caches keep them (lib/cluster/client.ts, `slimmed`:
 * no managedFields, no node status.images). N nodes shaped like EKS worker nodes (the labels,
 * conditions and addresses a kubelet reports, 40 cached images with two names each, the
 * managedFields of the kubelet, the node controller and the CNI), and one DaemonSet pod per node
 * with the managedFields of the controller and the kubelet, go through the real WatchCache
 * (a LIST, no watch events); the heap it retains is measured after a full GC.
 *
 *   npm run bench:node-cache              # N = 2000
 *   npm run bench:node-cache -- 500
 */
import { cpus, loadavg } from 'node:os';
import { execFileSync } from 'node:child_process';
import { slimmed } from '../lib/cluster/client';
import { Keyed, WatchCache } from '../lib/cluster/watch-cache';
import { repoRoot } from '../stack/paths';
import { benchReport } from './report';

benchReport();

const gc = (globalThis as { gc?: () => void }).gc;

function managedFields(managers: string[], fields: number): unknown[] {
  return managers.map((manager, i) => ({
    manager, operation: i === 0 ? 'Update' : 'Apply', apiVersion: 'v1', time: '2026-12-01T10:00:00Z', fieldsType: 'FieldsV1',
    fieldsV1: Object.fromEntries(Array.from({ length: fields }, (_, f) => [`f:field-${manager}-${f}`, { '.': {}, [`f:sub-${f}`]: {} }])),
    ...(i > 0 ? { subresource: 'status' } : {}),
  }));
}

function node(i: number): Keyed {
  const name = `ip-10-0-${i >> 8}-${i & 255}.eu-west-1.compute.internal`;
  return {
    metadata: {
      name, uid: `uid-node-${i}`, resourceVersion: String(1000 + i), creationTimestamp: '2026-12-01T10:00:00Z',
      labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'node.kubernetes.io/instance-type': 'm6i.xlarge', 'topology.kubernetes.io/zone': `eu-west-1${'abc'[i % 3]}`, 'eks.amazonaws.com/nodegroup': 'workers', 'eks.amazonaws.com/capacityType': 'ON_DEMAND' },
      annotations: { 'alpha.kubernetes.io/provided-node-ip': `10.0.${i >> 8}.${i & 255}`, 'node.alpha.kubernetes.io/ttl': '0', 'volumes.kubernetes.io/controller-managed-attach-detach': 'true' },
      managedFields: managedFields(['kubelet', 'kube-controller-manager', 'aws-node'], 30),
    } as Keyed['metadata'],
    spec: { providerID: `aws:///eu-west-1a/i-0${i.toString(16).padStart(16, '0')}`, podCIDR: undefined },
    status: {
      capacity: { cpu: '4', memory: '15896064Ki', pods: '58', 'ephemeral-storage': '83873772Ki' },
      allocatable: { cpu: '3920m', memory: '14879232Ki', pods: '58', 'ephemeral-storage': '76224326324' },
      conditions: ['MemoryPressure', 'DiskPressure', 'PIDPressure', 'Ready'].map((type) => ({ type, status: type === 'Ready' ? 'True' : 'False', lastHeartbeatTime: '2026-12-06T10:00:00Z', lastTransitionTime: '2026-12-01T10:00:00Z', reason: `Kubelet${type}`, message: `kubelet reports ${type}` })),
      addresses: [{ type: 'InternalIP', address: `10.0.${i >> 8}.${i & 255}` }, { type: 'Hostname', address: name }],
      nodeInfo: { kubeletVersion: 'v1.34.4-eks', containerRuntimeVersion: 'containerd://1.7.27', osImage: 'Amazon Linux 2023', kernelVersion: '6.1.0', architecture: 'amd64', operatingSystem: 'linux', machineID: `m${i}`, systemUUID: `s${i}`, bootID: `b${i}`, kubeProxyVersion: '' },
      images: Array.from({ length: 40 }, (_, k) => ({
        names: [`602401143452.dkr.ecr.eu-west-1.amazonaws.com/image-${k}@sha256:${String(k).padStart(64, 'a')}`, `602401143452.dkr.ecr.eu-west-1.amazonaws.com/image-${k}:v1.${k}.0-eksbuild.1`],
        sizeBytes: 10_000_000 + k,
      })),
    },
  } as Keyed;
}

function pod(i: number): Keyed {
  return {
    metadata: {
      name: `agent-${i.toString(36).padStart(5, '0')}`, namespace: 'logging', uid: `uid-pod-${i}`, resourceVersion: String(5000 + i),
      labels: { app: 'agent', 'controller-revision-hash': '6d4f8b7c9', 'pod-template-generation': '3' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: 'uid-ds', controller: true, blockOwnerDeletion: true }],
      managedFields: managedFields(['kube-controller-manager', 'kubelet'], 25),
    } as Keyed['metadata'],
    spec: { nodeName: `ip-10-0-${i >> 8}-${i & 255}.eu-west-1.compute.internal`, containers: [{ name: 'agent', image: 'registry.example.com/agent:2.0', resources: { requests: { cpu: '50m', memory: '64Mi' } } }] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }, { type: 'ContainersReady', status: 'True' }], containerStatuses: [{ name: 'agent', ready: true, restartCount: 0, image: 'registry.example.com/agent:2.0', imageID: 'sha256:abc' }] },
  } as Keyed;
}

async function retained(n: number, keep: (o: Keyed) => Keyed): Promise<{ heapMiB: number; items: number }> {
  gc!();
  const before = process.memoryUsage().heapUsed;
  // As the API server's JSON arrives: parsed from text, so nothing is shared with the generator.
  const listOf = (make: (i: number) => Keyed) => JSON.parse(JSON.stringify(Array.from({ length: n }, (_, i) => make(i)))) as Keyed[];
  const caches = await Promise.all([node, pod].map((make) => WatchCache.start<Keyed>({
    list: async () => ({ items: listOf(make).map(keep), resourceVersion: '1' }),
    watch: () => () => undefined,
  })));
  gc!();
  const heap = process.memoryUsage().heapUsed - before;
  const items = caches.reduce((c, x) => c + x.items().length, 0);
  for (const c of caches) c.stop();
  return { heapMiB: heap / 2 ** 20, items };
}

async function main(): Promise<void> {
  if (!gc) throw new Error('run with node --expose-gc (npm run bench:node-cache does)');
  const n = Number(process.argv[2] ?? 2000);
  const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
  console.log(`bench:node-cache at commit ${head}, ${new Date().toISOString()}; node ${process.version}, ${cpus().length} cores, load average ${loadavg()[0].toFixed(1)}`);
  console.log(`one node (JSON): ${JSON.stringify(node(0)).length} bytes as sent, ${JSON.stringify(slimmed(node(0))).length} as cached; one pod: ${JSON.stringify(pod(0)).length} as sent, ${JSON.stringify(slimmed(pod(0))).length} as cached`);
  const whole = await retained(n, (o) => o);
  const slim = await retained(n, slimmed);
  console.log(`${n} nodes and ${n} pods in the watch caches (${whole.items} objects): heap retained ${whole.heapMiB.toFixed(1)} MiB as sent, ${slim.heapMiB.toFixed(1)} MiB as cached`);
  console.log('\nReproduce: npm ci && npm run bench:node-cache');
}

main().then(() => process.exit(0), (err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
