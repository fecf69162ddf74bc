/**
 * Loads a CommonJS file with a V8 code cache kept beside it (`<file>.v8cache`), so that a
 * command started again skips compiling the bundle it already compiled (as Node's
 * module.enableCompileCache does for modules; this cache is written when the process ends, so
 * it also holds the functions a command compiled while it ran).
 *
 * Assumptions / invariants: V8 checks a cache against the source's length only, so the cache is
 * keyed by the file's size and modification time and by the Node version and architecture, and a
 * rebuilt bundle is never run with the code of the old one. A cache that cannot be written (a
 * read-only install) only costs the time it would have saved.
 */
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Script } from 'node:vm';

export function cacheFileOf(file: string): string {
  return `${file}.v8cache`;
}

/** A cache's header: which build it is for, and the uses (commands) whose code it holds. */
interface Header {
  key: string;
  uses: string[];
}

function readCache(cacheFile: string, key: string): { data: Buffer; uses: string[] } | undefined {
  try {
    const file = readFileSync(cacheFile);
    const end = file.indexOf(0x0a);
    if (end < 0) return undefined;
    const [fileKey, uses = ''] = file.subarray(0, end).toString('latin1').split('\t');
    return fileKey === key ? { data: file.subarray(end + 1), uses: uses.split(',').filter(Boolean) } : undefined;
  } catch {
    return undefined;
  }
}

function writeCache(cacheFile: string, header: Header, data: Buffer): void {
  const partial = `${cacheFile}.${process.pid}.tmp`;
  try {
    writeFileSync(partial, Buffer.concat([Buffer.from(`${header.key}\t${header.uses.join(',')}\n`, 'latin1'), data]));
    renameSync(partial, cacheFile);
  } catch {
    // Read-only or full: the next start compiles again.
  }
}

/**
 * Caches to write. They are written when the process ends, not when the file is loaded: the
 * cache then also holds the functions the command compiled while it ran (its requests, the
 * SDK's middleware), not only the bundle's top level. A cache is written again by the first
 * process of each use (command) it does not hold yet, so it grows to hold the code of every
 * command run since the build: a cache created by loading the file holds what was compiled
 * from it as well as what this process compiled.
 */
const pending: { cacheFile: string; header: Header; script: Script }[] = [];

export function writePendingCodeCaches(): void {
  for (const { cacheFile, header, script } of pending.splice(0)) writeCache(cacheFile, header, script.createCachedData());
}

/**
 * require(file), compiled from the code cache when it holds this version of the file. `use`
 * names what the process will run (the command): a cache that does not hold it yet is
 * written again when the process ends.
 */
export function requireWithCodeCache(file: string, use = ''): unknown {
  const { size, mtimeMs } = statSync(file);
  const key = `${process.version} ${process.arch} ${size} ${mtimeMs}`;
  const cacheFile = cacheFileOf(file);
  const cached = readCache(cacheFile, key);
  // The same wrapper as Node's own, on the first line, so stack traces keep their line numbers.
  const source = `(function (exports, require, module, __filename, __dirname) { ${readFileSync(file, 'utf8')}\n});`;
  const script = new Script(source, { filename: file, cachedData: cached?.data });
  const module = new Module(file);
  module.filename = file;
  const moduleFunction = script.runInThisContext() as (...args: unknown[]) => void;
  moduleFunction.call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
  module.loaded = true;
  require.cache[file] = module;
  const usable = cached && !script.cachedDataRejected;
  const uses = usable ? cached.uses : [];
  if (!usable || (use && !uses.includes(use))) {
    if (pending.length === 0) process.once('exit', writePendingCodeCaches);
    pending.push({ cacheFile, header: { key, uses: use && !uses.includes(use) ? [...uses, use] : uses }, script });
  }
  return module.exports;
}
