/**
 * A pass under faults injected into the stack's own processes: MinIO stopped (SIGSTOP, so it
 * accepts connections and never answers, as a hung endpoint does) at the risky points of a
 * pass, the git server stopped, the API server killed (SIGKILL) and restarted.
 *
 * Each fault asserts what an operator relies on: a report with a named reason within a
 * bound; nothing in the cluster without its snapshot in S3; the next pass converges; no
 * revision number used twice; the lease released, or expiring by itself.
 *
 * The faults stop processes of the stack this run uses: run it in band (npm test does), and
 * never against a stack others are using at the same time. Each fault is undone in a
 * `finally`, whatever the assertions did.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Deps } from '../../lib/deps';
import { reconcile } from '../../lib/reconcile';
import type { ReconcileReport } from '../../lib/report';
import { checkout } from '../../lib/source/git';
import type { ObjectStore, StoredText, WriteCondition } from '../../lib/store/object-store';
import { leaseSchema } from '../../lib/store/records';
import { StateStore } from '../../lib/store/state-store';
import { runningPid } from '../../stack/processes';
import { stackUp } from '../../stack/up';
import { adminClients, stackEnv, uniqueName, waitFor } from '../support/cluster';
import { dsYaml } from '../support/manifests';
import { managedYaml } from '../support/managed';
import { deleteStorePrefix, stackConfig, stackDeps } from '../support/reconciler';
import { cleanupScenarios, onCleanup, reconcileOnceLeaseFree, Scenario, scenario } from '../support/scenario';

jest.setTimeout(300_000);

const S3_TIMEOUT_SECONDS = 4;
const GIT_TIMEOUT_SECONDS = 4;
const KUBE_TIMEOUT_SECONDS = 4;
const NAMES = ['node-agent-1', 'node-agent-2', 'node-agent-3', 'node-agent-4', 'node-agent-5'];
const { apps } = adminClients();
const env = stackEnv();
let s: Scenario;
let tag = 1;
/** What each fault did, printed at the end: the numbers of docs/operating.md's table. */
const measured: string[] = [];

/** The real store, calling `before` ahead of each write and `after` once it is answered: where a fault is injected. */
class FaultPoint implements ObjectStore {
  constructor(
    private readonly real: ObjectStore,
    private readonly hooks: { before?: (key: string) => void; after?: (key: string) => void },
  ) {}

  get(key: string): Promise<StoredText | undefined> {
    return this.real.get(key);
  }

  async put(key: string, body: string, condition?: WriteCondition): Promise<string> {
    this.hooks.before?.(key);
    const etag = await this.real.put(key, body, condition);
    this.hooks.after?.(key);
    return etag;
  }

  list(prefix: string): Promise<string[]> {
    return this.real.list(prefix);
  }

  delete(key: string): Promise<void> {
    return this.real.delete(key);
  }
}

function withFaultPoint(deps: Deps, hooks: ConstructorParameters<typeof FaultPoint>[1]): Deps {
  const objects = new FaultPoint(deps.objects, hooks);
  return { ...deps, objects, store: new StateStore(objects, deps.store.keys, deps.clock) };
}

function pidOf(component: string): number {
  const pid = runningPid(component);
  if (pid === undefined) throw new Error(`${component} of the stack at ${process.env.STACK_DIR ?? '.stack'} is not running`);
  return pid;
}

const isSnapshot = (key: string) => /\/revisions\/\d+\.json$/.test(key);
const isStateWrite = (key: string) => key.endsWith('/state.json') || key.endsWith('/index.json');

function bump(): string {
  tag += 1;
  for (const name of NAMES) s.git.write(`${name}.yaml`, dsYaml({ name, namespace: s.ns, image: `registry.local/${name}:${tag}.0` }));
  s.git.commit(`agents ${tag}.0`);
  return `${tag}.0`;
}

async function liveRevisions(): Promise<Map<string, { revision: number; image: string }>> {
  const out = new Map<string, { revision: number; image: string }>();
  for (const name of NAMES) {
    const ds = await apps.readNamespacedDaemonSet({ name, namespace: s.ns });
    out.set(name, { revision: Number(ds.metadata!.annotations!['daemonset-gitops.io/revision']), image: ds.spec!.template.spec!.containers[0].image! });
  }
  return out;
}

/** Invariant 2: what runs has its snapshot, holding that very image; numbers run 1..n with no gap and no duplicate. */
async function assertEverythingLiveHasItsSnapshot(): Promise<void> {
  const store = stackDeps(s.config).store;
  for (const [name, live] of await liveRevisions()) {
    const snap = await store.getRevision(s.ns, name, live.revision);
    expect(snap).toBeDefined();
    const manifest = snap!.value.manifest as { spec: { template: { spec: { containers: { image: string }[] } } } };
    expect(manifest.spec.template.spec.containers[0].image).toBe(live.image);
  }
}

async function assertConvergedTo(version: string): Promise<void> {
  const store = stackDeps(s.config).store;
  for (const [name, live] of await liveRevisions()) {
    expect(live.image).toBe(`registry.local/${name}:${version}`);
    const numbers = await store.listRevisionNumbers(s.ns, name);
    expect(numbers).toEqual(numbers.map((_, i) => i + 1));
    expect(live.revision).toBe(numbers[numbers.length - 1]);
    expect((await store.getState(s.ns, name))!.value.currentRevision).toBe(live.revision);
  }
}

async function leaseRecord() {
  const deps = stackDeps(s.config);
  const got = await deps.objects.get(deps.store.keys.lease());
  return got ? leaseSchema.parse(JSON.parse(got.body)) : undefined;
}

async function timed(run: () => Promise<ReconcileReport>): Promise<{ report: ReconcileReport; seconds: number }> {
  const started = performance.now();
  const report = await run();
  return { report, seconds: (performance.now() - started) / 1000 };
}

interface Fault {
  /** The stack process the signal goes to. */
  pid: number;
  signal: 'SIGSTOP' | 'SIGKILL';
  /** Sent the first time this says yes, before or after an S3 call on the key. */
  before?: (key: string) => boolean;
  after?: (key: string) => boolean;
  /** Brings the process back, whatever the pass did. */
  resume: () => unknown;
}

/** A timed pass whose S3 calls send a fault's signal at the point it names; `fired` says whether it came. */
async function passWithFault(fault: Fault, pass: (deps: Deps) => Promise<ReconcileReport>): Promise<{ report: ReconcileReport; seconds: number; fired: boolean }> {
  let fired = false;
  const fireIf = (when?: (key: string) => boolean) => (key: string) => {
    if (!fired && when?.(key)) {
      fired = true;
      process.kill(fault.pid, fault.signal);
    }
  };
  const deps = withFaultPoint(s.deps(), { before: fireIf(fault.before), after: fireIf(fault.after) });
  try {
    return { ...(await timed(() => pass(deps))), fired };
  } finally {
    await fault.resume();
  }
}

function reasons(report: ReconcileReport): string[] {
  return [...new Set([...(report.error ? [report.error.reason] : []), ...report.daemonSets.filter((d) => d.error).map((d) => d.error!.reason)])].sort();
}

beforeAll(async () => {
  s = await scenario('faults', { LEASE_SECONDS: '5', S3_TIMEOUT_SECONDS: String(S3_TIMEOUT_SECONDS), GIT_TIMEOUT_SECONDS: String(GIT_TIMEOUT_SECONDS), KUBE_TIMEOUT_SECONDS: String(KUBE_TIMEOUT_SECONDS) });
  onCleanup(() => deleteStorePrefix(s.config));
  for (const name of NAMES) s.git.write(`${name}.yaml`, dsYaml({ name, namespace: s.ns, image: `registry.local/${name}:1.0` }));
  s.git.commit('agents 1.0');
  const first = await reconcile(s.deps(), { wait: false });
  expect(first.summary.create).toBe(NAMES.length);
});

afterAll(async () => {
  // eslint-disable-next-line no-console
  if (measured.length) console.log(`faults and outcomes (measured):\n${measured.join('\n')}`);
  await cleanupScenarios();
});

describe('S3 stops answering (MinIO stopped with SIGSTOP)', () => {
  it('just before the first snapshot write: StoreUnavailable naming the call and the wait, within the bound; nothing applied; the next pass converges', async () => {
    const version = bump();
    const minio = pidOf('minio');
    const { report, seconds, fired } = await passWithFault(
      { pid: minio, signal: 'SIGSTOP', before: isSnapshot, resume: () => process.kill(minio, 'SIGCONT') },
      (deps) => reconcile(deps, { wait: false }),
    );
    expect(fired).toBe(true);
    expect(report.result).toBe('failed');
    expect(report.daemonSets.filter((d) => d.applied)).toEqual([]);
    const failed = report.daemonSets.filter((d) => d.action === 'failed');
    expect(failed.length).toBe(NAMES.length);
    for (const d of failed) {
      expect(['StoreUnavailable', 'SnapshotWriteFailed']).toContain(d.error!.reason);
      expect(d.error!.message).toMatch(new RegExp(`s3://${env.S3_BUCKET}/\\S+: no answer from S3 within \\d+\\.\\ds \\(S3_TIMEOUT_SECONDS=${S3_TIMEOUT_SECONDS}\\)`));
    }
    // The pass's S3 calls after the stop run a few at a time: the confirm and snapshot of each DaemonSet, then the release.
    expect(seconds).toBeLessThan(4 * S3_TIMEOUT_SECONDS + 5);
    await assertEverythingLiveHasItsSnapshot();
    measured.push(`| MinIO SIGSTOP before the first snapshot (5 changes) | ${report.result}, ${reasons(report).join(', ')} | ${seconds.toFixed(1)} s | 0 |`);

    const next = await reconcileOnceLeaseFree(s.config);
    expect(next.result).toBe('succeeded');
    await assertConvergedTo(version);
    expect((await leaseRecord())?.released).toBe(true);
  });

  it('after an apply, before its state is written: the applied revision has its snapshot, and the next pass records it without a new number', async () => {
    const version = bump();
    const minio = pidOf('minio');
    let snapshots = 0;
    const { report, seconds, fired } = await passWithFault(
      {
        pid: minio,
        signal: 'SIGSTOP',
        after: (key) => {
          if (isSnapshot(key)) snapshots += 1;
          return false;
        },
        before: (key) => snapshots > 0 && isStateWrite(key),
        resume: () => process.kill(minio, 'SIGCONT'),
      },
      (deps) => reconcile(deps, { wait: false }),
    );
    expect(fired).toBe(true);
    expect(report.result).toBe('failed');
    expect(reasons(report).every((r) => ['StoreUnavailable', 'SnapshotWriteFailed', 'LeaseLost'].includes(r))).toBe(true);
    expect(seconds).toBeLessThan(4 * S3_TIMEOUT_SECONDS + 5);
    const applied = [...(await liveRevisions()).values()].filter((l) => l.image.endsWith(`:${version}`)).length;
    expect(applied).toBeGreaterThan(0);
    await assertEverythingLiveHasItsSnapshot();
    measured.push(`| MinIO SIGSTOP after an apply, before its state | ${report.result}, ${reasons(report).join(', ')} | ${seconds.toFixed(1)} s | ${applied} (with snapshots) |`);

    const next = await reconcileOnceLeaseFree(s.config);
    expect(next.result).toBe('succeeded');
    await assertConvergedTo(version);
    expect((await leaseRecord())?.released).toBe(true);
  });
});

describe('S3 stops answering during a managed wave', () => {
  const WAVE = 'wave-agent';
  const waveYaml = (version: string) => managedYaml({ name: WAVE, namespace: s.ns, image: `registry.local/${WAVE}:${version}`, maxUnavailable: 1 }, 1);

  async function waveImages(): Promise<string[]> {
    const pods = await adminClients().core.listNamespacedPod({ namespace: s.ns, labelSelector: `app=${WAVE}` });
    return pods.items.filter((p) => !p.metadata!.deletionTimestamp).map((p) => p.spec!.containers[0].image!).sort();
  }

  it('checkpointing the decision after the first wave: the wave stops with StoreUnavailable, deletes nothing unrecorded, and the next pass completes it', async () => {
    s.git.write(`${WAVE}.yaml`, waveYaml('1.0')).commit(`${WAVE} 1.0`);
    const created = await reconcile(s.deps(), { only: [`${s.ns}/${WAVE}`] });
    expect(created.daemonSets[0]).toMatchObject({ action: 'create', rollout: { mode: 'managed', phase: 'complete' } });
    const nodes = (await waveImages()).length;
    expect(nodes).toBeGreaterThan(1);

    s.git.write(`${WAVE}.yaml`, waveYaml('2.0')).commit(`${WAVE} 2.0`);
    const minio = pidOf('minio');
    let checkpoints = 0;
    const { report, seconds, fired } = await passWithFault(
      {
        pid: minio,
        signal: 'SIGSTOP',
        // 1: the apply's state; 2: the first wave's decision (it deletes one pod); 3: the decision after it.
        before: (key) => key.endsWith(`/${WAVE}/state.json`) && ++checkpoints === 3,
        resume: () => process.kill(minio, 'SIGCONT'),
      },
      (deps) => reconcile(deps, { only: [`${s.ns}/${WAVE}`] }),
    );
    expect(fired).toBe(true);
    expect(report.result).toBe('failed');
    expect(reasons(report)).toEqual(['StoreUnavailable']);
    expect(seconds).toBeLessThan(60);
    // One wave ran (maxUnavailable 1): one node has the new image, and no other pod was deleted after the store stopped.
    const during = await waveImages();
    expect(during.filter((i) => i.endsWith(':2.0')).length).toBeLessThanOrEqual(1);
    await assertEverythingLiveHasItsSnapshot();
    measured.push(`| MinIO SIGSTOP at a managed wave's checkpoint | ${report.result}, ${reasons(report).join(', ')} | ${seconds.toFixed(1)} s | 1 wave (recorded) |`);

    const next = await reconcileOnceLeaseFree(s.config, 60_000);
    const again = next.daemonSets.find((d) => d.name === WAVE)!;
    if (again.rollout?.phase !== 'complete') {
      // The first look may end before the last wave's pods are Ready; a pass that waits completes it.
      const waited = await reconcileOnceLeaseFree(s.config, 60_000);
      expect(waited.daemonSets.find((d) => d.name === WAVE)!.rollout?.phase).toBe('complete');
    }
    expect(await waveImages()).toEqual(Array(nodes).fill(`registry.local/${WAVE}:2.0`));
    expect(await stackDeps(s.config).store.listRevisionNumbers(s.ns, WAVE)).toEqual([1, 2]);
  });
});

describe('the pass runs out of time', () => {
  it('starts no apply, says why, releases the lease and returns before its deadline; the next pass applies what it left', async () => {
    const version = bump();
    // Less than the margin an apply needs (5 s): the pass plans, takes the lease and starts nothing.
    const budgetMs = 4_500;
    const { report, seconds } = await timed(() => reconcile(stackDeps(s.config, { budgetMs }), { wait: false }));
    expect(seconds).toBeLessThan(budgetMs / 1000);
    expect(report.stopped?.reason).toBe('DeadlineReached');
    expect(report.deferred).toEqual(NAMES.map((n) => `${s.ns}/${n}`));
    expect(report.daemonSets.filter((d) => d.applied)).toEqual([]);
    expect((await leaseRecord())?.released).toBe(true);
    measured.push(`| pass deadline (4.5 s budget, 5 changes) | ${report.result}, stopped: ${report.stopped?.reason}, ${report.deferred?.length} deferred | ${seconds.toFixed(1)} s | 0 |`);

    const next = await reconcile(s.deps(), { wait: false });
    expect(next.result).toBe('succeeded');
    await assertConvergedTo(version);
  });
});

describe('the git server stops answering (SIGSTOP)', () => {
  const served = `${uniqueName('faults')}.git`;
  beforeAll(() => {
    execFileSync('git', ['clone', '--quiet', '--bare', s.git.bare, join(env.GIT_HTTP_ROOT, served)]);
  });
  afterAll(() => rmSync(join(env.GIT_HTTP_ROOT, served), { recursive: true, force: true }));

  function httpConfig() {
    return stackConfig({
      GIT_URL: `${env.GIT_HTTP_BASE}/${served}`,
      GIT_TOKEN: env.GIT_HTTP_TOKEN,
      ALLOWED_NAMESPACES: s.ns,
      CLUSTER_NAME: s.config.cluster.name,
      LEASE_SECONDS: '5',
      S3_TIMEOUT_SECONDS: String(S3_TIMEOUT_SECONDS),
      GIT_TIMEOUT_SECONDS: String(GIT_TIMEOUT_SECONDS),
    });
  }

  it('SourceUnavailable with the URL and the bound (token redacted), nothing applied; both git implementations stop at the bound', async () => {
    const config = httpConfig();
    const server = pidOf('git-server');
    let run: { report: ReconcileReport; seconds: number };
    let jsSeconds = 0;
    let jsError: unknown;
    process.kill(server, 'SIGSTOP');
    try {
      run = await timed(() => reconcile(stackDeps(config), { wait: false }));
      const started = performance.now();
      jsError = await checkout({ ...config.git, cacheDir: `${config.git.cacheDir}-js` }, 'isomorphic-git').then(() => undefined, (e: unknown) => e);
      jsSeconds = (performance.now() - started) / 1000;
    } finally {
      process.kill(server, 'SIGCONT');
    }
    const { report, seconds } = run;
    expect(report.result).toBe('failed');
    expect(report.error?.reason).toBe('SourceUnavailable');
    expect(report.error?.message).toContain(`${env.GIT_HTTP_BASE}/${served}`);
    expect(report.error?.message).toContain(`no answer within ${GIT_TIMEOUT_SECONDS}s (GIT_TIMEOUT_SECONDS)`);
    expect(report.error?.message).not.toContain(env.GIT_HTTP_TOKEN);
    // Nothing from Git: the lease is taken only to drive the rollouts under way, which are all the report lists.
    expect(report.daemonSets.filter((d) => d.applied)).toEqual([]);
    expect(Boolean(report.leaseTaken)).toBe(report.daemonSets.length > 0);
    for (const d of report.daemonSets) expect(d.message).toMatch(/^Git's head not read this pass: revision \d+'s rollout/);
    expect(seconds).toBeLessThan(GIT_TIMEOUT_SECONDS + 4);
    expect((jsError as Error)?.message).toContain(`no answer within ${GIT_TIMEOUT_SECONDS}s (GIT_TIMEOUT_SECONDS)`);
    expect(jsSeconds).toBeLessThan(GIT_TIMEOUT_SECONDS + 4);
    measured.push(`| git server SIGSTOP | ${report.result}, ${report.error?.reason} (git binary ${seconds.toFixed(1)} s; isomorphic-git ${jsSeconds.toFixed(1)} s) | ${seconds.toFixed(1)} s | 0 |`);

    const next = await reconcile(stackDeps(httpConfig()), { wait: false });
    expect(next.result).toBe('succeeded');
  });
});

describe('the API server stops answering (SIGSTOP) between the snapshots and the applies', () => {
  it('each apply is cancelled at KUBE_TIMEOUT_SECONDS: ClusterUnavailable within the bound, the lease released; the next pass converges', async () => {
    const version = bump();
    const apiserver = pidOf('kube-apiserver');
    const { report, seconds, fired } = await passWithFault(
      {
        pid: apiserver,
        signal: 'SIGSTOP',
        after: isSnapshot,
        resume: async () => {
          process.kill(apiserver, 'SIGCONT');
          // The controllers may have lost their leader election while it was stopped: bring back whatever exited.
          await stackUp();
        },
      },
      (deps) => reconcile(deps, { wait: false }),
    );
    expect(fired).toBe(true);
    expect(report.result).toBe('failed');
    expect(reasons(report)).toEqual(['ClusterUnavailable']);
    for (const d of report.daemonSets.filter((e) => e.error)) {
      expect(d.error!.message).toMatch(new RegExp(`no answer from the API server at \\S+ within ${KUBE_TIMEOUT_SECONDS}s: the request was cancelled`));
    }
    // Applies run concurrently and an apply is not repeated after a timeout: about one bound, and the lease released.
    expect(seconds).toBeLessThan(3 * KUBE_TIMEOUT_SECONDS + 5);
    expect((await leaseRecord())?.released).toBe(true);
    await assertEverythingLiveHasItsSnapshot();
    measured.push(`| kube-apiserver SIGSTOP after the first snapshot | ${report.result}, ${reasons(report).join(', ')} | ${seconds.toFixed(1)} s | ${report.daemonSets.filter((d) => d.applied).length} |`);

    const next = await reconcileOnceLeaseFree(s.config, 60_000);
    expect(next.result).toBe('succeeded');
    await assertConvergedTo(version);
  });
});

describe('the API server is killed (SIGKILL) between the snapshots and the applies, then restarted', () => {
  it('ClusterUnavailable, nothing applied without its snapshot; after the restart the next pass converges, reusing the pending snapshots', async () => {
    const version = bump();
    const apiserver = pidOf('kube-apiserver');
    const { report, seconds, fired } = await passWithFault(
      {
        pid: apiserver,
        signal: 'SIGKILL',
        after: isSnapshot,
        resume: async () => {
          await stackUp();
          await waitFor('the API server to answer again', async () => (await apps.listDaemonSetForAllNamespaces({ limit: 1 }).then(() => true, () => false)) || undefined, 60_000, 500);
        },
      },
      (deps) => reconcile(deps, { wait: false }),
    );
    expect(fired).toBe(true);
    expect(report.result).toBe('failed');
    expect(reasons(report)).toContain('ClusterUnavailable');
    await assertEverythingLiveHasItsSnapshot();
    const appliedBefore = report.daemonSets.filter((d) => d.applied).length;
    measured.push(`| kube-apiserver SIGKILL after the first snapshot, restarted | ${report.result}, ${reasons(report).join(', ')} | ${seconds.toFixed(1)} s | ${appliedBefore} |`);

    const next = await reconcileOnceLeaseFree(s.config, 60_000);
    expect(next.result).toBe('succeeded');
    await assertConvergedTo(version);
    expect((await leaseRecord())?.released).toBe(true);
  });
});
