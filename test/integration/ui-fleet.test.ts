/**
 * The fleet on the page of `dsgitops ui`, in a real browser (Debian's Chromium, driven by
 * playwright-core), against three clusters of the local stack (STACK_CLUSTERS=3): a page opened
 * before a promotion follows it live — the durable promotion, run by the SDK's local runner with
 * real passes, takes a commit through both waves — and ends showing each wave's clusters with
 * the commit each runs; a hold taken from the page (confirmed, with a reason) lands in S3's
 * history with who and why; a resume taken elsewhere shows up without a reload; while quiet the
 * page reads nothing of S3 but the promotion record, at most once per interval. Without
 * --allow-actions, or without the token, the hold is refused. Screenshots in
 * test-artifacts/ui-fleet/.
 */
import { mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import type { CliValues } from '../../bin/cli';
import { systemClock } from '../../lib/clock';
import { resumePromotion } from '../../lib/fleet/operate';
import type { PromotionResult } from '../../lib/fleet/orchestrate';
import { repoRoot } from '../../stack/paths';
import { countingDeps, CountingObjectStore } from '../support/counting-store';
import { FLEET_CLUSTERS, FleetWorld } from '../support/fleet';
import { promotionRunner, setUpPromotionFleet, tearDownPromotionFleet } from '../support/promotion';
import { stackDeps } from '../support/reconciler';
import { HeadlessChromium, launchChromium, RunningUi, startUiInProcess } from '../support/ui';

jest.setTimeout(600_000);

const ARTIFACTS = join(repoRoot, 'test-artifacts', 'ui-fleet');

let world: FleetWorld;
let browser: HeadlessChromium | undefined;
let context: BrowserContext;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  world = await setUpPromotionFleet({ canarySoakSeconds: 3, prodMaxConcurrent: 1 });
  browser = await launchChromium('ui-fleet');
  context = browser.context;
});

afterAll(async () => {
  await browser?.close();
  await tearDownPromotionFleet(world);
});

interface Running extends RunningUi {
  s3: CountingObjectStore[];
}

/** `dsgitops ui` in this process for the fleet's configuration (the page serves staging, CLUSTER_NAME), every S3 request counted. */
async function startUi(values: Partial<CliValues>): Promise<Running> {
  const s3: CountingObjectStore[] = [];
  const ui = await startUiInProcess(values, (budgetMs) => {
    const counted = countingDeps(stackDeps(world.config, { budgetMs }));
    s3.push(counted.s3);
    return counted.deps;
  });
  return { ...ui, s3 };
}

async function promote(): Promise<PromotionResult | undefined> {
  const execution = await promotionRunner(world).run({ payload: { by: 'test' } });
  expect(execution.getStatus()).toBe('SUCCEEDED');
  return execution.getResult();
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
const clusterRow = (name: string) => `#fleet .fleet-cluster[data-cluster="${name}"]`;

describe('the fleet on dsgitops ui', () => {
  it('follows a promotion live, shows each wave\'s clusters and the commit each runs, and holds it from the page with a reason that lands in S3', async () => {
    const v1 = world.commitAgent('registry.local/agent:1.0', 'v1: agent 1.0');
    const ui = await startUi({ 'allow-actions': true });
    try {
      const page = await context.newPage();
      await page.goto(ui.url);
      // Before any promotion: the waves and their clusters, nothing promoted.
      await page.waitForSelector(`${clusterRow('prod-b')}[data-state="not-promoted"]`, { timeout: 60_000 });
      expect(await page.$$eval('#fleet .wave', (ws) => ws.map((w) => [w.getAttribute('data-wave'), [...w.querySelectorAll('.fleet-cluster')].map((c) => c.getAttribute('data-cluster'))]))).toEqual([['canary', ['staging']], ['prod', ['prod-a', 'prod-b']]]);
      await shot(page, '1-before-promotion');

      // A real promotion through both waves; the open page follows it without a reload.
      const result = await promote();
      expect(result?.decision).toEqual({ kind: 'done', commit: v1 });
      for (const c of FLEET_CLUSTERS) {
        await page.waitForSelector(`${clusterRow(c)}[data-runs="${v1}"][data-state="healthy"]`, { timeout: 30_000 });
        // What the page says each cluster runs is what S3 says was promoted to it, and what its API server runs.
        expect((await world.store.readCluster(c)).promoted?.commit).toBe(v1);
        expect(await world.liveImage(c)).toBe('registry.local/agent:1.0');
        expect(await page.textContent(clusterRow(c))).toContain(`runs ${v1.slice(0, 7)}`);
      }
      // The promotion record's last change (done) reaches the page within one interval of its look at it.
      await page.waitForSelector('#fleet-promotion b[data-status="done"]', { timeout: 15_000 });
      expect(await page.textContent('#fleet-promotion')).toMatch(new RegExp(`promotion of ${v1.slice(0, 7)} done`));
      // The history, newest first, as the promotion wrote it.
      expect(await page.$$eval('#fleet-history tbody tr', (rows) => rows.map((r) => r.getAttribute('data-event')))).toEqual(['done', 'promoted', 'promoted', 'advanced', 'promoted', 'started']);
      // Only the page's own cluster links to its view; a healthy state has a glyph and a word besides its colour.
      expect(await page.$$eval('#fleet .fleet-cluster a[href="#cluster"]', (as) => as.map((a) => a.textContent))).toEqual(['staging']);
      expect(await page.textContent(`${clusterRow('prod-a')} .badge`)).toBe('●');
      expect(await page.textContent(clusterRow('prod-a'))).toContain('healthy');
      await shot(page, '2-promoted-everywhere');

      // Quiet: no LIST (the history is listed only after a record changed); the promotion record at
      // most once per 5-second interval (and once more if the page's slow 30-second look at S3
      // falls in the window, which also looks once at each cluster's record and the page's own).
      const quietFrom = ui.s3.map((s) => s.read.length);
      await new Promise((resolve) => setTimeout(resolve, 9_500));
      const quiet = ui.s3.flatMap((s, i) => s.read.slice(quietFrom[i] ?? 0));
      const prefix = world.config.s3.prefix;
      expect(quiet.filter((k) => k.startsWith(world.store.historyPrefix()))).toEqual([]);
      expect(quiet.filter((k) => k === world.store.promotionKey()).length).toBeLessThanOrEqual(3);
      for (const c of FLEET_CLUSTERS) expect(quiet.filter((k) => k === world.store.clusterKey(c)).length).toBeLessThanOrEqual(1);
      const allowed = new Set([world.store.promotionKey(), ...FLEET_CLUSTERS.map((c) => world.store.clusterKey(c)), `${prefix}/staging/index.json`, `${prefix}/staging/last-pass.json`]);
      expect(quiet.filter((k) => !allowed.has(k))).toEqual([]);

      // Hold from the page: the button, the promotion's commit typed back, a reason.
      await page.click('#fleet-actions button[data-fleet-action="hold"]');
      await page.fill('#fleet-confirm-input', v1.slice(0, 7));
      await page.fill('#fleet-confirm-reason', 'incident 42: a node agent crashloops in prod');
      await page.click('#fleet-confirm-ok');
      await page.waitForSelector('#fleet-held:not([hidden])', { timeout: 30_000 });
      expect(await page.textContent('#fleet-held')).toContain(`held by ${userInfo().username}`);
      expect(await page.textContent('#fleet-held')).toContain('incident 42: a node agent crashloops in prod');
      const { promotion } = await world.store.readPromotion();
      expect(promotion?.held).toMatchObject({ by: userInfo().username, reason: 'incident 42: a node agent crashloops in prod' });
      const history = await world.store.history(5);
      expect(history[0]).toMatchObject({ event: 'held', commit: v1, by: userInfo().username, reason: 'incident 42: a node agent crashloops in prod' });
      expect(ui.log.join('')).toContain(`ui: fleet hold of ${v1.slice(0, 7)} by ${userInfo().username} (incident 42: a node agent crashloops in prod)`);
      await page.waitForSelector('#fleet-history tbody tr[data-event="held"].by-hand');
      await shot(page, '3-held-from-the-page');

      // A resume taken elsewhere (the CLI's library call) reaches the open page through the promotion record alone.
      await resumePromotion(world.store, systemClock, { by: 'bob', reason: 'incident over' });
      await page.waitForSelector('#fleet-held[hidden]', { state: 'attached', timeout: 20_000 });
      await page.waitForSelector('#fleet-history tbody tr[data-event="resumed"]', { timeout: 20_000 });
      expect(await page.textContent('#fleet-history tbody tr[data-event="resumed"]')).toContain('incident over');
      await shot(page, '4-resumed-elsewhere');

      // A confirmation that names another commit, or no reason, is refused and changes nothing.
      const post = (body: object) => page.evaluate(`fetch('/api/fleet/actions/hold?token=' + document.body.dataset.token, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: ${JSON.stringify(JSON.stringify(body))} }).then(async (r) => [r.status, await r.json()])`) as Promise<[number, { error?: string }]>;
      expect(await post({ confirm: 'fffffff', reason: 'x' })).toEqual([400, { error: `not confirmed: type ${v1.slice(0, 7)} (the promotion's commit) to hold it` }]);
      expect((await post({ confirm: v1.slice(0, 7) }))[0]).toBe(400);
      expect((await world.store.readPromotion()).promotion?.held).toBeUndefined();
      await page.close();
    } finally {
      await ui.stop();
    }
  });

  it('refuses a hold without --allow-actions and a request without the token', async () => {
    const ui = await startUi({});
    try {
      const page = await context.newPage();
      await page.goto(ui.url);
      await page.waitForSelector(`${clusterRow('staging')}[data-state="healthy"]`, { timeout: 60_000 });
      expect(await page.isHidden('#fleet-actions')).toBe(true);
      const refused = await page.evaluate(`fetch('/api/fleet/actions/hold?token=' + document.body.dataset.token, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ confirm: 'x', reason: 'y' }) }).then(async (r) => [r.status, await r.json()])`) as [number, { error: string }];
      expect(refused[0]).toBe(403);
      expect(refused[1].error).toMatch(/read-only: start dsgitops ui with --allow-actions/);
      const origin = new URL(ui.url).origin;
      const noToken = await fetch(`${origin}/api/fleet`);
      expect(noToken.status).toBe(403);
      const noTokenHold = await fetch(`${origin}/api/fleet/actions/hold`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
      expect(noTokenHold.status).toBe(403);
      expect((await world.store.readPromotion()).promotion?.held).toBeUndefined();
      await shot(page, '5-read-only');
      // The interval's look at the promotion record is a conditional GET: MinIO answers 304 while it is unchanged.
      const objects = stackDeps(world.config).objects;
      const current = await objects.get(world.store.promotionKey());
      expect(await objects.getIfNoneMatch!(world.store.promotionKey(), current!.etag)).toBe('not-modified');
      expect(await objects.getIfNoneMatch!(world.store.promotionKey(), '"another-version"')).toMatchObject({ etag: current!.etag, body: current!.body });
      await page.close();
    } finally {
      await ui.stop();
    }
  });
});
