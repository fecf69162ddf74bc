/**
 * With a fleet file, each cluster's pass reconciles the commit promoted to it (recorded in
 * S3), not the branch head, with the manifests path of that cluster; scheduled passes keep
 * correcting drift against it. Three real API servers of the local stack.
 */
import * as k8s from '@kubernetes/client-node';
import { fleetClusterPass } from '../../lib/fleet/cluster-pass';
import { captureLog, stackDeps } from '../support/reconciler';
import { reconcile } from '../../lib/reconcile';
import { fleetWorld, FleetWorld } from '../support/fleet';
import { stackEnv, waitFor } from '../support/cluster';
import { clusterPassCredentials } from '../../lib/fleet/credentials';
import { s3ObjectStore } from '../../lib/store/object-store';
import { PromotionStore } from '../../lib/store/promotion-store';
import { CountingObjectStore } from '../support/counting-store';

jest.setTimeout(400_000);

let world: FleetWorld;

beforeAll(async () => {
  world = await fleetWorld({ waves: [{ name: 'canary', clusters: ['staging'] }, { name: 'prod', clusters: ['prod-a', 'prod-b'] }] });
});

afterAll(async () => {
  await world?.cleanup();
});

const pass = (cluster: string) => fleetClusterPass(world.config, cluster, { logger: captureLog().logger, budgetMs: 120_000 });

describe('a fleet cluster\'s pass', () => {
  it('applies nothing to a cluster no commit was promoted to', async () => {
    world.commitAgent('registry.local/agent:1.0', 'v1');
    const r = await pass('prod-a');
    expect(r.skipped).toBe('no commit has been promoted to prod-a yet');
    expect(await world.liveImage('prod-a')).toBeUndefined();
  });

  it('reconciles the promoted commit, not the head, and records a healthy outcome', async () => {
    const v1 = world.repo.commit('nothing changes');
    for (const c of ['staging', 'prod-a', 'prod-b']) await world.store.promoteCluster(c, { commit: v1, at: new Date().toISOString(), by: 'test' });
    const v2 = world.commitAgent('registry.local/agent:2.0', 'v2');
    const results = await Promise.all(['staging', 'prod-a', 'prod-b'].map(pass));
    for (const r of results) expect(r.outcome).toMatchObject({ commit: v1, result: 'healthy' });
    for (const c of ['staging', 'prod-a', 'prod-b']) expect(await world.liveImage(c)).toBe('registry.local/agent:1.0');

    await world.store.promoteCluster('staging', { commit: v2, at: new Date().toISOString(), by: 'test' });
    expect((await pass('staging')).outcome).toMatchObject({ commit: v2, result: 'healthy' });
    expect((await pass('prod-a')).outcome).toMatchObject({ commit: v1, result: 'healthy' });
    expect(await world.liveImage('staging')).toBe('registry.local/agent:2.0');
    expect(await world.liveImage('prod-a')).toBe('registry.local/agent:1.0');
    expect((await world.store.readCluster('staging')).lastPass).toMatchObject({ commit: v2, result: 'healthy' });
  });

  it('corrects drift against the promoted commit, not the head', async () => {
    const { apps } = world.clients['prod-b'];
    await apps.patchNamespacedDaemonSet(
      { name: 'agent', namespace: world.ns, body: { spec: { template: { spec: { containers: [{ name: 'agent', image: 'registry.local/agent:hand-edit' }] } } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    await waitFor('the hand edit to be live', async () => (await world.liveImage('prod-b')) === 'registry.local/agent:hand-edit');
    const r = await pass('prod-b');
    expect(r.outcome?.result).toBe('healthy');
    expect(await world.liveImage('prod-b')).toBe('registry.local/agent:1.0');
  });
});

describe('a steady fleet cluster\'s scheduled pass', () => {
  it('records its outcome only when it changed: a pass that finds what is recorded writes nothing to the cluster\'s record', async () => {
    const key = `${world.config.s3.prefix}/prod-b/promotion.json`;
    // The drift correction above settles first, as `kubectl rollout status` judges it: the
    // controller has seen the last template and every desired pod runs it and is available.
    await waitFor('prod-b\'s DaemonSet to finish the drift correction\'s rollout', async () => {
      const ds = await world.clients['prod-b'].apps.readNamespacedDaemonSet({ name: 'agent', namespace: world.ns });
      const st = ds.status;
      return !!st && (st.observedGeneration ?? 0) >= (ds.metadata!.generation ?? 0) && st.updatedNumberScheduled === st.desiredNumberScheduled && st.numberAvailable === st.desiredNumberScheduled;
    });
    await waitFor('a pass of prod-b that records it healthy', async () => (await pass('prod-b')).outcome?.result === 'healthy');
    const before = await world.store.readCluster('prod-b');
    expect(before.lastPass).toMatchObject({ result: 'healthy' });
    const steady = new CountingObjectStore(s3ObjectStore(world.config.s3));
    const r = await fleetClusterPass(world.config, 'prod-b', { objects: steady, logger: captureLog().logger, budgetMs: 120_000 });
    expect(r.outcome).toMatchObject({ commit: before.lastPass!.commit, result: 'healthy' });
    expect(steady.written.filter((k) => k === key)).toEqual([]);
    expect(await world.store.readCluster('prod-b')).toEqual(before);

    // A new outcome is written: a commit promoted to prod-b and applied there.
    const v = world.commitAgent('registry.local/agent:1.1', 'v1.1');
    await world.store.promoteCluster('prod-b', { commit: v, at: new Date().toISOString(), by: 'test' });
    const changed = new CountingObjectStore(s3ObjectStore(world.config.s3));
    await fleetClusterPass(world.config, 'prod-b', { objects: changed, logger: captureLog().logger, budgetMs: 120_000 });
    expect(changed.written.filter((k) => k === key)).toEqual([key]);
    expect((await world.store.readCluster('prod-b')).lastPass).toMatchObject({ commit: v, result: 'healthy' });
    process.stderr.write(`steady fleet pass: ${steady.reads} S3 reads (${steady.read.join(', ')}), ${steady.writes} writes\n`);
  });
});

describe('a fleet cluster\'s pass with its own credentials (FLEET_CLUSTER_ROLE_ARN): MinIO\'s STS and policy evaluation', () => {
  // MinIO's AssumeRole gives a session of the calling user (here the stack's, allowed the
  // whole bucket) narrowed by the session policy: MinIO, not this code, refuses what it does not allow.
  const scoped = () => ({ ...world.config, fleetClusterRoleArn: 'arn:aws:iam::123456789012:role/dsgitops-it-{cluster}', stsEndpoint: stackEnv().S3_ENDPOINT });

  it('reconciles and records its outcome as its cluster\'s session', async () => {
    const v = world.commitAgent('registry.local/agent:scoped', 'scoped credentials');
    await world.store.promoteCluster('staging', { commit: v, at: new Date().toISOString(), by: 'test' });
    const r = await fleetClusterPass(scoped(), 'staging', { logger: captureLog().logger, budgetMs: 120_000 });
    expect(r.outcome).toMatchObject({ commit: v, result: 'healthy' });
    expect(await world.liveImage('staging')).toBe('registry.local/agent:scoped');
    expect((await world.store.readCluster('staging')).lastPass).toMatchObject({ commit: v, result: 'healthy' });
  });

  it('cannot write or read another cluster\'s prefix: its record, its lease', async () => {
    const c = world.config;
    const session = clusterPassCredentials({ rolePattern: scoped().fleetClusterRoleArn, cluster: 'staging', bucket: c.s3.bucket, prefix: c.s3.prefix, region: c.s3.region, endpoint: stackEnv().S3_ENDPOINT });
    const objects = s3ObjectStore({ ...c.s3, credentials: session.s3 });
    const asStaging = new PromotionStore(objects, c.s3.prefix);
    const before = await world.store.readCluster('prod-a');

    await expect(asStaging.recordPass('prod-a', { commit: 'f'.repeat(40), at: new Date().toISOString(), result: 'healthy' })).rejects.toThrow(/AccessDenied|Access Denied|403/);
    await expect(objects.put(`${c.s3.prefix}/prod-a/lease.json`, '{}')).rejects.toThrow(/AccessDenied|Access Denied|403/);
    await expect(objects.get(`${c.s3.prefix}/prod-a/promotion.json`)).rejects.toThrow(/AccessDenied|Access Denied|403/);
    // Its own prefix it may read and write; prod-a's record is as it was.
    await objects.put(`${c.s3.prefix}/staging/probe.json`, '{"ok":true}');
    expect(await objects.get(`${c.s3.prefix}/staging/probe.json`)).toBeDefined();
    expect(await world.store.readCluster('prod-a')).toEqual(before);
  });
});

describe('a pass that is not a fleet pass, with FLEET_FILE set', () => {
  it('applies nothing of the branch head and says how to run the cluster\'s pass', async () => {
    world.commitAgent('registry.local/agent:3.0', 'v3 at the head, promoted nowhere');
    const before = await world.liveImage('staging');
    const report = await reconcile(stackDeps(world.config));
    expect(report.error?.reason).toBe('NotPromoted');
    expect(report.error?.message).toMatch(/FLEET_FILE is set: cluster staging reconciles the commit promoted to it, not the head of main/);
    expect(await world.liveImage('staging')).toBe(before);
  });
});
