/**
 * Brings the local stack up, reusing whatever already runs: builds missing programs,
 * makes the PKI, starts each component that is not healthy, waits for it, creates the
 * nodes, the bucket and the served git repository, and writes .stack/env.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  GetBucketVersioningCommand,
  HeadBucketCommand,
  PutBucketVersioningCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { binaryPath, ensureAllBuilt, formatDuration } from './build';
import { ensurePythonTool } from './python-tools';
import { DEFAULT_RBAC_NAME, DEFAULT_RBAC_USER, rbacYaml } from '../lib/rbac';
import { Component, components, startGroups } from './components';
import { ensureExtraClusters, wantedClusters } from './clusters';
import { StackEnv, writeStackEnv } from './env';
import { kubectl } from './kubectl';
import { log } from './log';
import { listStackNodes, setWorkerCount, waitNodesReady } from './nodes';
import { paths, repoRoot } from './paths';
import { ensurePki, kubeconfigPath, writeKubeconfigs } from './pki';
import { fingerprint, logTail, runningFingerprint, runningPid, sleep, startProcess, stopProcess } from './processes';
import { readSecret } from './secrets';
import { StackPorts, stackPorts } from './versions';
import { BUCKET, SERVED_REPO, webhookSecretFile } from './demo-target';

export { BUCKET, SERVED_REPO } from './demo-target';

async function waitHealthy(c: Component, pid: number): Promise<void> {
  const deadline = Date.now() + c.startTimeoutSeconds * 1000;
  while (Date.now() < deadline) {
    if (await c.healthy()) return;
    if (runningPid(c.name) !== pid) {
      throw new Error(`${c.name} exited during start-up. Last lines of .stack/logs/${c.name}.log:\n${logTail(c.name)}`);
    }
    await sleep(250);
  }
  throw new Error(`${c.name} did not become healthy within ${c.startTimeoutSeconds}s. Last lines of .stack/logs/${c.name}.log:\n${logTail(c.name)}`);
}

/** Starts the component unless it already runs healthy; returns true when this call started it. */
export async function ensureComponent(c: Component): Promise<boolean> {
  const spec = c.spec();
  let pid = runningPid(c.name);
  if (pid !== undefined && runningFingerprint(c.name) !== fingerprint(spec)) {
    log(`${c.name} (pid ${pid}) runs with an older configuration; restarting it`);
    await stopProcess(c.name);
    pid = undefined;
  }
  if (pid !== undefined) {
    if (await c.healthy()) return false;
    // Running but not answering yet: maybe it is still starting; give it its start-up time.
    try {
      await waitHealthy(c, pid);
      return false;
    } catch {
      log(`${c.name} (pid ${pid}) is running but unhealthy; restarting it`);
      await stopProcess(c.name);
    }
  } else if (await c.healthy()) {
    throw new Error(
      `something not started by this stack already answers on ${c.name}'s port. Stop it, or move the stack's ports with STACK_PORT_BASE.`,
    );
  }
  const started = startProcess(spec);
  log(`started ${c.name} (pid ${started})`);
  await waitHealthy(c, started);
  return true;
}

async function ensureBucket(endpoint: string, accessKeyId: string, secretAccessKey: string): Promise<void> {
  const s3 = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  try {
    try {
      await s3.send(new HeadBucketCommand({ Bucket: BUCKET }));
    } catch {
      await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
      log(`created bucket ${BUCKET}`);
    }
    const v = await s3.send(new GetBucketVersioningCommand({ Bucket: BUCKET }));
    if (v.Status !== 'Enabled') {
      await s3.send(new PutBucketVersioningCommand({ Bucket: BUCKET, VersioningConfiguration: { Status: 'Enabled' } }));
      log(`enabled versioning on bucket ${BUCKET}`);
    }
  } finally {
    s3.destroy();
  }
}

function ensureServedRepo(ports: StackPorts): string {
  const dir = join(paths.gitRoot, SERVED_REPO);
  if (!existsSync(join(dir, 'HEAD'))) {
    mkdirSync(dir, { recursive: true });
    execFileSync('git', ['init', '--quiet', '--bare', '--initial-branch=main', dir]);
    execFileSync('git', ['-C', dir, 'config', 'http.receivepack', 'true']);
  }
  // Every push calls the stack's webhook, signed, as GitHub would (stack/hooks/post-receive).
  const config = { 'core.hooksPath': join(repoRoot, 'stack', 'hooks'), 'dsgitops.webhookUrl': `http://127.0.0.1:${ports.webhook}/`, 'dsgitops.webhookSecretFile': webhookSecretFile() };
  for (const [key, value] of Object.entries(config)) execFileSync('git', ['-C', dir, 'config', key, value]);
  return dir;
}

export interface UpResult {
  /** Components this call started (the others were already running). */
  started: string[];
  env: StackEnv;
  seconds: number;
}

export async function stackUp(options: { nodes?: number; clusters?: number } = {}): Promise<UpResult> {
  const t0 = Date.now();
  const ports = stackPorts();
  const clusters = options.clusters ?? wantedClusters();
  await ensureAllBuilt();
  ensurePythonTool('moto', log);
  for (const d of [paths.data, paths.logs, paths.pids, paths.config, paths.gitRoot]) mkdirSync(d, { recursive: true });
  ensurePki();
  writeKubeconfigs(ports.apiserver);
  const gitToken = readSecret('git-token');
  const minioPassword = readSecret('minio-password');

  const all = components(ports);
  const started: string[] = [];
  for (const group of startGroups) {
    const results = await Promise.all(group.map((name) => ensureComponent(all[name])));
    group.forEach((name, i) => results[i] && started.push(name));
    if (group.includes('kube-apiserver')) {
      // Exactly what `dsgitops rbac` prints for the stack's policy (any namespace: tests make their own).
      kubectl(['apply', '-f', '-'], rbacYaml({ allowedNamespaces: '*', user: DEFAULT_RBAC_USER, name: DEFAULT_RBAC_NAME }));
    }
  }

  const existing = listStackNodes();
  const wanted = options.nodes ?? (existing.workers.length > 0 ? undefined : Number(process.env.STACK_NODES ?? 5));
  if (wanted !== undefined) setWorkerCount(wanted);
  await waitNodesReady();
  if (clusters > 1) started.push(...await ensureExtraClusters(ports, clusters, ensureComponent));

  const s3Endpoint = `http://127.0.0.1:${ports.minio}`;
  await ensureBucket(s3Endpoint, 'dsgitops', minioPassword);
  ensureServedRepo(ports);

  const env: StackEnv = {
    KUBECONFIG: kubeconfigPath('admin'),
    RECONCILER_KUBECONFIG: kubeconfigPath('reconciler'),
    KUBECTL: binaryPath('kubectl'),
    AUDIT_LOG: join(paths.logs, 'audit.log'),
    S3_ENDPOINT: s3Endpoint,
    S3_BUCKET: BUCKET,
    AWS_ACCESS_KEY_ID: 'dsgitops',
    AWS_SECRET_ACCESS_KEY: minioPassword,
    AWS_REGION: 'us-east-1',
    GIT_HTTP_URL: `http://127.0.0.1:${ports.git}/${SERVED_REPO}`,
    GIT_HTTP_TOKEN: gitToken,
    GIT_HTTP_ROOT: paths.gitRoot,
    GIT_HTTP_BASE: `http://127.0.0.1:${ports.git}`,
    AWS_EMULATOR_ENDPOINT: `http://127.0.0.1:${ports.awsEmulator}`,
    WEBHOOK_URL: `http://127.0.0.1:${ports.webhook}/`,
    KUSTOMIZE_BIN: binaryPath('kustomize'),
    HELM_BIN: binaryPath('helm'),
    ...(clusters > 1 ? { STACK_CLUSTERS: String(clusters) } : {}),
  };
  writeStackEnv(env);
  const seconds = (Date.now() - t0) / 1000;
  log(`stack is up in ${formatDuration(seconds)}${started.length ? ` (started ${started.join(', ')})` : ' (everything was already running)'}; environment in ${paths.env}`);
  return { started, env, seconds };
}
