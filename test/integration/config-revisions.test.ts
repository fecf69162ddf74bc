/**
 * A revision is a DaemonSet and the configuration it runs with, on the local stack: the
 * DaemonSet mounts a versioned copy of its ConfigMap; a ConfigMap-only commit rolls it within
 * its budget as revision N+1 with that commit (plan shows the ConfigMap's diff, history the
 * copy); a pod of the old revision still mounts the old copy, with the old data, while Git's
 * ConfigMap already holds the new; a copy no kept revision needs is pruned; a rollback
 * restores the template and its configuration together (a pruned ConfigMap copy recreated
 * from S3) and the next pass keeps them; a rollback that needs a Secret copy that is gone
 * refuses by name and changes nothing; Secret values are never in S3, reports or logs.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { formatHistory, history } from '../../lib/history';
import { reconcile } from '../../lib/reconcile';
import type { ReconcileReport } from '../../lib/report';
import { rollback } from '../../lib/rollback';
import { adminClients, AvailabilityWatcher, deleteNamespace, stackEnv, uniqueName, waitFor } from '../support/cluster';
import { TestRepo } from '../support/git';
import { useWorkers } from '../support/managed';
import { captureLog, stackConfig, stackDeps } from '../support/reconciler';

jest.setTimeout(300_000);

const { kc, core, apps } = adminClients();
const namespaces: string[] = [];
const repos: TestRepo[] = [];

afterAll(async () => {
  for (const ns of namespaces) await deleteNamespace(core, ns);
  for (const r of repos) r.cleanup();
});
// Five settled workers whatever an earlier file left: the DaemonSet's desired nodes (every node: the agent tolerates the control plane's taint) are read once and counted on. Declared after the
// cleanup, so that it runs first (hooks run in the order they are declared).
useWorkers(5);

function kubectl(args: string[]): string {
  const env = stackEnv();
  return execFileSync(env.KUBECTL, args, { env: { ...process.env, KUBECONFIG: env.KUBECONFIG }, encoding: 'utf8' });
}

/** The node agent of the bundle fixtures without its cluster-scoped part, with its budget, its pods' ready delay and its configuration. */
function agent(ns: string, o: { interval: string; maxUnavailable: number; readyDelay: string }): string {
  return readFileSync(join(__dirname, '..', 'fixtures', 'bundles', 'node-agent.yaml'), 'utf8')
    .replaceAll('__NS__', ns)
    .split(/^---$/m).filter((d) => !/kind: (Namespace|ClusterRole|ClusterRoleBinding)\n/.test(d)).join('---')
    .replace('scrape_interval = 15s', `scrape_interval = ${o.interval}`)
    .replace('pod-ready.stage.kwok.x-k8s.io/delay: "1s"', `pod-ready.stage.kwok.x-k8s.io/delay: "${o.readyDelay}"`)
    .replace('  updateStrategy: {}', `  updateStrategy: {rollingUpdate: {maxUnavailable: ${o.maxUnavailable}}}`);
}

function object(report: ReconcileReport, id: string) {
  return report.objects?.find((o) => o.id === id);
}

/** The ConfigMap a pod's `config` volume mounts. */
function mounted(pod: k8s.V1Pod): string | undefined {
  return pod.spec?.volumes?.find((v) => v.name === 'config')?.configMap?.name;
}

async function livePods(ns: string): Promise<k8s.V1Pod[]> {
  return (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=lumen-agent' })).items.filter((p) => !p.metadata?.deletionTimestamp);
}

async function configMapData(ns: string, name: string): Promise<Record<string, string> | undefined> {
  try {
    return (await core.readNamespacedConfigMap({ name, namespace: ns })).data ?? {};
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

describe('a DaemonSet\'s configuration, versioned with it', () => {
  const ns = uniqueName('cfgrev');
  namespaces.push(ns);
  const git = new TestRepo();
  repos.push(git);
  const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, CONFIG_REVISIONS_KEPT: '2' });
  const deps = () => stackDeps(config);
  const copies: Record<string, string> = {};
  let nodes: string[];

  beforeAll(async () => {
    await core.createNamespace({ body: { metadata: { name: ns } } });
    nodes = (await core.listNode()).items.map((n) => n.metadata!.name!).sort();
  });

  it('mounts an immutable copy of its ConfigMap, recorded with its data in the revision; Git\'s ConfigMap is applied too', async () => {
    git.write('agent.yaml', agent(ns, { interval: '15s', maxUnavailable: 2, readyDelay: '1s' })).commit('lumen-agent 1.4.2');
    const first = await reconcile(deps());

    expect(first.result).toBe('succeeded');
    expect(first.daemonSets[0]).toMatchObject({ action: 'create', revision: 1, rollout: { phase: 'complete' } });
    const snap = (await deps().store.getRevision(ns, 'lumen-agent', 1))!.value;
    expect(snap.config).toEqual([{ kind: 'ConfigMap', namespace: ns, name: 'lumen-agent-config', copyName: expect.stringMatching(/^lumen-agent-config-[0-9a-f]{10}$/), digest: expect.stringMatching(/^sha256:/), data: { 'agent.conf': 'scrape_interval = 15s\nlisten = :9464\n' } }]);
    copies['15s'] = snap.config![0].copyName;
    const copy = await core.readNamespacedConfigMap({ name: copies['15s'], namespace: ns });
    expect(copy.immutable).toBe(true);
    expect(copy.metadata?.labels?.['daemonset-gitops.io/config-copy-of']).toBe('lumen-agent-config');
    expect(copy.data?.['agent.conf']).toContain('scrape_interval = 15s');
    expect((await configMapData(ns, 'lumen-agent-config'))?.['agent.conf']).toContain('scrape_interval = 15s');
    const pods = await livePods(ns);
    expect(pods.length).toBe(nodes.length);
    expect(pods.map(mounted)).toEqual(Array(pods.length).fill(copies['15s']));
  });

  it('rolls a ConfigMap-only commit within maxUnavailable as revision 2 with its commit, shown by plan as the ConfigMap\'s diff and by history with its copy', async () => {
    const sha = git.write('agent.yaml', agent(ns, { interval: '30s', maxUnavailable: 2, readyDelay: '1s' })).commit('lumen-agent: scrape every 30 s');
    const planned = await reconcile(deps(), { dryRun: true });
    expect(object(planned, `ConfigMap ${ns}/lumen-agent-config`)?.diff).toMatch(/-\s+scrape_interval = 15s\n\+\s+scrape_interval = 30s/);
    const newCopy = planned.objects!.find((o) => o.action === 'create' && o.name.startsWith('lumen-agent-config-'))!;
    expect(newCopy.diff).toContain('+    scrape_interval = 30s');
    expect(planned.daemonSets[0]).toMatchObject({ action: 'update', applied: false });
    expect(planned.daemonSets[0].diff).toMatch(new RegExp(`\n-\\s+name: ${copies['15s']}\n\\+\\s+name: ${newCopy.name}\n`));
    expect(planned.daemonSets[0].diff).toContain('daemonset-gitops.io/config-digest');

    const watcher = new AvailabilityWatcher(kc, ns, 'app=lumen-agent', nodes);
    await watcher.start();
    const second = await reconcile(deps());
    watcher.stop();

    expect(second.daemonSets[0]).toMatchObject({ action: 'update', cause: 'git-change', applied: true, revision: 2, rollout: { phase: 'complete' } });
    expect(watcher.deletions.length).toBeGreaterThan(0);
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(2);
    const snap = (await deps().store.getRevision(ns, 'lumen-agent', 2))!.value;
    expect(snap.commit?.sha).toBe(sha);
    copies['30s'] = snap.config![0].copyName;
    expect(copies['30s']).toBe(newCopy.name);
    expect((await livePods(ns)).map(mounted)).toEqual(Array(nodes.length).fill(copies['30s']));
    // The revision before is in the kept window: its copy stays, with its data.
    expect((await configMapData(ns, copies['15s']))?.['agent.conf']).toContain('scrape_interval = 15s');

    const h = await history(deps(), { namespace: ns, name: 'lumen-agent' });
    expect(h.revisions.map((r) => [r.revision, r.commit?.sha, r.config])).toEqual([
      [2, sha, [`ConfigMap ${copies['30s']}`]],
      [1, expect.any(String), [`ConfigMap ${copies['15s']}`]],
    ]);
    expect(formatHistory(h)).toMatch(new RegExp(`2\\*\\s+${sha.slice(0, 7)} lumen-agent: scrape every 30 s.*ConfigMap ${copies['30s']}`));
  });

  it('keeps a pod of the old revision on the old copy and its old data mid-rollout, while Git\'s ConfigMap holds the new; a copy no kept revision needs is pruned', async () => {
    // Slow pods (Ready 4 s after start) and one at a time: the rollout is still under way when the pass returns.
    git.write('agent.yaml', agent(ns, { interval: '60s', maxUnavailable: 1, readyDelay: '4s' })).commit('lumen-agent: scrape every 60 s, one node at a time');
    const third = await reconcile(deps(), { wait: false });

    expect(third.daemonSets[0]).toMatchObject({ action: 'update', applied: true, revision: 3 });
    copies['60s'] = (await deps().store.getRevision(ns, 'lumen-agent', 3))!.value.config![0].copyName;
    // Revision 1 is out of the window (2 kept) and no pod runs it: its copy is pruned.
    expect(third.prunedCopies).toEqual([`ConfigMap ${ns}/${copies['15s']}`]);
    expect(await configMapData(ns, copies['15s'])).toBeUndefined();

    const old = (await livePods(ns)).filter((p) => mounted(p) === copies['30s']);
    expect(old.length).toBeGreaterThan(0);
    // What a restarting container of that pod reads: the copy it names, with the data of its revision.
    expect((await configMapData(ns, copies['30s']))?.['agent.conf']).toContain('scrape_interval = 30s');
    expect((await configMapData(ns, 'lumen-agent-config'))?.['agent.conf']).toContain('scrape_interval = 60s');

    // Deleted, it is replaced by the DaemonSet controller from the current template (as Kubernetes does), whose copy is there too.
    const victim = old[0];
    await core.deleteNamespacedPod({ name: victim.metadata!.name!, namespace: ns });
    const replacement = await waitFor(`a new pod on ${victim.spec!.nodeName} after deleting ${victim.metadata!.name}`, async () =>
      (await livePods(ns)).find((p) => p.spec?.nodeName === victim.spec?.nodeName && p.metadata?.uid !== victim.metadata?.uid), 60_000);
    expect(mounted(replacement)).toBe(copies['60s']);

    const finished = await reconcile(deps());
    expect(finished.daemonSets[0]).toMatchObject({ revision: 3, rollout: { phase: 'complete' } });
    expect((await livePods(ns)).map(mounted)).toEqual(Array(nodes.length).fill(copies['60s']));
  });

  it('rolls back the template and its configuration together, recreating the pruned copy from S3, and the next pass keeps both', async () => {
    const rb = await rollback(deps(), { namespace: ns, name: 'lumen-agent', toRevision: 1, reason: 'the 15 s interval was right' });

    expect(rb).toMatchObject({ toRevision: 1, revision: 4, rollout: { phase: 'complete' } });
    expect((await configMapData(ns, copies['15s']))?.['agent.conf']).toBe('scrape_interval = 15s\nlisten = :9464\n');
    expect((await core.readNamespacedConfigMap({ name: copies['15s'], namespace: ns })).immutable).toBe(true);
    expect((await livePods(ns)).map(mounted)).toEqual(Array(nodes.length).fill(copies['15s']));
    expect((await deps().store.getRevision(ns, 'lumen-agent', 4))!.value.config?.map((e) => e.copyName)).toEqual([copies['15s']]);

    const scheduled = await reconcile(deps());
    expect(scheduled.daemonSets[0]).toMatchObject({ action: 'pinned', revision: 4 });
    const ds = await apps.readNamespacedDaemonSet({ name: 'lumen-agent', namespace: ns });
    expect(ds.spec?.template.spec?.volumes?.find((v) => v.name === 'config')?.configMap?.name).toBe(copies['15s']);
    expect((await configMapData(ns, copies['15s']))?.['agent.conf']).toContain('scrape_interval = 15s');
    expect((await livePods(ns)).map(mounted)).toEqual(Array(nodes.length).fill(copies['15s']));
  });
});

describe('a configuration change under managed rollouts', () => {
  it('goes through the canary and the waves within maxUnavailable, and ends on the new copy', async () => {
    const ns = uniqueName('cfgmgd');
    namespaces.push(ns);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const git = new TestRepo();
    repos.push(git);
    const managedAgent = (interval: string) => agent(ns, { interval, maxUnavailable: 1, readyDelay: '1s' }).replace(
      '  labels: {app: lumen-agent}\nspec:',
      '  labels: {app: lumen-agent}\n  annotations: {daemonset-gitops.io/rollout: managed, daemonset-gitops.io/canary: "1", daemonset-gitops.io/canary-hold: 2s}\nspec:',
    );
    const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
    const deps = () => stackDeps(config);
    git.write('agent.yaml', managedAgent('15s')).commit('lumen-agent, managed');
    const first = await reconcile(deps());
    expect(first.daemonSets[0]).toMatchObject({ action: 'create', rollout: { mode: 'managed', phase: 'complete' } });
    const nodes = (await livePods(ns)).map((p) => p.spec!.nodeName!).sort();
    expect(nodes.length).toBeGreaterThan(1);

    const watcher = new AvailabilityWatcher(kc, ns, 'app=lumen-agent', nodes);
    await watcher.start();
    git.write('agent.yaml', managedAgent('30s')).commit('lumen-agent: scrape every 30 s');
    const second = await reconcile(deps());
    watcher.stop();

    expect(second.daemonSets[0]).toMatchObject({ action: 'update', revision: 2, rollout: { mode: 'managed', phase: 'complete', upToDate: nodes.length } });
    const copy = (await deps().store.getRevision(ns, 'lumen-agent', 2))!.value.config![0].copyName;
    expect((await livePods(ns)).map(mounted)).toEqual(Array(nodes.length).fill(copy));
    const checkpoint = ((await deps().store.getState(ns, 'lumen-agent'))!.value.rollout!.managed as { checkpoint: { canaryNodes: string[]; canaryPassed: boolean; waves: number } }).checkpoint;
    // The canary is the first node by name; its pod went first, and the others only after it.
    expect(checkpoint).toMatchObject({ canaryNodes: [nodes[0]], canaryPassed: true });
    expect(checkpoint.waves).toBeGreaterThanOrEqual(2);
    expect(watcher.deletions[0].node).toBe(nodes[0]);
    expect(watcher.deletions.length).toBe(nodes.length);
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(1);
  });
});

describe('a rollback that needs a Secret copy no longer in the cluster', () => {
  it('refuses by name before changing anything, and no Secret value reaches S3, the report or the logs', async () => {
    const ns = uniqueName('cfgsec');
    namespaces.push(ns);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const git = new TestRepo();
    repos.push(git);
    const bundle = (token: string) => `${agent(ns, { interval: '15s', maxUnavailable: 2, readyDelay: '1s' }).replace('configMap: {name: lumen-agent-config}', 'secret: {secretName: lumen-agent-token}')}---
apiVersion: v1
kind: Secret
metadata: {name: lumen-agent-token, namespace: ${ns}}
stringData: {token: ${token}}
`;
    const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, CONFIG_REVISIONS_KEPT: '2' });
    const log = captureLog();
    const deps = () => stackDeps(config, { logger: log.logger });
    git.write('agent.yaml', bundle('first-value-7f3a')).commit('lumen-agent with its token');
    const first = await reconcile(deps());
    git.write('agent.yaml', bundle('second-value-c91e')).commit('lumen-agent: rotate the token');
    const second = await reconcile(deps());
    expect(second.daemonSets[0]).toMatchObject({ action: 'update', revision: 2, rollout: { phase: 'complete' } });
    // The Secret's copy (stringData in Git, data in the cluster) is as in Git on the next pass.
    const third = await reconcile(deps());
    expect(third.objects?.filter((o) => o.kind === 'Secret').map((o) => o.name)).toEqual(expect.arrayContaining(['lumen-agent-token', expect.stringMatching(/^lumen-agent-token-[0-9a-f]{10}$/)]));
    expect(third.objects?.every((o) => o.action === 'unchanged')).toBe(true);

    const snapshots = [(await deps().store.getRevision(ns, 'lumen-agent', 1))!.value, (await deps().store.getRevision(ns, 'lumen-agent', 2))!.value];
    const [oldCopy, newCopy] = snapshots.map((s) => s.config!.find((e) => e.kind === 'Secret')!.copyName);
    expect(snapshots[0].config!.find((e) => e.kind === 'Secret')).toEqual({ kind: 'Secret', namespace: ns, name: 'lumen-agent-token', copyName: expect.stringMatching(/^lumen-agent-token-[0-9a-f]{10}$/), digest: expect.stringMatching(/^sha256:/) });
    const secretCopy = await core.readNamespacedSecret({ name: oldCopy, namespace: ns });
    expect(Buffer.from(secretCopy.data!.token, 'base64').toString()).toBe('first-value-7f3a');
    expect(secretCopy.immutable).toBe(true);
    for (const text of [JSON.stringify(snapshots), JSON.stringify(first), JSON.stringify(second), log.lines.join('\n')]) {
      expect(text).not.toContain('first-value-7f3a');
      expect(text).not.toContain('second-value-c91e');
    }

    kubectl(['-n', ns, 'delete', 'secret', oldCopy]);
    await expect(rollback(deps(), { namespace: ns, name: 'lumen-agent', toRevision: 1 })).rejects.toThrow(
      new RegExp(`revision 1 of ${ns}/lumen-agent needs Secret ${ns}/${oldCopy} \\(the copy of lumen-agent-token that revision 1 runs with\\), which is no longer in the cluster.*nothing was changed`),
    );

    expect(await deps().store.listRevisionNumbers(ns, 'lumen-agent')).toEqual([1, 2]);
    expect((await deps().store.getState(ns, 'lumen-agent'))?.value.pin).toBeUndefined();
    const ds = await apps.readNamespacedDaemonSet({ name: 'lumen-agent', namespace: ns });
    expect(ds.spec?.template.spec?.volumes?.find((v) => v.name === 'config')?.secret?.secretName).toBe(newCopy);
  });
});
