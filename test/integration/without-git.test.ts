/**
 * Rollouts under way do not wait for Git: when the repository cannot be fetched, or its head
 * is not trusted (VERIFY_COMMITS), a pass still takes the lease, drives and judges the
 * rollouts recorded in S3, and rolls back a stalled one, and applies nothing new.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reconcile } from '../../lib/reconcile';
import { autoRollback } from '../../lib/rollback';
import { adminClients } from '../support/cluster';
import { git } from '../support/git';
import { dsYaml } from '../support/manifests';
import { cleanupScenarios, onCleanup, scenario } from '../support/scenario';

jest.setTimeout(300_000);

const { apps } = adminClients();

afterAll(cleanupScenarios);

async function imageOf(ns: string): Promise<string | undefined> {
  return (await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns })).spec?.template.spec?.containers[0].image;
}

describe('a pass while Git cannot be fetched', () => {
  it('drives the rollout under way, judges it stalled and rolls it back, and reports why Git was not read', async () => {
    const { ns, git: repo, deps } = await scenario('gitless', { PROGRESS_DEADLINE_SECONDS: '10', AUTO_ROLLBACK: 'true' });
    repo.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: '100%' })).commit('v1');
    expect((await reconcile(deps())).daemonSets[0]).toMatchObject({ action: 'create', rollout: { phase: 'complete' } });
    // Every pod of v2 takes 60 s to become Ready: longer than the 10 s deadline.
    repo.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: '100%', podAnnotations: { 'pod-ready.stage.kwok.x-k8s.io/delay': '60s' } })).commit('v2: slow');
    const applied = await reconcile(deps(), { wait: false });
    expect(applied.daemonSets[0]).toMatchObject({ applied: true, revision: 2, rollout: { phase: 'progressing' } });

    // The git server loses the repository.
    renameSync(repo.bare, `${repo.bare}.gone`);
    const report = await reconcile(deps(), {}, autoRollback);

    expect(report.result).toBe('failed');
    expect(report.error).toMatchObject({ reason: 'SourceUnavailable', message: expect.stringMatching(/^git fetch of file:\/\/.* at main failed/) });
    expect(report.leaseTaken).toBe(true);
    expect(report.daemonSets).toHaveLength(1);
    expect(report.daemonSets[0]).toMatchObject({ key: `${ns}/agent`, action: 'unchanged', applied: false, rollout: { revision: 2, phase: 'stalled' } });
    expect(report.daemonSets[0].message).toMatch(/^Git's head not read this pass: revision 2's rollout \(progressing\) is driven from the cluster and S3; nothing new is applied; .*rolled back from revision 2 to revision 1/);
    expect(await imageOf(ns)).toBe('registry.local/agent:1.0');
    const state = (await deps().store.getState(ns, 'agent'))!.value;
    expect(state.pin).toMatchObject({ revision: 1 });
    expect((await deps().store.getRevision(ns, 'agent', 2))!.value.outcome).toBe('rolled-back');
  });

  it('takes no lease when no rollout is under way', async () => {
    const { ns, git: repo, deps } = await scenario('gitless-idle');
    repo.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0' })).commit('v1');
    await reconcile(deps());
    renameSync(repo.bare, `${repo.bare}.gone`);
    const report = await reconcile(deps());
    expect(report).toMatchObject({ result: 'failed', error: { reason: 'SourceUnavailable' }, daemonSets: [] });
    expect(report.leaseTaken).toBeUndefined();
  });
});

describe('a pass whose head is not trusted (VERIFY_COMMITS)', () => {
  it('drives the trusted rollout under way to its end, and reads nothing of the untrusted head', async () => {
    const keys = mkdtempSync(join(tmpdir(), 'dsgitops-ssh-'));
    onCleanup(() => rmSync(keys, { recursive: true, force: true }));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'alice@example.com', '-f', join(keys, 'alice')]);
    const { ns, git: repo, deps } = await scenario('untrusted-head', { VERIFY_COMMITS: 'true', TRUSTED_SSH_KEYS: readFileSync(join(keys, 'alice.pub'), 'utf8') });
    const signedCommit = (message: string) => {
      git(repo.work, ['add', '-A']);
      git(repo.work, ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${join(keys, 'alice.pub')}`, 'commit', '-S', '--quiet', '-m', message]);
      git(repo.work, ['push', '--quiet', 'origin', 'HEAD:main']);
    };
    repo.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:1.0', maxUnavailable: '100%' }));
    signedCommit('v1');
    await reconcile(deps());
    repo.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:2.0', maxUnavailable: '100%', podAnnotations: { 'pod-ready.stage.kwok.x-k8s.io/delay': '5s' } }));
    signedCommit('v2');
    expect((await reconcile(deps(), { wait: false })).daemonSets[0]).toMatchObject({ applied: true, revision: 2, rollout: { phase: 'progressing' } });

    // An unsigned head, with a change and a file that does not parse: neither is read.
    repo.write('a.yaml', dsYaml({ name: 'agent', namespace: ns, image: 'registry.local/agent:3.0' })).write('broken.yaml', 'kind: [unclosed\n');
    const untrusted = repo.commit('v3, unsigned');
    const report = await reconcile(deps());

    expect(report).toMatchObject({ result: 'failed', error: { reason: 'CommitUntrusted' }, leaseTaken: true, problems: [] });
    expect(report.source?.commit?.sha).toBe(untrusted);
    expect(report.daemonSets).toEqual([expect.objectContaining({ key: `${ns}/agent`, action: 'unchanged', applied: false, revision: 2, rollout: expect.objectContaining({ revision: 2, phase: 'complete' }) })]);
    expect(await imageOf(ns)).toBe('registry.local/agent:2.0');
    expect((await deps().store.getState(ns, 'agent'))!.value).toMatchObject({ currentRevision: 2, lastHealthyRevision: 2, rollout: { phase: 'complete' } });
  });
});
