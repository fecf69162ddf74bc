/**
 * An incident rollback is never refused because a pass is busy watching a rollout: the
 * watching pass holds the lease but marks it preemptible; the rollback takes it over, and
 * the watcher stops at its next look without touching anything.
 */
import type { Cluster } from '../../lib/cluster/client';
import { clusterLease } from '../../lib/deps';
import { LeaseHeldError } from '../../lib/errors';
import { reconcile } from '../../lib/reconcile';
import { rollback } from '../../lib/rollback';
import { leaseSchema } from '../../lib/store/records';
import { adminClients, waitFor } from '../support/cluster';
import { managedYaml } from '../support/managed';
import { dsYaml } from '../support/manifests';
import { stackDeps } from '../support/reconciler';
import { cleanupScenarios, scenario } from '../support/scenario';

jest.setTimeout(300_000);

const { core, apps } = adminClients();

afterAll(cleanupScenarios);

describe('a manual rollback while a pass watches a slow native rollout', () => {
  it('is applied within seconds, and the watching pass stops without acting further', async () => {
    const { ns, git, deps } = await scenario('preempt');
    const slow = { 'pod-ready.stage.kwok.x-k8s.io/delay': '15s' };
    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: 1 })).commit('v1');
    expect((await reconcile(deps())).daemonSets[0].rollout).toMatchObject({ phase: 'complete' });

    git.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: 1, podAnnotations: slow })).commit('v2: slow to start');
    const pass = reconcile(deps());
    let passDone = 0;
    void pass.then(() => (passDone = Date.now()));
    // The pass has applied revision 2 and is watching its rollout, one node at a time.
    await waitFor('the rollout of revision 2 to start', async () => {
      const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=agent' })).items;
      return pods.some((p) => p.spec!.containers[0].image === 'registry.local/agent:2.0');
    }, 60_000);
    expect(passDone).toBe(0);

    const asked = Date.now();
    const rolled = await rollback(deps(), { namespace: ns, name: 'agent', toRevision: 1, reason: 'v2 is slow', wait: false });
    const tookMs = Date.now() - asked;
    const live = await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns });

    expect(rolled).toMatchObject({ toRevision: 1, revision: 3 });
    expect(tookMs).toBeLessThan(10_000);
    expect(live.spec!.template.spec!.containers[0].image).toBe('registry.local/agent:1.0');

    const report = await pass;
    // The watcher noticed within one look (its watch slices are 10 s) and did not wait for the slow rollout.
    expect(passDone - asked).toBeLessThan(20_000);
    expect(report.result).toBe('succeeded');
    expect(report.preempted).toMatch(/rollback/);
    expect(report.daemonSets[0]).toMatchObject({ action: 'update', revision: 2 });
    const state = (await deps().store.getState(ns, 'agent'))!.value;
    expect(state).toMatchObject({ currentRevision: 3, pin: { revision: 1, reason: 'v2 is slow' } });
    expect((await deps().store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('rolled-back');
  });
});

describe('a pass driving two managed rollouts', () => {
  it('cannot be preempted while one driver is between its confirmation and the end of its deletions, though the other has finished its wave; once none is, a rollback takes the lease', async () => {
    const { ns, git, deps, config } = await scenario('preempt-managed');
    const write = (image: string, message: string) => {
      for (const name of ['agent-a', 'agent-b']) git.write(`${name}.yaml`, managedYaml({ name, namespace: ns, image: `registry.local/${name}:${image}`, maxUnavailable: 1 }, 2));
      git.commit(message);
    };
    write('1.0', 'v1');
    expect((await reconcile(deps())).daemonSets.map((d) => d.rollout?.phase)).toEqual(['complete', 'complete']);

    // agent-a's driver is held inside its first deletion (after its confirmation); agent-b's runs freely.
    let releaseA!: () => void;
    const aHeld = new Promise<void>((r) => (releaseA = r));
    let aInside = false;
    let bDeleted = 0;
    const base = deps();
    const real = base.cluster;
    const cluster = new Proxy(real, {
      get(target, prop) {
        if (prop === 'deletePod') {
          return async (namespace: string, name: string, uid: string) => {
            if (name.startsWith('agent-a-') && !aInside) {
              aInside = true;
              await aHeld;
            }
            await real.deletePod(namespace, name, uid);
            if (name.startsWith('agent-b-')) bDeleted += 1;
          };
        }
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as Cluster;
    write('2.0', 'v2');
    const pass = reconcile({ ...base, cluster });
    try {
      await waitFor('agent-a\'s driver to be inside its deletions and agent-b\'s wave to have deleted its pod', async () => aInside && bDeleted > 0, 60_000);
      // An operator's rollback tries to take the lease over, for longer than agent-b's driver takes to mark it preemptible after its wave.
      const operator = clusterLease(stackDeps(config, { runId: 'operator-rollback' }));
      const tryTake = async () => {
        try {
          await operator.acquire('rollback', { preempt: true });
          return true;
        } catch (err) {
          if (err instanceof LeaseHeldError) return undefined;
          throw err;
        }
      };
      const takenWhileActing = await waitFor('the operator to take the lease while agent-a deletes', tryTake, 4_000, 200).catch(() => false);
      const got = await base.objects.get(base.store.keys.lease());
      const record = leaseSchema.parse(JSON.parse(got!.body));
      expect(takenWhileActing).toBe(false);
      expect(record).toMatchObject({ holder: base.runId, preemptible: false });

      // Once agent-a's deletions end, no driver is acting: the lease is preemptible again and the rollback takes it.
      releaseA();
      const taken = await waitFor('the operator to take the lease once no driver is deleting', tryTake, 60_000, 200);
      expect(taken).toBe(true);
      await operator.release();
    } finally {
      releaseA();
    }
    const report = await pass;
    expect(report.preempted).toMatch(/operator-rollback/);
  });
});
