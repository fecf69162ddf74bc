/**
 * The packaged functions, run as Lambda runs them (test/support/lambda-sandbox.ts): each zip
 * that `serverless package` builds is unpacked read-only and loaded by AWS's runtime interface
 * client on Node.js 24, with Lambda's environment, no git binary, no HOME and only a temporary
 * directory writable. The reconcile function reconciles the local stack from its HTTP git
 * server with a token, and reuses its warm checkout on the next invocation.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { packageFunctions, PackagedFunction } from '../../scripts/lambda-package';
import { adminClients, createNamespace, deleteNamespace, stackEnv } from '../support/cluster';
import { git } from '../support/git';
import { LambdaSandbox } from '../support/lambda-sandbox';
import { dsYaml } from '../support/manifests';
import { stackConfigEnv } from '../support/reconciler';
import { folderWriter, writeBase, writeOverlay, writeProbeBase } from '../support/render-repo';
import { ensureRenderersLayer } from '../../scripts/renderers-layer';
import { KUSTOMIZE_VERSION } from '../../stack/versions';

jest.setTimeout(600_000);

const env = stackEnv();
const { core, apps } = adminClients();
const schedule = { version: '0', id: 'e2b8', 'detail-type': 'Scheduled Event', source: 'aws.events', account: '123456789012', time: new Date().toISOString(), region: 'us-east-1', resources: [], detail: {} };

let packageDir: string;
let functions: PackagedFunction[];
let ns: string;
let repo: { bare: string; work: string; url: string };
let prefix: string;
const sandboxes: LambdaSandbox[] = [];

/** The function's environment as serverless.yml deploys it, pointed at the local stack. */
function functionEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const e = stackConfigEnv({ GIT_URL: repo.url, GIT_TOKEN: env.GIT_HTTP_TOKEN, ALLOWED_NAMESPACES: ns, S3_PREFIX: prefix, ...overrides });
  delete e.KUBECONFIG;
  // Deployed, the renderers come from the layer (/opt/bin on the PATH), not from the stack's build cache.
  delete e.KUSTOMIZE_BIN;
  delete e.HELM_BIN;
  // serverless.yml sets GIT_CACHE_DIR to /tmp/daemonset-gitops/git; the default is the same place under the sandbox's own /tmp.
  rmSync(e.GIT_CACHE_DIR, { recursive: true, force: true });
  delete e.GIT_CACHE_DIR;
  return e;
}

async function sandbox(name: string, environment: Record<string, string>, layers?: string[]): Promise<LambdaSandbox> {
  const f = functions.find((x) => x.name === name)!;
  const s = await LambdaSandbox.start({ functionName: `daemonset-gitops-dev-${name}`, handler: `handlers/${name}.handler`, zip: f.zip, environment, kubeconfig: env.RECONCILER_KUBECONFIG, layers });
  sandboxes.push(s);
  return s;
}

beforeAll(async () => {
  packageDir = mkdtempSync(join(tmpdir(), 'dsgitops-lambda-package-'));
  functions = packageFunctions(packageDir);
  ns = await createNamespace(core, 'lambda');
  prefix = `lambda-it-${randomBytes(3).toString('hex')}`;
  const name = `lambda-${randomBytes(4).toString('hex')}.git`;
  repo = { bare: join(env.GIT_HTTP_ROOT, name), work: mkdtempSync(join(tmpdir(), 'dsgitops-lambda-repo-')), url: `${env.GIT_HTTP_BASE}/${name}` };
  git(env.GIT_HTTP_ROOT, ['init', '--quiet', '--bare', '--initial-branch=main', repo.bare]);
  git(repo.work, ['init', '--quiet', '--initial-branch=main']);
  git(repo.work, ['remote', 'add', 'origin', repo.bare]);
});

afterAll(async () => {
  for (const s of sandboxes) await s.stop();
  if (ns) await deleteNamespace(core, ns);
  if (repo) {
    rmSync(repo.bare, { recursive: true, force: true });
    rmSync(repo.work, { recursive: true, force: true });
  }
  rmSync(packageDir, { recursive: true, force: true });
  const s3 = new S3Client({ endpoint: env.S3_ENDPOINT, region: env.AWS_REGION, forcePathStyle: true, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } });
  for (;;) {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: env.S3_BUCKET, Prefix: `${prefix}/` }));
    if (!listed.Contents?.length) break;
    await s3.send(new DeleteObjectsCommand({ Bucket: env.S3_BUCKET, Delete: { Objects: listed.Contents.map((o) => ({ Key: o.Key! })) } }));
  }
  s3.destroy();
});

describe('the packaged functions in a Lambda-like environment (Node.js 24, aws-lambda-ric)', () => {
  it('packages each function on its own, under 1 MB zipped, and each loads and refuses a malformed event', async () => {
    expect(functions.map((f) => f.name)).toEqual(['history', 'pause', 'reconcile', 'resume', 'rollback', 'status', 'unpin', 'webhook']);
    for (const f of functions) {
      expect(f.bytes).toBeLessThanOrEqual(1024 * 1024);
      const s = await sandbox(f.name, functionEnv());
      const out = await s.invoke({ unexpected: true }, 30_000);
      if (f.name === 'webhook') {
        // A function URL answers over HTTP: a request that is not one is a 400, not a failed invocation.
        expect(out).toMatchObject({ ok: true, result: { statusCode: 400 } });
      } else {
        expect(out).toMatchObject({ ok: false, error: { errorType: 'InvalidRequestError', errorMessage: expect.stringMatching(new RegExp(`^invalid ${f.name} event`)) } });
      }
      await s.stop();
      sandboxes.splice(sandboxes.indexOf(s), 1);
    }
  });

  it('reconciles from the HTTP git server with the token and no git binary, and the warm environment reuses its checkout', async () => {
    git(repo.work, ['commit', '--quiet', '--allow-empty', '-m', 'init']);
    execFileSync('sh', ['-c', `cat > ${join(repo.work, 'ds.yaml')}`], { input: dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0' }) });
    git(repo.work, ['add', '-A'], { GIT_AUTHOR_NAME: 'a', GIT_AUTHOR_EMAIL: 'a@example.com', GIT_COMMITTER_NAME: 'a', GIT_COMMITTER_EMAIL: 'a@example.com' });
    git(repo.work, ['commit', '--quiet', '-m', 'agent 1.0']);
    git(repo.work, ['push', '--quiet', 'origin', 'HEAD:main']);
    const s = await sandbox('reconcile', functionEnv());
    // No git binary where the function runs.
    expect(readdirSync(s.path)).toEqual(['node']);

    const cold = await s.invoke(schedule, 300_000);
    expect(cold).toMatchObject({ ok: true, result: { kind: 'ReconcileReport', result: 'succeeded', daemonSets: [{ key: `${ns}/agent`, action: 'create', applied: true, revision: 1 }] } });
    expect((await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns })).spec!.template.spec!.containers[0].image).toBe('registry.local/agent:1.0');
    const warm = await s.invoke(schedule, 300_000);
    expect(warm).toMatchObject({ ok: true, result: { result: 'succeeded', daemonSets: [{ action: 'unchanged' }] } });
    const fetches = s.logLines().filter((l) => l.action === 'fetch');
    expect(fetches.map((l) => l.reused)).toEqual([false, true]);
    // Each pass's metrics line (embedded metric format) carries the invocation: its request id, and whether it started the process.
    const metrics = s.logLines().filter((l) => l.action === 'pass-metrics');
    expect(metrics.map((l) => [l.coldStart, l.SuccessfulPasses, l.FailedPasses])).toEqual([[true, 1, 0], [false, 1, 0]]);
    expect(metrics.map((l) => l.requestId)).toEqual([expect.stringMatching(/^[0-9a-f-]{36}$/), expect.stringMatching(/^[0-9a-f-]{36}$/)]);
    expect(metrics[0].requestId).not.toBe(metrics[1].requestId);
    expect(s.logLines().filter((l) => l.requestId === metrics[0].requestId).length).toBeGreaterThan(1);
    // The checkout is in the sandbox's /tmp, and nothing else was written.
    expect(existsSync(join(s.tmp, 'daemonset-gitops', 'git'))).toBe(true);
    expect(s.logs).not.toContain(env.GIT_HTTP_TOKEN);
    // No deprecation notice from the bundle: neither Node's built-in punycode (DEP0040) nor
    // url.parse() (DEP0169), which client-node 1.x's HTTP library, node-fetch 2, logged.
    expect(s.logs).not.toMatch(/DeprecationWarning|DEP0\d{3}/);
  });

  it('starts no change it has no time left to finish: it returns before its deadline with a report, and the next invocation applies it', async () => {
    execFileSync('sh', ['-c', `cat > ${join(repo.work, 'late.yaml')}`], { input: dsYaml({ name: 'late', namespace: ns, image: 'registry.local/late:1.0' }) });
    git(repo.work, ['add', '-A']);
    git(repo.work, ['commit', '--quiet', '-m', 'late 1.0']);
    git(repo.work, ['push', '--quiet', 'origin', 'HEAD:main']);
    const s = await sandbox('reconcile', functionEnv());
    // 12 s left: the handler keeps 10 s for returning, and no apply starts with less than 5 s of the rest.
    const short = await s.invoke(schedule, 12_000);
    expect(short.ms).toBeLessThan(12_000);
    expect(short).toMatchObject({ ok: true, result: { result: 'succeeded', deferred: [`${ns}/late`] } });
    expect(((short as { result: { daemonSets: { key: string; applied: boolean; message: string }[] } }).result.daemonSets.find((d) => d.key === `${ns}/late`))).toMatchObject({ applied: false, message: expect.stringMatching(/not started: the pass's time ran out/) });
    await expect(apps.readNamespacedDaemonSet({ name: 'late', namespace: ns })).rejects.toThrow();
    const full = await s.invoke(schedule, 300_000);
    expect(full).toMatchObject({ ok: true, result: { result: 'succeeded' } });
    expect((full as { result: { deferred?: string[] } }).result.deferred).toBeUndefined();
    expect((await apps.readNamespacedDaemonSet({ name: 'late', namespace: ns })).spec!.template.spec!.containers[0].image).toBe('registry.local/late:1.0');
  });

  it('verifies commits with isomorphic-git where there is no git binary: OpenPGP- and SSH-signed trusted commits applied, an unsigned one refused unread', async () => {
    const keys = mkdtempSync(join(tmpdir(), 'dsgitops-lambda-keys-'));
    const GNUPGHOME = join(keys, 'gnupg');
    execFileSync('mkdir', ['-m', '700', GNUPGHOME]);
    const gpg = (args: string[]) => execFileSync('gpg', ['--batch', '--yes', '--passphrase', '', '--pinentry-mode', 'loopback', ...args], { env: { ...process.env, GNUPGHOME }, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      gpg(['--quick-gen-key', 'Alice <alice@example.com>', 'ed25519', 'sign', '1y']);
      const alice = gpg(['--list-keys', '--with-colons', 'alice@example.com']).split('\n').find((l) => l.startsWith('fpr:'))!.split(':')[9];
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bob@example.com', '-f', join(keys, 'bob')]);
      const write = (image: string) => execFileSync('sh', ['-c', `cat > ${join(repo.work, 'ds.yaml')}`], { input: dsYaml({ name: 'agent', namespace: ns, image }) });
      const push = (message: string, signing: string[]) => {
        git(repo.work, ['add', '-A']);
        git(repo.work, [...signing, 'commit', '--quiet', '-m', message], { GNUPGHOME });
        git(repo.work, ['push', '--quiet', 'origin', 'HEAD:main']);
        return git(repo.work, ['rev-parse', 'HEAD']);
      };
      const s = await sandbox('reconcile', functionEnv({ VERIFY_COMMITS: 'true', TRUSTED_GPG_KEYS: gpg(['--armor', '--export', alice]), TRUSTED_SSH_KEYS: readFileSync(join(keys, 'bob.pub'), 'utf8') }));
      const imageNow = async () => (await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns })).spec!.template.spec!.containers[0].image;

      write('registry.local/agent:5.0');
      push('agent 5.0, signed with OpenPGP', ['-c', `user.signingkey=${alice}`, '-c', 'commit.gpgsign=true']);
      const byGpg = await s.invoke(schedule, 300_000);
      expect(byGpg).toMatchObject({ ok: true, result: { result: 'succeeded', source: { verification: { trusted: true, format: 'openpgp', signer: `Alice <alice@example.com> (OpenPGP key ${alice})` } } } });
      expect(await imageNow()).toBe('registry.local/agent:5.0');

      write('registry.local/agent:6.0');
      push('agent 6.0, signed with SSH', ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${join(keys, 'bob.pub')}`, '-c', 'commit.gpgsign=true']);
      const bySsh = await s.invoke(schedule, 300_000);
      expect(bySsh).toMatchObject({ ok: true, result: { result: 'succeeded', source: { verification: { trusted: true, format: 'ssh' } } } });
      expect(await imageNow()).toBe('registry.local/agent:6.0');

      write('registry.local/agent:7.0');
      const unsigned = push('agent 7.0, unsigned', []);
      const refused = await s.invoke(schedule, 300_000);
      expect(refused).toMatchObject({ ok: false, error: { errorType: 'PassFailedError', errorMessage: expect.stringMatching(new RegExp(`failed: CommitUntrusted: commit ${unsigned.slice(0, 7)} "agent 7.0, unsigned" by .* is not signed`)) } });
      expect(await imageNow()).toBe('registry.local/agent:6.0');
      // Its tree was never checked out: the sandbox's checkout still holds the SSH-signed commit's manifest.
      const checkout = readdirSync(join(s.tmp, 'daemonset-gitops', 'git')).find((d) => !d.includes('.'))!;
      expect(readFileSync(join(s.tmp, 'daemonset-gitops', 'git', checkout, 'ds.yaml'), 'utf8')).toContain('registry.local/agent:6.0');
      expect(s.logs).not.toMatch(/spawn git|ENOENT/);
    } finally {
      rmSync(keys, { recursive: true, force: true });
    }
  });

  it('fails the invocation when the pass fails (wrong token), after logging the report, and never shows the token', async () => {
    const wrong = 'wrong-token-9e1f04';
    const s = await sandbox('reconcile', functionEnv({ GIT_TOKEN: wrong }));
    const out = await s.invoke(schedule, 60_000);
    expect(out).toMatchObject({ ok: false, error: { errorType: 'PassFailedError', errorMessage: expect.stringMatching(/failed: SourceUnavailable: git fetch of http:\/\/127\.0\.0\.1:\d+\/lambda-[0-9a-f]+\.git at main failed: .*hint: check GIT_TOKEN/s) } });
    const report = s.logLines().find((l) => l.action === 'report') as { report?: { result: string; error: { reason: string } } } | undefined;
    expect(report?.report).toMatchObject({ result: 'failed', error: { reason: 'SourceUnavailable' } });
    for (const form of [wrong, Buffer.from(`x-access-token:${wrong}`).toString('base64')]) {
      expect(s.logs).not.toContain(form);
      expect(JSON.stringify(out)).not.toContain(form);
    }
  });

  it('renders an overlay with a chart with the renderers layer under /opt/bin, attached to the reconcile function alone', async () => {
    // The template attaches the layer to reconcile, the one function that renders.
    const template = JSON.parse(readFileSync(join(packageDir, 'cloudformation-template-update-stack.json'), 'utf8')) as { Resources: Record<string, { Type: string; Properties: { Layers?: unknown } }> };
    const withLayers = Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function' && r.Properties.Layers).map(([id, r]) => [id, r.Properties.Layers]);
    expect(withLayers).toEqual([['ReconcileLambdaFunction', [{ Ref: 'RenderersLambdaLayer' }]]]);
    const layer = await ensureRenderersLayer();
    expect(execFileSync('unzip', ['-Z1', layer], { encoding: 'utf8' }).split('\n').filter(Boolean).sort()).toEqual(['bin/', 'bin/helm', 'bin/kustomize']);
    // A repository of its own: a base, the chart's base, an overlay.
    const name = `lambda-render-${randomBytes(4).toString('hex')}.git`;
    const bare = join(env.GIT_HTTP_ROOT, name);
    const work = mkdtempSync(join(tmpdir(), 'dsgitops-lambda-render-'));
    try {
      git(env.GIT_HTTP_ROOT, ['init', '--quiet', '--bare', '--initial-branch=main', bare]);
      git(work, ['init', '--quiet', '--initial-branch=main']);
      git(work, ['remote', 'add', 'origin', bare]);
      const w = folderWriter(work);
      writeBase(w);
      writeProbeBase(w, ns, { interval: '12s' });
      writeOverlay(w, 'clusters/lambda', { namespace: ns, tag: '3.1.0', chart: 'base' });
      git(work, ['add', '-A']);
      git(work, ['commit', '--quiet', '-m', 'rendered: an overlay with a chart']);
      git(work, ['push', '--quiet', 'origin', 'HEAD:main']);
      const s = await sandbox('reconcile', functionEnv({ GIT_URL: `${env.GIT_HTTP_BASE}/${name}`, GIT_PATH: 'clusters/{cluster}', CLUSTER_NAME: 'lambda' }), [layer]);

      const out = await s.invoke(schedule, 300_000);

      expect(out).toMatchObject({ ok: true, result: { result: 'succeeded', problems: [] } });
      const rows = (out as { result: { daemonSets: { key: string; action: string; applied: boolean }[] } }).result.daemonSets;
      // (The namespace also holds the earlier tests' DaemonSets, another CLUSTER_NAME's: reported orphaned, left alone.)
      const rendered = rows.filter((d) => d.key === `${ns}/edge-probe` || d.key === `${ns}/node-agent`);
      expect(rendered.map((d) => [d.key, d.action, d.applied])).toEqual([[`${ns}/edge-probe`, 'create', true], [`${ns}/node-agent`, 'create', true]]);
      expect(rows.filter((d) => !rendered.includes(d)).every((d) => !d.applied)).toBe(true);
      expect((await apps.readNamespacedDaemonSet({ name: 'edge-probe', namespace: ns })).spec!.template.spec!.containers[0].args).toEqual(['--interval=12s']);
      expect((await apps.readNamespacedDaemonSet({ name: 'node-agent', namespace: ns })).spec!.template.spec!.containers[0].image).toBe('registry.example/node-agent:3.1.0');
      // What the function recorded: the renderers from the layer.
      const s3 = new S3Client({ endpoint: env.S3_ENDPOINT, region: env.AWS_REGION, forcePathStyle: true, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } });
      const got = await s3.send(new GetObjectCommand({ Bucket: env.S3_BUCKET, Key: `${prefix}/lambda/daemonsets/${ns}/node-agent/revisions/1.json` }));
      const snap = JSON.parse(await got.Body!.transformToString()) as { rendered?: { kustomizeVersion: string; helmVersion: string } };
      s3.destroy();
      expect(snap.rendered).toMatchObject({ kustomizeVersion: KUSTOMIZE_VERSION, helmVersion: expect.stringMatching(/^v4\.3\.2/) });
      expect(s.logs).not.toMatch(/ENOENT|EACCES|read-only file system/i);
    } finally {
      rmSync(bare, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
    }
  });
});
