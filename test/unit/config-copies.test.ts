import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configReferences, copiesToPrune, copyFromEntry, copyNameOf, revisionsKept, withConfigCopies } from '../../lib/bundle/config-copies';
import { normalizeObject } from '../../lib/bundle/normalize';
import type { DesiredObject } from '../../lib/bundle/objects';
import { loadManifests } from '../../lib/source/load';
import { digestOf, DesiredDaemonSet, JsonObject } from '../../lib/source/manifest';

/** Kubernetes' definition of an object name such as a ConfigMap's: a DNS-1123 subdomain (apimachinery validation.IsDNS1123Subdomain). */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A label value (validation.IsValidLabelValue). */
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function object(kind: 'ConfigMap' | 'Secret', name: string, body: JsonObject, namespace = 'agents'): DesiredObject {
  const manifest = normalizeObject({ apiVersion: 'v1', kind, metadata: { name, namespace, labels: { grafana_dashboard: '1' } }, ...body }, { namespace });
  return { id: `${kind} ${namespace}/${name}`, apiVersion: 'v1', group: '', kind, name, namespace, namespaced: true, source: { file: 'agent.yaml', document: 1 }, manifest, digest: digestOf(manifest) };
}

function daemonSet(podSpec: JsonObject, namespace = 'agents'): DesiredDaemonSet {
  const manifest = {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'agent', namespace },
    spec: { selector: { matchLabels: { app: 'agent' } }, template: { metadata: { labels: { app: 'agent' } }, spec: podSpec } },
  };
  return { key: `${namespace}/agent`, namespace, name: 'agent', source: { file: 'agent.yaml', document: 2 }, manifest: manifest as never, digest: digestOf(manifest) };
}

/** A pod spec naming `cm` and `sec` in every form a pod can read configuration by. */
function everyForm(cm: string, sec: string): JsonObject {
  return {
    volumes: [
      { name: 'a', configMap: { name: cm } },
      { name: 'b', secret: { secretName: sec } },
      { name: 'c', projected: { sources: [{ configMap: { name: cm } }, { secret: { name: sec } }, { serviceAccountToken: { path: 't' } }] } },
      { name: 'd', emptyDir: {} },
    ],
    initContainers: [{ name: 'init', image: 'i', envFrom: [{ configMapRef: { name: cm } }] }],
    containers: [{
      name: 'main',
      image: 'm',
      envFrom: [{ secretRef: { name: sec } }, { configMapRef: { name: 'not-in-git' } }],
      env: [
        { name: 'LEVEL', valueFrom: { configMapKeyRef: { name: cm, key: 'level' } } },
        { name: 'TOKEN', valueFrom: { secretKeyRef: { name: sec, key: 'token', optional: true } } },
        { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
      ],
    }],
    ephemeralContainers: [{ name: 'debug', image: 'd', envFrom: [{ configMapRef: { name: cm } }] }],
    imagePullSecrets: [{ name: sec }],
  };
}

describe('configReferences', () => {
  it('finds every form a pod template reads a ConfigMap or Secret by, and nothing else', () => {
    const refs = configReferences(everyForm('cfg', 'sec'));
    expect(refs.map((r) => [r.kind, r.field, r.holder[r.key]])).toEqual([
      ['ConfigMap', 'volumes[0].configMap', 'cfg'],
      ['Secret', 'volumes[1].secret', 'sec'],
      ['ConfigMap', 'volumes[2].projected.sources[0].configMap', 'cfg'],
      ['Secret', 'volumes[2].projected.sources[1].secret', 'sec'],
      ['ConfigMap', 'initContainers[init].envFrom[0]', 'cfg'],
      ['Secret', 'containers[main].envFrom[0]', 'sec'],
      ['ConfigMap', 'containers[main].envFrom[1]', 'not-in-git'],
      ['ConfigMap', 'containers[main].env[LEVEL]', 'cfg'],
      ['Secret', 'containers[main].env[TOKEN]', 'sec'],
      ['ConfigMap', 'ephemeralContainers[debug].envFrom[0]', 'cfg'],
    ]);
  });
});

describe('withConfigCopies', () => {
  const cm = object('ConfigMap', 'cfg', { data: { level: 'info' } });
  const sec = object('Secret', 'sec', { type: 'Opaque', stringData: { token: 'hunter2' } });

  it('points every reference to an object of the source at its copy, and leaves the others alone', () => {
    const { desired, copies } = withConfigCopies([daemonSet(everyForm('cfg', 'sec'))], [cm, sec]);
    const cmCopy = copies.find((c) => c.kind === 'ConfigMap')!.name;
    const secCopy = copies.find((c) => c.kind === 'Secret')!.name;
    expect(cmCopy).toMatch(/^cfg-[0-9a-f]{10}$/);
    expect(secCopy).toMatch(/^sec-[0-9a-f]{10}$/);
    // What the rewritten template must be: everyForm with the copies' names, except what is not in Git and imagePullSecrets.
    const expected = everyForm(cmCopy, secCopy) as { containers: { envFrom: JsonObject[] }[]; imagePullSecrets: JsonObject[] };
    expected.containers[0].envFrom[1] = { configMapRef: { name: 'not-in-git' } };
    expected.imagePullSecrets = [{ name: 'sec' }];
    expect(desired[0].manifest.spec.template.spec).toEqual(expected);
    expect(desired[0].digest).toBe(digestOf(desired[0].manifest));
  });

  it('lists the copies in the revision: a ConfigMap with its data, a Secret by digest alone', () => {
    const { desired } = withConfigCopies([daemonSet(everyForm('cfg', 'sec'))], [cm, sec]);
    expect(desired[0].config).toEqual([
      { kind: 'ConfigMap', namespace: 'agents', name: 'cfg', copyName: expect.stringMatching(/^cfg-/), digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), data: { level: 'info' } },
      { kind: 'Secret', namespace: 'agents', name: 'sec', copyName: expect.stringMatching(/^sec-/), digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) },
    ]);
    expect(JSON.stringify(desired)).not.toContain('hunter2');
  });

  it('makes immutable copies labelled with what they copy, without the original\'s labels', () => {
    const { copies } = withConfigCopies([daemonSet(everyForm('cfg', 'sec'))], [cm, sec]);
    const copy = copies.find((c) => c.kind === 'ConfigMap')!;
    expect(copy.manifest).toMatchObject({ immutable: true, data: { level: 'info' }, metadata: { namespace: 'agents', labels: { 'daemonset-gitops.io/config-copy-of': 'cfg' } } });
    expect((copy.manifest.metadata as { labels: object }).labels).not.toHaveProperty('grafana_dashboard');
    expect(copies.find((c) => c.kind === 'Secret')!.manifest).toMatchObject({ type: 'Opaque', stringData: { token: 'hunter2' }, immutable: true });
  });

  it('copies each object once for every DaemonSet that references it, and never one of another namespace', () => {
    const other = object('ConfigMap', 'cfg', { data: { level: 'debug' } }, 'elsewhere');
    const { desired, copies } = withConfigCopies([daemonSet(everyForm('cfg', 'sec')), { ...daemonSet(everyForm('cfg', 'x')), key: 'agents/agent-2', name: 'agent-2' }], [cm, sec, other]);
    expect(copies.map((c) => c.id).sort()).toEqual([expect.stringMatching(/^ConfigMap agents\/cfg-/), expect.stringMatching(/^Secret agents\/sec-/)]);
    expect(desired[1].config?.map((e) => e.name)).toEqual(['cfg']);
  });

  it('leaves a DaemonSet that references nothing of the source as it is, digest included', () => {
    const alone = daemonSet({ containers: [{ name: 'main', image: 'm' }] });
    expect(withConfigCopies([alone], [cm]).desired[0]).toBe(alone);
  });
});

describe('in kustomize\'s output', () => {
  it('copies a generated, hash-suffixed ConfigMap like any other, so a prune of the generator\'s old output leaves the old pods what they read', () => {
    const generated = object('ConfigMap', 'cfg-5ccgm778b5', { data: { level: 'info' } });
    const spec = { containers: [{ name: 'main', image: 'm', envFrom: [{ configMapRef: { name: 'cfg-5ccgm778b5' } }] }] };
    const out = withConfigCopies([daemonSet(spec)], [generated]);
    expect(out.copies.map((c) => c.name)).toEqual([expect.stringMatching(/^cfg-5ccgm778b5-[0-9a-f]{10}$/)]);
    const refs = (out.desired[0].manifest.spec.template.spec as unknown as typeof spec).containers[0].envFrom.map((e) => e.configMapRef.name);
    expect(refs).toEqual([out.copies[0].name]);
  });
});

describe('copy names', () => {
  const digest = (s: string) => digestOf({ s });

  it('depend on the content only: the same data under other metadata has the same name, other data another', () => {
    const a = withConfigCopies([daemonSet(everyForm('cfg', 'sec'))], [object('ConfigMap', 'cfg', { data: { level: 'info' } })]).copies[0];
    const relabelled = object('ConfigMap', 'cfg', { data: { level: 'info' } });
    (relabelled.manifest.metadata as { annotations?: object }).annotations = { note: 'x' };
    const b = withConfigCopies([daemonSet(everyForm('cfg', 'sec'))], [relabelled]).copies[0];
    const c = withConfigCopies([daemonSet(everyForm('cfg', 'sec'))], [object('ConfigMap', 'cfg', { data: { level: 'debug' } })]).copies[0];
    expect(a.name).toBe(b.name);
    expect(c.name).not.toBe(a.name);
  });

  it('are valid object names within 253 characters, and the label within 63, however long the original name', () => {
    for (const name of ['a', 'fluent-bit.config', 'x'.repeat(63), 'x'.repeat(64), `${'ab.'.repeat(80)}cd`, 'y'.repeat(253)]) {
      const copy = copyNameOf(name, digest(name));
      expect(copy.length).toBeLessThanOrEqual(253);
      expect(copy).toMatch(DNS_SUBDOMAIN);
      const made = withConfigCopies([daemonSet({ volumes: [{ name: 'v', configMap: { name } }] })], [object('ConfigMap', name, { data: {} })]).copies[0];
      const label = (made.manifest.metadata as { labels: Record<string, string> }).labels['daemonset-gitops.io/config-copy-of'];
      expect(label.length).toBeLessThanOrEqual(63);
      expect(label).toMatch(LABEL_VALUE);
      expect((made.manifest.metadata as { annotations: Record<string, string> }).annotations['daemonset-gitops.io/config-copy-of']).toBe(name);
    }
  });

  it('recreate a ConfigMap copy from its snapshot entry exactly as the pass makes it', () => {
    const { desired, copies } = withConfigCopies([daemonSet(everyForm('cfg', 'sec'))], [object('ConfigMap', 'cfg', { data: { level: 'info' }, binaryData: { b: 'AAE=' } })]);
    const entry = desired[0].config![0];
    expect(digestOf(copyFromEntry(entry))).toBe(copies[0].digest);
  });
});

describe('which copies are kept', () => {
  it.each([
    // current, lastHealthy, kept -> from..to
    [12, 12, 10, 3, 12],
    [12, 12, 2, 11, 12],
    [12, 9, 2, 9, 12], // revisions 10-12 never completed: pods of 9 may still run
    [3, undefined, 2, 1, 3], // none ever completed: all kept
    [1, 1, 10, 1, 1],
    [13, 13, 2, 12, 13], // a rollback's own revision (13) carries its target's config
  ])('revision %i, last healthy %s, %i kept: revisions %i to %i', (current, healthy, kept, from, to) => {
    expect(revisionsKept(current, healthy, kept)).toEqual({ from, to });
  });

  it('prunes only copies nothing needs, and nothing in a namespace that could not be judged', () => {
    const live = [
      { kind: 'ConfigMap', namespace: 'a', name: 'cfg-1' },
      { kind: 'ConfigMap', namespace: 'a', name: 'cfg-2' },
      { kind: 'Secret', namespace: 'a', name: 'cfg-1' },
      { kind: 'ConfigMap', namespace: 'b', name: 'cfg-1' },
    ];
    expect(copiesToPrune(live, new Map([['a', new Set(['ConfigMap/cfg-2'])]]))).toEqual([live[0], live[2]]);
  });
});

describe('loading a source whose DaemonSet mounts a ConfigMap', () => {
  let repo: string;
  beforeEach(() => (repo = mkdtempSync(join(tmpdir(), 'dsgitops-copies-'))));
  afterEach(() => rmSync(repo, { recursive: true, force: true }));

  it('gives Git\'s ConfigMap, its copy, and a template that mounts the copy', () => {
    const text = readFileSync(join(__dirname, '..', 'fixtures', 'bundles', 'node-agent.yaml'), 'utf8').replaceAll('__NS__', 'lumen');
    writeFileSync(join(repo, 'a.yaml'), text);
    const loaded = loadManifests(repo, '.', { allowedNamespaces: '*' }, 1 << 20);
    const copy = loaded.objects.find((o) => o.name.startsWith('lumen-agent-config-'))!;
    expect(loaded.objects.some((o) => o.name === 'lumen-agent-config')).toBe(true);
    expect(loaded.desired[0].manifest.spec.template.spec.volumes).toEqual([{ name: 'config', configMap: { name: copy.name } }]);
    expect(copy.manifest.data).toEqual(loaded.objects.find((o) => o.name === 'lumen-agent-config')!.manifest.data);
  });
});
