/**
 * One DaemonSet's unreadable record blocks that DaemonSet alone. Records are corrupted the
 * way a hand edit or a truncated upload would leave them: an object written to the stack's
 * MinIO under this scenario's own prefix. The bucket is versioned, so `repair` finds the
 * last version that parses.
 */
import { reconcile } from '../../lib/reconcile';
import { repair } from '../../lib/repair';
import { status } from '../../lib/status';
import type { ReconcileReport } from '../../lib/report';
import { dsYaml } from '../support/manifests';
import { deleteStorePrefix, runCliProcess, stackConfigEnv } from '../support/reconciler';
import { cleanupScenarios, onCleanup, Scenario, scenario } from '../support/scenario';
import { adminClients } from '../support/cluster';

jest.setTimeout(240_000);

const NAMES = ['agent-a', 'agent-b', 'agent-c', 'agent-d'];
let s: Scenario;
const { apps } = adminClients();

function writeAll(tag: string): void {
  for (const name of NAMES) s.git.write(`${name}.yaml`, dsYaml({ name, namespace: s.ns, image: `registry.local/${name}:${tag}` }));
  s.git.commit(`agents ${tag}`);
}

async function image(name: string): Promise<string | undefined> {
  const ds = await apps.readNamespacedDaemonSet({ name, namespace: s.ns });
  return ds.spec!.template.spec!.containers[0].image;
}

function entry(report: ReconcileReport, name: string) {
  return report.daemonSets.find((d) => d.name === name)!;
}

beforeAll(async () => {
  s = await scenario('recfault');
  onCleanup(() => deleteStorePrefix(s.config));
  writeAll('1.0');
  const first = await reconcile(s.deps(), { wait: false });
  expect(first.result).toBe('succeeded');
  expect(first.summary.create).toBe(NAMES.length);
});

afterAll(() => cleanupScenarios());

describe('a state.json that is not JSON', () => {
  it('fails that DaemonSet alone, with its key and the repair, and is never written over', async () => {
    const deps = s.deps();
    const key = deps.store.keys.state(s.ns, 'agent-b');
    const good = (await deps.objects.get(key))!;
    await deps.objects.put(key, '{"schema": 1, "namespace": "trunc');
    const corruptEtag = (await deps.objects.get(key))!.etag;
    writeAll('2.0');

    const report = await reconcile(s.deps(), { wait: false });

    expect(report.summary.total).toBe(NAMES.length);
    const bad = entry(report, 'agent-b');
    expect(bad).toMatchObject({ action: 'failed', applied: false, error: { reason: 'RecordUnreadable' } });
    expect(bad.error!.message).toContain(key);
    expect(bad.error!.message).toContain(`dsgitops repair ${s.ns}/agent-b`);
    for (const name of NAMES.filter((n) => n !== 'agent-b')) {
      expect(entry(report, name)).toMatchObject({ action: 'update', applied: true, revision: 2 });
      expect(await image(name)).toBe(`registry.local/${name}:2.0`);
    }
    expect(await image('agent-b')).toBe('registry.local/agent-b:1.0');
    expect(report.result).toBe('failed');
    // Untouched: the same object, and no revision claimed for the blocked DaemonSet.
    expect((await deps.objects.get(key))!.etag).toBe(corruptEtag);
    expect(await deps.store.listRevisionNumbers(s.ns, 'agent-b')).toEqual([1]);

    // A second pass says the same and still writes nothing over it.
    const again = await reconcile(s.deps(), { wait: false });
    expect(entry(again, 'agent-b').error?.reason).toBe('RecordUnreadable');
    expect((await deps.objects.get(key))!.etag).toBe(corruptEtag);

    // status shows it as unreadable, and every other DaemonSet as usual.
    const mine = (await status(s.deps())).daemonSets.filter((d) => d.namespace === s.ns);
    expect(mine.find((d) => d.name === 'agent-b')!.unreadable?.key).toBe(key);
    expect(mine.filter((d) => !d.unreadable && d.revision === 2).map((d) => d.name)).toEqual(NAMES.filter((n) => n !== 'agent-b'));

    // repair shows the last version that parses, writes nothing without --yes ...
    const shown = await repair(s.deps(), { namespace: s.ns, name: 'agent-b' });
    expect(shown.records).toEqual([expect.objectContaining({ key, record: 'state', fix: 'restore-version', written: false })]);
    expect(shown.records[0].problem).toMatch(/not valid JSON/);
    expect(shown.records[0].restores).toMatch(/^revision 1 /);
    expect((await deps.objects.get(key))!.etag).toBe(corruptEtag);

    // ... and restores it with --yes (through the command, as an operator runs it).
    const env = stackConfigEnv({ GIT_URL: s.git.url, ALLOWED_NAMESPACES: s.ns, CLUSTER_NAME: s.config.cluster.name });
    const cli = await runCliProcess(['repair', `${s.ns}/agent-b`, '--yes', '--json'], env);
    expect(cli.code).toBe(0);
    const done = JSON.parse(cli.stdout);
    expect(done.records[0]).toMatchObject({ fix: 'restore-version', written: true });
    const restored = (await deps.objects.get(key))!;
    expect(JSON.parse(restored.body)).toEqual(JSON.parse(good.body));

    const next = await reconcile(s.deps(), { wait: false });
    expect(entry(next, 'agent-b')).toMatchObject({ action: 'update', applied: true, revision: 2 });
    expect(await image('agent-b')).toBe('registry.local/agent-b:2.0');
    expect(await deps.store.listRevisionNumbers(s.ns, 'agent-b')).toEqual([1, 2]);
  });
});

describe('a revision snapshot that does not have the expected shape', () => {
  it('is restored from its last version that parses', async () => {
    const deps = s.deps();
    const key = deps.store.keys.revision(s.ns, 'agent-c', 1);
    const good = (await deps.objects.get(key))!;
    await deps.objects.put(key, JSON.stringify({ schema: 1, revision: 'one' }));

    const shown = await repair(s.deps(), { namespace: s.ns, name: 'agent-c' });
    expect(shown.records).toEqual([expect.objectContaining({ key, record: 'revision', fix: 'restore-version' })]);
    expect(shown.records[0].problem).toMatch(/expected shape/);
    const done = await repair(s.deps(), { namespace: s.ns, name: 'agent-c', yes: true });
    expect(done.records[0].written).toBe(true);
    expect((await deps.objects.get(key))!.body).toBe(good.body);
    expect((await repair(s.deps(), { namespace: s.ns, name: 'agent-c' })).records).toEqual([]);
  });
});

describe('a state.json with no version that parses', () => {
  it('is rebuilt from the live DaemonSet and the snapshot of the revision it runs', async () => {
    const deps = s.deps();
    const key = deps.store.keys.state(s.ns, 'agent-d');
    const before = (await deps.store.getState(s.ns, 'agent-d'))!.value;
    await deps.objects.put(key, 'garbage');

    const shown = await repair(s.deps(), { namespace: s.ns, name: 'agent-d', rebuild: true });
    expect(shown.records[0]).toMatchObject({ key, fix: 'rebuild-from-live', written: false });
    await repair(s.deps(), { namespace: s.ns, name: 'agent-d', rebuild: true, yes: true });
    const rebuilt = (await deps.store.getState(s.ns, 'agent-d'))!.value;
    expect(rebuilt).toMatchObject({ currentRevision: before.currentRevision, appliedDigest: before.appliedDigest });

    const next = await reconcile(s.deps(), { wait: false });
    expect(next.result).toBe('succeeded');
    expect(entry(next, 'agent-d')).toMatchObject({ action: 'unchanged', revision: 2 });
  });
});
