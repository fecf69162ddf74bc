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

module.exports = [clientNodeWithoutSideEffects, punycodeFromNpm];
