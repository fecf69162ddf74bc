/**
 * Provenance where operators already look: `kubectl rollout history ds/NAME`, run with the
 * cluster's own kubectl against the ControllerRevisions the DaemonSet controller made, names
 * the commit behind each revision without this tool at hand.
 */
import { spawnSync } from 'node:child_process';
import { CHANGE_CAUSE_ANNOTATION } from '../../lib/labels';
import { reconcile } from '../../lib/reconcile';
import { rollback } from '../../lib/rollback';
import { adminClients, stackEnv, waitFor } from '../support/cluster';
import { dsYaml } from '../support/manifests';
import { deleteStorePrefix } from '../support/reconciler';
import { cleanupScenarios, onCleanup, scenario } from '../support/scenario';

jest.setTimeout(300_000);

const { apps } = adminClients();
afterAll(cleanupScenarios);

/** The stack's kubectl as admin, as an operator runs it. */
function kubectl(args: string[]): string {
  const env = stackEnv();
  const out = spawnSync(env.KUBECTL, [`--kubeconfig=${env.KUBECONFIG}`, ...args], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${out.stderr}`);
  return out.stdout;
}

/** `kubectl rollout history`, parsed into revision -> CHANGE-CAUSE. */
function rolloutHistory(ns: string, name: string): Map<number, string> {
  const rows = new Map<number, string>();
  for (const line of kubectl(['rollout', 'history', `ds/${name}`, '-n', ns]).split('\n')) {
    const m = /^(\d+)\s+(.*?)\s*$/.exec(line);
    if (m) rows.set(Number(m[1]), m[2]);
  }
  return rows;
}

async function changeCause(ns: string, name: string): Promise<string | undefined> {
  return (await apps.readNamespacedDaemonSet({ name, namespace: ns })).metadata?.annotations?.[CHANGE_CAUSE_ANNOTATION];
}

describe('kubernetes.io/change-cause', () => {
  it('names the commit of each revision in kubectl rollout history, and the rollback on the DaemonSet', async () => {
    const { ns, git, deps, config } = await scenario('cause');
    onCleanup(() => deleteStorePrefix(config));
    const sha1 = git.write('agent.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0' })).commit('agent 1.0: first release');
    await reconcile(deps());
    const sha2 = git.write('agent.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0' })).commit('agent 2.0\n\nA body that is not part of the cause.');
    const second = await reconcile(deps());
    expect(second.daemonSets.find((d) => d.name === 'agent')).toMatchObject({ action: 'update', applied: true });

    const history = await waitFor('the controller to record two ControllerRevisions', async () => {
      const h = rolloutHistory(ns, 'agent');
      return h.size === 2 ? h : undefined;
    });
    expect([...history.entries()]).toEqual([
      [1, `${sha1.slice(0, 7)} agent 1.0: first release`],
      [2, `${sha2.slice(0, 7)} agent 2.0`],
    ]);

    // A commit that leaves this manifest alone changes neither the DaemonSet nor its history.
    git.write('other.yaml', dsYaml({ name: 'other', namespace: ns })).commit('another agent');
    const third = await reconcile(deps());
    expect(third.daemonSets.find((d) => d.name === 'agent')).toMatchObject({ action: 'unchanged', applied: false });
    expect(await changeCause(ns, 'agent')).toBe(`${sha2.slice(0, 7)} agent 2.0`);

    await rollback(deps(), { namespace: ns, name: 'agent', toRevision: 1, reason: '2.0 drops logs', by: 'alice' });
    expect(await changeCause(ns, 'agent')).toBe('rollback to revision 1 by alice: 2.0 drops logs');
    // The controller reuses the ControllerRevision of a template it already has and only
    // renumbers it, as for kubectl rollout undo: its cause stays the commit that template came from.
    const after = await waitFor('the controller to renumber the restored template', async () => {
      const h = rolloutHistory(ns, 'agent');
      return h.has(3) ? h : undefined;
    });
    expect([...after.entries()]).toEqual([
      [2, `${sha2.slice(0, 7)} agent 2.0`],
      [3, `${sha1.slice(0, 7)} agent 1.0: first release`],
    ]);
  });

  it('a pass after the stamp was added is still a no-op', async () => {
    const { ns, git, deps, config } = await scenario('causenoop');
    onCleanup(() => deleteStorePrefix(config));
    git.write('agent.yaml', dsYaml({ name: 'agent', namespace: ns })).commit('agent');
    await reconcile(deps());
    // Someone restarts the rollout: the generation moves and the pass must dry-run; the change-cause must not show as a difference.
    kubectl(['rollout', 'restart', 'ds/agent', '-n', ns]);
    const pass = await reconcile(deps());
    expect(pass.daemonSets.find((d) => d.name === 'agent')).toMatchObject({ action: 'unchanged', applied: false });
  });
});
