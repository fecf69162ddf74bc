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
}

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
  const base = join(repoDir, gitPath);
  const problems: ManifestProblem[] = [];
  const candidates: DesiredDaemonSet[] = [];
  const objectCandidates: ObjectCandidate[] = [];
  const refused: RefusedObject[] = [];
  const files: string[] = [];
  const outside = linkOutside(repoDir, gitPath);
  if (outside) {
    problems.push({ file: gitPath, code: 'path-missing', severity: 'error', message: `GIT_PATH ${gitPath} leads outside the repository through a symbolic link (${outside.link} -> ${outside.target}): nothing under it is read; make it a real directory in the repository, or point GIT_PATH at one` });
    return { desired: [], objects: [], problems, files };
  }
  const st = lstatSync(base, { throwIfNoEntry: false });
  if (!st || !st.isDirectory()) {
    problems.push({ file: gitPath, code: 'path-missing', severity: 'error', message: `GIT_PATH ${gitPath} is not a directory in the repository: fix GIT_PATH or the repository layout` });
    return { desired: [], objects: [], problems, files };
  }
  const paths: string[] = [];
  listYamlFiles(base, base, paths);
  for (const full of paths) {
    const file = relative(repoDir, full).split(sep).join('/');
    files.push(file);
    const size = lstatSync(full).size;
    if (size > maxBytes) {
      problems.push({ file, code: 'too-large', severity: 'error', message: `the file is ${size} bytes, over the ${maxBytes}-byte limit (MAX_MANIFEST_BYTES): split it into smaller files` });
      continue;
    }
    const read = readDocuments(file, readFileSync(full, 'utf8'), policy);
    candidates.push(...read.desired);
    objectCandidates.push(...read.objects);
    refused.push(...read.refused);
    problems.push(...read.problems);
  }

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
export function loadCheckout(tree: Checkout, gitPath: string, policy: BundlePolicy, maxBytes: number): LoadResult {
  const from = loadKey(tree, gitPath, policy, maxBytes);
  const reused = tree.reused ? reusedLoad(tree, from) : undefined;
  if (reused) return reused;
  const result = loadManifests(tree.dir, gitPath, policy, maxBytes);
  if (from.code) keepLoad(tree.dir, from.digest, result);
  lastLoad.set(tree.dir, { from: from.digest, result });
  return result;
}

/** True when `loadCheckout` of this reused tree will not read the tree (its result is at hand). */
export function loadWithoutTree(tree: Checkout, gitPath: string, policy: BundlePolicy, maxBytes: number): boolean {
  return reusedLoad(tree, loadKey(tree, gitPath, policy, maxBytes)) !== undefined;
}

function loadKey(tree: Checkout, gitPath: string, policy: BundlePolicy, maxBytes: number): { digest: string; code?: string } {
  const code = codeIdentity();
  const from = JSON.stringify([tree.commit.sha, gitPath, policy.allowedNamespaces ?? null, policy.allowedKinds ?? null, policy.defaultNamespace ?? null, maxBytes, code ?? null]);
  return { digest: createHash('sha256').update(from).digest('hex'), code };
}

function reusedLoad(tree: Checkout, from: { digest: string; code?: string }): LoadResult | undefined {
  const last = lastLoad.get(tree.dir);
  if (last?.from === from.digest) return last.result;
  const kept = from.code ? readKeptLoad(tree.dir, from.digest) : undefined;
  if (kept) lastLoad.set(tree.dir, { from: from.digest, result: kept });
  return kept;
}
