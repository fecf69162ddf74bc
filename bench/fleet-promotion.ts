/**
 * Benchmark: one promotion over the stack's three clusters (staging, then prod-a and prod-b
 * side by side), run by the durable execution SDK's local runner with real per-cluster
 * passes. Prints per wave the time from the head commit to every cluster of the wave healthy,
 * against the rollouts' own times and the soaks before it (what is left is the
 * orchestration's overhead), and what the promotion cost: Lambda invocations (the
 * orchestration's own and the passes') and S3 requests.
 *
 *   npm run bench:fleet [-- --soak SECONDS]
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { withDurableExecution } from '@aws/durable-execution-sdk-js';
import { LocalDurableTestRunner } from '@aws/durable-execution-sdk-js-testing';
import { systemClock } from '../lib/clock';
import { fleetClusterPass } from '../lib/fleet/cluster-pass';
import { readFleetHead } from '../lib/fleet/fleet-source';
import { promotionWorkflow, PromotionResult } from '../lib/fleet/orchestrate';
import { PromotionStore } from '../lib/store/promotion-store';
import { s3ObjectStore } from '../lib/store/object-store';
import { stackUp } from '../stack/up';
import { CountingObjectStore } from '../test/support/counting-store';
import { fleetWorld } from '../test/support/fleet';
import { captureLog } from '../test/support/reconciler';
import { benchReport } from './report';

benchReport();

interface Call { cluster: string; commit?: string; startedAt: number; endedAt: number; result?: string; passMs?: number }

async function main(): Promise<void> {
  const soakArg = process.argv.indexOf('--soak');
  const soak = soakArg > 0 ? Number(process.argv[soakArg + 1]) : 5;
  await stackUp({ clusters: 3 });
  const waves = [{ name: 'canary', clusters: ['staging'], soak: `${soak}s` }, { name: 'prod', clusters: ['prod-a', 'prod-b'], soak: `${soak}s`, maxConcurrent: 2 }];
  const world = await fleetWorld({ waves });
  const agent = (image: string) => `apiVersion: apps/v1
kind: DaemonSet
metadata: { name: agent, namespace: ${world.ns} }
spec:
  selector: { matchLabels: { app: agent } }
  updateStrategy: { type: RollingUpdate, rollingUpdate: { maxUnavailable: 1 } }
  template:
    metadata:
      labels: { app: agent }
      annotations: { pod-ready.stage.kwok.x-k8s.io/delay: 2s }
    spec: { containers: [{ name: agent, image: ${image} }] }
`;
  try {
    const run = async (image: string, label: string) => {
      const counting = new CountingObjectStore(s3ObjectStore(world.config.s3));
      const store = new PromotionStore(counting, world.config.s3.prefix);
      const calls: Call[] = [];
      await LocalDurableTestRunner.setupTestEnvironment({ skipTime: false });
      const runner = new LocalDurableTestRunner<PromotionResult>({
        handlerFunction: withDurableExecution(promotionWorkflow(() => ({ store, clock: systemClock, pollSeconds: 2, clusterPassFunction: 'fleet-pass', readHead: () => readFleetHead(world.config) }))),
      });
      runner.registerFunction('fleet-pass', async (event: { cluster: string }) => {
        const startedAt = Date.now();
        const r = await fleetClusterPass(world.config, event.cluster, { logger: captureLog().logger, budgetMs: 300_000, objects: counting });
        calls.push({ cluster: event.cluster, commit: r.commit, startedAt, endedAt: Date.now(), result: r.outcome?.result, passMs: r.report ? Date.parse(r.report.finishedAt) - Date.parse(r.report.startedAt) : undefined });
        return r;
      });
      const t0 = Date.now();
      const commit = world.commitAgent(image, label, agent);
      const execution = await runner.run({ payload: { by: 'bench' } });
      await LocalDurableTestRunner.teardownTestEnvironment();
      const result = execution.getResult();
      if (result?.decision.kind !== 'done') throw new Error(`the promotion of ${label} ended ${JSON.stringify(result?.decision)}`);
      console.log(`\n${label}: ${commit.slice(0, 7)}, soak ${soak}s per wave`);
      console.log('wave     head -> wave healthy   rollouts (own time)   soaks before   overhead');
      let soaksBefore = 0;
      let rolloutsBefore = 0;
      for (const w of waves) {
        const applying = w.clusters.map((c) => calls.find((x) => x.cluster === c && x.commit === commit)!);
        const healthyAt = Math.max(...applying.map((x) => x.endedAt));
        // The wave's clusters roll out side by side (maxConcurrent 2): the wave's own time is its longest rollout.
        const own = Math.max(...applying.map((x) => x.passMs ?? 0));
        const elapsed = healthyAt - t0;
        rolloutsBefore += own;
        const overhead = elapsed - rolloutsBefore - soaksBefore * 1000;
        console.log(`${w.name.padEnd(8)} ${`${(elapsed / 1000).toFixed(1)} s`.padStart(20)}   ${`${(own / 1000).toFixed(1)} s`.padStart(19)}   ${`${soaksBefore} s`.padStart(12)}   ${(overhead / 1000).toFixed(1)} s`);
        soaksBefore += soak;
      }
      console.log(`whole promotion: ${((Date.now() - t0) / 1000).toFixed(1)} s; Lambda invocations: ${execution.getInvocations().length} of the promotion + ${calls.length} passes; S3 requests: ${counting.reads} reads, ${counting.writes} writes`);
    };
    await run('registry.local/agent:1.0', 'first promotion (creates the DaemonSet in 3 clusters)');
    await run('registry.local/agent:1.1', 'image bump');
  } finally {
    await world.cleanup();
  }
}

main().then(() => process.exit(0), (err: Error) => {
  console.error(err);
  process.exit(1);
});
