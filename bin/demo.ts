/**
 * The embedded default of `npm start`: with no cluster configured, run the main job against
 * the local stack. It starts the stack (building it on first use), publishes examples/ to
 * the stack's git server, reconciles, pushes an image bump (the git server's post-receive
 * hook calls the stack's webhook, which starts the rollout: no manual reconcile), shows the
 * rollout's progress, and ends with the stored history.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../lib/config';
import { createDeps } from '../lib/deps';
import { silentLogger } from '../lib/log';
import { status } from '../lib/status';
import { leaseSchema } from '../lib/store/records';
import { DEMO_CLUSTER, DEMO_NAMESPACES } from '../stack/demo-target';
import { kubectl } from '../stack/kubectl';
import { paths, repoRoot } from '../stack/paths';
import { stackUp } from '../stack/up';
import { runCli } from './cli';

const BUMP = { file: 'fluent-bit.yaml', key: 'logging/fluent-bit' };
const RENDERED = { gitPath: 'kustomize/clusters/{cluster}', cluster: 'local-demo-rendered', namespace: 'node-health' };

function say(text: string): void {
  process.stdout.write(`\n==> ${text}\n`);
}

function git(cwd: string, args: string[], token: string): string {
  const basic = Buffer.from(`x-access-token:${token}`).toString('base64');
  return execFileSync('git', ['-c', `http.extraHeader=Authorization: Basic ${basic}`, ...args], {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'Demo User',
      GIT_AUTHOR_EMAIL: 'demo@example.com',
      GIT_COMMITTER_NAME: 'Demo User',
      GIT_COMMITTER_EMAIL: 'demo@example.com',
      GIT_TERMINAL_PROMPT: '0',
    },
  }).trim();
}

/**
 * The stack's nodes are kwok fakes that become Ready at once; the demo asks them to take a
 * second, so that the rollout is something to watch.
 */
function withReadinessDelay(text: string): string {
  const doc = parse(text) as { spec: { template: { metadata: { annotations?: Record<string, string> } } } };
  doc.spec.template.metadata.annotations = { ...doc.spec.template.metadata.annotations, 'pod-ready.stage.kwok.x-k8s.io/delay': '1s' };
  return stringify(doc);
}

function bumpImage(text: string): { text: string; from: string; to: string } {
  const m = /image: (\S+):(\d+)\.(\d+)\.(\d+)/.exec(text);
  if (!m) throw new Error(`no versioned image in ${BUMP.file}`);
  const from = `${m[2]}.${m[3]}.${m[4]}`;
  const to = `${m[2]}.${m[3]}.${Number(m[4]) + 1}`;
  return { text: text.replace(`${m[1]}:${from}`, `${m[1]}:${to}`), from, to };
}

async function revisionOf(key: string): Promise<number | undefined> {
  const report = await status(createDeps(loadConfig(), { logger: silentLogger }));
  return report.daemonSets.find((d) => d.key === key)?.revision;
}

/**
 * Follows the rollout a push started, from the outside, as an operator would: the stored
 * revision and the DaemonSet's columns, printed when they change. False when no new revision
 * appeared within 20 s.
 */
async function watchPushedRollout(key: string, before: number | undefined): Promise<boolean> {
  const deps = createDeps(loadConfig(), { logger: silentLogger });
  const started = Date.now();
  let last = '';
  for (;;) {
    const d = (await status(deps)).daemonSets.find((e) => e.key === key);
    const moved = d?.revision !== undefined && d.revision !== before;
    if (moved) {
      const line = `revision ${d.revision}: ${d.phase} (desired ${d.desired ?? '-'}, up-to-date ${d.upToDate ?? '-'}, available ${d.available ?? '-'})`;
      if (line !== last) process.stdout.write(`    ${Math.round((Date.now() - started) / 100) / 10}s  ${line}\n`);
      last = line;
      if (d.phase === 'complete' || d.phase === 'stalled') return true;
    } else if (Date.now() - started > 20_000) {
      return false;
    }
    if (Date.now() - started > 180_000) return true;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * Waits (up to 3 minutes) until no run holds the cluster's lease, saying once who does. A pass
 * that a push started through the webhook holds it until its rollouts are done.
 */
async function leaseFree(): Promise<void> {
  const deps = createDeps(loadConfig(), { logger: silentLogger });
  const key = deps.store.keys.lease();
  const started = Date.now();
  let said = false;
  // The hook's request may still be on its way: look for a held lease for a moment first.
  await new Promise((r) => setTimeout(r, 1_000));
  for (;;) {
    const got = await deps.objects.get(key);
    const lease = got ? leaseSchema.safeParse(JSON.parse(got.body)) : undefined;
    const held = lease?.success && !lease.data.released && Date.parse(lease.data.expiresAt) > Date.now();
    if (!held || Date.now() - started > 180_000) return;
    if (!said) process.stdout.write(`    the pass the push started through the webhook holds the lease (${lease!.data!.holder}): waiting for it to finish\n`);
    said = true;
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

/**
 * One reconcile, started only after the pass the push started through the webhook has ended,
 * so that the table it prints holds counts read after that pass. A pass that still finds the
 * lease held (the push's pass took it after the first look) prints nothing: it waits for that
 * pass and runs again.
 */
async function reconcileAfterPushPass(): Promise<number> {
  for (let attempt = 1; ; attempt += 1) {
    await leaseFree();
    let out = '';
    const code = await runCli(['reconcile'], { out: (t) => { out += t; }, err: (t) => process.stderr.write(t) });
    if (!out.startsWith('skipped:') || attempt === 5) {
      process.stdout.write(out);
      return code;
    }
    process.stdout.write('    the pass the push started took the lease meanwhile: waiting for it, then reconciling\n');
  }
}

/**
 * One overlay rendered: examples/kustomize (a base with a generated ConfigMap, a chart, an overlay
 * per cluster) published beside the plain manifests, and one pass with GIT_PATH naming the
 * cluster's overlay. Its own CLUSTER_NAME and namespace: one deployment reads one GIT_PATH.
 */
async function renderedDemo(work: string, env: Awaited<ReturnType<typeof stackUp>>['env']): Promise<number> {
  say(`a kustomize overlay with a Helm chart (examples/kustomize): GIT_PATH=${RENDERED.gitPath}, CLUSTER_NAME=${RENDERED.cluster}`);
  kubectl(['apply', '-f', '-'], stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: RENDERED.namespace } }));
  rmSync(join(work, 'kustomize'), { recursive: true, force: true });
  cpSync(join(repoRoot, 'examples', 'kustomize'), join(work, 'kustomize'), { recursive: true });
  git(work, ['add', '-A'], env.GIT_HTTP_TOKEN);
  git(work, ['commit', '--quiet', '--allow-empty', '-m', 'Add the node-health overlay from examples/kustomize'], env.GIT_HTTP_TOKEN);
  git(work, ['push', '--quiet', 'origin', 'HEAD:main'], env.GIT_HTTP_TOKEN);
  const saved = { GIT_PATH: process.env.GIT_PATH, CLUSTER_NAME: process.env.CLUSTER_NAME, ALLOWED_NAMESPACES: process.env.ALLOWED_NAMESPACES };
  Object.assign(process.env, { GIT_PATH: RENDERED.gitPath, CLUSTER_NAME: RENDERED.cluster, ALLOWED_NAMESPACES: RENDERED.namespace, KUSTOMIZE_BIN: env.KUSTOMIZE_BIN ?? '', HELM_BIN: env.HELM_BIN ?? '' });
  try {
    return await runCli(['reconcile']);
  } finally {
    Object.assign(process.env, saved);
  }
}

export async function runDemo(): Promise<number> {
  // STACK_CLUSTERS=3: the fleet demo, a promotion over three clusters (bin/fleet-demo.ts).
  if (process.env.STACK_CLUSTERS?.trim() === '3') return (await import('./fleet-demo')).runFleetDemo();
  say('no cluster configured (GIT_URL, S3_BUCKET and CLUSTER_NAME are unset): running the demo on the local stack');
  process.stdout.write('    the first run builds etcd, Kubernetes, kwok and MinIO from source (see docs/development.md, Measured times); later runs start in seconds\n');
  const { env } = await stackUp();
  kubectl(['apply', '-f', '-'], DEMO_NAMESPACES.map((n) => stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n } })).join('---\n'));

  say(`publishing examples/ to the demo repository ${env.GIT_HTTP_URL} (over HTTP, with a token)`);
  const work = join(paths.data, 'demo-work');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  git(work, ['init', '--quiet', '--initial-branch=main'], env.GIT_HTTP_TOKEN);
  git(work, ['remote', 'add', 'origin', env.GIT_HTTP_URL], env.GIT_HTTP_TOKEN);
  try {
    git(work, ['fetch', '--quiet', 'origin', 'main'], env.GIT_HTTP_TOKEN);
    git(work, ['reset', '--quiet', 'FETCH_HEAD'], env.GIT_HTTP_TOKEN);
  } catch {
    // A new, empty repository: the first push creates main.
  }
  const target = join(work, 'daemonsets');
  rmSync(target, { recursive: true, force: true });
  mkdirSync(target, { recursive: true });
  for (const f of readdirSync(join(repoRoot, 'examples')).filter((n) => n.endsWith('.yaml'))) {
    writeFileSync(join(target, f), withReadinessDelay(readFileSync(join(repoRoot, 'examples', f), 'utf8')));
  }
  git(work, ['add', '-A'], env.GIT_HTTP_TOKEN);
  git(work, ['commit', '--quiet', '--allow-empty', '-m', 'Add the node agents from examples/'], env.GIT_HTTP_TOKEN);
  git(work, ['push', '--quiet', 'origin', 'HEAD:main'], env.GIT_HTTP_TOKEN);

  Object.assign(process.env, {
    GIT_URL: env.GIT_HTTP_URL,
    GIT_TOKEN: env.GIT_HTTP_TOKEN,
    GIT_PATH: 'daemonsets',
    S3_BUCKET: env.S3_BUCKET,
    S3_ENDPOINT: env.S3_ENDPOINT,
    AWS_REGION: env.AWS_REGION,
    AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY,
    CLUSTER_NAME: DEMO_CLUSTER,
    KUBECONFIG: env.RECONCILER_KUBECONFIG,
    ALLOWED_NAMESPACES: DEMO_NAMESPACES.join(','),
  });

  say('reconcile: Git -> diff -> snapshot in S3 -> apply -> rollout (the push also reached the webhook: a pass it started goes first)');
  // The push above also called the stack's webhook, and the pass it started may hold the lease
  // (it then applies the same commit): this pass starts once that one is done.
  let code = await reconcileAfterPushPass();
  if (code !== 0) return code;

  const file = join(target, BUMP.file);
  const bump = bumpImage(readFileSync(file, 'utf8'));
  writeFileSync(file, bump.text);
  git(work, ['commit', '--quiet', '-am', `Bump fluent-bit ${bump.from} -> ${bump.to}`], env.GIT_HTTP_TOKEN);
  const before = await revisionOf(BUMP.key);
  say(`git push "Bump fluent-bit ${bump.from} -> ${bump.to}": the git server's post-receive hook calls the webhook, which starts the rollout`);
  // git prints the hook's output, the webhook's answer, as "remote:" lines on stderr.
  const pushed = spawnSync('git', ['-c', `http.extraHeader=Authorization: Basic ${Buffer.from(`x-access-token:${env.GIT_HTTP_TOKEN}`).toString('base64')}`, 'push', 'origin', 'HEAD:main'], { cwd: work, encoding: 'utf8', env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } });
  if (pushed.status !== 0) throw new Error(`git push failed: ${pushed.stderr}`);
  process.stdout.write(pushed.stderr.split('\n').filter((l) => l.startsWith('remote:')).map((l) => `    ${l}\n`).join(''));
  if (!(await watchPushedRollout(BUMP.key, before))) {
    say('the webhook did not start a pass (is the stack\'s webhook running? npm run stack:status): reconciling by hand');
    code = await runCli(['reconcile']);
    if (code !== 0) return code;
  }

  say(`history of ${BUMP.key}, from S3`);
  code = await runCli(['history', BUMP.key]);

  if (code === 0) code = await renderedDemo(work, env);

  say('done. To use the CLI against this stack yourself:');
  process.stdout.write([
    '    set -a; . .stack/env; set +a',
    `    export GIT_URL=$GIT_HTTP_URL GIT_TOKEN=$GIT_HTTP_TOKEN GIT_PATH=daemonsets CLUSTER_NAME=local-demo KUBECONFIG=$RECONCILER_KUBECONFIG ALLOWED_NAMESPACES=${DEMO_NAMESPACES.join(',')}`,
    '    npx dsgitops status',
    `    npx dsgitops rollback ${BUMP.key} --reason "try a rollback"`,
    '    $KUBECTL --kubeconfig .stack/pki/admin.kubeconfig describe ds -n logging fluent-bit',
    '    npm run stack:down',
    '',
  ].join('\n'));
  return code;
}
