import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_RBAC_NAME, DEFAULT_RBAC_USER, rbacObjects, rbacYaml } from '../../lib/rbac';
import { parseAllowedKinds } from '../../lib/bundle/kinds';

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
      expect(verbsOn(role, '', 'pods')).toEqual(['create', 'delete', 'patch']);
      expect(verbsOn(role, '', 'events')).toEqual(['create', 'patch']);
    }
  });

  it('with *, grants reads and writes in one ClusterRole', () => {
    const objects = rbacObjects({ allowedNamespaces: '*', user: 'u', name: 'n' }) as Obj[];

    expect(objects.map((o) => o.kind)).toEqual(['ClusterRole', 'ClusterRoleBinding', 'ClusterRole', 'ClusterRoleBinding']);
    expect(verbsOn(objects[0], 'apps', 'daemonsets')).toEqual(['create', 'delete', 'get', 'list', 'patch', 'update', 'watch']);
    expect(verbsOn(objects[0], '', 'pods')).toEqual(['create', 'delete', 'get', 'list', 'patch', 'watch']);
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

describe('rules for ALLOWED_KINDS', () => {
  const everyVerb = (objects: Obj[]) => objects.flatMap((o) => (o.rules ?? []).flatMap((r) => r.verbs));

  it('never grants bind, escalate or impersonate, whatever the kinds', () => {
    for (const kinds of ['*', 'DaemonSet,Role,RoleBinding,rbac.authorization.k8s.io/ClusterRole,ClusterRoleBinding']) {
      for (const allowedNamespaces of ['*', ['logging']] as const) {
        const objects = rbacObjects({ allowedNamespaces: allowedNamespaces as '*' | string[], user: 'u', name: 'n', allowedKinds: parseAllowedKinds(kinds, 'ALLOWED_KINDS', []) }) as Obj[];
        expect(everyVerb(objects).filter((v) => ['bind', 'escalate', 'impersonate', '*'].includes(v))).toEqual([]);
      }
    }
  });

  it('grants the default namespaced kinds only in the allowed namespaces, and a listed cluster-scoped kind cluster-wide', () => {
    const objects = rbacObjects({ allowedNamespaces: ['logging'], user: 'u', name: 'n', allowedKinds: parseAllowedKinds('DaemonSet,ConfigMap,ServiceAccount,Namespace,apiextensions.k8s.io/CustomResourceDefinition', 'ALLOWED_KINDS', []) }) as Obj[];
    const clusterRole = objects.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'n')!;
    const role = objects.find((o) => o.kind === 'Role')!;
    expect(verbsOn(role, '', 'configmaps')).toEqual(['create', 'delete', 'get', 'list', 'patch', 'update', 'watch']);
    expect(verbsOn(clusterRole, '', 'configmaps')).toEqual([]);
    expect(verbsOn(clusterRole, '', 'namespaces')).toEqual(['create', 'delete', 'get', 'list', 'patch', 'update', 'watch']);
    expect(verbsOn(clusterRole, 'apiextensions.k8s.io', 'customresourcedefinitions')).toContain('create');
    expect(verbsOn(role, '', 'secrets')).toEqual([]);
  });
});
