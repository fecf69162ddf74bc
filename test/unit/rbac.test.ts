import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_RBAC_NAME, DEFAULT_RBAC_USER, rbacObjects, rbacYaml } from '../../lib/rbac';

interface Obj { kind: string; metadata: { name: string; namespace?: string }; rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[] }

function verbsOn(obj: Obj, group: string, resource: string): string[] {
  return (obj.rules ?? []).filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource)).flatMap((r) => r.verbs).sort();
}

describe('rbacObjects', () => {
  it('with a namespace list, grants cluster-wide only reads, and writes with a Role in each listed namespace', () => {
    const objects = rbacObjects({ allowedNamespaces: ['logging', 'monitoring'], user: 'daemonset-gitops', name: 'daemonset-gitops' }) as Obj[];

    const clusterRole = objects.find((o) => o.kind === 'ClusterRole')!;
    for (const rule of clusterRole.rules!) expect(rule.verbs.every((v) => ['get', 'list', 'watch'].includes(v))).toBe(true);
    const roles = objects.filter((o) => o.kind === 'Role');
    expect(roles.map((r) => r.metadata.namespace)).toEqual(['logging', 'monitoring']);
    expect(objects.filter((o) => o.kind === 'RoleBinding').map((r) => r.metadata.namespace)).toEqual(['logging', 'monitoring']);
    for (const role of roles) {
      expect(verbsOn(role, 'apps', 'daemonsets')).toEqual(['create', 'delete', 'patch', 'update']);
      expect(verbsOn(role, '', 'pods')).toEqual(['delete']);
      expect(verbsOn(role, '', 'events')).toEqual(['create', 'patch']);
    }
  });

  it('with *, grants reads and writes in one ClusterRole', () => {
    const objects = rbacObjects({ allowedNamespaces: '*', user: 'u', name: 'n' }) as Obj[];

    expect(objects.map((o) => o.kind)).toEqual(['ClusterRole', 'ClusterRoleBinding', 'ClusterRole', 'ClusterRoleBinding']);
    expect(verbsOn(objects[0], 'apps', 'daemonsets')).toEqual(['create', 'delete', 'get', 'list', 'patch', 'update', 'watch']);
    expect(verbsOn(objects[0], '', 'pods')).toEqual(['delete', 'get', 'list', 'watch']);
  });
});

describe('the reader', () => {
  it('may only read, whatever the namespaces', () => {
    for (const allowedNamespaces of ['*', ['logging']] as const) {
      const objects = rbacObjects({ allowedNamespaces: allowedNamespaces as '*' | string[], user: 'u', name: 'n' }) as (Obj & { subjects?: { name: string }[] })[];
      const role = objects.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'n-reader')!;
      const binding = objects.find((o) => o.kind === 'ClusterRoleBinding' && o.metadata.name === 'n-reader')!;
      expect(role.rules!.flatMap((r) => r.verbs).every((v) => ['get', 'list', 'watch'].includes(v))).toBe(true);
      expect(binding.subjects).toEqual([expect.objectContaining({ kind: 'User', name: 'u-reader' })]);
    }
  });
});

describe('deploy/rbac.yaml', () => {
  it('is what dsgitops rbac prints for any namespace', () => {
    const file = readFileSync(join(__dirname, '..', '..', 'deploy', 'rbac.yaml'), 'utf8');

    expect(file).toBe(rbacYaml({ allowedNamespaces: '*', user: DEFAULT_RBAC_USER, name: DEFAULT_RBAC_NAME }));
    expect(parseAllDocuments(file).map((d) => (d.toJSON() as Obj).kind)).toEqual(['ClusterRole', 'ClusterRoleBinding', 'ClusterRole', 'ClusterRoleBinding']);
  });
});
