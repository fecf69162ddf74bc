/**
 * The bundler plugins every bundle is built with (deploy/esbuild-plugins.js: the Lambda
 * functions and the dsgitops command): a package kept as text is compiled on first use and
 * works there, as the real package.
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
  await build({ entryPoints: [entry], outfile, bundle: true, platform: 'node', format: 'cjs', target: 'node24', minify: true, keepNames: true, plugins, nodePaths: [join(repoRoot, 'node_modules')], logLevel: 'error' });
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
  it("compiles undici only when client-node first uses it: loading client-node does not, a watch does, and the watch reads the server's events", async () => {
    const requests: { url?: string; authorization?: string }[] = [];
    const server = createServer((req, res) => {
      requests.push({ url: req.url, authorization: req.headers.authorization });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a', resourceVersion: '6' } } })}\n`);
      res.end(`${JSON.stringify({ type: 'DELETED', object: { metadata: { name: 'a', resourceVersion: '7' } } })}\n`);
    });
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    try {
      const port = (server.address() as { port: number }).port;
      const out = await bundle('watch', `
        const vm = require('node:vm');
        const compiled = [];
        const run = vm.runInThisContext;
        vm.runInThisContext = (code, options) => { compiled.push(options.filename); return run(code, options); };
        const k8s = require('@kubernetes/client-node');
        const afterLoad = [...compiled];
        const kc = new k8s.KubeConfig();
        kc.loadFromOptions({
          clusters: [{ name: 'c', server: 'http://127.0.0.1:${port}', skipTLSVerify: true }],
          users: [{ name: 'u', token: 'the-token' }],
          contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
          currentContext: 'x',
        });
        const events = [];
        new k8s.Watch(kc).watch('/api/v1/pods', { resourceVersion: '5' }, (type, obj) => events.push([type, obj.metadata.name]), (err) => {
          console.log(JSON.stringify({ afterLoad, compiled, events, err: err ? String(err) : null }));
        });
      `);
      const got = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, [out], { encoding: 'utf8', timeout: 60_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
      });
      expect(JSON.parse(got.trim())).toEqual({ afterLoad: [], compiled: ['undici.js'], events: [['ADDED', 'a'], ['DELETED', 'a']], err: null });
      expect(requests).toEqual([{ url: '/api/v1/pods?watch=true&resourceVersion=5', authorization: 'Bearer the-token' }]);
    } finally {
      server.close();
    }
  });
});
