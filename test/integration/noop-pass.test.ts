/**
 * A pass with nothing to change does O(1) work: no lease, no S3 write, one read of the state
 * index whatever the number of DaemonSets, and no fetch while Git's head has not moved. It
 * still sees what changed: a new commit, and a state.json written behind the index. A new
 * command process reuses the manifests the last one loaded for the same commit and settings.
 */
import { clusterLease } from '../../lib/deps';
import { reconcile } from '../../lib/reconcile';
import { createNamespace, deleteNamespace, adminClients } from '../support/cluster';
import { countingDeps } from '../support/counting-store';
import { TestRepo } from '../support/git';
import { dsYaml } from '../support/manifests';
import { captureLog, runCliProcess, stackConfig, stackConfigEnv, stackDeps } from '../support/reconciler';
import type { Config } from '../../lib/config';
import type { ReconcileReport } from '../../lib/report';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

jest.setTimeout(300_000);

const { core } = adminClients();
const namespaces: string[] = [];
const repos: TestRepo[] = [];

afterAll(async () => {
  for (const ns of namespaces) await deleteNamespace(core, ns);
  for (const r of repos) r.cleanup();
});

/** A fleet of `count` DaemonSets, created and rolled out, and passes until one has nothing left to record. */
async function steadyFleet(count: number): Promise<{ ns: string; git: TestRepo; config: Config }> {
  const ns = await createNamespace(core, `noop${count}`);
  namespaces.push(ns);
  const git = new TestRepo();
  repos.push(git);
  for (let i = 0; i < count; i++) git.write(`ds/agent-${i}.yaml`, dsYaml({ name: `agent-${i}`, namespace: ns }));
  git.commit(`${count} agents`);
  const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
  const first = await reconcile(stackDeps(config));
  expect(first.summary.create).toBe(count);
  for (let i = 0; i < 5; i++) {
    const { deps, s3 } = countingDeps(stackDeps(config));
    await reconcile(deps);
    if (s3.writes === 0) break;
  }
  return { ns, git, config };
}

async function countedPass(config: Config) {
  const log = captureLog();
  const { deps, s3 } = countingDeps(stackDeps(config, { logger: log.logger }));
  const report = await reconcile(deps);
  return { report, reads: s3.reads, writes: s3.writes, written: s3.written, log: log.lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('a pass with nothing to change', () => {
  it('writes nothing to S3, takes no lease, and reads as many S3 objects for 30 DaemonSets as for 3', async () => {
    const small = await steadyFleet(3);
    const large = await steadyFleet(30);

    const three = await countedPass(small.config);
    const thirty = await countedPass(large.config);

    for (const [pass, n] of [[three, 3], [thirty, 30]] as const) {
      expect(pass.report.result).toBe('succeeded');
      expect(pass.report.summary).toEqual({ total: n, unchanged: n });
      expect(pass.written).toEqual([]);
      expect(pass.log.some((l) => l.action === 'lease-held')).toBe(false);
    }
    expect(thirty.reads).toBe(three.reads);
    // The state index, the inventory of the bundle's other objects (docs/bundles.md#prune) and the
    // last pass's record (docs/ui.md), read while the pass plans: a constant, whatever the number of DaemonSets.
    expect(thirty.reads).toBeLessThanOrEqual(3);
  });

  it('reuses the checkout while Git has not moved, and applies a new commit when it has', async () => {
    const { ns, git, config } = await steadyFleet(2);
    const quiet = await countedPass(config);
    expect(quiet.log.find((l) => l.action === 'fetch')).toMatchObject({ reused: true });

    const sha = git.write('ds/agent-1.yaml', dsYaml({ name: 'agent-1', namespace: ns, image: 'registry.local/agent:2.0' })).commit('bump agent-1');
    const moved = await countedPass(config);
    expect(moved.log.find((l) => l.action === 'fetch')).toMatchObject({ reused: false, commit: sha });
    expect(moved.report.source?.commit?.sha).toBe(sha);
    expect(moved.report.daemonSets.find((d) => d.name === 'agent-1')).toMatchObject({ action: 'update', applied: true, revision: 2 });
    expect(moved.report.daemonSets.find((d) => d.name === 'agent-0')).toMatchObject({ action: 'unchanged', applied: false });

    const after = await countedPass(config);
    expect(after.written).toEqual([]);
    expect(after.report.summary).toEqual({ total: 2, unchanged: 2 });
  });

  it('sees a state written behind the index by a writer that stopped before settling it, and repairs the entry once that writer is surely gone', async () => {
    const { ns, config } = await steadyFleet(3);
    const baseline = await countedPass(config);
    const deps = stackDeps(config);
    const key = `${ns}/agent-1`;
    /** What a writer (a rollback, an unpin) killed between its state write and its settle leaves: its mark, and the new state.json. */
    const writtenBehindIndex = async (at: string, pin: boolean) => {
      const cur = (await deps.store.getState(ns, 'agent-1'))!;
      await deps.store.index.mark(key, `killed-${at}`, at);
      const next = { ...cur.value, pin: pin ? { revision: 1, reason: 'held by hand', at, gitDigest: cur.value.gitDigest ?? cur.value.appliedDigest } : undefined };
      await deps.objects.put(deps.store.keys.state(ns, 'agent-1'), JSON.stringify(next), { ifMatch: cur.etag });
    };

    await writtenBehindIndex(new Date(Date.now() - 60 * 60_000).toISOString(), true);
    const repaired = await countedPass(config);
    expect(repaired.report.daemonSets.find((d) => d.name === 'agent-1')).toMatchObject({ action: 'pinned' });
    expect(repaired.written).toEqual([deps.store.keys.index()]);

    const after = await countedPass(config);
    expect(after.report.daemonSets.find((d) => d.name === 'agent-1')).toMatchObject({ action: 'pinned' });
    expect(after.reads).toBe(baseline.reads);
    expect(after.written).toEqual([]);

    // The index's copy says pinned; state.json, the source of truth, says the pin was released.
    await writtenBehindIndex(new Date().toISOString(), false);
    const seen = await countedPass(config);
    expect(seen.report.daemonSets.find((d) => d.name === 'agent-1')).toMatchObject({ action: 'unchanged', pin: undefined });
    expect(seen.reads).toBe(baseline.reads + 1); // that one state.json
    expect(seen.written).toEqual([]); // its writer may still be alive: its mark stays
  });

  it('runs beside a run that holds the lease; a pass that has something to apply is skipped while it is held, and applies after', async () => {
    const { ns, git, config } = await steadyFleet(2);
    const holder = clusterLease(stackDeps(config, { runId: 'holder' }));
    await holder.acquire('reconcile');
    try {
      const quiet = await countedPass(config);
      expect(quiet.report.result).toBe('succeeded');
      expect(quiet.report.summary).toEqual({ total: 2, unchanged: 2 });
      expect(quiet.written).toEqual([]);

      git.write('ds/agent-0.yaml', dsYaml({ name: 'agent-0', namespace: ns, image: 'registry.local/agent:2.0' })).commit('bump agent-0');
      const blocked = await countedPass(config);
      expect(blocked.report.result).toBe('skipped');
      expect(blocked.report.lease?.holder).toBe('holder');
      expect(blocked.written).toEqual([]);
      expect(await stackDeps(config).store.listRevisionNumbers(ns, 'agent-0')).toEqual([1]);
    } finally {
      await holder.release();
    }
    const next = await countedPass(config);
    expect(next.report.daemonSets.find((d) => d.name === 'agent-0')).toMatchObject({ action: 'update', applied: true, revision: 2 });
  });

  it('a new command process reuses what the last one loaded for the same commit and settings, and loads from a tree restored to Git otherwise', async () => {
    const { ns, git } = await steadyFleet(2);
    const env = stackConfigEnv({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
    const cli = async (extra: Record<string, string> = {}) => {
      const run = await runCliProcess(['reconcile', '--json'], { ...env, ...extra });
      expect(run.code).toBe(0);
      return JSON.parse(run.stdout) as ReconcileReport;
    };
    expect((await cli()).summary).toEqual({ total: 2, unchanged: 2 });
    const kept = readdirSync(env.GIT_CACHE_DIR).filter((f) => f.endsWith('.load.json'));
    expect(kept).toHaveLength(1);
    const checkoutDir = join(env.GIT_CACHE_DIR, kept[0].replace(/\.load\.json$/, ''));

    // The tree is edited behind Git's back: a process that needs no tree is not misled by it...
    writeFileSync(join(checkoutDir, 'ds', 'agent-0.yaml'), dsYaml({ name: 'agent-0', namespace: ns, image: 'registry.local/agent:9.9' }));
    expect((await cli()).summary).toEqual({ total: 2, unchanged: 2 });
    expect(readFileSync(join(checkoutDir, 'ds', 'agent-0.yaml'), 'utf8')).toContain('9.9'); // it did not even look
    // ...and one that loads (other settings: another namespace allowed) restores it to Git's commit first.
    const other = await createNamespace(core, 'noopother');
    namespaces.push(other);
    expect((await cli({ ALLOWED_NAMESPACES: `${ns},${other}` })).summary).toEqual({ total: 2, unchanged: 2 });
    expect(readFileSync(join(checkoutDir, 'ds', 'agent-0.yaml'), 'utf8')).not.toContain('9.9');

    // A kept load that cannot be read is loaded again; a new commit is never answered by an older load.
    writeFileSync(join(env.GIT_CACHE_DIR, kept[0]), '{"from": "truncat');
    expect((await cli()).summary).toEqual({ total: 2, unchanged: 2 });
    git.write('ds/agent-1.yaml', dsYaml({ name: 'agent-1', namespace: ns, image: 'registry.local/agent:2.0' })).commit('bump agent-1');
    const moved = await cli();
    expect(moved.daemonSets.find((d) => d.name === 'agent-1')).toMatchObject({ action: 'update', applied: true, revision: 2 });
    expect((await cli()).summary).toEqual({ total: 2, unchanged: 2 });
  });
});
