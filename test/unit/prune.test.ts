import { parseAllowedKinds } from '../../lib/bundle/kinds';
import { presentInGit } from '../../lib/bundle/inventory-step';
import { decideOrphans, listedByName, orphansOf } from '../../lib/bundle/prune';
import type { DesiredObject } from '../../lib/bundle/objects';
import type { InventoryEntry } from '../../lib/store/inventory';
import { policy } from './fixtures';

const e = (kind: string, name: string, namespace?: string, group = '', file = 'agent.yaml'): InventoryEntry => ({ group, version: 'v1', kind, name, ...(namespace ? { namespace } : {}), file });
const obj = (kind: string, name: string, namespace?: string, group = '', extra: Partial<DesiredObject> = {}): DesiredObject => ({
  id: `${kind} ${namespace ? `${namespace}/` : ''}${name}`, apiVersion: group ? `${group}/v1` : 'v1', group, kind, name, namespace,
  namespaced: namespace !== undefined, source: { file: 'agent.yaml', document: 1 }, manifest: {}, digest: 'sha256:0', ...extra,
});
const kinds = (raw: string) => parseAllowedKinds(raw, 'ALLOWED_KINDS', []);
const source = (objects: DesiredObject[], extra: Partial<Parameters<typeof presentInGit>[0]> = {}) => presentInGit({ commit: 'c', objects, refused: [], problems: [], complete: true, ...extra });

describe('orphansOf', () => {
  const recorded = [e('ConfigMap', 'config', 'agents'), e('ServiceAccount', 'agent', 'agents'), e('DaemonSet', 'agent', 'agents', 'apps')];

  it('names what the inventory holds and Git no longer does, and never a DaemonSet (those have their own records)', () => {
    const orphans = orphansOf(recorded, source([obj('ConfigMap', 'config', 'agents')]));
    expect(orphans.map((o) => `${o.kind} ${o.name}`)).toEqual(['ServiceAccount agent']);
  });

  it('takes a document that is in Git but refused (kinds policy, invalid, duplicate) as present', () => {
    const present = source([], { refused: [{ kind: 'ServiceAccount', namespace: 'agents', name: 'agent', source: { file: 'agent.yaml', document: 2 }, why: 'not allowed' }, { kind: 'ConfigMap', name: 'config', source: { file: 'agent.yaml', document: 3 }, why: 'no namespace yet' }] });
    expect(orphansOf(recorded, present)).toEqual([]);
  });

  it('takes nothing from a file with an error this pass as removed', () => {
    const present = source([], { problems: [{ file: 'agent.yaml', document: 4, code: 'schema', severity: 'error', message: 'metadata.name is required' }] });
    expect(orphansOf(recorded, present)).toEqual([]);
    const elsewhere = source([], { problems: [{ file: 'other.yaml', code: 'schema', severity: 'error', message: 'x' }, { file: 'agent.yaml', code: 'kind-not-allowed', severity: 'skipped', message: 'y' }] });
    expect(orphansOf(recorded, elsewhere)).toHaveLength(2);
  });

  it('matches an object of a kind whose scope only discovery knows by kind and name', () => {
    const probe = e('NodeProbe', 'reach', 'agents', 'probes.example.dev');
    expect(orphansOf([probe], source([obj('NodeProbe', 'reach', undefined, 'probes.example.dev', { namespaced: undefined })]))).toEqual([]);
  });
});

describe('decideOrphans', () => {
  const ctx = (overrides: Parameters<typeof policy>[0] = {}, extra: { sourceComplete?: boolean; needed?: Map<string, string> } = {}) => ({
    policy: policy({ prune: true, allowedKinds: kinds('DaemonSet,ConfigMap,Secret,ServiceAccount,Namespace,rbac.authorization.k8s.io/ClusterRole'), ...overrides }),
    sourceComplete: extra.sourceComplete ?? true,
    needed: extra.needed ?? new Map(),
  });

  it('deletes nothing with PRUNE=false, and says what PRUNE=true would do with each', () => {
    const out = decideOrphans([e('ConfigMap', 'old', 'agents'), e('PriorityClass', 'agent-critical', undefined, 'scheduling.k8s.io')], ctx({ prune: false }));
    expect(out.map((d) => d.prune)).toEqual([false, false]);
    expect(out.find((d) => d.id === 'ConfigMap agents/old')!.message).toMatch(/PRUNE=false.*PRUNE=true would delete it/);
    expect(out.find((d) => d.id === 'PriorityClass agent-critical')!.message).toMatch(/PRUNE=true would keep it too: cluster-scoped/);
  });

  it('deletes nothing while some manifest could not be read', () => {
    const out = decideOrphans([e('ConfigMap', 'old', 'agents')], ctx({}, { sourceComplete: false }));
    expect(out[0]).toMatchObject({ prune: false, message: expect.stringMatching(/could not be read this pass, so nothing is pruned/) });
  });

  it('deletes a cluster-scoped object only when ALLOWED_KINDS names its kind, never through *', () => {
    const ns = e('Namespace', 'agents');
    const role = e('ClusterRole', 'agent', undefined, 'rbac.authorization.k8s.io');
    const binding = e('ClusterRoleBinding', 'agent', undefined, 'rbac.authorization.k8s.io');
    const listed = decideOrphans([ns, role, binding], ctx());
    expect(Object.fromEntries(listed.map((d) => [d.id, d.prune]))).toEqual({ 'Namespace agents': true, 'ClusterRole agent': true, 'ClusterRoleBinding agent': false });
    expect(listed.find((d) => !d.prune)!.message).toContain('ALLOWED_KINDS lists rbac.authorization.k8s.io/ClusterRoleBinding by name');
    const star = decideOrphans([ns, role, e('ConfigMap', 'old', 'agents')], ctx({ allowedKinds: '*' }));
    expect(Object.fromEntries(star.map((d) => [d.id, d.prune]))).toEqual({ 'Namespace agents': false, 'ClusterRole agent': false, 'ConfigMap agents/old': true });
  });

  it('a listed kind of another group is not this one', () => {
    expect(listedByName({ allowedKinds: kinds('DaemonSet,example.dev/Namespace') }, { group: '', kind: 'Namespace' })).toBe(false);
    expect(listedByName({ allowedKinds: kinds('DaemonSet,Namespace') }, { group: '', kind: 'Namespace' })).toBe(true);
  });

  it('keeps what a running or kept revision needs, and what lies outside ALLOWED_NAMESPACES', () => {
    const needed = new Map([['/Secret/agents/agent-token', 'revision 3 of DaemonSet agents/agent, kept for rollback, names it (volumes[0].secret)']]);
    const out = decideOrphans([e('Secret', 'agent-token', 'agents'), e('ConfigMap', 'old', 'elsewhere')], ctx({ allowedNamespaces: ['agents'] }, { needed }));
    expect(out.find((d) => d.id === 'Secret agents/agent-token')).toMatchObject({ prune: false, message: expect.stringContaining('still needed: revision 3 of DaemonSet agents/agent, kept for rollback') });
    expect(out.find((d) => d.id === 'ConfigMap elsewhere/old')).toMatchObject({ prune: false, message: expect.stringContaining('outside ALLOWED_NAMESPACES') });
  });

  it('keeps a Namespace that objects of the source still live in, and a CRD whose API group the source still uses', () => {
    const inUse = { namespaces: new Set(['agents']), groups: new Set(['', 'probes.example.dev']) };
    const all = [e('Namespace', 'agents'), e('Namespace', 'retired'), e('CustomResourceDefinition', 'nodeprobes.probes.example.dev', undefined, 'apiextensions.k8s.io'), e('CustomResourceDefinition', 'widgets.retired.example.dev', undefined, 'apiextensions.k8s.io')];
    const out = decideOrphans(all, { ...ctx({ allowedKinds: kinds('DaemonSet,Namespace,CustomResourceDefinition') }), inUse });
    expect(Object.fromEntries(out.map((d) => [d.id, d.prune]))).toEqual({
      'Namespace agents': false,
      'Namespace retired': true,
      'CustomResourceDefinition nodeprobes.probes.example.dev': false,
      'CustomResourceDefinition widgets.retired.example.dev': true,
    });
    expect(out.find((d) => d.id === 'Namespace agents')!.message).toContain("Git's source still has objects in namespace agents");
  });

  it('orders deletions as the reverse of the apply order: workloads first, Namespaces and CRDs last', () => {
    const all = [
      e('Namespace', 'agents'),
      e('CustomResourceDefinition', 'probes.example.dev', undefined, 'apiextensions.k8s.io'),
      e('ConfigMap', 'config', 'agents'),
      e('Deployment', 'controller', 'agents', 'apps'),
      e('ClusterRole', 'agent', undefined, 'rbac.authorization.k8s.io'),
      e('ClusterRoleBinding', 'agent', undefined, 'rbac.authorization.k8s.io'),
      e('RoleBinding', 'agent', 'agents', 'rbac.authorization.k8s.io'),
      e('ServiceAccount', 'agent', 'agents'),
    ];
    const out = decideOrphans(all, ctx({ allowedKinds: kinds('DaemonSet,Deployment,ConfigMap,ServiceAccount,RoleBinding,Namespace,CustomResourceDefinition,ClusterRole,ClusterRoleBinding') }));
    // Applied: Namespaces and CRDs; ClusterRoles; ClusterRoleBindings; ConfigMaps and ServiceAccounts; RoleBindings; (DaemonSets); Deployments.
    expect(out.map((d) => d.id)).toEqual([
      'Deployment agents/controller',
      'RoleBinding agents/agent',
      'ConfigMap agents/config',
      'ServiceAccount agents/agent',
      'ClusterRoleBinding agent',
      'ClusterRole agent',
      'CustomResourceDefinition probes.example.dev',
      'Namespace agents',
    ]);
    expect(out.every((d) => d.prune)).toBe(true);
  });
});
