/**
 * One promotion at a time: two durable executions of the promotion, started for two pushed
 * commits, on the SDK's local runner against the stack's three clusters. The execution of the
 * newer commit takes the promotion over; the older one, waking from its soak, finds it owned
 * by another execution, records that and ends without running a pass; the newer one carries
 * its commit through the waves in order.
 */
import { withDurableExecution } from '@aws/durable-execution-sdk-js';
import { LocalDurableTestRunner } from '@aws/durable-execution-sdk-js-testing';
import { systemClock } from '../../lib/clock';
import { ClusterPassResult, fleetClusterPass } from '../../lib/fleet/cluster-pass';
import { readFleetHead } from '../../lib/fleet/fleet-source';
import { promotionWorkflow, PromotionResult } from '../../lib/fleet/orchestrate';
import { waitFor } from '../support/cluster';
import { FLEET_CLUSTERS, fleetWorld, FleetWorld } from '../support/fleet';
import { captureLog } from '../support/reconciler';

jest.setTimeout(600_000);

const CANARY_SOAK_SECONDS = 10;

interface PassCall { execution: string; cluster: string; commit?: string; startedAt: number; endedAt: number; result?: string }

let world: FleetWorld;

beforeAll(async () => {
  await LocalDurableTestRunner.setupTestEnvironment({ skipTime: false });
  world = await fleetWorld({
    waves: [
      { name: 'canary', clusters: ['staging'], soak: `${CANARY_SOAK_SECONDS}s` },
      { name: 'prod', clusters: ['prod-a', 'prod-b'], soak: '2s', maxConcurrent: 2 },
    ],
  });
});

afterAll(async () => {
  await LocalDurableTestRunner.teardownTestEnvironment();
  await world?.cleanup();
});

/** One execution's runner: its passes are real passes on the stack, each logged under the execution's name. */
function promotionRunner(name: string, calls: PassCall[]): LocalDurableTestRunner<PromotionResult> {
  const handler = withDurableExecution(promotionWorkflow(() => ({
    store: world.store,
    clock: systemClock,
    pollSeconds: 2,
    clusterPassFunction: 'fleet-pass',
    readHead: () => readFleetHead(world.config),
  })));
  const runner = new LocalDurableTestRunner<PromotionResult>({ handlerFunction: handler });
  runner.registerFunction('fleet-pass', async (event: { cluster: string }): Promise<ClusterPassResult> => {
    const startedAt = Date.now();
    const r = await fleetClusterPass(world.config, event.cluster, { logger: captureLog().logger, budgetMs: 180_000 });
    calls.push({ execution: name, cluster: event.cluster, commit: r.commit, startedAt, endedAt: Date.now(), result: r.outcome?.result });
    return r;
  });
  return runner;
}

describe('two promotion executions at once', () => {
  it('lets only the execution of the newer commit drive the fleet: the older one ends at its next step without running a pass', async () => {
    const v1 = world.commitAgent('registry.local/agent:1.0', 'v1');
    const calls: PassCall[] = [];
    const older = promotionRunner('older', calls).run({ payload: { by: 'push of v1' } });

    // The older execution applied v1 to staging and soaks it: a durable wait of CANARY_SOAK_SECONDS.
    await waitFor('the older execution to soak v1 in staging', async () => {
      const { promotion } = await world.store.readPromotion();
      return promotion?.commit === v1 && promotion.healthySince !== undefined;
    }, 120_000);
    expect(calls.map((c) => [c.execution, c.cluster, c.commit])).toEqual([['older', 'staging', v1]]);

    const v2 = world.commitAgent('registry.local/agent:1.1', 'v2');
    const newerStartedAt = Date.now();
    const newer = promotionRunner('newer', calls).run({ payload: { by: 'push of v2' } });
    await waitFor('the newer execution to start promoting v2', async () => (await world.store.readPromotion()).promotion?.commit === v2, 60_000);
    const owner = (await world.store.readPromotion()).promotion!.owner;

    const [olderRun, newerRun] = await Promise.all([older, newer]);
    expect(olderRun.getStatus()).toBe('SUCCEEDED');
    expect(newerRun.getStatus()).toBe('SUCCEEDED');
    // No pass of the older execution after the newer one started; not even staging's at the end of its soak.
    expect(calls.filter((c) => c.execution === 'older' && c.startedAt >= newerStartedAt)).toEqual([]);
    expect(calls.filter((c) => c.execution === 'older').map((c) => c.cluster)).toEqual(['staging']);
    // The newer one: staging first, prod only after staging was healthy for the canary's soak.
    const newerCalls = calls.filter((c) => c.execution === 'newer');
    expect(newerCalls.every((c) => c.commit === v2)).toBe(true);
    expect(newerCalls.map((c) => c.cluster).slice(0, 2)).toEqual(['staging', 'staging']);
    const stagingHealthy = newerCalls.find((c) => c.cluster === 'staging' && c.result === 'healthy')!;
    const firstProd = newerCalls.find((c) => c.cluster !== 'staging')!;
    expect(firstProd.startedAt - stagingHealthy.endedAt).toBeGreaterThanOrEqual(CANARY_SOAK_SECONDS * 1000);
    expect(newerCalls.filter((c) => c.cluster !== 'staging').map((c) => c.cluster).sort()).toEqual(['prod-a', 'prod-a', 'prod-b', 'prod-b']);
    for (const c of FLEET_CLUSTERS) expect(await world.liveImage(c)).toBe('registry.local/agent:1.1');

    // The promotion record names the newer execution as its owner; the older one ended naming it.
    expect(owner).toMatchObject({ commit: v2, by: 'push of v2' });
    expect(olderRun.getResult()?.decision).toEqual({ kind: 'taken-over', by: owner });
    expect(newerRun.getResult()?.decision).toEqual({ kind: 'done', commit: v2 });

    const s = (sha: string) => sha.slice(0, 7);
    const history = (await world.store.history()).reverse().map((h) => `${h.event} ${s(h.commit)}${h.wave ? ` ${h.wave}` : ''}`);
    // Once, whenever in the newer one's run the older one woke.
    expect(history.filter((h) => h.startsWith('taken-over'))).toEqual([`taken-over ${s(v2)}`]);
    expect(history.filter((h) => !h.startsWith('taken-over'))).toEqual([
      `started ${s(v1)} canary`, `promoted ${s(v1)} canary`,
      `superseded ${s(v1)}`, `started ${s(v2)} canary`, `promoted ${s(v2)} canary`,
      `advanced ${s(v2)} prod`, `promoted ${s(v2)} prod`, `done ${s(v2)}`,
    ]);
  });
});
