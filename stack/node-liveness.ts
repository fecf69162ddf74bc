/**
 * How the stack's kwok keeps its nodes alive, and how long the controller manager waits
 * before it calls a silent node NotReady. The defaults are a kubelet's (a 40 s node lease,
 * renewed every quarter of it; a 50 s node-monitor grace period, Kubernetes 1.34's default)
 * and suit the few nodes tests use. Thousands of nodes on a loaded 2-core machine need more
 * room (docs/performance.md, "2,000 nodes"):
 *
 *   STACK_KWOK_LEASE_SECONDS  the node lease duration kwok writes (40 … 600; default 40);
 *                             kwok renews each lease every quarter of it, and the controller
 *                             manager's --node-monitor-grace-period is 1.25 times it (50 s
 *                             at 40), so a node counts as silent after about five missed
 *                             renewals, as with kubelets.
 *   STACK_KWOK_PARALLELISM    kwok's workers for node leases, node stages and pod stages
 *                             (1 … 64; default 4, kwok's own default).
 *   STACK_CONTROL_PLANE_QPS   --kube-api-qps of the controller manager and the scheduler
 *                             (burst twice it; default: theirs, 20 and 50), which bounds how
 *                             fast the DaemonSet controller creates and the scheduler binds pods.
 *
 * None of these changes what a NotReady node is: a node labelled
 * node-not-ready.stage.kwok.x-k8s.io=true still reports Ready False at once (kwok's stage),
 * and a node whose lease stops is still marked Unknown, only after the longer grace period.
 * They are read when a component starts: `npm run stack:up` restarts kwok and the control
 * plane when they differ from what runs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { paths } from './paths';

export interface NodeLiveness {
  leaseSeconds: number;
  /** --node-monitor-grace-period of the controller manager, in seconds. */
  gracePeriodSeconds: number;
  parallelism: number;
  /** undefined: the components' own defaults. */
  controlPlaneQps?: number;
}

function wholeNumber(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number | undefined {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name}=${raw}: expected a whole number from ${min} to ${max} (unset it for the default)`);
  }
  return n;
}

export function nodeLiveness(env: NodeJS.ProcessEnv = process.env): NodeLiveness {
  const leaseSeconds = wholeNumber(env, 'STACK_KWOK_LEASE_SECONDS', 40, 600) ?? 40;
  return {
    leaseSeconds,
    gracePeriodSeconds: Math.ceil(leaseSeconds * 1.25),
    parallelism: wholeNumber(env, 'STACK_KWOK_PARALLELISM', 1, 64) ?? 4,
    controlPlaneQps: wholeNumber(env, 'STACK_CONTROL_PLANE_QPS', 1, 5000),
  };
}

/** --kube-api-qps and --kube-api-burst for the controller manager and the scheduler, when set. */
export function controlPlaneQpsArgs(l: NodeLiveness): string[] {
  return l.controlPlaneQps === undefined ? [] : [`--kube-api-qps=${l.controlPlaneQps}`, `--kube-api-burst=${2 * l.controlPlaneQps}`];
}

/**
 * kwok's own configuration (its workers), written under .stack/config; the file name carries
 * the value, so a changed value changes kwok's arguments and `stack:up` restarts it.
 */
export function kwokConfigFile(l: NodeLiveness): string {
  const file = join(paths.config, `kwok-parallelism-${l.parallelism}.yaml`);
  mkdirSync(paths.config, { recursive: true });
  writeFileSync(file, [
    'apiVersion: config.kwok.x-k8s.io/v1alpha1',
    'kind: KwokConfiguration',
    'options:',
    `  nodeLeaseParallelism: ${l.parallelism}`,
    `  nodePlayStageParallelism: ${l.parallelism}`,
    `  podPlayStageParallelism: ${l.parallelism}`,
    '',
  ].join('\n'));
  return file;
}
