/**
 * One promotion at a time: two durable executions of the promotion, started for two pushed
 * commits, on the SDK's local runner against the stack's three clusters. The execution of the
 * newer commit takes the promotion over; the older one, waking from its soak, finds it owned
 * by another execution, records that and ends without running a pass; the newer one carries
 * its commit through the waves in order.
 */
import type { LocalDurableTestRunner } from '@aws/durable-execution-sdk-js-testing';
import type { PromotionResult } from '../../lib/fleet/orchestrate';
import { waitFor } from '../support/cluster';
import { FLEET_CLUSTERS, FleetWorld } from '../support/fleet';
import { PromotionPass, promotionRunner, setUpPromotionFleet, tearDownPromotionFleet } from '../support/promotion';

jest.setTimeout(600_000);

const CANARY_SOAK_SECONDS = 10;

interface PassCall extends PromotionPass { execution: string }

let world: FleetWorld;

beforeAll(async () => {
  world = await setUpPromotionFleet({ canarySoakSeconds: CANARY_SOAK_SECONDS, prodMaxConcurrent: 2 });
});

afterAll(() => tearDownPromotionFleet(world));

/** One execution's runner: its passes are real passes on the stack, each logged under the execution's name. */
function namedRunner(name: string, calls: PassCall[]): LocalDurableTestRunner<PromotionResult> {
  return promotionRunner(world, { onPass: (pass) => calls.push({ execution: name, ...pass }) });
}

describe('two promotion executions at once', () => {
  it('lets only the execution of the newer commit drive the fleet: the older one ends at its next step without running a pass', async () => {
    const v1 = world.commitAgent('registry.local/agent:1.0', 'v1');
    const calls: PassCall[] = [];
    const older = namedRunner('older', calls).run({ payload: { by: 'push of v1' } });

    // The older execution applied v1 to staging and soaks it: a durable wait of CANARY_SOAK_SECONDS.
    await waitFor('the older execution to soak v1 in staging', async () => {
      const { promotion } = await world.store.readPromotion();
      return promotion?.commit === v1 && promotion.healthySince !== undefined;
    }, 120_000);
    expect(calls.map((c) => [c.execution, c.cluster, c.commit])).toEqual([['older', 'staging', v1]]);

    const v2 = world.commitAgent('registry.local/agent:1.1', 'v2');
    const newerStartedAt = Date.now();
    const newer = namedRunner('newer', calls).run({ payload: { by: 'push of v2' } });
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
