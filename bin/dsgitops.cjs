#!/usr/bin/env node
// The dsgitops command runs its TypeScript through tsx, a runtime dependency.
require('tsx/cjs');
require('./dsgitops.ts');
