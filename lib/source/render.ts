/**
 * Rendering: a GIT_PATH that holds a kustomization is built by kustomize itself (and the Helm
 * charts its `helmCharts` name by a pinned Helm), as Flux and Argo CD build it. The rendered
 * documents go through the same load, validation and apply as plain YAML.
 *
 * Safe by default (docs/rendering.md): no exec or KRM function plugins (`--enable-alpha-plugins`
 * and `--enable-exec` are never passed), files only from inside each kustomization's own folder
 * (`LoadRestrictionsRootOnly`), Helm without post-renderers (kustomize passes none), remote bases
 * and charts only with RENDER_ALLOW_REMOTE=true, every render bounded in time and output size.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { parse } from 'yaml';
import type { RenderConfig } from '../config';
import { DsGitopsError } from '../errors';

/** The file names kustomize accepts for a kustomization, in the order it looks for them. */
export const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'] as const;

export const DEFAULT_RENDER: RenderConfig = { allowRemote: false, timeoutSeconds: 60, maxOutputBytes: 16 << 20 };

/** Where the Lambda layer puts the programs. */
export const LAYER_BIN_DIR = '/opt/bin';

/** What rendered a source path: recorded with each revision, so a rollback knows what it restores. */
export interface RenderedBy {
  renderer: 'kustomize';
  /** The kustomization file, relative to the repository root. */
  kustomization: string;
  kustomizeVersion: string;
  helmVersion: string;
}

export class RenderError extends DsGitopsError {
  /** The kustomization file (relative to the repository root) whose render failed. */
  readonly file: string;
  constructor(file: string, message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super('RenderFailed', message, options);
    this.file = file;
  }
}

/** The kustomization file directly in `dir`, if there is one. */
export function kustomizationIn(dir: string): string | undefined {
  for (const name of KUSTOMIZATION_FILES) {
    const full = join(dir, name);
    if (statOrUndefined(full)?.isFile()) return full;
  }
  return undefined;
}

export interface Renderers {
  kustomize: string;
  helm: string;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && executable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** The programs: KUSTOMIZE_BIN / HELM_BIN, else the Lambda layer's /opt/bin, else the PATH. */
export function findRenderers(config: RenderConfig = DEFAULT_RENDER): Partial<Renderers> {
  const find = (name: 'kustomize' | 'helm', given?: string) => given ?? (executable(join(LAYER_BIN_DIR, name)) ? join(LAYER_BIN_DIR, name) : onPath(name));
  return { kustomize: find('kustomize', config.kustomize), helm: find('helm', config.helm) };
}

/**
 * What identifies the renderers without running them (their paths, sizes and modification
 * times): part of the key under which a render is reused, so an upgraded program renders again.
 */
export function renderersIdentity(config: RenderConfig = DEFAULT_RENDER): string {
  const found = findRenderers(config);
  const parts = [found.kustomize, found.helm].map((p) => {
    const st = p ? statOrUndefined(p) : undefined;
    return st ? `${p}:${st.size}:${st.mtimeMs}` : `${p ?? ''}:none`;
  });
  return [...parts, config.allowRemote, config.maxOutputBytes].join('|');
}

/** A file's status, or undefined when it is missing or cannot be read (a program another user owns). */
function statOrUndefined(path: string): ReturnType<typeof statSync> | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

const versions = new Map<string, string>();

/** `kustomize version` / `helm version --short`, asked once per program per process. */
export function rendererVersion(program: string, args: string[]): string {
  const known = versions.get(program);
  if (known) return known;
  const out = spawnSync(program, args, { encoding: 'utf8', timeout: 10_000 });
  const version = out.status === 0 ? out.stdout.trim().split('\n')[0] : 'unknown';
  versions.set(program, version);
  return version;
}

/** A string a kustomization names that kustomize would fetch over the network (or from outside the checkout). */
export function isRemoteReference(value: string): boolean {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return true; // https://, ssh://, git://, oci://, file://
  if (/^git(@|::)/.test(value)) return true; // git@host:org/repo, git::https://…
  // kustomize's shorthand for a repository: host/org/repo[//path][?ref=…]
  if (/^[a-z0-9-]+(\.[a-z0-9-]+)+\/[^/]/i.test(value)) return true;
  return /[?&]ref=/.test(value);
}

interface Finding {
  file: string;
  message: string;
}

/** The fields of a kustomization that name files, folders or URLs kustomize loads. */
function referencedPaths(k: Record<string, unknown>): { field: string; value: string }[] {
  const out: { field: string; value: string }[] = [];
  const strings = (field: string, v: unknown) => {
    if (Array.isArray(v)) for (const e of v) if (typeof e === 'string') out.push({ field, value: e });
  };
  for (const field of ['resources', 'bases', 'components', 'crds', 'configurations', 'generators', 'transformers', 'validators', 'patchesStrategicMerge']) strings(field, k[field]);
  for (const field of ['patches', 'patchesJson6902', 'replacements']) {
    if (Array.isArray(k[field])) for (const e of k[field] as unknown[]) if (e && typeof e === 'object' && typeof (e as { path?: unknown }).path === 'string') out.push({ field: `${field}[].path`, value: (e as { path: string }).path });
  }
  for (const field of ['configMapGenerator', 'secretGenerator']) {
    if (!Array.isArray(k[field])) continue;
    for (const g of k[field] as Record<string, unknown>[]) {
      if (!g || typeof g !== 'object') continue;
      for (const f of Array.isArray(g.files) ? g.files : []) if (typeof f === 'string') out.push({ field: `${field}[].files`, value: f.includes('=') ? f.slice(f.indexOf('=') + 1) : f });
      for (const f of Array.isArray(g.envs) ? g.envs : []) if (typeof f === 'string') out.push({ field: `${field}[].envs`, value: f });
      if (typeof g.env === 'string') out.push({ field: `${field}[].env`, value: g.env });
    }
  }
  const openapi = k.openapi as { path?: unknown } | undefined;
  if (openapi && typeof openapi.path === 'string') out.push({ field: 'openapi.path', value: openapi.path });
  return out;
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/**
 * Reads the kustomization at `dir` and every local kustomization it builds on, before kustomize
 * runs: what would be fetched from the network (refused unless `allowRemote`), and what points
 * outside the repository (always refused: a folder outside the checkout is not Git's).
 */
export function checkKustomizations(repoDir: string, dir: string, allowRemote: boolean, seen = new Set<string>()): Finding[] {
  const findings: Finding[] = [];
  if (seen.has(dir)) return findings;
  seen.add(dir);
  const file = kustomizationIn(dir);
  if (!file) return findings;
  const rel = relative(repoDir, file).split(sep).join('/');
  let k: unknown;
  try {
    k = parse(readFileSync(file, 'utf8'), { maxAliasCount: 100 });
  } catch {
    return findings; // kustomize names the syntax error itself, with its line
  }
  if (!k || typeof k !== 'object' || Array.isArray(k)) return findings;
  const kust = k as Record<string, unknown>;
  const remoteFix = 'vendor it into the repository, or set RENDER_ALLOW_REMOTE=true to let renders fetch it (a remote base runs code and manifests that are not in this repository\'s history)';
  for (const { field, value } of referencedPaths(kust)) {
    if (isRemoteReference(value)) {
      if (!allowRemote) findings.push({ file: rel, message: `${field} names ${value}, which is fetched from the network at render time: ${remoteFix}` });
      continue;
    }
    const target = resolve(dir, value);
    if (!inside(repoDir, target)) {
      findings.push({ file: rel, message: `${field} names ${value}, which is outside the repository: only files and folders of the repository are rendered` });
      continue;
    }
    if (['resources', 'bases', 'components'].includes(field) && statSync(target, { throwIfNoEntry: false })?.isDirectory()) {
      findings.push(...checkKustomizations(repoDir, target, allowRemote, seen));
    }
  }
  const globals = (kust.helmGlobals ?? {}) as { chartHome?: unknown };
  const chartHome = typeof globals.chartHome === 'string' ? globals.chartHome : 'charts';
  if (!inside(repoDir, resolve(dir, chartHome))) {
    findings.push({ file: rel, message: `helmGlobals.chartHome ${chartHome} is outside the repository: keep charts in a folder of the repository` });
  }
  const charts = [...(Array.isArray(kust.helmCharts) ? kust.helmCharts : []), ...(Array.isArray(kust.helmChartInflationGenerator) ? kust.helmChartInflationGenerator : [])] as Record<string, unknown>[];
  for (const c of charts) {
    if (!c || typeof c !== 'object') continue;
    const repo = typeof c.repo === 'string' ? c.repo : typeof c.chartRepoUrl === 'string' ? c.chartRepoUrl : '';
    const name = typeof c.name === 'string' ? c.name : typeof c.chartName === 'string' ? c.chartName : '?';
    if (repo && !allowRemote) {
      findings.push({ file: rel, message: `helmCharts ${name} is pulled from ${repo} at render time: put the chart in the repository (${chartHome}/${name}) and remove repo, or set RENDER_ALLOW_REMOTE=true to let renders fetch it` });
    }
  }
  return findings;
}

export interface RenderRequest {
  repoDir: string;
  /** GIT_PATH, relative to the repository root. */
  gitPath: string;
  config?: RenderConfig;
}

export interface Rendered {
  /** kustomize's output: a YAML stream. */
  yaml: string;
  by: RenderedBy;
  milliseconds: number;
}

function firstLines(text: string, max = 12): string {
  const lines = text.trim().split('\n').filter(Boolean);
  return lines.length > max ? `${lines.slice(0, max).join('\n')}\n…` : lines.join('\n');
}

/** Why kustomize failed, in its own words, with the fix for the failures people meet most. */
function explain(stderr: string, kfile: string, repoDir: string): string {
  // Paths in the checkout are named from the repository's root, as everywhere else in a report.
  const words = firstLines(stderr.replace(/^Error: /m, '').split(`${resolve(repoDir)}/`).join('')) || 'no message';
  let fix = 'fix the kustomization (run `kustomize build --load-restrictor LoadRestrictionsRootOnly --enable-helm` on it to see the same error)';
  if (/security; file .* is not in or below/.test(stderr)) fix = 'a kustomization may read only files in or below its own folder (LoadRestrictionsRootOnly): move the file there, or make its folder a base of its own';
  else if (/external plugins disabled|unable to load external plugin|config\.kubernetes\.io\/function|--enable-alpha-plugins|--enable-exec/.test(stderr)) fix = 'plugins (exec and KRM functions) are not run: use kustomize\'s built-in transformers and generators instead';
  else if (/no repo specified|no chart found|unable to run: '\S*helm/.test(stderr)) fix = 'check the helmCharts entry: the chart must be in the repository (helmGlobals.chartHome, default charts/) or, with RENDER_ALLOW_REMOTE=true, in the repository named by repo';
  else if (/yaml|mapping|unmarshal|line \d+/i.test(stderr)) fix = `fix the YAML of ${kfile} or of the file the message names`;
  return `${kfile}: kustomize build failed: ${words}\n(fix: ${fix})`;
}

/**
 * Runs `kustomize build` on GIT_PATH with the safe flags, in its own process group (so Helm,
 * which kustomize starts, is stopped with it), killed past RENDER_TIMEOUT_SECONDS or when its
 * output passes RENDER_MAX_BYTES. Helm's configuration and cache live in a temporary folder.
 */
export async function renderKustomization(req: RenderRequest): Promise<Rendered> {
  const config = req.config ?? DEFAULT_RENDER;
  const dir = join(req.repoDir, req.gitPath);
  const kfull = kustomizationIn(dir);
  if (!kfull) throw new RenderError(req.gitPath, `${req.gitPath} holds no kustomization`);
  const kfile = relative(req.repoDir, kfull).split(sep).join('/');
  const findings = checkKustomizations(resolve(req.repoDir), resolve(dir), config.allowRemote);
  if (findings.length > 0) {
    throw new RenderError(kfile, findings.map((f) => `${f.file}: ${f.message}`).join('\n'));
  }
  const found = findRenderers(config);
  if (!found.kustomize) {
    throw new RenderError(kfile, `${kfile}: rendering it needs kustomize, which was not found (KUSTOMIZE_BIN, ${LAYER_BIN_DIR}/kustomize or the PATH): attach the renderers layer to this function, or set KUSTOMIZE_BIN`);
  }
  const helm = found.helm;
  const args = ['build', dir, '--load-restrictor', 'LoadRestrictionsRootOnly'];
  // --helm-command is given only with a Helm: without one, a helmCharts entry fails with kustomize's own message.
  if (helm) args.push('--enable-helm', '--helm-command', helm);
  const home = mkdtempSync(join(tmpdir(), 'dsgitops-render-'));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '',
    HOME: home,
    TMPDIR: home,
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_DATA_HOME: join(home, 'data'),
    // Helm plugins (a post-renderer among them) come from HELM_PLUGINS: an empty folder.
    HELM_PLUGINS: join(home, 'plugins'),
    KUSTOMIZE_PLUGIN_HOME: join(home, 'kustomize-plugins'),
  };
  if (!config.allowRemote) {
    // Defence in depth behind checkKustomizations: git may clone nothing, and HTTP goes nowhere.
    Object.assign(env, { GIT_ALLOW_PROTOCOL: 'file', HTTPS_PROXY: 'http://127.0.0.1:9', HTTP_PROXY: 'http://127.0.0.1:9', NO_PROXY: '' });
  } else {
    for (const k of ['HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY', 'https_proxy', 'http_proxy', 'no_proxy']) if (process.env[k]) env[k] = process.env[k];
  }
  mkdirSync(env.HELM_PLUGINS!, { recursive: true });
  const started = Date.now();
  try {
    const out = await run(found.kustomize, args, env, config, kfile, req.repoDir);
    return {
      yaml: out,
      milliseconds: Date.now() - started,
      by: {
        renderer: 'kustomize',
        kustomization: kfile,
        kustomizeVersion: rendererVersion(found.kustomize, ['version']),
        helmVersion: helm ? rendererVersion(helm, ['version', '--short']) : 'none',
      },
    };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

function run(program: string, args: string[], env: NodeJS.ProcessEnv, config: RenderConfig, kfile: string, repoDir: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(program, args, { env, cwd: env.HOME, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let size = 0;
    let stderr = '';
    let stopped: string | undefined;
    const stop = (why: string) => {
      if (stopped) return;
      stopped = why;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => stop(`it did not finish within ${config.timeoutSeconds} s (RENDER_TIMEOUT_SECONDS): look for a chart or base that loops or waits on the network, or raise RENDER_TIMEOUT_SECONDS`), config.timeoutSeconds * 1000);
    child.stdout.on('data', (c: Buffer) => {
      size += c.length;
      if (size > config.maxOutputBytes) stop(`its output passed ${config.maxOutputBytes} bytes (RENDER_MAX_BYTES): render fewer objects per path, or raise RENDER_MAX_BYTES`);
      else chunks.push(c);
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-8000);
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new RenderError(kfile, `${kfile}: kustomize could not be started (${program}): ${err.message}`, { cause: err }));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (stopped) reject(new RenderError(kfile, `${kfile}: kustomize build was stopped: ${stopped}`, { retryable: /RENDER_TIMEOUT/.test(stopped) }));
      else if (code !== 0) reject(new RenderError(kfile, explain(stderr, kfile, repoDir)));
      else resolvePromise(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

/** True when the folder `gitPath` of the checkout holds a kustomization (and so is rendered). */
export function rendersPath(repoDir: string, gitPath: string): boolean {
  return existsSync(join(repoDir, gitPath)) && kustomizationIn(join(repoDir, gitPath)) !== undefined;
}
