/**
 * Loads every *.yaml / *.yml under GIT_PATH, multi-document, into DesiredDaemonSets.
 * A problem blocks only the document it is in (a duplicate name blocks both copies).
 */
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Checkout } from './git';
import type { Policy } from '../config';
import { DesiredDaemonSet, ManifestProblem, validateDocument, where } from './manifest';

/** YAML aliases a file may use; more is treated as an alias bomb. */
export const MAX_ALIASES = 100;

export interface LoadResult {
  desired: DesiredDaemonSet[];
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

export function loadManifests(repoDir: string, gitPath: string, policy: Pick<Policy, 'allowedNamespaces'>, maxBytes: number): LoadResult {
  const base = join(repoDir, gitPath);
  const problems: ManifestProblem[] = [];
  const candidates: DesiredDaemonSet[] = [];
  const files: string[] = [];
  const st = lstatSync(base, { throwIfNoEntry: false });
  if (!st || !st.isDirectory()) {
    problems.push({ file: gitPath, code: 'path-missing', severity: 'error', message: `GIT_PATH ${gitPath} is not a directory in the repository: fix GIT_PATH or the repository layout` });
    return { desired: [], problems, files };
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
    const text = readFileSync(full, 'utf8');
    let docs;
    try {
      docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
    } catch (err) {
      problems.push({ file, code: 'yaml-syntax', severity: 'error', message: `YAML could not be parsed: ${(err as Error).message}` });
      continue;
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
      const result = validateDocument(value, loc, policy);
      if (result.ok) candidates.push(result.desired);
      else problems.push(result.problem);
    });
  }

  // The same namespace/name twice: neither is applied, since either could be the intended one.
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
  return { desired: desired.sort((a, b) => (a.key < b.key ? -1 : 1)), problems, files };
}

/** The last load of each checkout directory in this process, and what it was loaded from. */
const lastLoad = new Map<string, { from: string; result: LoadResult }>();

/**
 * loadManifests for a checkout, reusing this process's last result when the checkout
 * reused its tree (the remote head had not moved) and the same settings read it: the same
 * commit, path, namespaces and size limit load to the same result.
 */
export function loadCheckout(tree: Checkout, gitPath: string, policy: Pick<Policy, 'allowedNamespaces'>, maxBytes: number): LoadResult {
  const from = JSON.stringify([tree.commit.sha, gitPath, policy.allowedNamespaces, maxBytes]);
  const last = lastLoad.get(tree.dir);
  if (tree.reused && last?.from === from) return last.result;
  const result = loadManifests(tree.dir, gitPath, policy, maxBytes);
  lastLoad.set(tree.dir, { from, result });
  return result;
}
