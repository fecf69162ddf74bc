/**
 * The per-DaemonSet commands in a fleet (FLEET_FILE): rollback, history, status, unpin, pause and
 * resume take the cluster they act on, checked against the fleet file, and act as that cluster's
 * session (MinIO's STS, its session policy narrowed to the cluster's prefix). Three API servers
 * of the local stack: a rollback on prod-a changes prod-a only, in the cluster and in S3.
 */
import { runCli } from '../../bin/cli';
import { handler as historyHandler } from '../../handlers/history';
import { handler as statusHandler } from '../../handlers/status';
import { handler as unpinHandler } from '../../handlers/unpin';
import { fleetClusterPass } from '../../lib/fleet/cluster-pass';
import { s3ObjectStore } from '../../lib/store/object-store';
import { stackEnv } from '../support/cluster';
import { FLEET_CLUSTERS, fleetWorld, FleetWorld } from '../support/fleet';
import { captureLog, stackConfigEnv } from '../support/reconciler';

jest.setTimeout(400_000);

const V1 = 'registry.local/agent:1.0';
const V2 = 'registry.local/agent:2.0';

let world: FleetWorld;

beforeAll(async () => {
  world = await fleetWorld({ waves: [{ name: 'canary', clusters: ['staging'] }, { name: 'prod', clusters: ['prod-a', 'prod-b'] }] });
  // Two revisions of the agent in every cluster: 1.0, then 2.0.
  for (const image of [V1, V2]) {
    const commit = world.commitAgent(image, image);
    for (const c of FLEET_CLUSTERS) await world.store.promoteCluster(c, { commit, at: new Date().toISOString(), by: 'test' });
    const results = await Promise.all(FLEET_CLUSTERS.map((c) => fleetClusterPass(world.config, c, { logger: captureLog().logger, budgetMs: 120_000 })));
    for (const r of results) expect(r.outcome?.result).toBe('healthy');
  }
});

afterAll(async () => {
  await world?.cleanup();
});

/** The environment of a fleet deployment's functions on the stack, each cluster's work done as its own MinIO session. */
function fleetEnv(): Record<string, string> {
  return stackConfigEnv({
    GIT_URL: world.repo.url,
    FLEET_FILE: 'fleet.yaml',
    FLEET_KUBECONFIGS: Object.entries(world.config.fleetKubeconfigs!).map(([name, path]) => `${name}=${path}`).join(','),
    FLEET_CLUSTER_ROLE_ARN: 'arn:aws:iam::123456789012:role/dsgitops-it-{cluster}',
    STS_ENDPOINT: stackEnv().S3_ENDPOINT,
    S3_PREFIX: world.config.s3.prefix,
    CLUSTER_NAME: 'staging',
    ALLOWED_NAMESPACES: world.ns,
    GIT_CACHE_DIR: world.config.git.cacheDir,
  });
}

async function withEnv<T>(env: Record<string, string>, f: () => Promise<T>): Promise<T> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return await f();
  } finally {
    for (const k of Object.keys(env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

async function dsgitops(args: string[], env = fleetEnv()): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await withEnv(env, () => runCli(args, { out: (t) => (out += t), err: (t) => (err += t) }));
  return { code, out, err };
}

/** Every object under a cluster's prefix, with its content: what a command could have changed there. */
async function objectsOf(cluster: string): Promise<Record<string, string>> {
  const objects = s3ObjectStore(world.config.s3);
  const out: Record<string, string> = {};
  for (const key of await objects.list(`${world.config.s3.prefix}/${cluster}/`)) out[key] = (await objects.get(key))?.body ?? '';
  return out;
}

async function liveGeneration(cluster: string): Promise<number | undefined> {
  return (await world.clients[cluster].apps.readNamespacedDaemonSet({ name: 'agent', namespace: world.ns })).metadata?.generation;
}

describe('per-DaemonSet commands on a fleet cluster', () => {
  it('rollback --cluster prod-a rolls prod-a back and pins it there; staging and prod-b, in the cluster and in S3, are untouched', async () => {
    const others = ['staging', 'prod-b'];
    const before = Object.fromEntries(await Promise.all(others.map(async (c) => [c, { objects: await objectsOf(c), generation: await liveGeneration(c) }])));

    const r = await dsgitops(['rollback', `${world.ns}/agent`, '--cluster', 'prod-a', '--reason', 'agent 2.0 drops logs', '--json']);
    expect(r.err).not.toMatch(/AccessDenied/);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ toRevision: 1, revision: 3 });
    expect(await world.liveImage('prod-a')).toBe(V1);
    for (const c of others) expect(await world.liveImage(c)).toBe(V2);
    for (const c of others) expect({ objects: await objectsOf(c), generation: await liveGeneration(c) }).toEqual(before[c]);

    // status and history of each cluster say so, read as that cluster's session.
    const prodA = await withEnv(fleetEnv(), () => statusHandler({ cluster: 'prod-a' }));
    const prodB = await withEnv(fleetEnv(), () => statusHandler({ cluster: 'prod-b' }));
    expect(prodA.cluster).toBe('prod-a');
    expect(prodA.daemonSets.find((d) => d.key === `${world.ns}/agent`)?.pin).toMatchObject({ reason: 'agent 2.0 drops logs' });
    expect(prodB.daemonSets.find((d) => d.key === `${world.ns}/agent`)?.pin).toBeUndefined();
    const history = await withEnv(fleetEnv(), () => historyHandler({ namespace: world.ns, name: 'agent', cluster: 'prod-a' }));
    expect(history.cluster).toBe('prod-a');
    expect(history.revisions.map((x) => x.revision)).toEqual([3, 2, 1]);
    expect(history.pin).toBeDefined();
  });

  it('unpin by event, { cluster }, releases prod-a\'s pin only', async () => {
    const staging = await objectsOf('staging');
    await withEnv(fleetEnv(), () => unpinHandler({ namespace: world.ns, name: 'agent', cluster: 'prod-a' }));
    const prodA = await withEnv(fleetEnv(), () => statusHandler({ cluster: 'prod-a' }));
    expect(prodA.daemonSets.find((d) => d.key === `${world.ns}/agent`)?.pin).toBeUndefined();
    expect(await objectsOf('staging')).toEqual(staging);
  });

  it('refuses a cluster the fleet file does not name, and a command without one, naming the fleet file and its clusters', async () => {
    const unknown = await dsgitops(['rollback', `${world.ns}/agent`, '--cluster', 'prod-z']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/rollback: cluster prod-z is not a cluster of fleet\.yaml at [0-9a-f]{7} \(clusters: staging, prod-a, prod-b\)/);
    const none = await dsgitops(['history', `${world.ns}/agent`]);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/history in a fleet \(FLEET_FILE=fleet\.yaml\) acts on one cluster: name it with --cluster NAME .*: staging, prod-a, prod-b/);
    await expect(withEnv(fleetEnv(), () => statusHandler({ cluster: 'prod-z' }))).rejects.toThrow(/status: cluster prod-z is not a cluster of fleet\.yaml at [0-9a-f]{7} \(clusters: staging, prod-a, prod-b\)/);
  });
});
