/**
 * Benchmark: the first paint of `dsgitops ui` from a warm process, for a cluster of 300
 * managed DaemonSets with one DaemonSet of 200 nodes in a managed rollout (its grid, a
 * 240-point timeline, 10 revisions) and a last pass with 30 problems in 30 files. The server, the view models and the page are the real
 * ones, in Debian's Chromium (playwright-core); the cluster and the store are synthetic and in
 * memory (watch caches already filled, records already written), so what is measured is the
 * page's own cost: the server's views, the transfer and the browser's drawing, not the API
 * server or S3. Target: 500 ms.
 *
 *   npm run bench:ui                     # CHROMIUM_PATH=/usr/bin/chromium by default
 *   npm run bench:ui -- --daemonsets 300 --nodes 200 --runs 7
 *
 * Each run opens a new page at the DaemonSet's URL and measures, in the page, from the start
 * of the navigation to the frame in which the table of DaemonSets, the grid and the chart are
 * drawn with their data (`painted`), and the browser's first contentful paint; the first run (cold browser) is
 * reported apart from the median of the others.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import type { Cluster } from '../lib/cluster/client';
import type { LiveDaemonSet, LiveNode, LivePod } from '../lib/cluster/types';
import type { Cache } from '../lib/cluster/watch-cache';
import { loadConfig } from '../lib/config';
import { createDeps } from '../lib/deps';
import { PreconditionFailedError } from '../lib/errors';
import { silentLogger } from '../lib/log';
import { appendTimelinePoint } from '../lib/rollout/timeline';
import type { ObjectStore, StoredText, WriteCondition } from '../lib/store/object-store';
import type { DaemonSetState, RevisionSnapshot } from '../lib/store/records';
import { TimelineStore, TimelinePoint } from '../lib/store/timeline-store';
import { UiData } from '../lib/ui/data';
import { passRecord } from '../lib/pass-summary';
import type { ReconcileReport } from '../lib/report';
import { PassRecordStore } from '../lib/store/pass-record';
import { startUiServer } from '../lib/ui/server';
import { benchReport } from './report';

benchReport();

const { values: args } = parseArgs({ options: { daemonsets: { type: 'string', default: '300' }, nodes: { type: 'string', default: '200' }, runs: { type: 'string', default: '7' } } });
const DAEMONSETS = Number(args.daemonsets);
const NODES = Number(args.nodes);
const RUNS = Number(args.runs);
const NS = 'bench';
const T0 = Date.parse('2026-01-01T12:00:00Z');
const iso = (s: number) => new Date(T0 + s * 1000).toISOString();

/** S3 in memory, with ETags and the conditional writes the store relies on. */
class MemoryStore implements ObjectStore {
  private readonly objects = new Map<string, StoredText>();
  private n = 0;
  async get(key: string) { return this.objects.get(key); }
  async put(key: string, body: string, condition: WriteCondition = {}) {
    const had = this.objects.get(key);
    if (condition.ifNoneMatch && had) throw new PreconditionFailedError(`${key} exists`);
    if (condition.ifMatch && had?.etag !== condition.ifMatch) throw new PreconditionFailedError(`${key} changed`);
    const etag = `"${++this.n}"`;
    this.objects.set(key, { body, etag, lastModified: new Date(), serverTime: new Date() });
    return etag;
  }
  async list(prefix: string) { return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort(); }
  async delete(key: string) { this.objects.delete(key); }
}

function staticCache<T>(items: T[]): Cache<T> {
  return { items: () => items, version: 1, failure: undefined, subscribe: () => () => undefined, stop: () => undefined };
}

function daemonSet(i: number, revision: number): LiveDaemonSet {
  const name = `agent-${i}`;
  return {
    metadata: { name, namespace: NS, uid: `uid-${i}`, generation: revision, labels: { 'daemonset-gitops.io/managed-by': 'daemonset-gitops' }, annotations: { 'daemonset-gitops.io/revision': String(revision), 'deprecated.daemonset.template.generation': String(revision), 'daemonset-gitops.io/declared-strategy': '{"type":"RollingUpdate","maxUnavailable":"10%"}' } },
    spec: { selector: { matchLabels: { app: name } }, template: { spec: { containers: [{ name: 'agent', image: `registry.local/agent:${revision}` }] } } },
    status: { desiredNumberScheduled: i === 0 ? NODES : 0, currentNumberScheduled: i === 0 ? NODES : 0, numberReady: i === 0 ? NODES - 20 : 0, updatedNumberScheduled: i === 0 ? NODES / 2 : 0, numberAvailable: i === 0 ? NODES - 20 : 0, observedGeneration: revision },
  };
}

async function main(): Promise<void> {
  const objects = new MemoryStore();
  const config = loadConfig({ S3_BUCKET: 'bench', AWS_REGION: 'us-east-1', CLUSTER_NAME: 'bench', KUBECONFIG: '/dev/null', ALLOWED_NAMESPACES: '*', GIT_URL: 'https://example.invalid/repo.git' });
  const nodes: LiveNode[] = Array.from({ length: NODES }, (_, n) => ({ metadata: { name: `node-${String(n).padStart(3, '0')}` }, status: { conditions: [{ type: 'Ready', status: n === 7 ? 'False' : 'True' }] } }));
  const daemonSets = Array.from({ length: DAEMONSETS }, (_, i) => daemonSet(i, i === 0 ? 10 : 1 + (i % 4)));
  const pods: LivePod[] = nodes.map((node, n) => {
    const updated = n < NODES / 2;
    return {
      metadata: { name: `agent-0-${n}`, uid: `p${n}`, labels: { app: 'agent-0', 'pod-template-generation': updated ? '10' : '9', 'controller-revision-hash': updated ? 'h10' : 'h9' }, ownerReferences: [{ kind: 'DaemonSet', name: 'agent-0', uid: 'uid-0', controller: true }] },
      spec: { nodeName: node.metadata.name, containers: [{ name: 'agent' }] },
      status: { phase: 'Running', conditions: [{ type: 'Ready', status: n % 13 === 0 ? 'False' : 'True', lastTransitionTime: iso(-60) }] },
    };
  });
  const cluster = {
    server: 'memory', requestCount: 0,
    watchCache: async (kind: string) => staticCache<unknown>(kind === 'daemonsets' ? daemonSets : kind === 'nodes' ? nodes : kind === 'pods' ? pods : []),
    listControllerRevisions: async () => [{ hash: 'h10', revision: 10, ownerUid: 'uid-0', annotations: { 'daemonset-gitops.io/revision': '10' } }, { hash: 'h9', revision: 9, ownerUid: 'uid-0', annotations: { 'daemonset-gitops.io/revision': '9' } }],
  } as unknown as Cluster;
  const deps = createDeps(config, { clients: { cluster, objects }, logger: silentLogger, budgetMs: 3600_000 });

  // The records a cluster of this size has: a state per DaemonSet (through the index), 10 revisions and a timeline for the big one.
  const commit = { sha: 'a'.repeat(40), author: 'Bench', email: 'b@example.com', time: iso(-600), subject: 'bump the agent' };
  for (const ds of daemonSets) {
    const i = Number(ds.metadata.name.split('-')[1]);
    const revision = Number(ds.metadata.annotations!['daemonset-gitops.io/revision']);
    const touched = i === 0 ? nodes.slice(0, NODES / 2).map((n, k) => ({ node: n.metadata.name, readyAtDelete: true, at: iso(-300 + Math.floor(k / 20) * 20) })) : undefined;
    const state: DaemonSetState = {
      schema: 1, namespace: NS, name: ds.metadata.name, currentRevision: revision, appliedDigest: 'd', commit, source: { file: `${ds.metadata.name}.yaml`, document: 0 },
      rollout: { revision, mode: 'managed', phase: i === 0 ? 'progressing' : 'complete', startedAt: iso(-300), lastProgressAt: iso(-5), managed: i === 0 ? { checkpoint: { startedAt: iso(-300), lastProgressAt: iso(-5), updatedAvailable: 90, waves: 5, inFlight: [], touched }, wavePhase: 'progressing', reason: 'deleting 20 old pods' } : undefined },
      lastAttempt: { at: iso(-300), revision, result: 'applied' }, updatedAt: iso(-5),
    };
    await deps.store.putState(state, undefined);
  }
  for (let r = 1; r <= 10; r++) {
    const snapshot: RevisionSnapshot = { schema: 1, cluster: 'bench', namespace: NS, name: 'agent-0', revision: r, cause: r === 1 ? 'create' : 'git-change', manifest: daemonSet(0, r) as unknown as Record<string, unknown>, digest: `d${r}`, rolloutMode: 'managed', commit, replaced: null, runId: 'bench', createdAt: iso(-1000 + r), appliedAt: iso(-1000 + r), outcome: r === 10 ? 'progressing' : 'healthy', outcomeAt: iso(-900 + r) };
    await objects.put(deps.store.keys.revision(NS, 'agent-0', r), JSON.stringify(snapshot));
  }
  let points: TimelinePoint[] = [];
  for (let k = 0; k < 400; k++) points = appendTimelinePoint(points, { at: iso(-400 + k), desired: NODES, updated: Math.min(NODES, k), updatedAvailable: Math.min(NODES, k), unavailable: k % 20, budget: 20, skipped: 1, phase: k < 30 ? 'canary-hold' : 'progressing', wave: Math.floor(k / 20) });
  await new TimelineStore(objects, deps.store.keys).update(NS, 'agent-0', 10, () => points);

  // The last pass's record: 20 DaemonSets with an invalid manifest (never applied) and 10 refused documents, as its problems by file.
  const report: ReconcileReport = {
    kind: 'ReconcileReport', runId: 'bench-pass', cluster: 'bench', dryRun: false, result: 'failed', startedAt: iso(-60), finishedAt: iso(-30), summary: { total: DAEMONSETS + 20 }, problems: [], kubernetesRequests: 3,
    source: { url: 'https://git.example/agents.git', ref: 'main', path: '.', commit },
    daemonSets: Array.from({ length: 20 }, (_, k) => ({ key: `${NS}/broken-${k}`, namespace: NS, name: `broken-${k}`, action: 'invalid' as const, applied: false, message: 'spec.selector does not match spec.template.metadata.labels',
      problems: [{ file: `broken/${k}.yaml`, document: 1, key: `${NS}/broken-${k}`, code: 'selector-mismatch', severity: 'error' as const, message: 'spec.selector does not match spec.template.metadata.labels (app=a vs app=b)' }] })),
  };
  report.problems = Array.from({ length: 10 }, (_, k) => ({ file: `rbac/${k}.yaml`, document: 1, code: 'kind-not-allowed', severity: 'skipped' as const, message: `ClusterRole reader-${k} is not applied: ALLOWED_KINDS does not allow it` }));
  await new PassRecordStore(objects, deps.store.keys).put(passRecord(report), {}, true);

  const data = await UiData.start(deps);
  const server = await startUiServer(data, { port: 0, allowActions: false, user: 'bench', actionDeps: () => deps, log: () => undefined, refreshMs: 3_600_000 });
  // Warm: the process has answered the page once already.
  const serverMs: Record<string, number[]> = {};
  for (let i = 0; i < 4; i++) {
    for (const path of ['api/cluster', `api/daemonsets/${NS}/agent-0`]) {
      const t = performance.now();
      await fetch(`http://127.0.0.1:${server.port}/${path}?token=${server.token}`).then((r) => r.text());
      if (i > 0) (serverMs[path] ??= []).push(performance.now() - t);
    }
  }

  const profile = mkdtempSync(join(tmpdir(), 'dsgitops-bench-ui-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const results: { painted: number; fcp: number; tiles: number; rows: number; resources: string; document: string }[] = [];
  try {
    for (let run = 0; run < RUNS; run++) {
      const page = await browser.newPage();
      await page.goto(`${server.url}#ds=${NS}/agent-0`);
      await page.waitForSelector('body[data-painted]', { timeout: 30_000 });
      results.push(await page.evaluate<{ painted: number; fcp: number; tiles: number; rows: number; resources: string; document: string }>(`({
        painted: window.dsgitops.paintedAt,
        fcp: (performance.getEntriesByName('first-contentful-paint')[0] || { startTime: NaN }).startTime,
        tiles: document.querySelectorAll('.tile').length,
        rows: document.querySelectorAll('#daemonsets tbody tr').length,
        resources: performance.getEntriesByType('resource').map((r) => r.name.replace(/^https?:\\/\\/[^/]+/, '').replace(/[?&]token=[^&]*/, '') + ' ' + r.startTime.toFixed(0) + '-' + r.responseEnd.toFixed(0)).join(', '),
        document: performance.getEntriesByType('navigation')[0].responseEnd.toFixed(0),
      })`));
      await page.close();
    }
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
    await server.close();
    data.stop();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const warm = results.slice(1);
  console.log(`dsgitops ui, first paint: ${DAEMONSETS} DaemonSets, one of ${NODES} nodes (${results[0].tiles} tiles, ${results[0].rows} rows), ${points.length}-point timeline; load average ${loadavg()[0].toFixed(1)} on ${cpus().length} CPUs`);
  console.log(`first run (cold browser): painted ${results[0].painted.toFixed(0)} ms, first contentful paint ${results[0].fcp.toFixed(0)} ms`);
  console.log(`next ${warm.length} runs: painted median ${median(warm.map((r) => r.painted)).toFixed(0)} ms (max ${Math.max(...warm.map((r) => r.painted)).toFixed(0)} ms), first contentful paint median ${median(warm.map((r) => r.fcp)).toFixed(0)} ms; target 500 ms`);
  console.log(`the server's answers from the warm process (median of 3): the cluster ${median(serverMs['api/cluster']).toFixed(0)} ms, the DaemonSet ${median(serverMs[`api/daemonsets/${NS}/agent-0`]).toFixed(0)} ms`);
  const last = results[results.length - 1];
  console.log(`where the last run's time went (ms from the navigation's start): the page ${last.document}, then ${last.resources}, painted ${last.painted.toFixed(0)}`);
  console.log('painted: from the start of the navigation to the frame in which the table, the grid and the chart are drawn with their data; reproduce with: npm run bench:ui');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
