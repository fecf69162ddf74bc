/**
 * Loads a CommonJS file with a V8 code cache kept beside it (`<file>.v8cache`), so that a
 * command started again skips compiling the bundle it already compiled (what Node 22's
 * module.enableCompileCache does; this project supports Node 20).
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

function readCache(cacheFile: string, key: string): Buffer | undefined {
  try {
    const data = readFileSync(cacheFile);
    return data.subarray(0, key.length).toString('latin1') === key ? data.subarray(key.length) : undefined;
  } catch {
    return undefined;
  }
}

function writeCache(cacheFile: string, key: string, data: Buffer): void {
  const partial = `${cacheFile}.${process.pid}.tmp`;
  try {
    writeFileSync(partial, Buffer.concat([Buffer.from(key, 'latin1'), data]));
    renameSync(partial, cacheFile);
  } catch {
    // Read-only or full: the next start compiles again.
  }
}

/**
 * Caches to write. They are written when the process ends, not when the file is loaded: the
 * cache then also holds the functions the command compiled while it ran (its requests, the
 * SDK's middleware), not only the bundle's top level, and the next start compiles neither.
 */
const pending: { cacheFile: string; key: string; script: Script }[] = [];

export function writePendingCodeCaches(): void {
  for (const { cacheFile, key, script } of pending.splice(0)) writeCache(cacheFile, key, script.createCachedData());
}

/** require(file), compiled from the code cache when it holds this version of the file. */
export function requireWithCodeCache(file: string): unknown {
  const { size, mtimeMs } = statSync(file);
  const key = `${process.version} ${process.arch} ${size} ${mtimeMs}\n`;
  const cacheFile = cacheFileOf(file);
  const cachedData = readCache(cacheFile, key);
  // The same wrapper as Node's own, on the first line, so stack traces keep their line numbers.
  const source = `(function (exports, require, module, __filename, __dirname) { ${readFileSync(file, 'utf8')}\n});`;
  const script = new Script(source, { filename: file, cachedData });
  const module = new Module(file);
  module.filename = file;
  const moduleFunction = script.runInThisContext() as (...args: unknown[]) => void;
  moduleFunction.call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
  module.loaded = true;
  require.cache[file] = module;
  if (!cachedData || script.cachedDataRejected) {
    if (pending.length === 0) process.once('exit', writePendingCodeCaches);
    pending.push({ cacheFile, key, script });
  }
  return module.exports;
}
