/**
 * Further clusters on the local stack (STACK_CLUSTERS=N): cluster 1 is the stack's own; each
 * cluster k = 2…N has its own kube-apiserver (the same etcd, under its own key prefix
 * /registry-k), controller manager, scheduler and kwok with its own nodes, and its own set of
 * kubeconfigs (admin-k, reconciler-k, …). A fleet is then tested against real, separate API
 * servers. A stack brought up without STACK_CLUSTERS runs only cluster 1, as before.
 *
 * Ports stay inside the stack's block of 1000: cluster k takes a slot of four ports at
 * STACK_PORT_BASE + 600 + 10·j (j = k first). The whole block lies in Linux's ephemeral port range,
 * so a port may already be held by some process's outgoing connection (the API server's to etcd,
 * for one); a cluster whose slot is busy moves to the next free one, and the slot it runs on is
 * kept in .stack/config/cluster-k.json so its kubeconfigs stay valid across restarts.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { DEFAULT_RBAC_NAME, DEFAULT_RBAC_USER, rbacYaml } from '../lib/rbac';
import { Component, ControlPlane, controlPlaneComponents } from './components';
import { kubectl } from './kubectl';
import { listStackNodes, setWorkerCount, waitNodesReady } from './nodes';
import { paths } from './paths';
import { kubeconfigPath, writeKubeconfigs } from './pki';
import { runningPid } from './processes';
import { StackPorts } from './versions';

/** The most clusters one stack runs (keeps every port inside the stack's block). */
export const MAX_STACK_CLUSTERS = 9;

/** STACK_CLUSTERS: how many clusters the stack runs; 1 (only the stack's own) unless set. */
export function wantedClusters(env: Record<string, string | undefined> = process.env): number {
  const raw = env.STACK_CLUSTERS?.trim();
  if (!raw) return 1;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_STACK_CLUSTERS) {
    throw new Error(`STACK_CLUSTERS=${raw}: expected a whole number from 1 to ${MAX_STACK_CLUSTERS}`);
  }
  return n;
}

const SLOTS = 30;

function slotFile(k: number): string {
  return join(paths.config, `cluster-${k}.json`);
}

/** The slot cluster k runs on: the one recorded, else k. */
function slotOf(k: number): number {
  if (existsSync(slotFile(k))) {
    const slot = (JSON.parse(readFileSync(slotFile(k), 'utf8')) as { slot?: number }).slot;
    if (Number.isInteger(slot) && slot! >= 0 && slot! < SLOTS) return slot!;
  }
  return k;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Moves cluster k (none of whose components runs) to a slot whose four ports are free now. */
async function chooseFreeSlot(ports: StackPorts, k: number, taken: Set<number>): Promise<void> {
  const current = slotOf(k);
  const order = [current, ...Array.from({ length: SLOTS }, (_, j) => j).filter((j) => j !== current && j > MAX_STACK_CLUSTERS)];
  for (const slot of order) {
    if (taken.has(slot)) continue;
    const first = ports.base + 600 + 10 * slot;
    const free = await Promise.all([0, 1, 2, 3].map((i) => portFree(first + i)));
    if (free.every(Boolean)) {
      taken.add(slot);
      writeFileSync(slotFile(k), JSON.stringify({ slot }));
      return;
    }
  }
  throw new Error(`cluster ${k}: no free ports left in ${ports.base + 600}…${ports.base + 600 + 10 * SLOTS} (STACK_PORT_BASE=${ports.base})`);
}

/** Control plane k (2…MAX_STACK_CLUSTERS) of the stack. */
export function extraControlPlane(ports: StackPorts, k: number): ControlPlane {
  if (!Number.isInteger(k) || k < 2 || k > MAX_STACK_CLUSTERS) throw new Error(`stack cluster ${k}: expected 2 to ${MAX_STACK_CLUSTERS}`);
  const base = ports.base + 600 + 10 * slotOf(k);
  return {
    suffix: `-${k}`,
    apiserver: base,
    controllerManager: base + 1,
    scheduler: base + 2,
    kwok: base + 3,
    etcdPrefix: `/registry-${k}`,
    clusterName: `daemonset-gitops-local-${k}`,
  };
}

/** Where a test or a person finds cluster k's API server: its kubeconfigs and its audit log. */
export interface StackClusterFiles {
  index: number;
  /** system:masters. */
  kubeconfig: string;
  /** The RBAC-limited reconciler identity (what `dsgitops rbac` prints). */
  reconcilerKubeconfig: string;
  auditLog: string;
}

export function stackClusterFiles(k: number): StackClusterFiles {
  const suffix = k === 1 ? '' : `-${k}`;
  return {
    index: k,
    kubeconfig: kubeconfigPath(`admin${suffix}`),
    reconcilerKubeconfig: kubeconfigPath(`reconciler${suffix}`),
    auditLog: join(paths.logs, `audit${suffix}.log`),
  };
}

/** Start groups of cluster k's components: the API server first, then the rest. */
export function extraClusterGroups(k: number): string[][] {
  return [[`kube-apiserver-${k}`], [`kube-controller-manager-${k}`, `kube-scheduler-${k}`, `kwok-${k}`]];
}

export function extraClusterComponents(ports: StackPorts, k: number): Record<string, Component> {
  return controlPlaneComponents(ports, extraControlPlane(ports, k));
}

/** Components of further clusters that have a pid file (started at some time): what `stack:down` stops too. */
export function recordedExtraComponents(): string[] {
  if (!existsSync(paths.pids)) return [];
  return readdirSync(paths.pids)
    .map((f) => /^((?:kube-apiserver|kube-controller-manager|kube-scheduler|kwok)-\d+)\.pid$/.exec(f)?.[1])
    .filter((n): n is string => n !== undefined);
}

/**
 * Makes clusters 2…n run (cluster 1 and etcd must already run): starts what is not healthy,
 * grants the reconciler identity its role and gives each cluster `nodes` workers. Returns the
 * components it started.
 */
export async function ensureExtraClusters(
  ports: StackPorts,
  n: number,
  ensureComponent: (c: Component) => Promise<boolean>,
  nodes = Number(process.env.STACK_CLUSTER_NODES ?? 3),
): Promise<string[]> {
  const started: string[] = [];
  const ks = Array.from({ length: Math.max(0, n - 1) }, (_, i) => i + 2);
  const taken = new Set<number>();
  for (const k of ks) {
    const running = extraClusterGroups(k).flat().some((name) => runningPid(name) !== undefined);
    if (!running) await chooseFreeSlot(ports, k, taken);
    else taken.add(slotOf(k));
  }
  for (const k of ks) writeKubeconfigs(extraControlPlane(ports, k).apiserver, `-${k}`);
  // Clusters come up side by side: each waits only on its own API server.
  await Promise.all(ks.map(async (k) => {
    const all = extraClusterComponents(ports, k);
    const { kubeconfig } = stackClusterFiles(k);
    for (const group of extraClusterGroups(k)) {
      const results = await Promise.all(group.map((name) => ensureComponent(all[name])));
      group.forEach((name, i) => results[i] && started.push(name));
      if (group.includes(`kube-apiserver-${k}`)) {
        kubectl(['apply', '-f', '-'], rbacYaml({ allowedNamespaces: '*', user: DEFAULT_RBAC_USER, name: DEFAULT_RBAC_NAME }), kubeconfig);
      }
    }
    if (listStackNodes(kubeconfig).workers.length === 0) setWorkerCount(nodes, kubeconfig);
    await waitNodesReady(60, kubeconfig);
  }));
  return started;
}
