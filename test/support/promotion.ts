/**
 * The durable promotion (lib/fleet/orchestrate.ts) run by the SDK's own local runner over a
 * fleet of the local stack (support/fleet.ts), its per-cluster passes real passes of
 * fleetClusterPass against the stack's clusters.
 */
import { withDurableExecution } from '@aws/durable-execution-sdk-js';
import { LocalDurableTestRunner } from '@aws/durable-execution-sdk-js-testing';
import { systemClock } from '../../lib/clock';
import { ClusterPassResult, fleetClusterPass } from '../../lib/fleet/cluster-pass';
import { readFleetHead } from '../../lib/fleet/fleet-source';
import { PromotionDeps, promotionWorkflow, PromotionResult } from '../../lib/fleet/orchestrate';
import { fleetWorld, FleetWorld } from './fleet';
import { captureLog } from './reconciler';

/**
 * For a file's beforeAll: the SDK's local test environment (real time), and a fleet of two
 * waves, canary (staging, soaked `canarySoakSeconds`) then prod (prod-a and prod-b, soaked
 * 2s, `prodMaxConcurrent` at a time). Undo it with tearDownPromotionFleet.
 */
export async function setUpPromotionFleet(o: { canarySoakSeconds: number; prodMaxConcurrent: number }): Promise<FleetWorld> {
  await LocalDurableTestRunner.setupTestEnvironment({ skipTime: false });
  return fleetWorld({
    waves: [
      { name: 'canary', clusters: ['staging'], soak: `${o.canarySoakSeconds}s` },
      { name: 'prod', clusters: ['prod-a', 'prod-b'], soak: '2s', maxConcurrent: o.prodMaxConcurrent },
    ],
  });
}

/** For a file's afterAll: the SDK's local test environment ended, and the fleet (if it was made) removed. */
export async function tearDownPromotionFleet(world: FleetWorld | undefined): Promise<void> {
  await LocalDurableTestRunner.teardownTestEnvironment();
  await world?.cleanup();
}

/** One per-cluster pass the promotion ran: its cluster, the commit it reconciled, when, and its result. */
export interface PromotionPass {
  cluster: string;
  commit?: string;
  startedAt: number;
  endedAt: number;
  result?: string;
}

/**
 * A local runner of the promotion over `world` (polling every 2s), whose function 'fleet-pass'
 * runs a real pass of the named cluster on the stack (within 180s); `onPass` hears of each pass
 * as it ends. `readHead`, when given, stands in for reading the fleet's head from Git.
 */
export function promotionRunner(
  world: FleetWorld,
  o: { onPass?: (pass: PromotionPass) => void; readHead?: PromotionDeps['readHead'] } = {},
): LocalDurableTestRunner<PromotionResult> {
  const handler = withDurableExecution(promotionWorkflow(() => ({
    store: world.store,
    clock: systemClock,
    pollSeconds: 2,
    clusterPassFunction: 'fleet-pass',
    readHead: o.readHead ?? (() => readFleetHead(world.config)),
  })));
  const runner = new LocalDurableTestRunner<PromotionResult>({ handlerFunction: handler });
  runner.registerFunction('fleet-pass', async (event: { cluster: string }): Promise<ClusterPassResult> => {
    const startedAt = Date.now();
    const r = await fleetClusterPass(world.config, event.cluster, { logger: captureLog().logger, budgetMs: 180_000 });
    o.onPass?.({ cluster: event.cluster, commit: r.commit, startedAt, endedAt: Date.now(), result: r.outcome?.result });
    return r;
  });
  return runner;
}
