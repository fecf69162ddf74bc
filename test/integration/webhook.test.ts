/**
 * The push webhook against the real stack: the HTTP adapter of the local stack (a separate
 * process, on its own port), MinIO for delivery records, git's own post-receive hook, and
 * passes that change the cluster. Each provider's signature, each bad input, a replay, a
 * push to another branch, and a push that lands while a pass holds the lease.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { reconcileCatchingUp } from '../../lib/catch-up';
import { loadConfig } from '../../lib/config';
import { silentLogger } from '../../lib/log';
import { handleWebhook, PENDING_DELIVERY_STALE_MS, WebhookContext } from '../../lib/webhook/handle';
import { StoreKeys } from '../../lib/store/keys';
import { repoRoot } from '../../stack/paths';
import { adminClients, createNamespace, deleteNamespace, waitFor } from '../support/cluster';
import { git, TestRepo } from '../support/git';
import { dsYaml } from '../support/manifests';
import { stackConfigEnv, stackDeps } from '../support/reconciler';
import { Answer, freePort, giteaHeaders, githubHeaders, gitlabHeaders, post, pushBody, startWebhookServer, WebhookServer } from '../support/webhook';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

jest.setTimeout(300_000);

const { core, apps } = adminClients();
const secret = 'test-webhook-secret-0123456789';
let ns: string;
let repo: TestRepo;
let env: Record<string, string>;
let server: WebhookServer;
let keys: StoreKeys;

beforeAll(async () => {
  ns = await createNamespace(core, 'hook');
  repo = new TestRepo();
  env = stackConfigEnv({ GIT_URL: repo.url, ALLOWED_NAMESPACES: ns, WEBHOOK_SECRET: secret, WEBHOOK_MAX_BODY_BYTES: '4096' });
  keys = new StoreKeys(env.S3_PREFIX, env.CLUSTER_NAME);
  server = await startWebhookServer(env);
});

afterAll(async () => {
  await server?.stop();
  const objects = stackDeps(loadConfig(env)).objects;
  for (const key of await objects.list(`${keys.root}/`)) await objects.delete(key);
  await deleteNamespace(core, ns);
  repo?.cleanup();
});

const config = () => loadConfig(env);
const objects = () => stackDeps(config()).objects;
const deliveries = async () => (await objects().list(`${keys.root}/webhook/`)).filter((k) => k.includes('/deliveries/'));
const passesStarted = () => server.log().split('\n').filter((l) => l.includes('"action":"push-pass"')).length;

async function imageOf(name: string): Promise<string | undefined> {
  try {
    return (await apps.readNamespacedDaemonSet({ name, namespace: ns })).spec?.template.spec?.containers[0].image;
  } catch {
    return undefined;
  }
}

function waitForImage(name: string, image: string, timeoutMs = 120_000): Promise<true> {
  return waitFor(`${ns}/${name} to run ${image} (webhook log: ${server.log().slice(-2000)})`, async () => (await imageOf(name)) === image || undefined, timeoutMs, 500);
}

function expectAnswer(a: Answer, status: number, result: string, reason?: RegExp): void {
  expect({ status: a.status, result: a.body.result }).toEqual({ status, result });
  if (reason) expect(a.body.reason).toMatch(reason);
}

describe('push webhook', () => {
  it('GitHub: a push over HTTP to the stack\'s git server runs its post-receive hook, whose signed event starts a pass that applies the commit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dsgitops-hook-'));
    const secretFile = join(dir, 'secret');
    writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'git-token'), 'test-git-token\n', { mode: 0o600 });
    git(repo.bare, ['config', 'http.receivepack', 'true']);
    git(repo.bare, ['config', 'core.hooksPath', join(repoRoot, 'stack', 'hooks')]);
    git(repo.bare, ['config', 'dsgitops.webhookUrl', server.url]);
    git(repo.bare, ['config', 'dsgitops.webhookSecretFile', secretFile]);
    // The stack's git server (git http-backend behind a token check), on its own port, serving this test's repository.
    const port = await freePort();
    const gitServer = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'stack', 'git-http-server.ts'), '--root', repo.root, '--port', String(port), '--token-file', join(dir, 'git-token')], { cwd: repoRoot, stdio: 'ignore' });
    try {
      await waitFor('the git server', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 30_000);
      repo.write('agent.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0' }));
      git(repo.work, ['add', '-A']);
      git(repo.work, ['commit', '--quiet', '-m', 'agent 1.0']);
      const pushed = spawnSync('git', ['-c', 'http.extraHeader=Authorization: Bearer test-git-token', 'push', `http://127.0.0.1:${port}/origin.git`, 'HEAD:main'], { cwd: repo.work, encoding: 'utf8' });
      expect(pushed.status).toBe(0);
      // The pusher sees the webhook's answer.
      expect(pushed.stderr).toMatch(/remote: webhook http:\/\/127\.0\.0\.1:\d+\/: 202 \{"result":"started"/);
      const sha = git(repo.work, ['rev-parse', 'HEAD']);
      await waitForImage('agent', 'registry.local/agent:1.0');
      // Recorded twice: by its signed body and by its delivery id.
      const recorded = await deliveries();
      expect(recorded).toHaveLength(2);
      expect(recorded.find((k) => k.includes('/deliveries/github-'))).toMatch(/\/deliveries\/github-[0-9a-f-]{36}\.json$/);
      expect(recorded.find((k) => k.includes('/deliveries/body-'))).toMatch(/\/deliveries\/body-[0-9a-f]{64}\.json$/);
      expect(server.log()).toContain(`"commit":"${sha}"`);
    } finally {
      if (gitServer.pid) process.kill(gitServer.pid, 'SIGTERM');
      for (const k of ['core.hooksPath', 'dsgitops.webhookUrl', 'dsgitops.webhookSecretFile']) git(repo.bare, ['config', '--unset', k]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('GitLab\'s token and Gitea\'s signature each start a pass, answered within a second', async () => {
    const sha2 = repo.write('agent.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0' })).commit('agent 2.0');
    const lab = await post(server.url, gitlabHeaders(secret), pushBody('refs/heads/main', sha2));
    expectAnswer(lab, 202, 'started', /push of [0-9a-f]{7} to refs\/heads\/main by alice: a reconcile pass was started/);
    expect(lab.body).toMatchObject({ provider: 'gitlab', commit: sha2 });
    await waitForImage('agent', 'registry.local/agent:2.0');

    const sha3 = repo.write('agent.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:3.0' })).commit('agent 3.0');
    const body = pushBody('refs/heads/main', sha3);
    const tea = await post(server.url, giteaHeaders(secret, body), body);
    expectAnswer(tea, 202, 'started');
    expect(tea.body.provider).toBe('gitea');
    await waitForImage('agent', 'registry.local/agent:3.0');

    console.log(`webhook answers: GitLab ${lab.ms.toFixed(0)} ms, Gitea ${tea.ms.toFixed(0)} ms`);
    expect(Math.max(lab.ms, tea.ms)).toBeLessThan(1000);
  });

  it('refuses bad input with a 4xx and a reason, records nothing and starts nothing', async () => {
    const sha = execFileSync('git', ['-C', repo.bare, 'rev-parse', 'main'], { encoding: 'utf8' }).trim();
    const body = pushBody('refs/heads/main', sha);
    const before = { deliveries: await deliveries(), push: (await objects().get(keys.pushRequest()))?.etag, passes: passesStarted() };

    const noSignature = await post(server.url, { 'x-github-event': 'push', 'x-github-delivery': 'a1' }, body);
    const wrongSignature = await post(server.url, githubHeaders('not-the-secret-at-all-0000', body), body);
    const wrongToken = await post(server.url, gitlabHeaders('not-the-secret-at-all-0000'), body);
    const tampered = await post(server.url, giteaHeaders(secret, body), Buffer.from(body.toString().replace('alice', 'mallory')));
    const big = Buffer.from(JSON.stringify({ ref: 'refs/heads/main', after: sha, padding: 'x'.repeat(5000) }));
    const tooLarge = await post(server.url, githubHeaders(secret, big), big);
    const garbled = Buffer.from('{"ref": "refs/heads/main", "after":');
    const malformed = await post(server.url, githubHeaders(secret, garbled), garbled);
    const unknown = await post(server.url, { 'x-event-key': 'repo:push' }, body);
    const get = await fetch(server.url, { method: 'GET' });

    expectAnswer(noSignature, 401, 'refused', /^no signature: a GitHub request must carry X-Hub-Signature-256/);
    expectAnswer(wrongSignature, 401, 'refused', /^signature mismatch \(github\)/);
    expectAnswer(wrongToken, 401, 'refused', /^signature mismatch \(gitlab\)/);
    expectAnswer(tampered, 401, 'refused', /^signature mismatch \(gitea\)/);
    expectAnswer(tooLarge, 413, 'refused', /over the limit of 4096 \(WEBHOOK_MAX_BODY_BYTES\)/);
    expectAnswer(malformed, 400, 'refused', /^malformed JSON body/);
    expectAnswer(unknown, 400, 'refused', /^unknown provider/);
    expect(get.status).toBe(405);

    expect(await deliveries()).toEqual(before.deliveries);
    expect((await objects().get(keys.pushRequest()))?.etag).toBe(before.push);
    expect(passesStarted()).toBe(before.passes);
    // Logged with its reason, never with the body.
    expect(server.log()).toContain('"status":413');
    expect(server.log()).not.toContain('xxxxxxxxxx');
    expect(server.log()).not.toContain('mallory');
  });

  it('drops a replayed delivery, and ignores pushes to other branches and events other than pushes', async () => {
    const sha = repo.commit('nothing changed');
    const body = pushBody('refs/heads/main', sha);
    const headers = githubHeaders(secret, body);
    const first = await post(server.url, headers, body);
    const passes = passesStarted();
    const replay = await post(server.url, headers, body);
    expectAnswer(first, 202, 'started');
    expectAnswer(replay, 200, 'duplicate', /was received before: a replay or a redelivery, ignored/);
    // The delivery id is not signed: the same signed body under a fresh one is a replay too.
    const freshId = await post(server.url, githubHeaders(secret, body), body);
    expectAnswer(freshId, 200, 'duplicate', /^this signed body \(delivery [0-9a-f-]{36} now\) was received before/);
    // GitHub's signature without its `sha256=` is a valid Gitea signature of the same body: still a replay.
    const relabelled = { 'x-gitea-event': 'push', 'x-gitea-delivery': 'relabelled-1', 'x-gitea-signature': headers['x-hub-signature-256'].slice('sha256='.length) };
    expectAnswer(await post(server.url, relabelled, body), 200, 'duplicate', /^this signed body \(delivery relabelled-1 now\) was received before/);

    const branchBody = pushBody('refs/heads/feature', sha);
    const branch = await post(server.url, githubHeaders(secret, branchBody), branchBody);
    expectAnswer(branch, 200, 'ignored', /^push to refs\/heads\/feature: this reconciler follows GIT_REF=main/);
    const ping = Buffer.from(JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1 }));
    const pinged = await post(server.url, githubHeaders(secret, ping, 'ping'), ping);
    expectAnswer(pinged, 200, 'ignored', /^"ping" event: only push events start a pass/);

    expect(passesStarted()).toBe(passes);
    expect((await deliveries()).filter((k) => k.includes(headers['x-github-delivery']))).toHaveLength(1);
  });

  it('a delivery whose request was cut off before it started the pass is started on redelivery, not dropped as a duplicate', async () => {
    const sha = repo.commit('redelivered after a timeout');
    const body = pushBody('refs/heads/main', sha);
    const headers = githubHeaders(secret, body);
    const at = (ms: number) => ({ now: () => new Date(Date.parse('2026-01-01T00:00:00Z') + ms) });
    const started: string[] = [];
    const context = (start: WebhookContext['start'], ms: number): WebhookContext => ({
      secret, gitRef: 'main', maxBodyBytes: 4096, objects: objects(), keys, start, logger: silentLogger, clock: at(ms),
    });
    // The first request claims the delivery, then never gets its pass started (Lambda's timeout ends it here).
    let cutOff!: () => void;
    const reachedStart = new Promise<void>((resolve) => (cutOff = resolve));
    void handleWebhook(context(() => { cutOff(); return new Promise<void>(() => undefined); }, 0), headers, body);
    await reachedStart;
    const record = await objects().get(`${keys.root}/webhook/deliveries/github-${headers['x-github-delivery']}.json`);
    expect(JSON.parse(record!.body)).toMatchObject({ state: 'pending', commit: sha });

    // A redelivery while that request might still be at work is not started twice, and is not answered 2xx.
    const early = await handleWebhook(context(async (r) => { started.push(r.commit); }, 5_000), headers, body);
    expect({ status: early.status, result: early.body.result }).toEqual({ status: 409, result: 'duplicate' });
    expect(started).toEqual([]);

    // Once that request must have ended, the redelivery starts the pass, and the delivery is done.
    const later = await handleWebhook(context(async (r) => { started.push(r.commit); }, PENDING_DELIVERY_STALE_MS + 1_000), headers, body);
    expect({ status: later.status, result: later.body.result }).toEqual({ status: 202, result: 'started' });
    expect(started).toEqual([sha]);
    const done = await objects().get(`${keys.root}/webhook/deliveries/github-${headers['x-github-delivery']}.json`);
    expect(JSON.parse(done!.body)).toMatchObject({ state: 'started', commit: sha });
    const again = await handleWebhook(context(async (r) => { started.push(r.commit); }, PENDING_DELIVERY_STALE_MS + 2_000), headers, body);
    expect({ status: again.status, result: again.body.result }).toEqual({ status: 200, result: 'duplicate' });
    expect(started).toEqual([sha]);
  });

  it('a push that lands while a pass holds the lease is applied by that pass running again, not lost', async () => {
    const slow = (image: string) => dsYaml({ name: 'agent', namespace: ns, image, podAnnotations: { 'pod-ready.stage.kwok.x-k8s.io/delay': '3s' } });
    // The passes the earlier pushes started may still be watching their rollouts.
    await waitFor('the earlier passes to release the lease', async () => {
      const lease = await objects().get(keys.lease());
      return !lease || JSON.parse(lease.body).released === true;
    }, 120_000, 250);
    repo.write('agent.yaml', slow('registry.local/agent:4.0')).commit('agent 4.0, slow to start');
    const holder = stackDeps(config());
    let ended: unknown;
    const pass = reconcileCatchingUp(holder).finally(() => { ended = true; });
    await waitFor('the pass to take the lease', async () => {
      if (ended) throw new Error(`the pass ended before the lease was seen: ${JSON.stringify(await pass)}`);
      const lease = await objects().get(keys.lease());
      return lease && JSON.parse(lease.body).holder === holder.runId && !JSON.parse(lease.body).released;
    }, 60_000, 100);

    const sha5 = repo.write('agent.yaml', slow('registry.local/agent:5.0')).commit('agent 5.0');
    const body = pushBody('refs/heads/main', sha5);
    expectAnswer(await post(server.url, githubHeaders(secret, body), body), 202, 'started');
    await waitFor('the webhook\'s pass to find the lease held', async () => server.log().includes(`"holder":"${holder.runId}"`), 60_000, 200);

    const report = await pass;
    expect(report.source?.commit?.sha).not.toBe(sha5);
    expect(report.followUp).toMatchObject({ result: 'succeeded', source: { commit: { sha: sha5 } } });
    expect(report.followUp?.daemonSets.find((d) => d.name === 'agent')).toMatchObject({ action: 'update', applied: true });
    expect(await imageOf('agent')).toBe('registry.local/agent:5.0');
  });
});
