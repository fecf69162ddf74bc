/**
 * Contract of rendering against the real programs: kustomize v5 and Helm v4 as the stack builds
 * them (stack/build.ts), on repositories written here. What each test expects comes from
 * kustomize's and Helm's documented behaviour (hash-suffixed generated names with references
 * rewritten, `images`, JSON patches, `helm template` of values), not from this code.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { RenderConfig } from '../../lib/config';
import { loadPath } from '../../lib/source/load';
import { RenderError, renderKustomization } from '../../lib/source/render';
import { binaryPath, ensureBuilt, builds } from '../../stack/build';
import { HELM_VERSION, KUSTOMIZE_VERSION } from '../../stack/versions';
import { ChartRepository, folderWriter, writeBase, writeOverlay, writeProbeBase } from '../support/render-repo';

jest.setTimeout(120_000);

type Obj = { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: any; data?: Record<string, string> };

let kustomize: string;
let helm: string;
const roots: string[] = [];

function repo(): { root: string; w: ReturnType<typeof folderWriter> } {
  const root = mkdtempSync(join(tmpdir(), 'dsgitops-render-'));
  roots.push(root);
  return { root, w: folderWriter(root) };
}

function settings(over: Partial<RenderConfig> = {}): RenderConfig {
  return { allowRemote: false, timeoutSeconds: 60, maxOutputBytes: 16 << 20, kustomize, helm, ...over };
}

function objects(yaml: string): Obj[] {
  return parseAllDocuments(yaml).map((d) => d.toJS() as Obj).filter(Boolean);
}

async function renderError(p: Promise<unknown>): Promise<RenderError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(RenderError);
  return err as RenderError;
}

beforeAll(async () => {
  for (const spec of builds.filter((b) => b.name === 'kustomize' || b.name === 'helm')) await ensureBuilt(spec);
  kustomize = binaryPath('kustomize');
  helm = binaryPath('helm');
}, 1800_000);

afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

describe('kustomize build of an overlay', () => {
  it('applies patches, images, a configMapGenerator and a chart from the repository', async () => {
    const { root, w } = repo();
    writeBase(w);
    writeProbeBase(w, 'agents-eu', { tag: '2.2.0', interval: '10s' });
    writeOverlay(w, 'clusters/eu', { namespace: 'agents-eu', tag: '1.4.2', maxUnavailable: 3, chart: 'base' });

    const out = await renderKustomization({ repoDir: root, gitPath: 'clusters/eu', config: settings() });

    const all = objects(out.yaml);
    const cm = all.find((o) => o.kind === 'ConfigMap')!;
    const agent = all.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'node-agent')!;
    const probe = all.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'edge-probe')!;
    // configMapGenerator: a name with a hash suffix, and the DaemonSet's volume refers to that name.
    expect(cm.metadata.name).toMatch(/^agent-config-[a-z0-9]{10}$/);
    expect(cm.data!['agent.conf']).toBe('level = info\nflush = 5s\n');
    expect(agent.spec.template.spec.volumes[0].configMap.name).toBe(cm.metadata.name);
    // images and the JSON patch of the overlay; the namespace of the overlay (the chart's from helmCharts[].namespace).
    expect(agent.spec.template.spec.containers[0].image).toBe('registry.example/node-agent:1.4.2');
    expect(agent.spec.updateStrategy.rollingUpdate.maxUnavailable).toBe(3);
    expect(all.every((o) => o.metadata.namespace === 'agents-eu')).toBe(true);
    // The chart, rendered by Helm with the overlay's values over the chart's.
    expect(probe.spec.template.spec.containers[0].image).toBe('registry.example/probe-agent:2.2.0');
    expect(probe.spec.template.spec.containers[0].args).toEqual(['--interval=10s']);
    expect(probe.metadata.labels!['chart-version']).toBe('0.1.0');
    expect(out.by).toEqual({ renderer: 'kustomize', kustomization: 'clusters/eu/kustomization.yaml', kustomizeVersion: KUSTOMIZE_VERSION, helmVersion: expect.stringMatching(new RegExp(`^${HELM_VERSION.replace(/\./g, '\\.')}`)) });
  });

  it('feeds the rendered documents to the load, named by the kustomization that produced them', async () => {
    const { root, w } = repo();
    writeBase(w);
    writeProbeBase(w, 'agents-eu', { interval: '10s' });
    writeOverlay(w, 'clusters/eu', { namespace: 'agents-eu', tag: '1.4.2', chart: 'base' });
    w('clusters/eu/stray.yaml', 'not: a kubernetes object\n');

    const loaded = await loadPath(root, 'clusters/eu', { allowedNamespaces: ['agents-eu'] }, 1 << 20, settings());

    expect(loaded.problems).toEqual([]);
    expect(loaded.files).toEqual(['clusters/eu/kustomization.yaml']);
    expect(loaded.desired.map((d) => d.key)).toEqual(['agents-eu/edge-probe', 'agents-eu/node-agent']);
    expect(loaded.desired.every((d) => d.source.file === 'clusters/eu/kustomization.yaml')).toBe(true);
    // The generated ConfigMap, and the versioned copy of it that the DaemonSet mounts (docs/bundles.md).
    const [generated, copy] = loaded.objects.map((o) => `${o.kind}/${o.name}`);
    expect(loaded.objects).toHaveLength(2);
    expect(generated).toMatch(/^ConfigMap\/agent-config-[a-z0-9]{10}$/);
    expect(copy).toMatch(new RegExp(`^${generated}-[0-9a-f]{10}$`));
    const agent = loaded.desired.find((d) => d.name === 'node-agent')!;
    expect((agent.manifest.spec.template.spec as unknown as { volumes: { configMap: { name: string } }[] }).volumes[0].configMap.name).toBe(copy.slice('ConfigMap/'.length));
    expect(loaded.rendered?.kustomizeVersion).toBe(KUSTOMIZE_VERSION);
  });

  it('reports a rendered object outside ALLOWED_NAMESPACES with the kustomization that made it', async () => {
    const { root, w } = repo();
    writeBase(w);
    writeOverlay(w, 'clusters/eu', { namespace: 'kube-system', tag: '1' });

    const loaded = await loadPath(root, 'clusters/eu', { allowedNamespaces: ['agents-eu'] }, 1 << 20, settings());

    expect(loaded.desired).toEqual([]);
    const p = loaded.problems.find((x) => x.key === 'kube-system/node-agent')!;
    expect(p.file).toBe('clusters/eu/kustomization.yaml');
    expect(p.message).toMatch(/^in kustomize's output: namespace kube-system is not in ALLOWED_NAMESPACES/);
  });
});

describe('a chart from an HTTP chart repository', () => {
  let charts: ChartRepository;
  beforeAll(async () => {
    charts = new ChartRepository(binaryPath('helm'));
    await charts.start();
    charts.publish('0.3.0');
  });
  afterAll(() => charts.stop());

  it('is pulled and rendered with RENDER_ALLOW_REMOTE=true', async () => {
    const { root, w } = repo();
    writeBase(w);
    writeOverlay(w, 'clusters/eu', { namespace: 'agents-eu', tag: '1', chart: { repo: charts.url, version: '0.3.0', interval: '20s' } });

    const out = await renderKustomization({ repoDir: root, gitPath: 'clusters/eu', config: settings({ allowRemote: true }) });

    const probe = objects(out.yaml).find((o) => o.metadata.name === 'edge-probe')!;
    expect(probe.metadata.labels!['chart-version']).toBe('0.3.0');
    expect(probe.spec.template.spec.containers[0].args).toEqual(['--interval=20s']);
  });

  it('is refused without the setting, before anything is fetched', async () => {
    const { root, w } = repo();
    writeBase(w);
    writeOverlay(w, 'clusters/eu', { namespace: 'agents-eu', tag: '1', chart: { repo: charts.url, version: '0.3.0' } });

    const err = await renderError(renderKustomization({ repoDir: root, gitPath: 'clusters/eu', config: settings() }));

    expect(err.file).toBe('clusters/eu/kustomization.yaml');
    expect(err.message).toBe(`clusters/eu/kustomization.yaml: helmCharts probe-agent is pulled from ${charts.url} at render time: put the chart in the repository (charts/probe-agent) and remove repo, or set RENDER_ALLOW_REMOTE=true to let renders fetch it`);
    expect(existsSync(join(root, 'clusters/eu/charts'))).toBe(false);
  });
});

describe('what a render refuses', () => {
  it('refuses a remote base without RENDER_ALLOW_REMOTE', async () => {
    const { root, w } = repo();
    writeBase(w);
    w('clusters/eu/kustomization.yaml', 'resources:\n  - ../../base\n  - https://github.com/example/node-agents//base?ref=v1.0.0\n');

    const loaded = await loadPath(root, 'clusters/eu', { allowedNamespaces: '*' }, 1 << 20, settings());

    expect(loaded.desired).toEqual([]);
    expect(loaded.problems).toEqual([{
      file: 'clusters/eu/kustomization.yaml',
      code: 'render-failed',
      severity: 'error',
      message: expect.stringContaining('resources names https://github.com/example/node-agents//base?ref=v1.0.0, which is fetched from the network at render time'),
    }]);
  });

  it('never runs an exec plugin', async () => {
    const { root, w } = repo();
    const marker = join(root, 'plugin-ran');
    writeBase(w);
    w('clusters/eu/kustomization.yaml', 'resources:\n  - ../../base\ntransformers:\n  - plugin.yaml\n');
    w('clusters/eu/plugin.yaml', `apiVersion: example.com/v1
kind: Stamp
metadata:
  name: stamp
  annotations:
    config.kubernetes.io/function: |
      exec:
        path: ./stamp.sh
`);
    w('clusters/eu/stamp.sh', `#!/bin/sh\ntouch ${marker}\ncat\n`);
    execFileSync('chmod', ['+x', join(root, 'clusters/eu/stamp.sh')]);

    const err = await renderError(renderKustomization({ repoDir: root, gitPath: 'clusters/eu', config: settings() }));

    expect(existsSync(marker)).toBe(false);
    expect(err.message).toMatch(/^clusters\/eu\/kustomization.yaml: kustomize build failed: /);
    expect(err.message).toContain('plugins (exec and KRM functions) are not run');
  });

  it('refuses a file outside the kustomization\'s folder (LoadRestrictionsRootOnly)', async () => {
    const { root, w } = repo();
    writeBase(w);
    w('shared/extra.conf', 'x = 1\n');
    w('clusters/eu/kustomization.yaml', 'resources:\n  - ../../base\nconfigMapGenerator:\n  - name: extra\n    files:\n      - ../../shared/extra.conf\n');

    const err = await renderError(renderKustomization({ repoDir: root, gitPath: 'clusters/eu', config: settings() }));

    expect(err.message).toContain('is not in or below');
    expect(err.message).toContain('(fix: a kustomization may read only files in or below its own folder');
  });

  it('names the file with a syntax error, in kustomize\'s words', async () => {
    const { root, w } = repo();
    writeBase(w);
    w('base/daemonset.yaml', 'apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: [node-agent\n');
    writeOverlay(w, 'clusters/eu', { namespace: 'a', tag: '1' });

    const err = await renderError(renderKustomization({ repoDir: root, gitPath: 'clusters/eu', config: settings() }));

    expect(err.file).toBe('clusters/eu/kustomization.yaml');
    expect(err.message).toMatch(/^clusters\/eu\/kustomization.yaml: kustomize build failed: /);
    expect(err.message).toContain('daemonset.yaml');
  });

  it('stops a render that outlives RENDER_TIMEOUT_SECONDS, and Helm with it', async () => {
    const hanging = new ChartRepository(binaryPath('helm'));
    const url = await hanging.start('hang');
    try {
      const { root, w } = repo();
      writeBase(w);
      writeOverlay(w, 'clusters/eu', { namespace: 'a', tag: '1', chart: { repo: url, version: '0.1.0' } });
      const started = Date.now();

      const err = await renderError(renderKustomization({ repoDir: root, gitPath: 'clusters/eu', config: settings({ allowRemote: true, timeoutSeconds: 2 }) }));

      expect(Date.now() - started).toBeLessThan(10_000);
      expect(err.message).toBe('clusters/eu/kustomization.yaml: kustomize build was stopped: it did not finish within 2 s (RENDER_TIMEOUT_SECONDS): look for a chart or base that loops or waits on the network, or raise RENDER_TIMEOUT_SECONDS');
      expect(err.retryable).toBe(true);
      // Nothing of the render is left running: kustomize and the helm pull it started were one process group.
      const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(url));
      expect(left).toEqual([]);
    } finally {
      await hanging.stop();
    }
  });

  it('stops a render whose output passes RENDER_MAX_BYTES', async () => {
    const { root, w } = repo();
    writeBase(w, `payload = ${'x'.repeat(4000)}\n`);
    writeOverlay(w, 'clusters/eu', { namespace: 'a', tag: '1' });

    const err = await renderError(renderKustomization({ repoDir: root, gitPath: 'clusters/eu', config: settings({ maxOutputBytes: 1024 }) }));

    expect(err.message).toContain('its output passed 1024 bytes (RENDER_MAX_BYTES)');
  });
});
