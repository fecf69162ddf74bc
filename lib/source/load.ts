/**
 * Loads every *.yaml / *.yml under GIT_PATH, multi-document, into DesiredDaemonSets.
 * A problem blocks only the document it is in (a duplicate name blocks both copies).
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Checkout } from './git';
import { BundlePolicy, DesiredObject, ObjectCandidate, readObject, RefusedObject, settleObjects } from '../bundle/objects';
import { holdDaemonSets } from '../bundle/companions';
import { withConfigDigests } from '../bundle/config-digest';
import { withConfigCopies } from '../bundle/config-copies';
import { DesiredDaemonSet, JsonObject, ManifestProblem, validateDocument, where } from './manifest';
import type { RenderConfig } from '../config';
import { DEFAULT_RENDER, kustomizationIn, RenderedBy, RenderError, renderersIdentity, renderKustomization } from './render';

/** YAML aliases a file may use; more is treated as an alias bomb. */
export const MAX_ALIASES = 100;

export interface LoadResult {
  desired: DesiredDaemonSet[];
  /** The other objects of the source that the kinds policy allows (lib/bundle/objects.ts). */
  objects: DesiredObject[];
  /** Documents that name an object but are not applied (kinds policy, namespace, duplicate): still in Git, so never pruned. */
  refused?: RefusedObject[];
  problems: ManifestProblem[];
  /** Files read, relative to the repository root. */
  files: string[];
  /** When GIT_PATH holds a kustomization: what rendered it (the documents are kustomize's output). */
  rendered?: RenderedBy;
}

/** Problem codes that mean part of the source could not be read: what it holds is unknown. */
export const INCOMPLETE_SOURCE_CODES = ['yaml-syntax', 'too-large', 'alias-limit', 'path-missing', 'render-failed', 'not-rendered'];

function listYamlFiles(root: string, dir: string, out: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (entry.name === '.git') continue;
    const full = join(dir, entry.name);
    // Symbolic links are not followed: a link could point outside the checkout.
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) listYamlFiles(root, full, out);
    else if (entry.isFile() && /\.ya?ml$/i.test(entry.name)) out.push(full);
  }
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** The DaemonSets of one file's documents, and the problem of each document that is not one. */
function readDocuments(file: string, text: string, policy: BundlePolicy): { desired: DesiredDaemonSet[]; objects: ObjectCandidate[]; refused: RefusedObject[]; problems: ManifestProblem[] } {
  const desired: DesiredDaemonSet[] = [];
  const objects: ObjectCandidate[] = [];
  const refused: RefusedObject[] = [];
  const problems: ManifestProblem[] = [];
  let docs;
  try {
    docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    return { desired, objects, refused, problems: [{ file, code: 'yaml-syntax', severity: 'error', message: `YAML could not be parsed: ${(err as Error).message}` }] };
  }
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    const loc = { file, document: i + 1 };
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      const line = e.linePos?.[0]?.line ?? lineOf(text, e.pos[0]);
      problems.push({ ...loc, code: 'yaml-syntax', severity: 'error', message: `YAML syntax error at line ${line}: ${e.message.split('\n')[0]}` });
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIASES });
    } catch (err) {
      const msg = (err as Error).message;
      const code = /alias/i.test(msg) ? 'alias-limit' : 'yaml-syntax';
      problems.push({
        ...loc,
        code,
        severity: 'error',
        message: code === 'alias-limit'
          ? `YAML aliases expand past the limit of ${MAX_ALIASES} (an "alias bomb"): write the values out instead of nesting aliases`
          : `YAML could not be read: ${msg}`,
      });
      return;
    }
    if (value === null || value === undefined) return; // an empty document, e.g. a trailing ---
    if (isOtherKind(value)) {
      const read = readObject(value, loc, policy);
      if (read.ok) objects.push(read.candidate);
      else {
        problems.push(read.problem);
        if (read.refused) refused.push(read.refused);
      }
      return;
    }
    const result = validateDocument(value, loc, policy);
    if (result.ok) desired.push(result.desired);
    else problems.push(result.problem);
  });
  return { desired, objects, refused, problems };
}

/** A mapping with an apiVersion and a kind other than DaemonSet: an object of the bundle. */
function isOtherKind(value: unknown): value is JsonObject {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return typeof v.apiVersion === 'string' && typeof v.kind === 'string' && v.kind !== 'DaemonSet';
}

/** The same namespace/name twice: neither is applied, since either could be the intended one (each copy gets a problem). */
function withoutDuplicates(candidates: DesiredDaemonSet[], problems: ManifestProblem[]): DesiredDaemonSet[] {
  const byKey = new Map<string, DesiredDaemonSet[]>();
  for (const d of candidates) byKey.set(d.key, [...(byKey.get(d.key) ?? []), d]);
  const desired: DesiredDaemonSet[] = [];
  for (const [key, list] of byKey) {
    if (list.length === 1) {
      desired.push(list[0]);
      continue;
    }
    const places = list.map((d) => where(d.source)).join(' and ');
    for (const d of list) {
      problems.push({
        file: d.source.file,
        document: d.source.document,
        key,
        code: 'duplicate',
        severity: 'error',
        message: `DaemonSet ${key} is defined more than once (${places}): neither is applied until only one remains`,
      });
    }
  }
  return desired;
}

/**
 * The first folder of `gitPath` that is a symbolic link leading outside the checkout, if any:
 * a link committed to the repository may name any path on the machine.
 */
export function linkOutside(repoDir: string, gitPath: string): { link: string; target: string } | undefined {
  let root: string;
  try {
    root = realpathSync(repoDir);
  } catch {
    return undefined;
  }
  const parts = gitPath.split('/').filter((p) => p && p !== '.');
  for (let i = 1; i <= parts.length; i++) {
    const link = parts.slice(0, i).join('/');
    const full = join(repoDir, link);
    if (!lstatSync(full, { throwIfNoEntry: false })?.isSymbolicLink()) continue;
    let resolved: string;
    try {
      resolved = realpathSync(full);
    } catch {
      return undefined; // a dangling link: GIT_PATH is then simply missing
    }
    const rel = relative(root, resolved);
    if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return { link, target: readlinkSync(full) };
  }
  return undefined;
}

export function loadManifests(repoDir: string, gitPath: string, policy: BundlePolicy, maxBytes: number): LoadResult {
  const problems: ManifestProblem[] = [];
  const files: string[] = [];
  const where = checkGitPath(repoDir, gitPath);
  if (where.problem) return { desired: [], objects: [], problems: [where.problem], files };
  const kustomization = kustomizationIn(where.base);
  if (kustomization) {
    // Rendering runs a program: only loadPath does it (a rollback, for one, never renders).
    const file = relative(repoDir, kustomization).split(sep).join('/');
    return { desired: [], objects: [], problems: [{ file, code: 'not-rendered', severity: 'error', message: `${gitPath} holds a kustomization (${file}), which is rendered by kustomize, not read as plain YAML` }], files: [file] };
  }
  const paths: string[] = [];
  listYamlFiles(where.base, where.base, paths);
  const read: ReturnType<typeof readDocuments>[] = [];
  for (const full of paths) {
    const file = relative(repoDir, full).split(sep).join('/');
    files.push(file);
    const size = lstatSync(full).size;
    if (size > maxBytes) {
      problems.push({ file, code: 'too-large', severity: 'error', message: `the file is ${size} bytes, over the ${maxBytes}-byte limit (MAX_MANIFEST_BYTES): split it into smaller files` });
      continue;
    }
    read.push(readDocuments(file, readFileSync(full, 'utf8'), policy));
  }
  return settleLoad(read, problems, files, policy);
}

/** GIT_PATH's folder in the checkout, or the problem that keeps it from being read. */
function checkGitPath(repoDir: string, gitPath: string): { base: string; problem?: undefined } | { base?: undefined; problem: ManifestProblem } {
  const outside = linkOutside(repoDir, gitPath);
  if (outside) {
    return { problem: { file: gitPath, code: 'path-missing', severity: 'error', message: `GIT_PATH ${gitPath} leads outside the repository through a symbolic link (${outside.link} -> ${outside.target}): nothing under it is read; make it a real directory in the repository, or point GIT_PATH at one` } };
  }
  const base = join(repoDir, gitPath);
  const st = lstatSync(base, { throwIfNoEntry: false });
  if (!st || !st.isDirectory()) {
    return { problem: { file: gitPath, code: 'path-missing', severity: 'error', message: `GIT_PATH ${gitPath} is not a directory in the repository: fix GIT_PATH or the repository layout` } };
  }
  return { base };
}

/** The documents read, settled into what a pass applies: duplicates, companions held, configuration digests. */
function settleLoad(read: ReturnType<typeof readDocuments>[], problems: ManifestProblem[], files: string[], policy: BundlePolicy): LoadResult {
  const candidates = read.flatMap((r) => r.desired);
  const objectCandidates = read.flatMap((r) => r.objects);
  const refused = read.flatMap((r) => r.refused);
  problems.push(...read.flatMap((r) => r.problems));
  const settled = settleObjects(objectCandidates, policy);
  problems.push(...settled.problems);
  const held = holdDaemonSets(withoutDuplicates(candidates, problems), [...refused, ...settled.refused]);
  problems.push(...held.problems);
  for (const d of held.kept) {
    if (d.defaultedNamespace) problems.push({ file: d.source.file, document: d.source.document, code: 'default-namespace', severity: 'info', message: `DaemonSet ${d.name} has no namespace: applied in ${d.namespace} (DEFAULT_NAMESPACE)` });
  }
  const { desired, copies } = withConfigCopies(withConfigDigests(held.kept, settled.objects), settled.objects);
  return { desired: desired.sort((a, b) => (a.key < b.key ? -1 : 1)), objects: [...settled.objects, ...copies], refused: [...refused, ...settled.refused], problems, files };
}

/**
 * GIT_PATH's documents: kustomize's output when the folder holds a kustomization
 * (lib/source/render.ts), otherwise every YAML file below it (loadManifests). The rendered
 * documents are named by the kustomization that produced them; a render that fails is one
 * problem of that file (`render-failed`) and nothing of the path is applied.
 */
export async function loadPath(repoDir: string, gitPath: string, policy: BundlePolicy, maxBytes: number, render: RenderConfig = DEFAULT_RENDER): Promise<LoadResult> {
  const where = checkGitPath(repoDir, gitPath);
  if (where.problem || !kustomizationIn(where.base)) return loadManifests(repoDir, gitPath, policy, maxBytes);
  const file = relative(repoDir, kustomizationIn(where.base)!).split(sep).join('/');
  let rendered;
  try {
    rendered = await renderKustomization({ repoDir, gitPath, config: render });
  } catch (err) {
    if (!(err instanceof RenderError)) throw err;
    return { desired: [], objects: [], problems: [{ file, code: 'render-failed', severity: 'error', message: err.message }], files: [file] };
  }
  const read = readDocuments(file, rendered.yaml, policy);
  for (const p of read.problems) p.message = `in kustomize's output: ${p.message}`;
  return { ...settleLoad([read], [], [file], policy), rendered: rendered.by };
}

/** The last load of each checkout directory in this process, and what it was loaded from. */
const lastLoad = new Map<string, { from: string; result: LoadResult }>();

/**
 * What identifies the loading code itself, when it runs from a bundle (the command, a Lambda
 * handler): the bundle file's size and modification time. From TypeScript sources (tests,
 * scripts) there is none, and nothing is kept on disk: an edited validator must not be
 * answered by what an older one loaded.
 */
function codeIdentity(): string | undefined {
  if (!/\.c?js$/.test(__filename)) return undefined;
  try {
    const st = statSync(__filename);
    return `${st.size}:${st.mtimeMs}`;
  } catch {
    return undefined;
  }
}

/** The load result kept next to a checkout directory, for the next process that finds the same commit. */
function keptLoadFile(dir: string): string {
  return `${dir}.load.json`;
}

function readKeptLoad(dir: string, from: string): LoadResult | undefined {
  try {
    const kept = JSON.parse(readFileSync(keptLoadFile(dir), 'utf8')) as { from?: string; result?: LoadResult };
    return kept.from === from && kept.result && Array.isArray(kept.result.desired) && Array.isArray(kept.result.objects) ? kept.result : undefined;
  } catch {
    return undefined; // none, or unreadable: load from the tree
  }
}

function keepLoad(dir: string, from: string, result: LoadResult): void {
  const file = keptLoadFile(dir);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify({ from, result }));
    renameSync(tmp, file);
  } catch {
    // A full or read-only disk costs the next process a parse, nothing else.
  }
}

/**
 * loadManifests for a checkout, reusing an earlier result when the checkout reused its tree
 * (the remote head had not moved) and the same settings read it: the same commit, path,
 * namespaces and size limit load to the same result. This process's last result is reused;
 * a bundle also keeps the result on disk next to the checkout, keyed by the commit, the
 * settings and the bundle itself, so a new process (a CLI run) skips parsing too.
 */
export async function loadCheckout(tree: Checkout, gitPath: string, policy: BundlePolicy, maxBytes: number, render?: RenderConfig): Promise<LoadResult> {
  const from = loadKey(tree, gitPath, policy, maxBytes, render);
  const reused = tree.reused ? reusedLoad(tree, from) : undefined;
  if (reused) return reused;
  const result = await loadPath(tree.dir, gitPath, policy, maxBytes, render);
  // A render that failed (a chart repository down, a timeout) is tried again by the next pass.
  if (result.problems.some((p) => p.code === 'render-failed')) return result;
  if (from.code) keepLoad(tree.dir, from.digest, result);
  lastLoad.set(tree.dir, { from: from.digest, result });
  return result;
}

/** The load result at hand for this checkout and these settings (this process's, or one kept on disk), without reading the tree or rendering. */
export function keptLoadOf(tree: Checkout, gitPath: string, policy: BundlePolicy, maxBytes: number, render?: RenderConfig): LoadResult | undefined {
  return reusedLoad(tree, loadKey(tree, gitPath, policy, maxBytes, render));
}

/** True when `loadCheckout` of this reused tree will not read the tree (its result is at hand). */
export function loadWithoutTree(tree: Checkout, gitPath: string, policy: BundlePolicy, maxBytes: number, render?: RenderConfig): boolean {
  return reusedLoad(tree, loadKey(tree, gitPath, policy, maxBytes, render)) !== undefined;
}

/**
 * The key of a load: the commit, the path (with the cluster's name in it, for `clusters/{cluster}`),
 * the settings, the loading code and, for a path kustomize renders, the renderers (their
 * programs' identity and the render settings), so an upgraded kustomize or Helm renders again.
 */
function loadKey(tree: Checkout, gitPath: string, policy: BundlePolicy, maxBytes: number, render?: RenderConfig): { digest: string; code?: string } {
  const code = codeIdentity();
  const renderers = renderersIdentity(render ?? DEFAULT_RENDER);
  const from = JSON.stringify([tree.commit.sha, gitPath, policy.allowedNamespaces ?? null, policy.allowedKinds ?? null, policy.defaultNamespace ?? null, maxBytes, code ?? null, renderers]);
  return { digest: createHash('sha256').update(from).digest('hex'), code };
}

function reusedLoad(tree: Checkout, from: { digest: string; code?: string }): LoadResult | undefined {
  const last = lastLoad.get(tree.dir);
  if (last?.from === from.digest) return last.result;
  const kept = from.code ? readKeptLoad(tree.dir, from.digest) : undefined;
  if (kept) lastLoad.set(tree.dir, { from: from.digest, result: kept });
  return kept;
}
