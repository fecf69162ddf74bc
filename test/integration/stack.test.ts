/**
 * The local stack is real: the DaemonSet controller, the scheduler and kwok place and
 * replace pods as a cluster does; MinIO honours conditional writes; the HTTP git server
 * checks its token.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import * as k8s from '@kubernetes/client-node';
import { setWorkerCount, waitNodesReady } from '../../stack/nodes';
import {
  adminClients,
  createNamespace,
  daemonSet,
  deleteNamespace,
  isPodReady,
  stackEnv,
  uniqueName,
  waitFor,
  workerNodes,
} from '../support/cluster';
import { TestRepo } from '../support/git';

jest.setTimeout(400_000);

const { core, apps } = adminClients();
let namespace: string;

beforeAll(async () => {
  namespace = await createNamespace(core, 'stack');
});

afterAll(async () => {
  await deleteNamespace(core, namespace);
});

async function podsOf(name: string): Promise<k8s.V1Pod[]> {
  const list = await core.listNamespacedPod({ namespace, labelSelector: `app=${name}` });
  return list.items.filter((p) => !p.metadata?.deletionTimestamp);
}

async function dsStatus(name: string): Promise<k8s.V1DaemonSetStatus> {
  return (await apps.readNamespacedDaemonSet({ name, namespace })).status!;
}

describe('the local Kubernetes control plane', () => {
  it('gives a DaemonSet exactly one Ready pod on every worker and none on the tainted control plane', async () => {
    const workers = (await workerNodes(core)).map((n) => n.metadata!.name!).sort();
    expect(workers.length).toBeGreaterThanOrEqual(3);
    const name = uniqueName('agent');
    await apps.createNamespacedDaemonSet({ namespace, body: daemonSet(name, namespace) });

    const pods = await waitFor('one Ready pod per worker', async () => {
      const p = await podsOf(name);
      return p.length === workers.length && p.every(isPodReady) ? p : undefined;
    });
    expect(pods.map((p) => p.spec!.nodeName).sort()).toEqual(workers);
    expect(pods.map((p) => p.spec!.nodeName)).not.toContain('kwok-control-plane');
    const status = await waitFor('status to count every worker', async () => {
      const s = await dsStatus(name);
      return s.numberReady === workers.length ? s : undefined;
    });
    expect(status.desiredNumberScheduled).toBe(workers.length);
  });

  it('schedules onto the control plane only when the DaemonSet tolerates its taint', async () => {
    const workers = await workerNodes(core);
    const name = uniqueName('cp');
    const body = daemonSet(name, namespace);
    body.spec!.template.spec!.tolerations = [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' }];
    await apps.createNamespacedDaemonSet({ namespace, body });
    const pods = await waitFor('a Ready pod on every node including the control plane', async () => {
      const p = await podsOf(name);
      return p.length === workers.length + 1 && p.every(isPodReady) ? p : undefined;
    });
    expect(pods.map((p) => p.spec!.nodeName)).toContain('kwok-control-plane');
  });

  it('keeps pods off nodes that a nodeSelector excludes', async () => {
    const inZoneA = (await workerNodes(core)).filter((n) => n.metadata!.labels!['topology.kubernetes.io/zone'] === 'a');
    expect(inZoneA.length).toBeGreaterThan(0);
    const name = uniqueName('zonal');
    const body = daemonSet(name, namespace);
    body.spec!.template.spec!.nodeSelector = { 'topology.kubernetes.io/zone': 'a' };
    await apps.createNamespacedDaemonSet({ namespace, body });
    const pods = await waitFor('pods on zone a only', async () => {
      const p = await podsOf(name);
      const s = await dsStatus(name);
      return s.desiredNumberScheduled === inZoneA.length && p.length === inZoneA.length && p.every(isPodReady) ? p : undefined;
    });
    expect(pods.map((p) => p.spec!.nodeName).sort()).toEqual(inZoneA.map((n) => n.metadata!.name).sort());
  });

  it('rolls an image change out through the controller manager until every pod is updated', async () => {
    const workers = await workerNodes(core);
    const name = uniqueName('roll');
    await apps.createNamespacedDaemonSet({ namespace, body: daemonSet(name, namespace, { image: 'registry.local/agent:1.0' }) });
    await waitFor('initial rollout', async () => (await dsStatus(name)).numberReady === workers.length);

    await apps.patchNamespacedDaemonSet(
      { name, namespace, body: { spec: { template: { spec: { containers: [{ name: 'main', image: 'registry.local/agent:2.0' }] } } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    const status = await waitFor('the rollout to finish', async () => {
      const s = await dsStatus(name);
      return s.updatedNumberScheduled === s.desiredNumberScheduled && s.numberAvailable === s.desiredNumberScheduled && s.observedGeneration === 2 ? s : undefined;
    }, 120_000);
    expect(status.desiredNumberScheduled).toBe(workers.length);
    const pods = await podsOf(name);
    expect(pods.map((p) => p.spec!.containers[0].image)).toEqual(workers.map(() => 'registry.local/agent:2.0'));
  });

  it('never makes a pod labelled as failing Ready, so a rolling update stops at the first node', async () => {
    const workers = await workerNodes(core);
    const name = uniqueName('bad');
    await apps.createNamespacedDaemonSet({ namespace, body: daemonSet(name, namespace) });
    await waitFor('initial rollout', async () => (await dsStatus(name)).numberReady === workers.length);

    await apps.patchNamespacedDaemonSet(
      {
        name,
        namespace,
        body: { spec: { template: { metadata: { labels: { 'pod-container-running-failed.stage.kwok.x-k8s.io': 'true' } }, spec: { containers: [{ name: 'main', image: 'registry.local/agent:broken' }] } } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    const failing = await waitFor('the first new pod to be running', async () => {
      const p = (await podsOf(name)).filter((x) => x.spec!.containers[0].image === 'registry.local/agent:broken');
      return p.length === 1 && p[0].status?.phase === 'Running' ? p[0] : undefined;
    });
    // Long enough for a healthy pod to have become Ready several times over.
    await new Promise((r) => setTimeout(r, 5000));
    const pods = await podsOf(name);
    const updated = pods.filter((p) => p.spec!.containers[0].image === 'registry.local/agent:broken');
    expect(updated).toHaveLength(1);
    expect(updated[0].metadata!.uid).toBe(failing.metadata!.uid);
    expect(isPodReady(updated[0])).toBe(false);
    expect(updated[0].status!.containerStatuses![0].state!.waiting!.reason).toBe('CrashLoopBackOff');
    // The controller writes its status after it has seen the pods: what it last wrote may be older
    // than the pods read above, so wait for its count of this generation to reach what they show.
    const status = await waitFor('the DaemonSet controller to count the crash-looping pod of generation 2', async () => {
      const s = await dsStatus(name);
      return s.observedGeneration === 2 && s.updatedNumberScheduled === 1 && s.numberUnavailable === 1 ? s : undefined;
    });
    expect(status.updatedNumberScheduled).toBe(1);
    expect(status.numberUnavailable).toBe(1);
    // Still one: the controller replaced no further pod while it counted.
    expect((await podsOf(name)).filter((p) => p.spec!.containers[0].image === 'registry.local/agent:broken')).toHaveLength(1);
  });

  it('holds back readiness for the delay a pod annotation asks for', async () => {
    const name = uniqueName('slow');
    await apps.createNamespacedDaemonSet({
      namespace,
      body: daemonSet(name, namespace, { podAnnotations: { 'pod-ready.stage.kwok.x-k8s.io/delay': '3s' } }),
    });
    const running = await waitFor('pods to be running', async () => {
      const p = await podsOf(name);
      return p.length > 0 && p.every((x) => x.status?.phase === 'Running') ? p : undefined;
    });
    const startedAt = Date.parse(running[0].status!.startTime as unknown as string);
    const ready = await waitFor('pods to be Ready', async () => {
      const p = await podsOf(name);
      return p.length > 0 && p.every(isPodReady) ? p : undefined;
    });
    const readyAt = Date.parse(ready[0].status!.conditions!.find((c) => c.type === 'Ready')!.lastTransitionTime as unknown as string);
    expect(readyAt - startedAt).toBeGreaterThanOrEqual(2500);
  });

  it('adds and removes nodes while it runs, and DaemonSets follow', async () => {
    const before = (await workerNodes(core)).length;
    const name = uniqueName('follow');
    await apps.createNamespacedDaemonSet({ namespace, body: daemonSet(name, namespace) });
    await waitFor('initial rollout', async () => (await dsStatus(name)).numberReady === before);
    try {
      setWorkerCount(before + 2);
      await waitNodesReady();
      await waitFor('pods on the new nodes', async () => {
        const s = await dsStatus(name);
        return s.desiredNumberScheduled === before + 2 && s.numberReady === before + 2;
      });
    } finally {
      setWorkerCount(before);
    }
    // The DaemonSet controller counts again once the pods of the removed nodes are gone, and
    // those go only when the pod garbage collector force-deletes them: after they have been
    // orphaned for its quarantine time (40 s), at its next check (every 20 s). Wait for that,
    // with room for a busy machine, then for the count.
    const nodesNow = new Set((await workerNodes(core)).map((n) => n.metadata!.name!));
    await waitFor('the pod garbage collector to remove the pods of the removed nodes (40 s quarantine, checked every 20 s)', async () => {
      const pods = (await core.listNamespacedPod({ namespace, labelSelector: `app=${name}` })).items;
      return pods.every((p) => !p.spec?.nodeName || nodesNow.has(p.spec.nodeName));
    }, 180_000, 1000);
    await waitFor('the DaemonSet controller to count the DaemonSet on the remaining nodes', async () => (await dsStatus(name)).desiredNumberScheduled === before, 60_000);
    expect((await workerNodes(core)).length).toBe(before);
  });
});

describe('the local MinIO', () => {
  const env = stackEnv();
  const s3 = new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.AWS_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  afterAll(() => s3.destroy());

  it('refuses a second If-None-Match: * write to the same key with 412', async () => {
    const Key = `tests/${uniqueName('conditional')}.json`;
    await s3.send(new PutObjectCommand({ Bucket: env.S3_BUCKET, Key, Body: '{"n":1}', IfNoneMatch: '*' }));
    const second = s3.send(new PutObjectCommand({ Bucket: env.S3_BUCKET, Key, Body: '{"n":2}', IfNoneMatch: '*' }));
    await expect(second).rejects.toMatchObject({ $metadata: { httpStatusCode: 412 } });
    await s3.send(new DeleteObjectCommand({ Bucket: env.S3_BUCKET, Key }));
  });

  it('refuses an If-Match write whose ETag is stale', async () => {
    const Key = `tests/${uniqueName('ifmatch')}.json`;
    const first = await s3.send(new PutObjectCommand({ Bucket: env.S3_BUCKET, Key, Body: '{"n":1}' }));
    await s3.send(new PutObjectCommand({ Bucket: env.S3_BUCKET, Key, Body: '{"n":2}', IfMatch: first.ETag }));
    const stale = s3.send(new PutObjectCommand({ Bucket: env.S3_BUCKET, Key, Body: '{"n":3}', IfMatch: first.ETag }));
    await expect(stale).rejects.toMatchObject({ $metadata: { httpStatusCode: 412 } });
  });
});

describe('the local git smart-HTTP server', () => {
  const env = stackEnv();
  let repo: TestRepo;
  let scratch: string;
  let repoUrl: string;

  beforeAll(() => {
    repo = new TestRepo();
    repo.write('README.md', 'served over http\n').commit('first');
    // Publish the test repository under the served root, as a second bare repo.
    const name = `${uniqueName('served')}.git`;
    execFileSync('git', ['clone', '--quiet', '--bare', repo.bare, join(env.GIT_HTTP_ROOT, name)]);
    repoUrl = `${env.GIT_HTTP_BASE}/${name}`;
    scratch = mkdtempSync(join(tmpdir(), 'dsgitops-clone-'));
  });

  afterAll(() => {
    repo.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });

  function clone(extra: string[], target: string) {
    return spawnSync('git', [...extra, 'clone', '--quiet', '--depth', '1', repoUrl, join(scratch, target)], {
      encoding: 'utf8',
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
    });
  }

  it('clones with the token', () => {
    const basic = Buffer.from(`x-access-token:${env.GIT_HTTP_TOKEN}`).toString('base64');
    const out = clone(['-c', `http.extraHeader=Authorization: Basic ${basic}`], 'with-token');
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
    expect(execFileSync('git', ['-C', join(scratch, 'with-token'), 'log', '--format=%s'], { encoding: 'utf8' }).trim()).toBe('first');
  });

  it('refuses a clone without the token, or with a wrong one', () => {
    const none = clone([], 'without-token');
    expect(none.status).not.toBe(0);
    expect(none.stderr).toMatch(/Authentication failed|could not read Username|401/);
    const basic = Buffer.from('x-access-token:not-the-token').toString('base64');
    const wrong = clone(['-c', `http.extraHeader=Authorization: Basic ${basic}`], 'wrong-token');
    expect(wrong.status).not.toBe(0);
  });
});
