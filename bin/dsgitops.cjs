#!/usr/bin/env node
// The dsgitops command. It runs dist/dsgitops.cjs, the bundle `npm ci` builds (the prepare
// script; `npm run build` builds it again). Without it (`npm ci --ignore-scripts`), it says how
// to build it and runs the TypeScript through tsx meanwhile, which starts a second or two slower.
const { existsSync } = require('node:fs');
const { join, resolve } = require('node:path');

const root = resolve(__dirname, '..');
const bundles = ['dsgitops.cjs', 'commands.cjs'].map((f) => join(root, 'dist', f));
const missing = bundles.find((f) => !existsSync(f));

if (!missing) {
  require(bundles[0]);
} else {
  const build = `build it with: cd ${root} && npm run build`;
  let tsx;
  try {
    tsx = require.resolve('tsx/cjs');
  } catch {
    tsx = undefined;
  }
  if (tsx && existsSync(join(__dirname, 'dsgitops.ts'))) {
    process.stderr.write(`dsgitops: ${missing} is missing, so the TypeScript runs through tsx (slower to start); ${build}\n`);
    require(tsx);
    require('./dsgitops.ts');
  } else {
    process.stderr.write(`dsgitops: ${missing} is missing; ${build}\n`);
    process.exit(1);
  }
}
