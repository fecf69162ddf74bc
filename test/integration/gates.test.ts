/**
 * Gates on managed rollouts, on the local stack: a canary judged by its pods' restarts (kwok
 * restarts them on a schedule while they stay Ready), by Prometheus (a real Prometheus built
 * from Go modules, scraping an exporter this file runs with per-node values it controls) and
 * by CloudWatch (GetMetricData against the stack's moto server).
 */
import * as k8s from '@kubernetes/client-node';
import { reconcile } from '../../lib/reconcile';
import { autoRollback } from '../../lib/rollback';
import { adminClients, AvailabilityWatcher } from '../support/cluster';
import type { DsOptions } from '../support/manifests';
import { imagesByNode, managedYaml, useWorkers, workerNames } from '../support/managed';
import { cleanupScenarios, scenario } from '../support/scenario';

jest.setTimeout(900_000);

const NODES = 5;
const READY_DELAY_SECONDS = 2;
const { kc, core } = adminClients();

afterAll(cleanupScenarios);
useWorkers(NODES);

const managed = (o: DsOptions & { managedAnnotations?: Record<string, string> }) => managedYaml(o, READY_DELAY_SECONDS);

describe('restarts gate', () => {
  it('fails a canary whose updated pod restarts more than allowed while Ready; the rollout stalls and is rolled back, no other node touched', async () => {
    const { ns, git, deps } = await scenario('gate-restarts');
    const nodes = await workerNames(core);
    const ann = {
      'daemonset-gitops.io/canary': '1',
      'daemonset-gitops.io/canary-hold': '30s',
      'daemonset-gitops.io/gates': 'restarts: 1',
      'daemonset-gitops.io/auto-rollback': 'true',
      'daemonset-gitops.io/progress-deadline': '120',
    };
    git.write('a.yaml', managed({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: 2, managedAnnotations: ann })).commit('v1');
    expect((await reconcile(deps(), {}, autoRollback)).daemonSets[0].rollout).toMatchObject({ phase: 'complete' });
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    git.write('a.yaml', managed({
      name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: 2, managedAnnotations: ann,
      podLabels: { 'pod-restart.stage.kwok.x-k8s.io': 'true' },
      podAnnotations: { 'pod-restart.stage.kwok.x-k8s.io/interval': '1s' },
    })).commit('v2: restarts every second');
    const started = Date.now();
    const r = await reconcile(deps(), {}, autoRollback);
    watcher.stop();

    // The gate failed well within the 30 s hold: Ready alone would have passed it.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(r.daemonSets[0]).toMatchObject({ revision: 2, rollout: { phase: 'stalled' } });
    expect(r.daemonSets[0].rollout!.message).toMatch(/stopped: gate restarts failed: an updated pod restarted more than 1 time \(agent-\w+ on kwok-\S+: [2-9]\)/);
    expect(r.daemonSets[0].message).toMatch(/rolled back from revision 2 to revision 1 \(recorded as revision 3\)/);
    // Only the canary node ever ran the new version; every node runs the old one again.
    expect([...(watcher.nodesByImage.get('registry.local/agent:2.0') ?? [])]).toEqual([nodes[0]]);
    expect(new Set(watcher.deletions.map((d) => d.node))).toEqual(new Set([nodes[0]]));
    expect(Object.values(await imagesByNode(core, ns, 'agent'))).toEqual(nodes.map(() => 'registry.local/agent:1.0'));
    const r2 = (await deps().store.getRevision(ns, 'agent', 2))!.value;
    expect(r2.outcome).toBe('rolled-back');
  });
});
