import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheFileOf, requireWithCodeCache, writePendingCodeCaches } from '../../bin/code-cache';

describe('requireWithCodeCache', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dsgitops-code-cache-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('loads a CommonJS file as require does and keeps a code cache beside it', () => {
    const file = join(dir, 'bundle.cjs');
    writeFileSync(file, `exports.dir = __dirname; exports.file = __filename; exports.sep = require('node:path').sep; module.exports.answer = 42;`);

    const first = requireWithCodeCache(file);
    // Written when the process ends (here: asked for), with what ran meanwhile compiled.
    expect(existsSync(cacheFileOf(file))).toBe(false);
    writePendingCodeCaches();
    expect(existsSync(cacheFileOf(file))).toBe(true);
    const second = requireWithCodeCache(file);

    expect(first).toEqual({ dir, file, sep: '/', answer: 42 });
    expect(second).toEqual(first);
  });

  it('is written again by the first process of a use it does not hold yet, and not by the next', () => {
    const file = join(dir, 'bundle.cjs');
    writeFileSync(file, `exports.a = () => 1; exports.b = () => 2;`);
    (requireWithCodeCache(file, 'status') as { a: () => number }).a();
    writePendingCodeCaches();
    const header = () => readFileSync(cacheFileOf(file)).toString('latin1').split('\n')[0].split('\t')[1];
    expect(header()).toBe('status');

    // A new process (here: the module cache left aside) of another use adds it.
    delete require.cache[file];
    (requireWithCodeCache(file, 'reconcile') as { b: () => number }).b();
    writePendingCodeCaches();
    expect(header()).toBe('status,reconcile');

    const before = statSync(cacheFileOf(file)).mtimeMs;
    delete require.cache[file];
    requireWithCodeCache(file, 'status');
    writePendingCodeCaches();
    expect(statSync(cacheFileOf(file)).mtimeMs).toBe(before);
  });

  it('never runs the code cached for an earlier build of the same length', () => {
    // V8 itself accepts a cache for any source of the same length.
    const file = join(dir, 'bundle.cjs');
    writeFileSync(file, `module.exports = 'v1';`);
    utimesSync(file, new Date(1_000_000), new Date(1_000_000));
    expect(requireWithCodeCache(file)).toBe('v1');
    writePendingCodeCaches();

    writeFileSync(file, `module.exports = 'v2';`);
    utimesSync(file, new Date(2_000_000), new Date(2_000_000));

    expect(requireWithCodeCache(file)).toBe('v2');
  });

  it('reports a line of the file itself in a stack trace', () => {
    const file = join(dir, 'bundle.cjs');
    writeFileSync(file, `\n\nexports.fail = () => { throw new Error('here'); };`);
    const loaded = requireWithCodeCache(file) as { fail: () => void };
    let stack = '';
    try {
      loaded.fail();
    } catch (err) {
      stack = (err as Error).stack ?? '';
    }
    expect(stack).toContain(`${file}:3:`);
  });
});
