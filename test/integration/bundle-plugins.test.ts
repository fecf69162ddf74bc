/**
 * The bundler plugins every bundle is built with (deploy/esbuild-plugins.js: the Lambda
 * functions and the dsgitops command): a package kept as text is compiled on first use and
 * works there, as the real package; Node's URL stands in for whatwg-url in node-fetch.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { repoRoot } from '../../stack/paths';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const plugins = require('../../deploy/esbuild-plugins.js') as Plugin[];

jest.setTimeout(120_000);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dsgitops-plugins-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function bundle(name: string, source: string): Promise<string> {
  const entry = join(dir, `${name}.ts`);
  writeFileSync(entry, source);
  const outfile = join(dir, `${name}.js`);
  await build({ entryPoints: [entry], outfile, bundle: true, platform: 'node', format: 'cjs', target: 'node20', minify: true, keepNames: true, plugins, nodePaths: [join(repoRoot, 'node_modules')], logLevel: 'error' });
  return outfile;
}

describe('bundle plugins', () => {
  it('keeps openpgp.js as text until it is imported, then signs and verifies with it', async () => {
    const out = await bundle('pgp', `
      const before = Object.keys(require.cache).length;
      (async () => {
        const openpgp = await import('openpgp');
        const { privateKey, publicKey } = await openpgp.generateKey({ userIDs: [{ name: 'Test', email: 'test@example.com' }], type: 'curve25519', format: 'object' });
        const text = 'signed by the bundled openpgp.js';
        const signature = await openpgp.sign({ message: await openpgp.createMessage({ text }), signingKeys: privateKey, detached: true });
        const good = await openpgp.verify({ message: await openpgp.createMessage({ text }), signature: await openpgp.readSignature({ armoredSignature: signature as string }), verificationKeys: publicKey });
        await good.signatures[0].verified;
        const bad = await openpgp.verify({ message: await openpgp.createMessage({ text: text + '!' }), signature: await openpgp.readSignature({ armoredSignature: signature as string }), verificationKeys: publicKey });
        const refused = await bad.signatures[0].verified.then(() => false, () => true);
        console.log(JSON.stringify({ verified: true, refused, modulesLoaded: Object.keys(require.cache).length - before }));
      })().catch((err) => { console.error(err); process.exit(1); });
    `);
    const code = readFileSync(out, 'utf8');
    // The package is in the bundle as a string, compiled under its own file name when imported.
    expect(code).toContain('runInThisContext(');
    expect(code).toContain('filename:"openpgp.js"');
    const result = JSON.parse(execFileSync(process.execPath, [out], { encoding: 'utf8' }).trim()) as { verified: boolean; refused: boolean; modulesLoaded: number };
    expect(result).toEqual({ verified: true, refused: true, modulesLoaded: 0 });
  });

  it("gives node-fetch Node's URL instead of whatwg-url, and node-fetch still fetches", async () => {
    const server = createServer((req, res) => res.end(JSON.stringify({ url: req.url })));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const out = await bundle('fetch', `
        import fetch from 'node-fetch';
        fetch('http://127.0.0.1:${port}/a/b?c=d').then((r) => r.json()).then((j) => console.log(JSON.stringify(j)), (err) => { console.error(err); process.exit(1); });
      `);
      expect(readFileSync(out, 'utf8')).not.toContain('mappingTable');
      const got = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, [out], { encoding: 'utf8' }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
      });
      expect(JSON.parse(got.trim())).toEqual({ url: '/a/b?c=d' });
    } finally {
      server.close();
    }
  });
});
