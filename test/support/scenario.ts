/**
 * One integration scenario: a throwaway namespace, a git repository, and a configuration
 * with its own CLUSTER_NAME (so its S3 state and lease are its own). Everything made here is
 * removed by `cleanupScenarios`, which the test file calls in afterAll.
 */
import type { Config } from '../../lib/config';
import type { Deps } from '../../lib/deps';
import { reconcile } from '../../lib/reconcile';
import type { ReconcileReport } from '../../lib/report';
import { adminClients, createNamespace, deleteNamespace, waitFor } from './cluster';
import { TestRepo } from './git';
import { stackConfig, stackDeps } from './reconciler';

export interface Scenario {
  ns: string;
  git: TestRepo;
  config: Config;
  deps: () => Deps;
}

const cleanups: (() => Promise<void> | void)[] = [];

export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export async function scenario(prefix: string, env: Record<string, string> = {}): Promise<Scenario> {
  const { core } = adminClients();
  const ns = await createNamespace(core, prefix);
  const git = new TestRepo();
  cleanups.push(() => deleteNamespace(core, ns), () => git.cleanup());
  const config = stackConfig({ GIT_URL: git.url, ALLOWED_NAMESPACES: ns, ...env });
  return { ns, git, config, deps: () => stackDeps(config) };
}

export async function cleanupScenarios(): Promise<void> {
  while (cleanups.length) await cleanups.shift()!();
}

/** Runs passes until one is not skipped: a run that was killed holds the lease until it expires. */
export function reconcileOnceLeaseFree(config: Config, timeoutMs = 30_000): Promise<ReconcileReport> {
  return waitFor('the dead run\'s lease to expire', async () => {
    const r = await reconcile(stackDeps(config));
    return r.result === 'skipped' ? undefined : r;
  }, timeoutMs, 1000);
}
