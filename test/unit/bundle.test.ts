import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { companionsOf } from '../../lib/bundle/companions';
import { kindAllowed, parseAllowedKinds } from '../../lib/bundle/kinds';
import { expectedInLive, firstDifference, quantityValue } from '../../lib/bundle/normalize';
import { decideObject, stageOf, STAGES_AFTER_DAEMONSETS, STAGES_BEFORE_DAEMONSETS, stamped } from '../../lib/bundle/plan';
import type { Policy } from '../../lib/config';
import { loadManifests } from '../../lib/source/load';

const fixtures = join(__dirname, '..', 'fixtures', 'bundles');

function fixture(name: string, ns = 'lumen'): string {
  return readFileSync(join(fixtures, name), 'utf8').replaceAll('__NS__', ns).replaceAll('__KIND__', 'NodeProbe').replaceAll('__SINGULAR__', 'nodeprobe').replaceAll('__PLURAL__', 'nodeprobes');
}

let repo: string;
beforeEach(() => {
  repo = mkdtempSync(join(tmpdir(), 'dsgitops-bundle-'));
});
afterEach(() => rmSync(repo, { recursive: true, force: true }));

function load(files: Record<string, string>, env: Partial<Record<'ALLOWED_KINDS' | 'ALLOWED_NAMESPACES' | 'DEFAULT_NAMESPACE', string>> = {}) {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(repo, name), text);
  const problems: string[] = [];
  const policy: Pick<Policy, 'allowedNamespaces' | 'allowedKinds' | 'defaultNamespace'> = {
    allowedNamespaces: env.ALLOWED_NAMESPACES ? env.ALLOWED_NAMESPACES.split(',') : '*',
    allowedKinds: env.ALLOWED_KINDS ? parseAllowedKinds(env.ALLOWED_KINDS, 'ALLOWED_KINDS', problems) : undefined,
    defaultNamespace: env.DEFAULT_NAMESPACE,
  };
  expect(problems).toEqual([]);
  return loadManifests(repo, '.', policy, 1 << 20);
}

describe('ALLOWED_KINDS', () => {
  it('allows a bare Kind in any group and group/Kind in that group only; core/ names the core group', () => {
    const kinds = parseAllowedKinds('DaemonSet,ConfigMap,rbac.authorization.k8s.io/ClusterRole,core/Namespace', 'ALLOWED_KINDS', []);
    expect(kindAllowed(kinds, '', 'ConfigMap')).toBe(true);
    expect(kindAllowed(kinds, 'rbac.authorization.k8s.io', 'ClusterRole')).toBe(true);
    expect(kindAllowed(kinds, 'example.dev', 'ClusterRole')).toBe(false);
    expect(kindAllowed(kinds, '', 'Namespace')).toBe(true);
    expect(kindAllowed(kinds, '', 'Secret')).toBe(false);
    expect(kindAllowed('*', 'apiextensions.k8s.io', 'CustomResourceDefinition')).toBe(true);
  });

  it('refuses entries that are not kinds, and a list without DaemonSet, naming the setting', () => {
    const problems: string[] = [];
    parseAllowedKinds('configmap,ConfigMap', 'ALLOWED_KINDS', problems);
    expect(problems).toEqual([
      expect.stringMatching(/^ALLOWED_KINDS contains "configmap", which is not a Kind or group\/Kind/),
      'ALLOWED_KINDS does not allow DaemonSet: add DaemonSet (daemonset-gitops applies DaemonSets, with the objects they run with)',
    ]);
  });
});

describe('loading a bundle', () => {
  it('with the default kinds, applies the namespaced objects and refuses each cluster-scoped one by file, document, kind and the setting that allows it', () => {
    const result = load({ 'agent.yaml': fixture('node-agent.yaml') });

    // With the versioned copy of the ConfigMap the DaemonSet mounts (config-copies.ts).
    expect(result.objects.map((o) => o.id)).toEqual(['ConfigMap lumen/lumen-agent-config', 'Service lumen/lumen-agent', 'ServiceAccount lumen/lumen-agent', expect.stringMatching(/^ConfigMap lumen\/lumen-agent-config-[0-9a-f]{10}$/)]);
    expect(result.desired.map((d) => d.key)).toEqual(['lumen/lumen-agent']);
    expect(result.problems.map((p) => [p.document, p.code, p.severity])).toEqual([
      [1, 'kind-not-allowed', 'skipped'],
      [3, 'kind-not-allowed', 'skipped'],
      [4, 'kind-not-allowed', 'skipped'],
    ]);
    expect(result.problems[0].message).toBe('Namespace lumen (v1) is not applied: ALLOWED_KINDS (DaemonSet,ConfigMap,Secret,ServiceAccount,Role,RoleBinding,Service) does not allow it; add Namespace to ALLOWED_KINDS to apply it (a cluster-scoped kind: it is applied only when listed by name, or with *)');
  });

  it('holds a DaemonSet whose ServiceAccount is refused, naming the companion, and blocks nothing else', () => {
    const result = load({ 'agent.yaml': fixture('node-agent.yaml') }, { ALLOWED_KINDS: 'DaemonSet,ConfigMap,Service' });

    expect(result.desired).toEqual([]);
    expect(result.objects.map((o) => o.id)).toEqual(['ConfigMap lumen/lumen-agent-config', 'Service lumen/lumen-agent']);
    const held = result.problems.find((p) => p.code === 'companion-refused')!;
    expect(held).toMatchObject({ file: 'agent.yaml', document: 7, key: 'lumen/lumen-agent', severity: 'error' });
    expect(held.message).toMatch(/^held: its ServiceAccount lumen\/lumen-agent \(serviceAccountName\) at agent\.yaml \(document 2\) is not applied, so its pods could not run: ServiceAccount lumen-agent \(v1\) is not applied: ALLOWED_KINDS/);
  });

  it('holds a DaemonSet whose ConfigMap is invalid or outside ALLOWED_NAMESPACES', () => {
    const broken = fixture('node-agent.yaml').replace('name: lumen-agent-config\n  namespace: lumen', 'name: Lumen_Config\n  namespace: lumen').replace('configMap: {name: lumen-agent-config}', 'configMap: {name: Lumen_Config}');
    expect(load({ 'a.yaml': broken }).problems.find((p) => p.code === 'companion-refused')?.message).toMatch(/its ConfigMap lumen\/Lumen_Config \(volumes\[0\]\.configMap\) at a\.yaml \(document 5\)/);
  });

  it('puts namespaced documents without a namespace in DEFAULT_NAMESPACE and says so', () => {
    const result = load({ 'dust.yaml': fixture('no-namespace.yaml') }, { DEFAULT_NAMESPACE: 'agents' });

    expect(result.desired.map((d) => d.key)).toEqual(['agents/dust-agent']);
    expect(result.objects.map((o) => [o.id, o.defaultedNamespace])).toEqual([['ConfigMap agents/dust-agent-config', true], [expect.stringMatching(/^ConfigMap agents\/dust-agent-config-[0-9a-f]{10}$/), undefined]]);
    expect(result.problems.filter((p) => p.code === 'default-namespace').map((p) => [p.severity, p.message])).toEqual([
      ['info', 'ConfigMap dust-agent-config has no namespace: applied in agents (DEFAULT_NAMESPACE)'],
      ['info', 'DaemonSet dust-agent has no namespace: applied in agents (DEFAULT_NAMESPACE)'],
    ]);
  });

  it('with *, takes CRDs, cluster-scoped objects and objects of a CRD of the same source, whose scope comes from the CRD', () => {
    const result = load({ 'crd.yaml': fixture('crd-controller.yaml'), 'agent.yaml': fixture('node-agent.yaml') }, { ALLOWED_KINDS: '*' });
    const probe = result.objects.find((o) => o.kind === 'NodeProbe')!;
    expect(probe).toMatchObject({ namespace: 'lumen', namespaced: true });
    const crd = result.objects.find((o) => o.kind === 'CustomResourceDefinition')!;
    expect(crd.namespace).toBeUndefined();
    expect(result.problems).toEqual([]);
  });

  it('drops what says nothing (creationTimestamp: null, status) but keeps empty maps that mean something', () => {
    const result = load({ 'a.yaml': fixture('node-agent.yaml') });
    const cm = result.objects.find((o) => o.kind === 'ConfigMap')!;
    expect(cm.manifest.metadata).toEqual({ name: 'lumen-agent-config', namespace: 'lumen' });
    const withEmpty = load({ 'b.yaml': 'apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: y, creationTimestamp: null}\nspec:\n  selector: {}\n  ports: [{port: 1}]\nstatus: {loadBalancer: {}}\n' });
    expect(withEmpty.objects.find((o) => o.id === 'Service y/x')!.manifest).toEqual({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x', namespace: 'y' }, spec: { selector: {}, ports: [{ port: 1 }] } });
  });

  it('refuses the same object twice, in both places', () => {
    const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: n}\n';
    const result = load({ 'a.yaml': cm, 'b.yaml': cm });
    expect(result.objects).toEqual([]);
    expect(result.problems.map((p) => [p.file, p.code])).toEqual([['a.yaml', 'duplicate'], ['b.yaml', 'duplicate']]);
  });
});

describe('companionsOf', () => {
  it('finds every way a pod template names a ConfigMap, Secret or ServiceAccount, and leaves out optional ones', () => {
    const refs = companionsOf({
      serviceAccountName: 'sa',
      imagePullSecrets: [{ name: 'pull' }],
      volumes: [
        { name: 'a', configMap: { name: 'cm-vol' } },
        { name: 'b', secret: { secretName: 's-vol' } },
        { name: 'c', projected: { sources: [{ configMap: { name: 'cm-proj' } }, { secret: { name: 's-proj', optional: true } }] } },
      ],
      initContainers: [{ name: 'init', envFrom: [{ secretRef: { name: 's-envfrom' } }] }],
      containers: [{ name: 'main', envFrom: [{ configMapRef: { name: 'cm-envfrom' } }], env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cm-key', key: 'k' } } }, { name: 'Y', valueFrom: { secretKeyRef: { name: 's-key', key: 'k' } } }] }],
    });
    expect(refs.map((r) => `${r.kind}/${r.name}`).sort()).toEqual([
      'ConfigMap/cm-envfrom', 'ConfigMap/cm-key', 'ConfigMap/cm-proj', 'ConfigMap/cm-vol',
      'Secret/pull', 'Secret/s-envfrom', 'Secret/s-key', 'Secret/s-vol', 'ServiceAccount/sa',
    ]);
  });
});

describe('comparing with the live object', () => {
  it('reads quantities as Kubernetes does: 0.05 is 50m, 67108864 is 64Mi, 1e3 is 1k', () => {
    expect(quantityValue('0.05')).toBeCloseTo(quantityValue('50m')!);
    expect(quantityValue('67108864')).toBe(quantityValue('64Mi'));
    expect(quantityValue('1e3')).toBe(quantityValue('1k'));
    expect(quantityValue('fast')).toBeUndefined();
    expect(firstDifference({ cpu: '0.05' }, { cpu: '50m' })).toBeUndefined();
    expect(firstDifference({ cpu: '0.5' }, { cpu: '50m' })).toBe('cpu');
  });

  it('ignores what the API server adds, but not a list item that is missing or changed', () => {
    expect(firstDifference({ ports: [{ port: 80 }] }, { ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }], clusterIP: '10.0.0.1' })).toBeUndefined();
    expect(firstDifference({ ports: [{ port: 80 }, { port: 81 }] }, { ports: [{ port: 80 }] })).toBe('ports');
    expect(firstDifference({ data: { a: '1' } }, { data: { a: '2' } })).toBe('data.a');
  });

  it('expects a Secret\'s stringData as base64 data, which is how the API server stores it', () => {
    const want = expectedInLive({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { token: 'abc' } });
    expect(firstDifference(want, { metadata: { name: 's', uid: 'u' }, data: { token: 'YWJj' }, type: 'Opaque' })).toBeUndefined();
  });

  it('decides create, update (Git changed), unchanged, and drift (corrected, or reported with SELF_HEAL=false)', () => {
    const result = load({ 'a.yaml': fixture('node-agent.yaml') });
    const cm = result.objects.find((o) => o.kind === 'ConfigMap')!;
    const live = { ...(stamped(cm) as object), metadata: { ...(stamped(cm).metadata as object), uid: 'u', resourceVersion: '5' } } as never;
    expect(decideObject(cm, undefined, true).action).toBe('create');
    expect(decideObject(cm, live, true).action).toBe('unchanged');
    const edited = { ...(live as object), data: { 'agent.conf': 'edited' } } as never;
    expect(decideObject(cm, edited, true)).toMatchObject({ action: 'update', apply: true, drift: 'data.agent.conf' });
    expect(decideObject(cm, edited, false)).toMatchObject({ action: 'drifted', apply: false });
    const changed = { ...cm, digest: 'sha256:other' };
    expect(decideObject(changed, live, true)).toMatchObject({ action: 'update', message: 'changed in Git: applied' });
  });

  it('orders Namespaces and CRDs first, then cluster-scoped objects, their bindings, namespaced objects, their bindings, and workloads after the DaemonSets', () => {
    const order = [
      stageOf({ group: '', kind: 'Namespace' }, false),
      stageOf({ group: 'apiextensions.k8s.io', kind: 'CustomResourceDefinition' }, false),
      stageOf({ group: 'rbac.authorization.k8s.io', kind: 'ClusterRole' }, false),
      stageOf({ group: 'rbac.authorization.k8s.io', kind: 'ClusterRoleBinding' }, false),
      stageOf({ group: '', kind: 'ServiceAccount' }, true),
      stageOf({ group: 'probes.example.dev', kind: 'NodeProbe' }, true),
      stageOf({ group: 'rbac.authorization.k8s.io', kind: 'RoleBinding' }, true),
      stageOf({ group: 'apps', kind: 'Deployment' }, true),
    ];
    expect(order).toEqual([0, 0, 1, 2, 3, 3, 4, 6]);
    expect(STAGES_BEFORE_DAEMONSETS.every((s) => s < 5) && STAGES_AFTER_DAEMONSETS.every((s) => s > 5)).toBe(true);
  });
});

describe('the configuration a DaemonSet runs with', () => {
  const annotation = (r: ReturnType<typeof load>) => r.desired[0].manifest.spec.template.metadata.annotations?.['daemonset-gitops.io/config-digest'];

  it('is in its pod template as a digest: a ConfigMap change is a template change and a new digest', () => {
    const before = load({ 'a.yaml': fixture('node-agent.yaml') });
    const after = load({ 'a.yaml': fixture('node-agent.yaml').replace('scrape_interval = 15s', 'scrape_interval = 30s') });

    expect(annotation(before)).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(annotation(after)).not.toBe(annotation(before));
    expect(after.desired[0].digest).not.toBe(before.desired[0].digest);
  });

  it('is absent when the source holds none of it, so DaemonSets alone keep their digests', () => {
    const alone = fixture('node-agent.yaml').split(/^---$/m).filter((d) => /kind: DaemonSet\n/.test(d)).join('---');
    expect(annotation(load({ 'a.yaml': alone }))).toBeUndefined();
  });

  it('holds a Secret only as a digest, never its value', () => {
    const secret = 'apiVersion: v1\nkind: Secret\nmetadata: {name: lumen-agent-config, namespace: lumen}\nstringData: {agent.conf: hunter2-value}\n';
    const withSecret = fixture('node-agent.yaml').replace('configMap: {name: lumen-agent-config}', 'secret: {secretName: lumen-agent-config}');
    const result = load({ 'a.yaml': withSecret, 's.yaml': secret });
    expect(annotation(result)).toMatch(/^sha256:/);
    expect(JSON.stringify(result.desired)).not.toContain('hunter2');
  });
});

describe('the diff plan shows for an object', () => {
  it('shows the ConfigMap lines Git changes, and none the API server added', () => {
    const before = load({ 'a.yaml': fixture('node-agent.yaml') }).objects.find((o) => o.kind === 'ConfigMap')!;
    const live = { ...(stamped(before) as object), metadata: { ...(stamped(before).metadata as object), uid: 'u', resourceVersion: '7', managedFields: [{ manager: 'x' }] } } as never;
    const after = load({ 'a.yaml': fixture('node-agent.yaml').replace('scrape_interval = 15s', 'scrape_interval = 30s') }).objects.find((o) => o.kind === 'ConfigMap')!;

    const diff = decideObject(after, live, true).diff!;
    expect(diff).toContain('-    scrape_interval = 15s');
    expect(diff).toContain('+    scrape_interval = 30s');
    expect(diff).not.toMatch(/uid|resourceVersion|managedFields/);
  });

  it('never shows a Secret\'s value, only that it changed', () => {
    const secret = (v: string) => load({ 's.yaml': `apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: n}\nstringData: {token: ${v}, same: kept-secret}\n` }).objects[0];
    const old = secret('old-secret-value');
    const live = { ...(expectedInLive(stamped(old)) as object), metadata: { ...(stamped(old).metadata as object), uid: 'u' } } as never;

    const diff = decideObject(secret('new-secret-value'), live, true).diff!;
    expect(diff).toContain('token: (changed value)');
    expect(diff).not.toMatch(/secret-value|kept-secret|b2xk|bmV3|a2VwdC/);
    expect(decideObject(secret('new-secret-value'), undefined, true).diff).not.toMatch(/secret-value|bmV3/);
  });
});
