/**
 * The Lambda handlers end to end, through `serverless invoke local` (osls + serverless-esbuild,
 * the bundles `serverless package` ships), against the real local stack.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../stack/paths';
import { adminClients, createNamespace, deleteNamespace } from '../support/cluster';
import { TestRepo } from '../support/git';
import { dsYaml } from '../support/manifests';
import { stackConfigEnv } from '../support/reconciler';
import { invokeLocal } from '../support/serverless';

jest.setTimeout(600_000);

const { core, apps } = adminClients();
let ns: string;
let git: TestRepo;
let env: Record<string, string>;

async function image(name: string): Promise<string | undefined> {
  return (await apps.readNamespacedDaemonSet({ name, namespace: ns })).spec!.template.spec!.containers[0].image;
}

beforeAll(async () => {
  ns = await createNamespace(core, 'e2e');
  git = new TestRepo();
  env = stackConfigEnv({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns });
});

afterAll(async () => {
  await deleteNamespace(core, ns);
  git.cleanup();
});

describe('serverless invoke local', () => {
  it('packages every function offline', async () => {
    const out = mkdtempSync(join(tmpdir(), 'dsgitops-package-'));
    try {
      const code = await new Promise<number | null>((resolve) => {
        // The settings a deploy needs (deploy/stack.js refuses to package without them).
        const child = spawn(join(repoRoot, 'node_modules', '.bin', 'serverless'), ['package', '--package', out], { cwd: repoRoot, env: { PATH: process.env.PATH, HOME: process.env.HOME, ALLOWED_KINDS: 'DaemonSet,ConfigMap', VPC_SUBNET_IDS: 'none', ...env }, stdio: 'ignore' });
        child.on('close', resolve);
      });
      expect(code).toBe(0);
      const files = readdirSync(out);
      // One artifact per function.
      expect(files.filter((f) => f.endsWith('.zip')).sort()).toEqual(['history.zip', 'pause.zip', 'reconcile.zip', 'resume.zip', 'rollback.zip', 'status.zip', 'unpin.zip', 'webhook.zip']);
      expect(files).toContain('cloudformation-template-update-stack.json');
      expect(existsSync(join(out, 'reconcile.zip'))).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('reconciles on a schedule event, rolls back by invoke, and the next scheduled pass keeps the pin', async () => {
    git.write('fluentd.yaml', dsYaml({ name: 'fluentd', namespace: ns, image: 'registry.local/fluentd:1.0' })).commit('fluentd v1');
    const schedule = { source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} };
    const first = await invokeLocal('reconcile', schedule, env);
    expect(first.code).toBe(0);
    expect(first.result).toMatchObject({ kind: 'ReconcileReport', result: 'succeeded', daemonSets: [{ key: `${ns}/fluentd`, action: 'create', revision: 1 }] });

    git.write('fluentd.yaml', dsYaml({ name: 'fluentd', namespace: ns, image: 'registry.local/fluentd:2.0' })).commit('fluentd v2');
    const second = await invokeLocal('reconcile', schedule, env);
    expect(second.result).toMatchObject({ result: 'succeeded', daemonSets: [{ action: 'update', revision: 2, rollout: { phase: 'complete' } }] });
    expect(await image('fluentd')).toBe('registry.local/fluentd:2.0');

    const rb = await invokeLocal('rollback', { namespace: ns, name: 'fluentd', toRevision: 1, reason: 'v2 loses logs' }, env);
    expect(rb.code).toBe(0);
    expect(rb.result).toMatchObject({ kind: 'RollbackReport', toRevision: 1, revision: 3, pin: { revision: 1, reason: 'v2 loses logs' }, rollout: { phase: 'complete' } });
    expect(await image('fluentd')).toBe('registry.local/fluentd:1.0');

    const held = await invokeLocal('reconcile', schedule, env);
    expect(held.result).toMatchObject({ result: 'succeeded', daemonSets: [{ action: 'pinned', applied: false, revision: 3 }] });
    expect(await image('fluentd')).toBe('registry.local/fluentd:1.0');

    const h = await invokeLocal('history', { namespace: ns, name: 'fluentd' }, env);
    expect((h.result as { revisions: { revision: number; causeText: string }[] }).revisions.map((r) => [r.revision, r.causeText])).toEqual([
      [3, 'rollback to 1'], [2, 'git-change'], [1, 'create'],
    ]);
    const s = await invokeLocal('status', {}, env);
    expect((s.result as { daemonSets: { key: string; pin?: { revision: number } }[] }).daemonSets.find((d) => d.key === `${ns}/fluentd`)).toMatchObject({ revision: 3, pin: { revision: 1 } });

    const plan = await invokeLocal('reconcile', { dryRun: true }, env);
    expect(plan.result).toMatchObject({ dryRun: true, daemonSets: [{ action: 'pinned' }] });
  });

  it('refuses malformed events with a message that says what is expected, changing nothing', async () => {
    // What a request could change: each DaemonSet's spec (its generation counts the changes), labels and annotations.
    // Not its resourceVersion: the DaemonSet controller still writes status after the pass before (pods turning Ready),
    // which moves it without anything here having acted.
    const declared = async () => JSON.stringify((await apps.listNamespacedDaemonSet({ namespace: ns })).items
      .map((d) => [d.metadata!.name, d.metadata!.generation, d.metadata!.labels, d.metadata!.annotations, d.spec]));
    const before = await declared();
    const bad = await invokeLocal('rollback', { namespace: 'Not A Namespace', name: 'fluentd', toRevision: 'two' }, env);
    expect(bad.code).not.toBe(0);
    expect(bad.result).toMatchObject({ errorType: 'InvalidRequestError' });
    expect(bad.result!.errorMessage).toMatch(/^invalid rollback event: namespace: must be a namespace name; toRevision: .*Expected for example \{"namespace": "kube-system"/);
    const unknown = await invokeLocal('reconcile', { dryrun: true }, env);
    expect(unknown.code).not.toBe(0);
    expect(unknown.result).toMatchObject({ errorType: 'InvalidRequestError' });
    expect(unknown.result!.errorMessage).toMatch(/^invalid reconcile event: .*dryrun/);
    expect(await declared()).toBe(before);
  });
});
