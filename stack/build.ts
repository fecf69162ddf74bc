/**
 * Builds the stack's programs from Go modules into a cache outside the repository.
 *
 * Each program is built from a wrapper module under stack/build/<name> whose go.mod and
 * go.sum pin every dependency. The cache key joins the program's version with a hash of
 * those files and the build flags, so a change to any of them builds again, and a fresh
 * clone on a machine that built them before starts in seconds.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, repoRoot } from './paths';
import { ETCD_VERSION, HELM_VERSION, KUBERNETES_VERSION, KUSTOMIZE_VERSION, KWOK_VERSION, MINIO_VERSION, PROMETHEUS_VERSION } from './versions';
import { log } from './log';

export interface BuildSpec {
  name: string;
  version: string;
  /** Programs the build leaves in its output directory. */
  binaries: string[];
  /** Packages handed to `go build`, relative to the wrapper module. */
  packages: string[];
  ldflags: string;
  /** Go build tags (`-tags`), when the program is trimmed by them. */
  tags?: string[];
}

function kubeLdflags(): string {
  const [major, minor] = KUBERNETES_VERSION.replace(/^v/, '').split('.');
  const pkg = 'k8s.io/component-base/version';
  return [
    '-s -w',
    `-X ${pkg}.gitVersion=${KUBERNETES_VERSION}`,
    `-X ${pkg}.gitMajor=${major}`,
    `-X ${pkg}.gitMinor=${minor}`,
    `-X ${pkg}.gitTreeState=clean`,
    `-X ${pkg}.buildDate=1970-01-01T00:00:00Z`,
  ].join(' ');
}

export const builds: BuildSpec[] = [
  { name: 'etcd', version: ETCD_VERSION, binaries: ['etcd'], packages: ['.'], ldflags: '-s -w' },
  {
    name: 'kube',
    version: KUBERNETES_VERSION,
    binaries: ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'],
    packages: [
      'k8s.io/kubernetes/cmd/kube-apiserver',
      'k8s.io/kubernetes/cmd/kube-controller-manager',
      'k8s.io/kubernetes/cmd/kube-scheduler',
      'k8s.io/kubernetes/cmd/kubectl',
    ],
    ldflags: kubeLdflags(),
  },
  { name: 'kwok', version: KWOK_VERSION, binaries: ['kwok'], packages: ['sigs.k8s.io/kwok/cmd/kwok'], ldflags: '-s -w' },
  { name: 'minio', version: MINIO_VERSION, binaries: ['minio'], packages: ['github.com/minio/minio'], ldflags: '-s -w' },
  // The renderers (lib/source/render.ts). The -X flags give `kustomize version` and `helm version`
  // the release they were built from, which revision snapshots record.
  {
    name: 'kustomize',
    version: KUSTOMIZE_VERSION,
    binaries: ['kustomize'],
    packages: ['sigs.k8s.io/kustomize/kustomize/v5'],
    ldflags: `-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/${KUSTOMIZE_VERSION}`,
  },
  {
    name: 'helm',
    version: HELM_VERSION,
    binaries: ['helm'],
    packages: ['helm.sh/helm/v4/cmd/helm'],
    ldflags: `-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v4/internal/version.gitTreeState=clean`,
  },
];

/**
 * Programs only some tests start (they build them on first use, never `stack:up`).
 * Prometheus is built without its service-discovery plugins: the gate tests scrape a static
 * target, and the plugins are most of its dependency tree.
 */
export const optionalBuilds: BuildSpec[] = [
  {
    name: 'prometheus',
    version: PROMETHEUS_VERSION,
    binaries: ['prometheus'],
    packages: ['github.com/prometheus/prometheus/cmd/prometheus'],
    ldflags: '-s -w',
    tags: ['remove_all_sd'],
  },
];

function moduleDir(spec: BuildSpec): string {
  return join(repoRoot, 'stack', 'build', spec.name);
}

function goVersion(): string {
  const out = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8' });
  if (out.error || out.status !== 0) {
    throw new Error('the Go toolchain is needed to build the local stack: `go` was not found on PATH (install Go 1.26 or newer)');
  }
  return out.stdout.trim();
}

export function cacheKey(spec: BuildSpec): string {
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum', 'main.go', 'tools.go']) {
    const path = join(moduleDir(spec), file);
    if (existsSync(path)) hash.update(file).update(readFileSync(path));
  }
  hash.update(spec.ldflags).update(spec.packages.join(' ')).update(goVersion());
  if (spec.tags?.length) hash.update(`tags=${spec.tags.join(',')}`);
  return `${spec.name}-${spec.version}-${hash.digest('hex').slice(0, 10)}`;
}

export function binDir(spec: BuildSpec): string {
  return join(cacheDir, 'bin', cacheKey(spec));
}

export function isBuilt(spec: BuildSpec): boolean {
  const dir = binDir(spec);
  return spec.binaries.every((b) => existsSync(join(dir, b)));
}

/** Absolute path of a built program, building it first when the cache lacks it. */
export function binaryPath(name: string): string {
  const spec = [...builds, ...optionalBuilds].find((b) => b.binaries.includes(name));
  if (!spec) throw new Error(`no stack build provides ${name}`);
  return join(binDir(spec), name);
}

function countDeps(spec: BuildSpec): number | undefined {
  const tags = spec.tags?.length ? ['-tags', spec.tags.join(',')] : [];
  const out = spawnSync('go', ['list', '-deps', ...tags, ...spec.packages], { cwd: moduleDir(spec), encoding: 'utf8', maxBuffer: 64 << 20 });
  if (out.status !== 0) return undefined;
  return out.stdout.split('\n').filter(Boolean).length;
}

/**
 * Builds one program unless the cache has it. Output goes to a temporary directory that is
 * renamed into place only when the build succeeded, so an interrupted build never leaves a
 * half-written binary that a later run would trust. A lock directory keeps two concurrent
 * `stack:up` runs from building the same thing twice.
 */
export async function ensureBuilt(spec: BuildSpec): Promise<{ built: boolean; seconds: number }> {
  const started = Date.now();
  if (isBuilt(spec)) return { built: false, seconds: 0 };
  const out = binDir(spec);
  const lock = `${out}.lock`;
  mkdirSync(join(cacheDir, 'bin'), { recursive: true });
  await acquireLock(lock, spec.name);
  try {
    if (isBuilt(spec)) return { built: false, seconds: (Date.now() - started) / 1000 };
    const tmp = `${out}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    const total = countDeps(spec);
    log(`building ${spec.name} ${spec.version} (${total ?? '?'} packages) into ${out}`);
    await runGoBuild(spec, tmp, total);
    for (const b of spec.binaries) {
      if (!existsSync(join(tmp, b))) throw new Error(`go build of ${spec.name} finished without producing ${b}`);
    }
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
    const seconds = (Date.now() - started) / 1000;
    log(`built ${spec.name} ${spec.version} in ${formatDuration(seconds)}`);
    return { built: true, seconds };
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function runGoBuild(spec: BuildSpec, outDir: string, total: number | undefined): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const tags = spec.tags?.length ? ['-tags', spec.tags.join(',')] : [];
    const args = ['build', '-v', '-trimpath', ...tags, '-ldflags', spec.ldflags, '-o', `${outDir}/`, ...spec.packages];
    const child = spawn('go', args, {
      cwd: moduleDir(spec),
      env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=readonly' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let compiled = 0;
    let tail = '';
    const started = Date.now();
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      compiled += text.split('\n').filter((l) => l && !l.startsWith('go: ') && !l.startsWith('#')).length;
      tail = (tail + text).slice(-4000);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setInterval(() => {
      const elapsed = formatDuration((Date.now() - started) / 1000);
      log(`  ${spec.name}: ${compiled}${total ? `/${total}` : ''} packages compiled, ${elapsed}`);
    }, 30_000);
    child.on('error', (err) => {
      clearInterval(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearInterval(timer);
      if (code === 0) resolvePromise();
      else reject(new Error(`go build of ${spec.name} ${spec.version} failed (exit ${code}):\n${tail}`));
    });
  });
}

async function acquireLock(lock: string, name: string): Promise<void> {
  for (let waited = 0; ; waited += 2) {
    try {
      mkdirSync(lock);
      return;
    } catch {
      // A lock older than two hours belongs to a build that died; builds take minutes.
      const age = Date.now() - statSync(lock, { throwIfNoEntry: false })!.mtimeMs;
      if (Number.isFinite(age) && age > 2 * 3600_000) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (waited % 60 === 0) log(`waiting for another process that is building ${name} (${lock})`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

export function formatDuration(seconds: number): string {
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return m > 0 ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
}

/** Builds everything the stack needs, one at a time (each Go build already uses every core). */
export async function ensureAllBuilt(): Promise<void> {
  const started = Date.now();
  let any = false;
  for (const spec of builds) {
    const r = await ensureBuilt(spec);
    any ||= r.built;
  }
  if (any) log(`stack programs built in ${formatDuration((Date.now() - started) / 1000)}`);
}

if (require.main === module) {
  const wanted = process.argv[2];
  const optional = optionalBuilds.find((b) => b.name === wanted);
  if (wanted && !optional) {
    console.error(`stack build: no optional program named ${wanted} (known: ${optionalBuilds.map((b) => b.name).join(', ')})`);
    process.exit(2);
  }
  (optional ? ensureBuilt(optional).then(() => undefined) : ensureAllBuilt()).catch((err: Error) => {
    console.error(`stack build failed: ${err.message}`);
    process.exit(1);
  });
}
