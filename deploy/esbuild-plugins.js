// esbuild plugins for the Lambda bundles (serverless.yml: custom.esbuild.plugins).
//
// @kubernetes/client-node's index re-exports every module it has (exec, attach, port-forward,
// cp, metrics, top, informers...), and its package.json does not say that its modules are free
// of side effects, so esbuild keeps them all, and loading a handler runs them all. Its modules
// only declare things, so they are marked side-effect free here: esbuild then keeps only those
// the handlers reach. Its imports are relative paths to .js files, resolved here directly
// (asking esbuild to resolve each one again would make the build several times slower).
const { existsSync } = require('node:fs');
const path = require('node:path');

const clientNodeRoot = path.dirname(require.resolve('@kubernetes/client-node/package.json'));
const clientNodeDist = path.join(clientNodeRoot, 'dist') + path.sep;
const clientNodeMain = path.join(clientNodeRoot, require('@kubernetes/client-node/package.json').main);

const clientNodeWithoutSideEffects = {
  name: 'client-node-without-side-effects',
  setup(build) {
    build.onResolve({ filter: /^@kubernetes\/client-node$/ }, () => ({ path: clientNodeMain, sideEffects: false }));
    build.onResolve({ filter: /^\.\.?\/.*\.js$/ }, (args) => {
      if (!args.importer.startsWith(clientNodeDist)) return undefined;
      const file = path.resolve(args.resolveDir, args.path);
      return existsSync(file) ? { path: file, sideEffects: false } : undefined;
    });
  },
};

// Packages kept in the bundle as text, compiled when first used, instead of being parsed with the
// rest at every start: a JavaScript parser skips a string far faster than it pre-parses the code
// in it. Each is bundled on its own; what it requires at run time is Node's built-ins only.
//
// - openpgp.js (0.4 MB minified) is used only to verify OpenPGP-signed commits (VERIFY_COMMITS).
//   lib/source/verify-commit.ts imports it dynamically, so it is compiled when first required.
// - undici (1 MB) is client-node 2.x's HTTP client, for its watches (and proxies): client-node
//   imports it at load but uses it only inside functions, and the cluster adapter's own requests
//   go through Node's https. Its stand-in has the package's exports as getters (their names read
//   from the package at build time), and the first one read compiles it: a pass that opens no
//   watch never does.
// (test/integration/bundle-plugins.test.ts runs bundles so built: signs and verifies with
// openpgp.js, fetches with undici, and counts what was compiled.)
const textPackages = { openpgp: 'on require', undici: 'on first use' };

const packagesAsText = {
  name: 'packages-as-text',
  setup(build) {
    build.onResolve({ filter: /^(openpgp|undici)$/ }, (args) => ({ path: args.path, namespace: 'package-as-text' }));
    build.onLoad({ filter: /.*/, namespace: 'package-as-text' }, async (args) => {
      const o = build.initialOptions;
      const inner = await build.esbuild.build({
        stdin: { contents: `module.exports = require(${JSON.stringify(args.path)});`, resolveDir: __dirname, loader: 'js' },
        bundle: true,
        write: false,
        platform: 'node',
        format: 'cjs',
        target: o.target,
        minify: o.minify,
        minifyWhitespace: o.minifyWhitespace,
        minifySyntax: o.minifySyntax,
        minifyIdentifiers: o.minifyIdentifiers,
        keepNames: o.keepNames,
        legalComments: 'none',
        charset: 'ascii',
        logLevel: 'silent',
      });
      const code = `(function (exports, require, module, __filename, __dirname) {${inner.outputFiles[0].text}\n})`;
      const filename = `${args.path.replace(/\//g, '_')}.js`;
      const compile = `require('node:vm').runInThisContext(${JSON.stringify(code)}, { filename: ${JSON.stringify(filename)} })`;
      if (textPackages[args.path] === 'on require') {
        return { contents: `${compile}(exports, require, module, __filename, __dirname);`, loader: 'js', resolveDir: __dirname };
      }
      const names = Object.keys(require(require.resolve(args.path, { paths: [__dirname] })));
      return {
        contents: [
          'let loaded;',
          'function load() {',
          '  if (!loaded) {',
          '    const m = { exports: {} };',
          `    ${compile}(m.exports, require, m, __filename, __dirname);`,
          '    loaded = m.exports;',
          '  }',
          '  return loaded;',
          '}',
          `for (const name of ${JSON.stringify(names)}) Object.defineProperty(exports, name, { enumerable: true, get: () => load()[name] });`,
        ].join('\n'),
        loader: 'js',
        resolveDir: __dirname,
      };
    });
  },
};

module.exports = [clientNodeWithoutSideEffects, packagesAsText];
