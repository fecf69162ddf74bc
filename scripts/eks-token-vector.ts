/**
 * Regenerates test/vectors/eks-get-token.json with the reference implementation, `aws eks
 * get-token` from the pinned awscli (installed into a venv in the cache outside the
 * repository). The vector is committed; tests only read it.
 *
 *   npx tsx scripts/eks-token-vector.ts
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ensurePythonTool } from '../stack/python-tools';

const root = join(__dirname, '..');
const python = ensurePythonTool('awscli', (l) => console.log(l));
const r = spawnSync(python, [join(__dirname, 'eks-token-vector.py'), join(root, 'test', 'vectors', 'eks-get-token.json')], { stdio: 'inherit' });
process.exit(r.status ?? 1);
