/**
 * The reconcile pass against the real stack: Git -> diff -> write-ahead snapshot in S3 ->
 * server-side apply -> the controller's rolling update, tracked to the end.
 */
import { execFileSync } from 'node:child_process';
import * as k8s from '@kubernetes/client-node';
import { reconcile } from '../../lib/reconcile';
import { kubectl } from '../../stack/kubectl';
import {
  adminClients,
  AvailabilityWatcher,
  createNamespace,
  deleteNamespace,
  stackEnv,
  workerNodes,
} from '../support/cluster';
import { TestRepo } from '../support/git';
import { useWorkers } from '../support/managed';
import { dsYaml } from '../support/manifests';
import { captureLog, countApiRequests, stackConfig, stackDeps } from '../support/reconciler';

jest.setTimeout(300_000);

const { kc, core, apps } = adminClients();
const namespaces: string[] = [];
const repos: TestRepo[] = [];

async function namespace(prefix: string): Promise<string> {
  const ns = await createNamespace(core, prefix);
  namespaces.push(ns);
  return ns;
}

function repo(): TestRepo {
  const r = new TestRepo();
  repos.push(r);
  return r;
}

afterAll(async () => {
  for (const ns of namespaces) await deleteNamespace(core, ns);
  for (const r of repos) r.cleanup();
});


// The budgets below are of five workers (40% of 5 rounds up to 2), whatever size an earlier file left the stack at.
useWorkers(5);
async function liveImage(ns: string, name: string): Promise<string | undefined> {
  const ds = await apps.readNamespacedDaemonSet({ name, namespace: ns });
  return ds.spec!.template.spec!.containers[0].image;
}

async function podImages(ns: string, name: string): Promise<string[]> {
  const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${name}` });
  return pods.items.filter((p) => !p.metadata!.deletionTimestamp).map((p) => p.spec!.containers[0].image!).sort();
}

describe('reconcile: create, then roll out a pushed image bump', () => {
  it.each([
    ['an integer maxUnavailable', 2, 2],
    ['a percent maxUnavailable (40% of 5 workers rounds up to 2)', '40%', 2],
  ])('rolls out with %s and never has more desired nodes without a Ready pod than allowed', async (_label, maxUnavailable, budget) => {
    const ns = await namespace('roll');
    const workers = (await workerNodes(core)).map((n) => n.metadata!.name!);
    const git = repo();
    const podAnnotations = { 'pod-ready.stage.kwok.x-k8s.io/delay': '1s' };
    const sha1 = git.write('agents/agent.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable, podAnnotations })).commit('add agent');
    const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
    const deps = stackDeps(config);

    const first = await reconcile(deps);
    expect(first.result).toBe('succeeded');
    expect(first.daemonSets).toEqual([expect.objectContaining({ key: `${ns}/agent`, action: 'create', cause: 'create', applied: true, revision: 1 })]);
    expect(first.daemonSets[0].rollout).toMatchObject({ phase: 'complete', desired: workers.length, available: workers.length });

    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', workers);
    await watcher.start();
    const sha2 = git.write('agents/agent.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable, podAnnotations })).commit('bump agent to 2.0');
    const second = await reconcile(stackDeps(config));
    watcher.stop();

    expect(second.result).toBe('succeeded');
    expect(second.daemonSets[0]).toMatchObject({ action: 'update', cause: 'git-change', revision: 2, previousRevision: 1 });
    expect(second.daemonSets[0].rollout).toMatchObject({ phase: 'complete', upToDate: workers.length, available: workers.length });
    expect(await podImages(ns, 'agent')).toEqual(workers.map(() => 'registry.local/agent:2.0'));
    // The rollout really took nodes out (so the bound below is not vacuous) and never more than the budget.
    expect(watcher.maxUnavailableSeen).toBeGreaterThanOrEqual(1);
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(budget);

    expect(await deps.store.listRevisionNumbers(ns, 'agent')).toEqual([1, 2]);
    const r1 = (await deps.store.getRevision(ns, 'agent', 1))!.value;
    const r2 = (await deps.store.getRevision(ns, 'agent', 2))!.value;
    expect(r1).toMatchObject({ cause: 'create', outcome: 'healthy', commit: { sha: sha1, subject: 'add agent' }, replaced: null });
    expect(r2).toMatchObject({ cause: 'git-change', outcome: 'healthy', commit: { sha: sha2, subject: 'bump agent to 2.0' } });
    expect((r2.replaced as { spec: { template: { spec: { containers: { image: string }[] } } } }).spec.template.spec.containers[0].image).toBe('registry.local/agent:1.0');

    const live = await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns });
    expect(live.metadata!.labels!['daemonset-gitops.io/managed-by']).toBe('daemonset-gitops');
    expect(live.metadata!.annotations).toMatchObject({
      'daemonset-gitops.io/revision': '2',
      'daemonset-gitops.io/git-commit': sha2,
      'daemonset-gitops.io/source-path': 'agents/agent.yaml',
      'daemonset-gitops.io/manifest-digest': r2.digest,
    });
    const events = await core.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=agent' });
    const ours = events.items.filter((e) => e.source?.component === 'daemonset-gitops').map((e) => `${e.reason}: ${e.message}`);
    expect(ours).toEqual(expect.arrayContaining([
      expect.stringMatching(/^RevisionApplied: revision 2 \(git-change\) from commit [0-9a-f]{7} "bump agent to 2.0"/),
      expect.stringMatching(/^RolloutComplete: revision 2 rolled out/),
    ]));
  });
});

describe('reconcile: drift', () => {
  async function driftedSetup(selfHeal: string) {
    const ns = await namespace('drift');
    const git = repo();
    git.write('ds.yaml', dsYaml({ name: 'exporter', namespace: ns, image: 'registry.local/exporter:1.0' })).commit('add exporter');
    const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, SELF_HEAL: selfHeal });
    expect((await reconcile(stackDeps(config))).result).toBe('succeeded');
    // kubectl set image, out of band
    await apps.patchNamespacedDaemonSet(
      { name: 'exporter', namespace: ns, fieldManager: 'kubectl-set', body: { spec: { template: { spec: { containers: [{ name: 'agent', image: 'registry.local/exporter:hotfix' }] } } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    return { ns, config };
  }

  it('corrects an out-of-band image change on the next pass and records it as drift-correction', async () => {
    const { ns, config } = await driftedSetup('true');
    const deps = stackDeps(config);
    const report = await reconcile(deps);
    expect(report.daemonSets[0]).toMatchObject({ action: 'drifted', cause: 'drift-correction', applied: true, revision: 2 });
    expect(report.daemonSets[0].rollout?.phase).toBe('complete');
    expect(await liveImage(ns, 'exporter')).toBe('registry.local/exporter:1.0');
    const r2 = (await deps.store.getRevision(ns, 'exporter', 2))!.value;
    expect(r2).toMatchObject({ cause: 'drift-correction', outcome: 'healthy' });
    expect((r2.replaced as { spec: { template: { spec: { containers: { image: string }[] } } } }).spec.template.spec.containers[0].image).toBe('registry.local/exporter:hotfix');
  });

  it('only reports drift when SELF_HEAL=false, with the diff, and changes nothing', async () => {
    const { ns, config } = await driftedSetup('false');
    const deps = stackDeps(config);
    const report = await reconcile(deps);
    expect(report.daemonSets[0]).toMatchObject({ action: 'drifted', applied: false, revision: 1 });
    expect(report.daemonSets[0].message).toMatch(/SELF_HEAL=false/);
    expect(report.daemonSets[0].diff).toMatch(/-\s+- image: registry.local\/exporter:hotfix\n\+\s+- image: registry.local\/exporter:1.0/);
    expect(await liveImage(ns, 'exporter')).toBe('registry.local/exporter:hotfix');
    expect(await deps.store.listRevisionNumbers(ns, 'exporter')).toEqual([1]);
  });
});

describe('reconcile: steady state', () => {
  async function steadyPassCost(count: number): Promise<{ requests: number; verbs: string[] }> {
    const ns = await namespace(`steady${count}`);
    const git = repo();
    for (let i = 0; i < count; i++) git.write(`ds/agent-${i}.yaml`, dsYaml({ name: `agent-${i}`, namespace: ns }));
    git.commit(`${count} agents`);
    const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
    const first = await reconcile(stackDeps(config));
    expect(first.result).toBe('succeeded');
    expect(first.summary.create).toBe(count);

    const deps = stackDeps(config);
    const revisionsBefore = await deps.store.listRevisionNumbers(ns, 'agent-0');
    const { result, requests, verbs } = await countApiRequests(() => reconcile(deps), { thisProcess: true });
    expect(result.result).toBe('succeeded');
    expect(result.summary).toEqual({ total: count, unchanged: count });
    expect(result.daemonSets.every((d) => !d.applied)).toBe(true);
    expect(await deps.store.listRevisionNumbers(ns, 'agent-0')).toEqual(revisionsBefore);
    expect(result.kubernetesRequests).toBe(requests);
    return { requests, verbs };
  }

  it('applies nothing, writes no revision, and costs the same API requests for 3 and for 30 DaemonSets', async () => {
    const three = await steadyPassCost(3);
    const thirty = await steadyPassCost(30);
    expect(three.requests).toBeGreaterThan(0);
    expect(thirty.requests).toBe(three.requests);
    expect(thirty.verbs).toEqual(three.verbs);
  });

  it.each([
    ['kubectl rollout restart', ['rollout', 'restart', 'daemonset/agent']],
    ['kubectl set env of a variable Git does not declare', ['set', 'env', 'daemonset/agent', 'LOG_LEVEL=debug']],
  ])('after %s: one pass pays a dry run and reports unchanged, the next makes one request', async (_label, args) => {
    const ns = await namespace('restart');
    const git = repo();
    git.write('ds.yaml', dsYaml({ name: 'agent', namespace: ns })).commit('agent');
    const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
    expect((await reconcile(stackDeps(config))).daemonSets[0]).toMatchObject({ action: 'create', revision: 1 });
    const generation = (await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns })).metadata!.generation!;
    kubectl([...args, '-n', ns]);
    expect((await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns })).metadata!.generation).toBe(generation + 1);
    const mine = (verbs: string[]) => verbs.filter((v) => v.includes(`/namespaces/${ns}/`));

    const first = await countApiRequests(() => reconcile(stackDeps(config)), { thisProcess: true });
    expect(first.result.daemonSets[0]).toMatchObject({ action: 'unchanged', applied: false, revision: 1 });
    // The dry run, and nothing else in this namespace. The pass plans before it takes the lease
    // and looks again under it; if the controller wrote the DaemonSet's status in between (the
    // restart is rolling its pods), that second look repeats the dry run.
    const dryRuns = mine(first.verbs);
    expect(dryRuns.length).toBeGreaterThanOrEqual(1);
    expect(dryRuns.length).toBeLessThanOrEqual(2);
    expect(new Set(dryRuns)).toEqual(new Set([`patch /apis/apps/v1/namespaces/${ns}/daemonsets/agent`]));

    const second = await countApiRequests(() => reconcile(stackDeps(config)), { thisProcess: true });
    expect(second.result.kubernetesRequests).toBe(1);
    expect(second.result.daemonSets[0]).toMatchObject({ action: 'unchanged', applied: false, revision: 1, message: 'revision 1 is applied' });
    expect(second.verbs).toContain('list /apis/apps/v1/daemonsets');
    expect(mine(second.verbs)).toEqual([]);
    expect(await stackDeps(config).store.listRevisionNumbers(ns, 'agent')).toEqual([1]);
  });
});

describe('reconcile: concurrent passes', () => {
  it('lets exactly one of four simultaneous passes act; the others report the lease holder', async () => {
    const ns = await namespace('race');
    const git = repo();
    git.write('ds.yaml', dsYaml({ name: 'racer', namespace: ns })).commit('add racer');
    const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
    expect((await reconcile(stackDeps(config))).result).toBe('succeeded');
    git.write('ds.yaml', dsYaml({ name: 'racer', namespace: ns, image: 'registry.local/agent:2.0' })).commit('bump racer');

    const runs = await Promise.all([1, 2, 3, 4].map((i) => reconcile(stackDeps(config, { runId: `racer-${i}` }))));
    const acted = runs.filter((r) => r.result === 'succeeded');
    const skipped = runs.filter((r) => r.result === 'skipped');
    expect(acted).toHaveLength(1);
    expect(skipped).toHaveLength(3);
    expect(acted[0].daemonSets[0]).toMatchObject({ action: 'update', revision: 2, applied: true });
    for (const s of skipped) {
      expect(s.lease?.holder).toBe(acted[0].runId);
      expect(s.daemonSets).toEqual([]);
    }
    expect(await stackDeps(config).store.listRevisionNumbers(ns, 'racer')).toEqual([1, 2]);
  });
});

describe('reconcile: over HTTPS-style git with a token', () => {
  it('fetches with GIT_TOKEN and never shows the token in logs or reports, even when it is wrong', async () => {
    const env = stackEnv();
    const ns = await namespace('http');
    const git = repo();
    git.write('ds.yaml', dsYaml({ name: 'viahttp', namespace: ns })).commit('over http');
    const served = `it-${ns}.git`;
    execFileSync('git', ['clone', '--quiet', '--bare', git.bare, `${env.GIT_HTTP_ROOT}/${served}`]);

    const log = captureLog();
    const good = await reconcile(stackDeps(stackConfig({ GIT_URL: `${env.GIT_HTTP_BASE}/${served}`, GIT_TOKEN: env.GIT_HTTP_TOKEN, ALLOWED_NAMESPACES: ns }), { logger: log.logger }));
    expect(good.result).toBe('succeeded');
    expect(good.daemonSets[0]).toMatchObject({ action: 'create', applied: true });

    const wrongToken = 'wrong-token-7f3a9c';
    const badLog = captureLog();
    const bad = await reconcile(stackDeps(stackConfig({ GIT_URL: `${env.GIT_HTTP_BASE}/${served}`, GIT_TOKEN: wrongToken, ALLOWED_NAMESPACES: ns }), { logger: badLog.logger }));
    expect(bad.result).toBe('failed');
    expect(bad.error?.message).toMatch(/git fetch of .* failed/);
    expect(bad.error?.message).toMatch(/GIT_TOKEN/);
    const everything = JSON.stringify([good, bad]) + log.lines.join('\n') + badLog.lines.join('\n');
    expect(everything).not.toContain(env.GIT_HTTP_TOKEN);
    expect(everything).not.toContain(wrongToken);
    expect(everything).not.toContain(Buffer.from(`x-access-token:${wrongToken}`).toString('base64'));
  });
});

