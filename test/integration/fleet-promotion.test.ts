/**
 * The durable promotion, run by the SDK's own local runner, driving real per-cluster passes
 * against three API servers of the local stack: waves in order with their soak, a
 * node-breaking commit stopped and rolled back in the first wave, replay after a crash
 * without a second pass of any cluster, and a held promotion that stays held.
 */
import type { LocalDurableTestRunner } from '@aws/durable-execution-sdk-js-testing';
import { readFleetHead } from '../../lib/fleet/fleet-source';
import type { PromotionResult } from '../../lib/fleet/orchestrate';
import { NodeBreaker, waitFor } from '../support/cluster';
import { FLEET_CLUSTERS, FleetWorld } from '../support/fleet';
import { managedYaml } from '../support/managed';
import { PromotionPass, promotionRunner, setUpPromotionFleet, tearDownPromotionFleet } from '../support/promotion';
import { stackConfigEnv } from '../support/reconciler';
import { runCli } from '../../bin/cli';

jest.setTimeout(600_000);

const GOOD = 'registry.local/agent:1.0';
const GOOD2 = 'registry.local/agent:1.1';
const BROKEN = 'registry.local/agent:2.0-breaks-nodes';
const CANARY_SOAK_SECONDS = 4;

let world: FleetWorld;

beforeAll(async () => {
  world = await setUpPromotionFleet({ canarySoakSeconds: CANARY_SOAK_SECONDS, prodMaxConcurrent: 1 });
});

afterAll(() => tearDownPromotionFleet(world));

/** A runner of the promotion whose per-cluster passes are real passes on the stack, each logged in `calls`. */
function loggedRunner(calls: PromotionPass[], faults: { failLookOnce?: number; crashes?: number } = {}): LocalDurableTestRunner<PromotionResult> {
  let looks = 0;
  let failed = false;
  return promotionRunner(world, {
    onPass: (pass) => calls.push(pass),
    readHead: async () => {
      looks++;
      // A crash of the orchestration between two steps: this invocation dies, the next one replays.
      if (faults.failLookOnce !== undefined && looks === faults.failLookOnce && !failed) {
        failed = true;
        faults.crashes = (faults.crashes ?? 0) + 1;
        throw new Error('injected crash of the orchestration');
      }
      return readFleetHead(world.config);
    },
  });
}

function agentYaml(image: string): string {
  return managedYaml({ name: 'agent', namespace: world.ns, image, maxUnavailable: 1, managedAnnotations: { 'daemonset-gitops.io/auto-rollback': 'true', 'daemonset-gitops.io/progress-deadline': '30' } }, 1);
}

function commitEverywhere(image: string, message: string): string {
  return world.commitAgent(image, message, agentYaml);
}

describe('the durable promotion over three clusters', () => {
  it('carries a good commit through every wave in order, never into wave n+1 before wave n was healthy for its soak', async () => {
    const v1 = commitEverywhere(GOOD, 'v1');
    const calls: PromotionPass[] = [];
    const execution = await loggedRunner(calls).run({ payload: { by: 'test' } });
    expect(execution.getStatus()).toBe('SUCCEEDED');
    expect(execution.getResult()?.decision).toEqual({ kind: 'done', commit: v1 });
    for (const c of FLEET_CLUSTERS) expect(await world.liveImage(c)).toBe(GOOD);

    const first = (cluster: string) => calls.find((c) => c.cluster === cluster && c.commit === v1)!;
    const stagingHealthy = calls.find((c) => c.cluster === 'staging' && c.result === 'healthy')!;
    expect(stagingHealthy).toBeDefined();
    // Wave prod began only after staging had been healthy for the canary's soak.
    expect(first('prod-a').startedAt - stagingHealthy.endedAt).toBeGreaterThanOrEqual(CANARY_SOAK_SECONDS * 1000);
    // maxConcurrent 1: prod-b's first pass started after prod-a's first ended.
    expect(first('prod-b').startedAt).toBeGreaterThanOrEqual(first('prod-a').endedAt);
    // Each wave: one pass per cluster to apply the commit, one more when its soak ends to confirm it healthy.
    expect(calls.map((c) => c.cluster)).toEqual(['staging', 'staging', 'prod-a', 'prod-b', 'prod-a', 'prod-b']);
    const history = (await world.store.history()).reverse().map((h) => `${h.event}${h.wave ? ` ${h.wave}` : ''}${h.clusters ? ` ${h.clusters.join(',')}` : ''}`);
    expect(history).toEqual(['started canary', 'promoted canary staging', 'advanced prod', 'promoted prod prod-a', 'promoted prod prod-b', 'done']);
  });

  it('stops a node-breaking commit in the first wave, where auto-rollback undoes it; the other clusters never see it', async () => {
    const before = await world.store.readCluster('prod-a');
    const staging = world.clients.staging;
    const breaker = new NodeBreaker(staging.kc, world.ns, 'app=agent', BROKEN);
    await breaker.start();
    try {
      const v2 = commitEverywhere(BROKEN, 'v2: a plugin that takes its node down');
      const calls: PromotionPass[] = [];
      const execution = await loggedRunner(calls).run({ payload: { by: 'test' } });
      expect(execution.getStatus()).toBe('SUCCEEDED');
      const decision = execution.getResult()!.decision;
      expect(decision).toMatchObject({ kind: 'stop', wave: 0, cluster: 'staging', daemonSet: `${world.ns}/agent` });
      expect((decision as { reason: string }).reason).toMatch(/stalled/);
      expect(breaker.broken.length).toBeGreaterThanOrEqual(1);
      // Rolled back in staging: the good image on every pod again.
      await waitFor('staging to run the good image again', async () => (await world.liveImage('staging')) === GOOD, 60_000);
      // Never promoted to, nor reconciled in, the other clusters.
      expect(calls.filter((c) => c.cluster !== 'staging')).toEqual([]);
      for (const c of ['prod-a', 'prod-b']) {
        expect((await world.store.readCluster(c)).promoted?.commit).toBe(before.promoted!.commit);
        expect(await world.liveImage(c)).toBe(GOOD);
      }
      const { promotion } = await world.store.readPromotion();
      expect(promotion).toMatchObject({ commit: v2, status: 'stopped', stopped: { cluster: 'staging', daemonSet: `${world.ns}/agent` } });
    } finally {
      await breaker.stop();
    }
  });

  it('after a crash mid-wave, resumes by replay and reconciles no cluster twice for the same promotion', async () => {
    const v3 = commitEverywhere(GOOD2, 'v3: a good fix');
    const calls: PromotionPass[] = [];
    // Looks: 1 start, 2 promote staging, 3 soak, 4 advance, 5 promote prod-a, 6 promote prod-b: the crash comes there, after prod-a's pass.
    const faults = { failLookOnce: 6, crashes: 0 };
    const execution = await loggedRunner(calls, faults).run({ payload: { by: 'test' } });
    expect(faults.crashes).toBe(1);
    expect(execution.getStatus()).toBe('SUCCEEDED');
    expect(execution.getResult()?.decision).toEqual({ kind: 'done', commit: v3 });
    for (const c of FLEET_CLUSTERS) expect(await world.liveImage(c)).toBe(GOOD2);
    // The same passes as a run without a crash: prod-a's pass before the crash was replayed from the log, not run again.
    expect(calls.map((c) => c.cluster)).toEqual(['staging', 'staging', 'prod-a', 'prod-b', 'prod-a', 'prod-b']);
    const history = (await world.store.history()).filter((h) => h.commit === v3 && h.event === 'promoted');
    expect(history.map((h) => h.clusters!.join(','))).toEqual(['prod-b', 'prod-a', 'staging']);
  });

  it('keeps a held promotion held: nothing is promoted, not even a newer commit', async () => {
    const before = Object.fromEntries(await Promise.all(FLEET_CLUSTERS.map(async (c) => [c, (await world.store.readCluster(c)).promoted?.commit])));
    await world.store.updatePromotion((p) => ({ ...p!, held: { by: 'alice', reason: 'incident 42', at: new Date().toISOString() } }));
    commitEverywhere('registry.local/agent:1.2', 'v4');
    const calls: PromotionPass[] = [];
    const execution = await loggedRunner(calls).run({ payload: { by: 'test' } });
    expect(execution.getResult()?.decision).toEqual({ kind: 'held', by: 'alice', reason: 'incident 42' });
    expect(calls).toEqual([]);
    for (const c of FLEET_CLUSTERS) expect((await world.store.readCluster(c)).promoted?.commit).toBe(before[c]);
  });
});

/** dsgitops with the world's configuration in the environment, in this process. */
async function dsgitops(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const env = stackConfigEnv({
    GIT_URL: world.repo.url,
    FLEET_FILE: 'fleet.yaml',
    S3_PREFIX: world.config.s3.prefix,
    CLUSTER_NAME: 'staging',
    ALLOWED_NAMESPACES: world.ns,
    GIT_CACHE_DIR: world.config.git.cacheDir,
  });
  const saved = { ...process.env };
  Object.assign(process.env, env);
  let out = '';
  let err = '';
  try {
    const code = await runCli(args, { out: (t) => (out += t), err: (t) => (err += t) });
    return { code, out, err };
  } finally {
    for (const k of Object.keys(env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

describe('dsgitops fleet', () => {
  it('status names, per wave and cluster, the commit it runs, the held promotion and the history', async () => {
    const r = await dsgitops(['fleet', 'status', '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out);
    expect(report.waves.map((w: { name: string; clusters: { name: string }[] }) => [w.name, w.clusters.map((c) => c.name)])).toEqual([['canary', ['staging']], ['prod', ['prod-a', 'prod-b']]]);
    for (const w of report.waves) for (const c of w.clusters) expect(c.runs).toBe((await world.store.readCluster(c.name)).promoted!.commit);
    expect(report.next).toEqual({ kind: 'held', by: 'alice', reason: 'incident 42' });
    expect(report.history[0]).toMatchObject({ event: expect.any(String), by: expect.any(String) });
    const text = await dsgitops(['fleet', 'status']);
    expect(text.out).toMatch(/HELD by alice/);
    expect(text.out).toMatch(/^WAVE\s+CLUSTER\s+RUNS\s+IN FLIGHT\s+LAST PASS\s+SOAK LEFT\s+REASON$/m);
  });

  it('resume and hold are recorded with who and why, and refused without a reason', async () => {
    expect((await dsgitops(['fleet', 'resume'])).code).toBe(2);
    const resumed = await dsgitops(['fleet', 'resume', '--reason', 'incident over']);
    expect(resumed.code).toBe(0);
    expect((await world.store.readPromotion()).promotion?.held).toBeUndefined();
    const held = await dsgitops(['fleet', 'hold', '--reason', 'change freeze']);
    expect(held.code).toBe(0);
    expect((await world.store.readPromotion()).promotion?.held).toMatchObject({ reason: 'change freeze', by: expect.any(String) });
    const history = await world.store.history(2);
    expect(history.map((h) => [h.event, h.reason])).toEqual([['held', 'change freeze'], ['resumed', 'incident over']]);
  });

  it('promote COMMIT --to WAVE promotes it to every cluster up to that wave, and says who and why', async () => {
    const target = world.repo.commit('v5: a hotfix to take to prod by hand');
    const bad = await dsgitops(['fleet', 'promote', target, '--to', 'nowhere', '--reason', 'hotfix']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--to nowhere: no such wave in fleet.yaml at .* \(waves: canary, prod\)/);
    const r = await dsgitops(['fleet', 'promote', target, '--to', 'prod', '--reason', 'hotfix for CVE-1']);
    expect(r.code).toBe(0);
    for (const c of FLEET_CLUSTERS) expect((await world.store.readCluster(c)).promoted).toMatchObject({ commit: target, reason: 'hotfix for CVE-1' });
    expect((await world.store.readPromotion()).promotion).toMatchObject({ commit: target, wave: 1, status: 'in-flight', reason: 'hotfix for CVE-1', held: { reason: 'change freeze' } });
    expect((await world.store.history(1))[0]).toMatchObject({ event: 'promoted-by-hand', wave: 'prod', clusters: FLEET_CLUSTERS, reason: 'hotfix for CVE-1' });
  });

  it('reconcile, with FLEET_FILE, runs the pass of CLUSTER_NAME at the commit promoted to it', async () => {
    const promoted = (await world.store.readCluster('staging')).promoted!.commit;
    world.repo.commit('v6: at the head, promoted nowhere');
    const r = await dsgitops(['reconcile', '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out);
    expect(report.source.commit.sha).toBe(promoted);
    expect(await world.liveImage('staging')).toBe('registry.local/agent:1.2');
    expect((await world.store.readCluster('staging')).lastPass).toMatchObject({ commit: promoted, result: 'healthy' });
  });
});
