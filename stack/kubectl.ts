import { spawnSync } from 'node:child_process';
import { binaryPath } from './build';
import { kubeconfigPath } from './pki';

/** Runs the stack's own kubectl as admin (of the first cluster unless another kubeconfig is given); throws with kubectl's message when it fails. */
export function kubectl(args: string[], input?: string, kubeconfig = kubeconfigPath('admin')): string {
  const out = spawnSync(binaryPath('kubectl'), [`--kubeconfig=${kubeconfig}`, ...args], {
    input,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (out.error) throw out.error;
  if (out.status !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${out.stderr.trim()}`);
  return out.stdout;
}
