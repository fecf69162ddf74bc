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

// client-node's URL library (whatwg-url, tr46) requires Node's built-in `punycode`, which
// Node.js deprecates with a notice (DEP0040) on every cold start of code outside node_modules,
// as a bundle is. The same code from npm (the `punycode` package) is bundled in its place.
const punycodeFile = require.resolve('punycode/');

const punycodeFromNpm = {
  name: 'punycode-from-npm',
  setup(build) {
    build.onResolve({ filter: /^(node:)?punycode$/ }, () => ({ path: punycodeFile }));
  },
};

// node-fetch 2 (client-node's HTTP library) requires whatwg-url at load, but only uses its URL
// where Node has none (`Url.URL || whatwgUrl.URL`). Every Node this runs on has one, so the
// package is replaced by Node's own URL: its Unicode tables (tr46, about 0.3 MB) are then not
// parsed at every cold start.
const whatwgUrlFromNode = {
  name: 'whatwg-url-from-node',
  setup(build) {
    build.onResolve({ filter: /^whatwg-url$/ }, () => ({ path: 'whatwg-url', namespace: 'node-url' }));
    build.onLoad({ filter: /.*/, namespace: 'node-url' }, () => ({ contents: 'module.exports = { URL: globalThis.URL, URLSearchParams: globalThis.URLSearchParams };', loader: 'js' }));
  },
};

// openpgp.js (0.4 MB minified) is used only to verify OpenPGP-signed commits (VERIFY_COMMITS).
// It is bundled on its own and kept in the bundle as text, compiled when first required,
// instead of being parsed with the rest at every start: a JavaScript parser skips a string far
// faster than it pre-parses the code in it. lib/source/verify-commit.ts imports it dynamically,
// so nothing requires it at load. What it requires at run time is Node's built-ins only.
// (test/integration/bundle-plugins.test.ts signs and verifies with a bundle so built.)
const packagesAsText = {
  name: 'packages-as-text',
  setup(build) {
    build.onResolve({ filter: /^openpgp$/ }, (args) => ({ path: args.path, namespace: 'package-as-text' }));
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
        plugins: [punycodeFromNpm, whatwgUrlFromNode],
        logLevel: 'silent',
      });
      const code = `(function (exports, require, module, __filename, __dirname) {${inner.outputFiles[0].text}\n})`;
      const filename = `${args.path.replace(/\//g, '_')}.js`;
      return {
        contents: `require('node:vm').runInThisContext(${JSON.stringify(code)}, { filename: ${JSON.stringify(filename)} })(exports, require, module, __filename, __dirname);`,
        loader: 'js',
        resolveDir: __dirname,
      };
    });
  },
};

module.exports = [clientNodeWithoutSideEffects, punycodeFromNpm, whatwgUrlFromNode, packagesAsText];
