import { spawnSync } from 'node:child_process';
import { binaryPath } from './build';
import { kubeconfigPath } from './pki';

/** Runs the stack's own kubectl as admin; throws with kubectl's message when it fails. */
export function kubectl(args: string[], input?: string): string {
  const out = spawnSync(binaryPath('kubectl'), [`--kubeconfig=${kubeconfigPath('admin')}`, ...args], {
    input,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (out.error) throw out.error;
  if (out.status !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${out.stderr.trim()}`);
  return out.stdout;
}
