/**
 * Gate specifications for the tests of gates: one Prometheus metric judged per node, written
 * as a manifest's `daemonset-gitops.io/gates` annotation is, and read by parseGates.
 */
import { GateSpec, parseGates } from '../../lib/rollout/gates';

/**
 * The gate `name` on the metric of the same name (`max by (node) (<name>{node=~"{nodes}"})`,
 * every 10s), passed after `count` measurements that meet `successCondition`. A spec
 * parseGates refuses throws its message.
 */
export function prometheusGateSpec(g: { name: string; count: number; successCondition: string; failureLimit?: number }): GateSpec {
  const parsed = parseGates(`metrics:
- name: ${g.name}
  prometheus: { address: "http://127.0.0.1:9090", query: 'max by (node) (${g.name}{node=~"{nodes}"})' }
  interval: 10s
  count: ${g.count}
  successCondition: ${g.successCondition}
${g.failureLimit === undefined ? '' : `  failureLimit: ${g.failureLimit}\n`}`);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.value;
}
