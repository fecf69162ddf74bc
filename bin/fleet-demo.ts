/**
 * `STACK_CLUSTERS=3 npm start`: the fleet demo on the local stack's three clusters. A fleet file
 * orders them in two waves (canary: staging; prod: prod-a, prod-b); the promotion runs on the
 * durable execution SDK's local runner, as Lambda would run it, with real per-cluster passes.
 * A good commit reaches all three, wave by wave; a commit whose pods take their nodes down is
 * stopped at staging, rolled back there, and never reaches prod.
 *
 * The demo's world (repository, namespace, configuration) and the node breaker are the ones the
 * fleet tests use (test/support), so what it shows is what the tests check.
 */
import { withDurableExecution } from '@aws/durable-execution-sdk-js';
import { LocalDurableTestRunner } from '@aws/durable-execution-sdk-js-testing';
import { systemClock } from '../lib/clock';
import { fleetClusterPass } from '../lib/fleet/cluster-pass';
import { readFleetHead } from '../lib/fleet/fleet-source';
import { fleetStatus, formatFleetStatus } from '../lib/fleet/operate';
import { promotionWorkflow, PromotionResult } from '../lib/fleet/orchestrate';
import { jsonLogger } from '../lib/log';
import { stackUp } from '../stack/up';
import { NodeBreaker, waitFor } from '../test/support/cluster';
import { FLEET_CLUSTERS, fleetWorld, FleetWorld } from '../test/support/fleet';
import { managedYaml } from '../test/support/managed';

const GOOD = 'registry.local/agent:1.0';
const BROKEN = 'registry.local/agent:2.0-breaks-nodes';

function say(text: string): void {
  process.stdout.write(`\n==> ${text}\n`);
}

/** Runs one promotion of the branch head to its end (done, stopped), printing each cluster's pass. */
async function promote(world: FleetWorld): Promise<PromotionResult | undefined> {
  const runner = new LocalDurableTestRunner<PromotionResult>({
    handlerFunction: withDurableExecution(promotionWorkflow(() => ({ store: world.store, clock: systemClock, pollSeconds: 2, clusterPassFunction: 'fleet-pass', readHead: () => readFleetHead(world.config) }))),
  });
  runner.registerFunction('fleet-pass', async (event: { cluster: string }) => {
    const r = await fleetClusterPass(world.config, event.cluster, { logger: jsonLogger({ cluster: event.cluster }, () => undefined), budgetMs: 180_000 });
    process.stdout.write(`    pass ${event.cluster.padEnd(8)} ${r.commit ? r.commit.slice(0, 7) : '-'}  ${r.outcome?.result ?? r.skipped ?? ''}${r.outcome?.reason ? `: ${r.outcome.reason}` : ''}\n`);
    return r;
  });
  const execution = await runner.run({ payload: { by: 'demo' } });
  return execution.getResult();
}

async function images(world: FleetWorld): Promise<string> {
  return (await Promise.all(FLEET_CLUSTERS.map(async (c) => `${c} ${(await world.liveImage(c)) ?? '(none)'}`))).join(', ');
}

export async function runFleetDemo(): Promise<number> {
  say('the fleet demo: three clusters of the local stack (staging, prod-a, prod-b), each its own kube-apiserver, controller manager, scheduler and kwok nodes');
  await stackUp({ clusters: 3 });
  const waves = [{ name: 'canary', clusters: ['staging'], soak: '5s' }, { name: 'prod', clusters: ['prod-a', 'prod-b'], soak: '3s', maxConcurrent: 1 }];
  const world = await fleetWorld({ waves });
  const agent = (image: string) => managedYaml({ name: 'agent', namespace: world.ns, image, maxUnavailable: 1, managedAnnotations: { 'daemonset-gitops.io/auto-rollback': 'true', 'daemonset-gitops.io/progress-deadline': '30' } }, 1);
  await LocalDurableTestRunner.setupTestEnvironment({ skipTime: false });
  try {
    say(`fleet.yaml: wave canary [staging], soak 5s; wave prod [prod-a, prod-b], soak 3s, one cluster at a time. Commit ${GOOD} in namespace ${world.ns}, promote`);
    const good = world.commitAgent(GOOD, 'agent 1.0', agent);
    const first = await promote(world);
    process.stdout.write(`    promotion of ${good.slice(0, 7)}: ${first?.decision.kind}; running: ${await images(world)}\n`);
    if (first?.decision.kind !== 'done') return 1;

    say(`commit ${BROKEN}: its pods take their node down (a NotReady node, as a broken CNI plugin would), promote`);
    const breaker = new NodeBreaker(world.clients.staging.kc, world.ns, 'app=agent', BROKEN);
    await breaker.start();
    try {
      const bad = world.commitAgent(BROKEN, 'agent 2.0: breaks its nodes', agent);
      const second = await promote(world);
      const d = second?.decision;
      process.stdout.write(`    promotion of ${bad.slice(0, 7)}: ${d?.kind}${d?.kind === 'stop' ? ` in wave ${waves[d.wave].name} at ${d.cluster}: ${d.daemonSet ?? ''} ${d.reason}` : ''}\n`);
      await waitFor('staging to run the good image again (auto-rollback)', async () => (await world.liveImage('staging')) === GOOD, 60_000);
      process.stdout.write(`    rolled back in staging; prod never saw it. Running: ${await images(world)}\n`);
      if (d?.kind !== 'stop') return 1;
    } finally {
      await breaker.stop();
    }

    say('dsgitops fleet status');
    process.stdout.write(formatFleetStatus(await fleetStatus(world.config, world.store, systemClock)).replace(/^/gm, '    '));
    return 0;
  } finally {
    await LocalDurableTestRunner.teardownTestEnvironment();
    await world.cleanup();
  }
}
