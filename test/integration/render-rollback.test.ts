/**
 * A rollback of a rendered DaemonSet from a cold process (the `dsgitops` command, a checkout
 * cache it has never seen) while the chart repository the kustomization pulls from is stopped:
 * nothing renders, the stored rendered revision is applied, and the pin is held against the
 * digest the last pass recorded, so the next pass of the same commit keeps it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../lib/config';
import { reconcile } from '../../lib/reconcile';
import type { ReconcileReport } from '../../lib/report';
import { adminClients, createNamespace, stackEnv } from '../support/cluster';
import { TestRepo } from '../support/git';
import { runCliProcess, stackConfigEnv, stackDeps } from '../support/reconciler';
import { ChartRepository, countingKustomize, writeBase, writeOverlay } from '../support/render-repo';
import { cleanupScenarios, onCleanup } from '../support/scenario';

jest.setTimeout(300_000);

const { core, apps } = adminClients();
afterAll(() => cleanupScenarios());

function row(report: ReconcileReport, key: string) {
  const r = report.daemonSets.find((d) => d.key === key);
  if (!r) throw new Error(`${key} is not in the report: ${JSON.stringify(report.daemonSets.map((d) => d.key))} ${JSON.stringify(report.problems)} ${report.error?.message ?? ''}`);
  return r;
}

describe('a rollback in a new process, with no render of the head at hand and the chart repository stopped', () => {
  const git = new TestRepo();
  onCleanup(() => git.cleanup());
  const charts = new ChartRepository(stackEnv().HELM_BIN!);
  onCleanup(() => charts.stop());
  const kustomize = countingKustomize(stackEnv().KUSTOMIZE_BIN!);
  let ns: string;
  let env: Record<string, string>;
  let head: string;

  beforeAll(async () => {
    ns = await createNamespace(core, 'render-rb');
    onCleanup(() => core.deleteNamespace({ name: ns }).then(() => undefined, () => undefined));
    await charts.start();
    charts.publish('0.2.0');
    env = stackConfigEnv({ GIT_URL: git.url, GIT_PATH: 'clusters/edge', ALLOWED_NAMESPACES: ns, RENDER_ALLOW_REMOTE: 'true', KUSTOMIZE_BIN: kustomize.bin });
    const w = git.write.bind(git);
    writeBase(w);
    writeOverlay(w, 'clusters/edge', { namespace: ns, tag: '1.0.0', chart: { repo: charts.url, version: '0.2.0', interval: '20s' } });
    git.commit('probe 0.2.0 from the chart repository, every 20s');
    expect(row(await reconcile(stackDeps(loadConfig(env))), `${ns}/edge-probe`)).toMatchObject({ action: 'create', revision: 1 });
    writeOverlay(w, 'clusters/edge', { namespace: ns, tag: '1.0.0', chart: { repo: charts.url, version: '0.2.0', interval: '40s' } });
    head = git.commit('probe every 40s');
    expect(row(await reconcile(stackDeps(loadConfig(env))), `${ns}/edge-probe`)).toMatchObject({ action: 'update', revision: 2 });
  });

  it('applies the stored rendered revision without rendering, pins it against the digest the last pass recorded, and the next pass keeps it', async () => {
    const deps = stackDeps(loadConfig(env));
    const recorded = (await deps.store.getState(ns, 'edge-probe'))!.value.gitDigest;
    expect(recorded).toMatch(/^sha256:/);
    await charts.stop();
    const rendersBefore = kustomize.runs();

    // A process that has never rendered this commit, with a checkout cache of its own.
    const cold = { ...env, GIT_CACHE_DIR: mkdtempSync(join(tmpdir(), 'dsgitops-cold-cache-')) };
    const run = await runCliProcess(['rollback', `${ns}/edge-probe`, '--to-revision', '1', '--reason', 'the 40s interval misses short spikes', '--no-wait', '--json'], cold);

    expect({ code: run.code, signal: run.signal }).toEqual({ code: 0, signal: null });
    expect(JSON.parse(run.stdout)).toMatchObject({ toRevision: 1, revision: 3 });
    // It said why it held the pin against the recorded digest: no render of the head at hand, and it does not render.
    const warning = run.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: string; msg: string }).find((l) => l.level === 'warn' && l.msg.includes('a rollback does not render'));
    expect(warning?.msg).toContain(`clusters/edge is rendered by kustomize and no render of ${head.slice(0, 7)} is at hand`);
    expect(kustomize.runs()).toBe(rendersBefore);
    const live = await apps.readNamespacedDaemonSet({ namespace: ns, name: 'edge-probe' });
    expect(live.spec!.template.spec!.containers[0].args).toEqual(['--interval=20s']);
    const [one, three] = await Promise.all([1, 3].map(async (n) => (await deps.store.getRevision(ns, 'edge-probe', n))!.value));
    expect(three.manifest).toEqual(one.manifest);
    expect(three.rendered).toEqual(one.rendered);
    const state = (await deps.store.getState(ns, 'edge-probe'))!.value;
    expect(state).toMatchObject({ currentRevision: 3, pin: { revision: 1, reason: 'the 40s interval misses short spikes', gitDigest: recorded } });

    // The pass of the same commit (its render at hand in this process) finds Git unchanged since the pin: it holds.
    const next = await reconcile(stackDeps(loadConfig(env)));
    expect(row(next, `${ns}/edge-probe`)).toMatchObject({ action: 'pinned', applied: false, revision: 3, pin: { revision: 1 } });
    expect((await apps.readNamespacedDaemonSet({ namespace: ns, name: 'edge-probe' })).spec!.template.spec!.containers[0].args).toEqual(['--interval=20s']);
    expect(kustomize.runs()).toBe(rendersBefore);
  });
});
