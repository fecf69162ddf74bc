/**
 * `dsgitops ui` in a real browser (Debian's Chromium, driven by playwright-core) against the
 * local stack: the page lists the DaemonSets of a pass; during a managed rollout the grid shows
 * updated, updating and old nodes and the chart's unavailable line stays under the budget line;
 * an update that breaks nodes shows the broken node and the stall reason; a rollback from the
 * page lands and pins, and is refused without --allow-actions; a request without the token is
 * refused. Screenshots of each step go to test-artifacts/ui/ (ignored by git); with
 * UI_README_PICTURE=1 the rollout in flight is also written to docs/ui-rollout.png.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import type { CliValues } from '../../bin/cli';
import { reconcile } from '../../lib/reconcile';
import { adminClients, AvailabilityWatcher, NodeBreaker, stackEnv, waitFor } from '../support/cluster';
import { managedYaml, useWorkers, workerNames } from '../support/managed';
import { dsYaml } from '../support/manifests';
import { stackConfig, stackDeps } from '../support/reconciler';
import { cleanupScenarios, onCleanup, scenario } from '../support/scenario';
import { repoRoot } from '../../stack/paths';
import { countingDeps, CountingObjectStore } from '../support/counting-store';
import { passRecordKey } from '../../lib/store/pass-record';
import { HeadlessChromium, launchChromium, RunningUi, startUiInProcess } from '../support/ui';

jest.setTimeout(600_000);

const NODES = 8;
const READY_DELAY_SECONDS = 3;
const ARTIFACTS = join(repoRoot, 'test-artifacts', 'ui');
const { kc, core } = adminClients();

afterAll(cleanupScenarios);
useWorkers(NODES);

/** Runs `dsgitops ui` in this process, as the CLI does, with the scenario's cluster and store seen through the admin's kubeconfig. */
async function startUi(clusterName: string, ns: string, gitUrl: string, values: Partial<CliValues>, s3?: CountingObjectStore[]): Promise<RunningUi> {
  // The person's own credentials (admin here), as `dsgitops ui` is meant to run: Events need them.
  const config = stackConfig({ GIT_URL: gitUrl, ALLOWED_NAMESPACES: ns, CLUSTER_NAME: clusterName, KUBECONFIG: stackEnv().KUBECONFIG });
  return startUiInProcess(values, (budgetMs) => {
    if (!s3) return stackDeps(config, { budgetMs });
    // The page's S3 requests, counted (the real MinIO answers them).
    const counted = countingDeps(stackDeps(config, { budgetMs }));
    s3.push(counted.s3);
    return counted.deps;
  });
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

const GOOD_1 = 'registry.local/agent:1.0';
const GOOD_2 = 'registry.local/agent:1.1';
const BROKEN = 'registry.local/agent:2.0-breaks-nodes';

describe('dsgitops ui in a browser', () => {
  let browser: HeadlessChromium | undefined;
  let context: BrowserContext;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium('ui');
    context = browser.context;
  });

  afterAll(() => browser?.close());

  it('shows the last pass and its problems by file (a DaemonSet that never applied, a refused document), a native rollout against its budget, a diff of two revisions, and follows changes without polling S3', async () => {
    const { ns, git, deps, config } = await scenario('uipass');
    const exporter = (image: string) => dsYaml({ name: 'exporter', namespace: ns, image, maxUnavailable: 2, minReadySeconds: 2 });
    const invalidAgent = dsYaml({ name: 'new-agent', namespace: ns }).replace(/app: new-agent\n(\s+)updateStrategy/, 'app: not-new-agent\n$1updateStrategy');
    expect(invalidAgent).toContain('app: not-new-agent');
    const clusterRole = 'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: uipass-reader\nrules: []\n';
    git.write('exporter.yaml', exporter('registry.local/exporter:1.0')).write('agents.yaml', invalidAgent).write('rbac.yaml', clusterRole).commit('v1: an exporter, an agent with a typo, a ClusterRole');
    const first = await reconcile(deps());
    expect(first.daemonSets.find((d) => d.name === 'exporter')).toMatchObject({ applied: true });
    expect(first.daemonSets.find((d) => d.name === 'new-agent')).toMatchObject({ action: 'invalid', applied: false });
    // The report is kept in S3, bounded, and a pass with nothing new writes nothing more.
    const stored = await deps().objects.get(passRecordKey(deps().store.keys));
    expect(stored).toBeDefined();
    expect(stored!.body.length).toBeLessThanOrEqual(64 * 1024);
    const quiet = countingDeps(deps());
    expect((await reconcile(quiet.deps)).result).toBe('failed'); // the invalid manifest is still there
    expect(quiet.s3.written).toEqual([]);

    const s3: CountingObjectStore[] = [];
    const ui = await startUi(config.cluster.name, ns, git.url, {}, s3);
    onCleanup(ui.stop);
    const page = await context.newPage();
    await page.goto(ui.url);
    await page.waitForSelector(`#daemonsets tr[data-key="${ns}/new-agent"]`);
    expect(await page.textContent(`#daemonsets tr[data-key="${ns}/new-agent"]`)).toMatch(/agents\.yaml \(document 1\): spec\.selector does not match.*never applied/s);
    const agents = await page.textContent('#problems .file[data-file="agents.yaml"]');
    expect(agents).toMatch(new RegExp(`invalid.*document 1: ${ns}/new-agent \\(never applied\\)`, 's'));
    expect(await page.textContent('#problems .file[data-file="rbac.yaml"]')).toMatch(/refused.*ClusterRole uipass-reader.*ALLOWED_KINDS/s);
    expect(await page.textContent('#pass')).toMatch(/failed/);
    await shot(page, '8-last-pass-problems-by-file');

    // A quiet page reads nothing of S3; a change seen by the watches brings it back, live.
    await page.goto(`${ui.url}#ds=${ns}/exporter`);
    await page.waitForSelector('.tile[data-state="available"]');
    const reads = () => s3.reduce((n, c) => n + c.reads, 0);
    // Other managed DaemonSets of the cluster may still be settling (their changes are news for the
    // cluster's view): once they stop, an 8 s spell (longer than any poll of every few seconds
    // would leave) passes without a single S3 read. (This test runs first: the next one leaves a
    // node-breaking rollout behind until the end of the file.)
    await waitFor('an 8 s spell in which the open page reads nothing of S3', async () => {
      const before = reads();
      await page.waitForTimeout(8_000);
      return reads() === before ? true : undefined;
    }, 90_000, 0);
    const settled = reads();

    git.write('exporter.yaml', exporter('registry.local/exporter:1.1')).commit('v2: exporter 1.1');
    const rolled = await reconcile(deps());
    expect(rolled.daemonSets.find((d) => d.name === 'exporter')?.rollout).toMatchObject({ phase: 'complete', revision: 2 });
    await page.waitForFunction(`document.querySelectorAll('.tile[data-state="available"][data-revision="2"]').length === ${NODES}`, undefined, { timeout: 60_000 });
    expect(reads()).toBeGreaterThan(settled);
    // The native rollout's chart: the controller's counts against its budget (maxUnavailable 2), from the timeline in S3.
    await page.waitForFunction(`window.dsgitops.chart && window.dsgitops.chart.updated.at(-1) === ${NODES}`, undefined, { timeout: 30_000 });
    const chart = await page.evaluate<{ t: number[]; unavailable: number[]; budget: number[]; updated: number[] }>('window.dsgitops.chart');
    expect(chart.t.length).toBeGreaterThan(1);
    expect(new Set(chart.budget)).toEqual(new Set([2]));
    chart.unavailable.forEach((u, i) => expect(u).toBeLessThanOrEqual(chart.budget[i]));
    expect(Math.max(...chart.unavailable)).toBeGreaterThanOrEqual(1);
    expect(await page.textContent('#chart-note')).toMatch(/native rollout's timeline/);
    await shot(page, '9-native-rollout-chart');

    // The diff of two revisions: the template as applied.
    await page.check('input[name="diff-a"][value="1"]');
    await page.check('input[name="diff-b"][value="2"]');
    await page.click('#diff-button');
    await page.waitForSelector('#diff:not([hidden])');
    expect(await page.textContent('#diff')).toMatch(/--- revision 1\n\+\+\+ revision 2[\s\S]*-\s+- image: registry.local\/exporter:1.0\n\+\s+- image: registry.local\/exporter:1.1/);
    await shot(page, '10-diff');

    // Revisions that carry their configuration (snapshots as written with a DaemonSet's ConfigMaps and
    // Secrets): the diff shows the ConfigMap's data and only whether the Secret changed, never its value.
    const store = deps().store;
    const base = (await store.getRevision(ns, 'exporter', 2))!.value;
    const configured = (revision: number, level: string, secretDigest: string) => ({
      ...base, name: 'configured', revision, digest: `configured-${revision}`,
      manifest: { ...base.manifest, metadata: { name: 'configured', namespace: ns } },
      config: [
        { kind: 'ConfigMap' as const, namespace: ns, name: 'configured-settings', copyName: `configured-settings-${level}`, digest: `cm-${level}`, data: { 'level': level, 'flush': '5s' } },
        { kind: 'Secret' as const, namespace: ns, name: 'configured-token', copyName: `configured-token-${secretDigest}`, digest: secretDigest },
      ],
    });
    for (const [n, level, secret] of [[1, 'info', 's-one'], [2, 'debug', 's-two']] as const) {
      await deps().objects.put(store.keys.revision(ns, 'configured', n), JSON.stringify(configured(n, level, secret)), { ifNoneMatch: '*' });
    }
    await store.putState({ schema: 1, namespace: ns, name: 'configured', currentRevision: 2, appliedDigest: 'configured-2', updatedAt: new Date().toISOString() }, undefined);
    await page.goto(`${ui.url}#ds=${ns}/configured`);
    await page.waitForSelector('#revisions tr[data-revision="1"]');
    await page.check('input[name="diff-a"][value="1"]');
    await page.check('input[name="diff-b"][value="2"]');
    await page.click('#diff-button');
    await page.waitForFunction(`document.querySelector('#diff').textContent.includes('configuration')`, undefined, { timeout: 10_000 });
    const diff = (await page.textContent('#diff'))!;
    expect(diff).toMatch(/ConfigMap [^\n]*\/configured-settings: changed \(configured-settings-info -> configured-settings-debug\)/);
    expect(diff).toMatch(/-level: info\n\+level: debug/);
    expect(diff).toMatch(/Secret [^\n]*\/configured-token: changed[^\n]*values not shown/);
    await shot(page, '11-diff-configuration');
  });

  it('shows a pass, a managed rollout within its budget, a broken node and its stall, and rolls back from the page only with --allow-actions', async () => {
    const { ns, git, deps, config } = await scenario('ui');
    const nodes = await workerNames(core);
    const managed = (image: string, maxUnavailable: number, extra: Record<string, string> = {}) => managedYaml({ name: 'agent', namespace: ns, image, maxUnavailable, managedAnnotations: { 'daemonset-gitops.io/progress-deadline': '120', ...extra } }, READY_DELAY_SECONDS);
    git.write('agent.yaml', managed(GOOD_1, 2)).write('exporter.yaml', dsYaml({ name: 'exporter', namespace: ns, image: 'registry.local/exporter:1.0' })).commit('v1: an agent and an exporter');
    const first = await reconcile(deps());
    expect(first.daemonSets.map((d) => d.applied)).toEqual([true, true]);

    const ui = await startUi(config.cluster.name, ns, git.url, { 'allow-actions': true });
    onCleanup(ui.stop);
    const readOnly = await startUi(config.cluster.name, ns, git.url, {});
    onCleanup(readOnly.stop);
    const base = ui.url.replace(/\?token=.*$/, '');

    // Without the token (or with another), nothing is served: not the page, not the data, not an action.
    for (const path of ['', 'api/cluster', `api/daemonsets/${ns}/agent`, 'assets/app.js']) {
      expect((await fetch(`${base}${path}`)).status).toBe(403);
      expect((await fetch(`${base}${path}?token=not-the-token`)).status).toBe(403);
    }
    expect((await fetch(`${base}api/daemonsets/${ns}/agent/actions/pause`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ confirm: `${ns}/agent` }) })).status).toBe(403);
    const noToken = await context.newPage();
    await noToken.goto(base);
    expect(await noToken.textContent('body')).toContain('missing or wrong token');
    await shot(noToken, '0-no-token');
    await noToken.close();

    // The DaemonSets of the pass.
    const page = await context.newPage();
    await page.goto(ui.url);
    await page.waitForSelector(`#daemonsets tr[data-key="${ns}/agent"]`);
    await page.waitForSelector(`#daemonsets tr[data-key="${ns}/exporter"]`);
    const agentRow = await page.textContent(`#daemonsets tr[data-key="${ns}/agent"]`);
    expect(agentRow).toContain('v1: an agent and an exporter');
    expect(agentRow).toMatch(/complete/);
    await shot(page, '1-cluster');

    // A managed rollout in flight: updated, updating and old nodes at once, live.
    await page.goto(`${ui.url}#ds=${ns}/agent`);
    await page.waitForSelector('.tile[data-state="available"]');
    const watcher = new AvailabilityWatcher(kc, ns, 'app=agent', nodes);
    await watcher.start();
    git.write('agent.yaml', managed(GOOD_2, 2)).commit('v2: agent 1.1');
    const rollout = reconcile(deps());
    // (Code run in the page is given as text: this project's TypeScript has no DOM types.)
    await page.waitForFunction(`(() => {
      const tiles = [...document.querySelectorAll('.tile')].map((t) => t.dataset);
      return tiles.some((t) => t.state === 'available' && t.updated === 'true') && tiles.some((t) => t.state === 'updating') && tiles.some((t) => t.state === 'available' && t.updated === 'false');
    })()`, undefined, { timeout: 120_000, polling: 100 });
    await shot(page, '2-rollout-in-flight');
    if (process.env.UI_README_PICTURE === '1') await page.screenshot({ path: join(repoRoot, 'docs', 'ui-rollout.png'), clip: { x: 0, y: 0, width: 1400, height: 900 } });
    const inFlight = await page.$$eval('.tile', (ts) => ts.map((t) => t.getAttribute('data-revision')));
    // Old and new revisions side by side (a node whose pod is deleted and not yet replaced shows none).
    expect(inFlight).toContain('1');
    expect(inFlight).toContain('2');
    expect(inFlight.every((r) => ['1', '2', ''].includes(r ?? ''))).toBe(true);
    expect((await rollout).daemonSets.find((d) => d.name === 'agent')?.rollout).toMatchObject({ phase: 'complete', revision: 2 });
    watcher.stop();
    await page.waitForFunction(`document.querySelectorAll('.tile[data-state="available"][data-revision="2"]').length === ${NODES}`, undefined, { timeout: 30_000 });
    await page.waitForFunction(`window.dsgitops.chart && window.dsgitops.chart.updated.at(-1) === ${NODES}`, undefined, { timeout: 30_000 });
    const chart = await page.evaluate<{ t: number[]; unavailable: number[]; budget: number[]; updated: number[]; bands: { kind: string }[] }>('window.dsgitops.chart');
    await shot(page, '3-rollout-complete');
    // The budget line is maxUnavailable (2); the unavailable line never crosses it, and it did move (the chart is not empty).
    expect(chart.t.length).toBeGreaterThan(2);
    expect(new Set(chart.budget)).toEqual(new Set([2]));
    chart.unavailable.forEach((u, i) => expect(u).toBeLessThanOrEqual(chart.budget[i]));
    expect(Math.max(...chart.unavailable)).toBeGreaterThanOrEqual(1);
    expect(chart.bands.filter((b) => b.kind === 'wave').length).toBeGreaterThanOrEqual(2);
    // The independent watcher agrees: the cluster never had more unavailable than the budget.
    expect(watcher.maxUnavailableSeen).toBeLessThanOrEqual(2);

    // An update that takes down the node it reaches: the broken node, and why the rollout stopped.
    const breaker = new NodeBreaker(kc, ns, 'app=agent', BROKEN);
    await breaker.start();
    onCleanup(() => breaker.stop());
    git.write('agent.yaml', managed(BROKEN, 1)).commit('v3: a plugin that takes its node down');
    const broken = await reconcile(deps());
    expect(broken.daemonSets.find((d) => d.name === 'agent')?.rollout).toMatchObject({ revision: 3, phase: 'stalled' });
    await page.waitForSelector('.tile[data-state="broken"]', { timeout: 60_000 });
    await page.waitForSelector('#stall:not([hidden])', { timeout: 30_000 });
    expect(await page.textContent('#stall')).toMatch(/broke/);
    const brokenTiles = await page.$$eval('.tile[data-state="broken"]', (ts) => ts.map((t) => t.getAttribute('data-node')));
    expect(brokenTiles).toEqual(breaker.broken);
    expect(await page.getAttribute('.tile[data-state="broken"]', 'title')).toMatch(/NotReady after this rollout replaced its pod/);
    await shot(page, '4-broken-node-stalled');

    // Without --allow-actions the page has no actions, and the server refuses one sent anyway.
    const ro = await context.newPage();
    await ro.goto(`${readOnly.url}#ds=${ns}/agent`);
    await ro.waitForSelector('.tile');
    expect(await ro.isHidden('#actions')).toBe(true);
    const roToken = new URL(readOnly.url).searchParams.get('token')!;
    const refused = await ro.evaluate<{ status: number; body: string }>(`fetch('/api/daemonsets/${ns}/agent/actions/rollback?token=${roToken}', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ confirm: '${ns}/agent', toRevision: 2 }) })
      .then(async (res) => ({ status: res.status, body: await res.text() }))`);
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('--allow-actions');
    await shot(ro, '5-read-only');
    await ro.close();
    expect((await deps().store.getState(ns, 'agent'))!.value.pin).toBeUndefined();

    // With it: roll back to revision 2 from the page, confirmed by typing the DaemonSet's name.
    await page.selectOption('#rollback-to', '2');
    await page.click('button[data-action="rollback"]');
    await page.fill('#confirm-input', `${ns}/agent`);
    await page.fill('#confirm-reason', 'the 2.0 plugin takes nodes down');
    await shot(page, '6-rollback-confirm');
    await page.click('#confirm-ok');
    await page.waitForSelector('#action-result[data-ok]', { timeout: 300_000 });
    expect(await page.getAttribute('#action-result', 'data-ok')).toBe('true');
    const state = (await deps().store.getState(ns, 'agent'))!.value;
    expect(state).toMatchObject({ currentRevision: 4, pin: { revision: 2, reason: 'the 2.0 plugin takes nodes down' } });
    expect((await deps().store.getRevision(ns, 'agent', 4))!.value).toMatchObject({ cause: 'rollback', rollbackTo: 2 });
    await waitFor('every node to be Ready and run agent 1.1 again', async () => {
      const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=agent' })).items.filter((p) => !p.metadata!.deletionTimestamp);
      return pods.length === NODES && pods.every((p) => p.spec!.containers[0].image === GOOD_2) && breaker.broken.length > 0;
    }, 120_000);
    await page.waitForFunction(`document.querySelector('#daemonsets tr[data-key="${ns}/agent"]')?.textContent?.includes('revision 2: the 2.0 plugin takes nodes down')`, undefined, { timeout: 30_000 });
    await page.waitForFunction(`document.querySelectorAll('.tile[data-state="available"][data-revision="4"]').length === ${NODES}`, undefined, { timeout: 60_000 });
    await shot(page, '7-rolled-back-pinned');
    expect(ui.log.join('')).toMatch(new RegExp(`ui: rollback ${ns}/agent to revision 2 by \\S+ \\(the 2.0 plugin takes nodes down\\)`));
    expect(ui.log.join('')).toMatch(/ui: rollback .* done: /);
    expect(readOnly.log.join('')).toMatch(/ui: refused rollback .*read-only/);
  });
});
