import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, resolveGitPath } from '../../lib/config';
import { checkKustomizations, isRemoteReference, kustomizationIn } from '../../lib/source/render';
import { folderWriter, writeBase, writeOverlay, writeProbeBase } from '../support/render-repo';

const baseEnv = { GIT_URL: 'file:///tmp/x', S3_BUCKET: 'b', ALLOWED_NAMESPACES: 'logging' };

describe('isRemoteReference', () => {
  // The forms kustomize documents for remote targets (examples/remoteBuild.md): URLs, git shorthands, ?ref=.
  it.each([
    'https://github.com/example/agents//base?ref=v1.0.0',
    'github.com/example/agents/base?ref=v1.0.0',
    'git@github.com:example/agents.git//base',
    'git::https://gitlab.example/agents.git//base',
    'ssh://git@example.com/agents.git',
    'oci://registry.example/charts',
    'file:///etc/agents',
    'https://raw.example/agents/daemonset.yaml',
  ])('counts %s as fetched at render time', (value) => {
    expect(isRemoteReference(value)).toBe(true);
  });

  it.each(['../../base', 'daemonset.yaml', 'patches/max-unavailable.yaml', 'base', './overlays/prod'])('counts %s as a file of the repository', (value) => {
    expect(isRemoteReference(value)).toBe(false);
  });
});

describe('checkKustomizations', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'dsgitops-kcheck-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('finds nothing to refuse in an overlay of a local base with a chart in the repository', () => {
    const w = folderWriter(root);
    writeBase(w);
    writeProbeBase(w, 'a', { interval: '5s' });
    writeOverlay(w, 'clusters/a', { namespace: 'a', tag: '1', chart: 'base' });
    expect(checkKustomizations(root, join(root, 'clusters/a'), false)).toEqual([]);
  });

  it('refuses a remote base in a base the overlay builds on, naming that base\'s kustomization and the setting', () => {
    const w = folderWriter(root);
    writeBase(w);
    w('base/kustomization.yaml', 'resources:\n  - daemonset.yaml\n  - https://github.com/example/agents//common?ref=v1\n');
    writeOverlay(w, 'clusters/a', { namespace: 'a', tag: '1' });
    const found = checkKustomizations(root, join(root, 'clusters/a'), false);
    expect(found).toHaveLength(1);
    expect(found[0].file).toBe('base/kustomization.yaml');
    expect(found[0].message).toContain('https://github.com/example/agents//common?ref=v1');
    expect(found[0].message).toContain('RENDER_ALLOW_REMOTE=true');
    expect(checkKustomizations(root, join(root, 'clusters/a'), true)).toEqual([]);
  });

  it('refuses a chart pulled from a chart repository unless remote renders are allowed', () => {
    const w = folderWriter(root);
    writeBase(w);
    writeOverlay(w, 'clusters/a', { namespace: 'a', tag: '1', chart: { repo: 'http://127.0.0.1:1/charts' } });
    const found = checkKustomizations(root, join(root, 'clusters/a'), false);
    expect(found.map((f) => f.message).join('\n')).toMatch(/helmCharts probe-agent is pulled from http:\/\/127\.0\.0\.1:1\/charts/);
    expect(checkKustomizations(root, join(root, 'clusters/a'), true)).toEqual([]);
  });

  it('refuses a folder or chart home outside the repository, whatever the setting', () => {
    const w = folderWriter(root);
    w('repo/a/kustomization.yaml', 'resources:\n  - ../../outside\nhelmGlobals:\n  chartHome: /usr/share\n');
    const found = checkKustomizations(join(root, 'repo'), join(root, 'repo/a'), true);
    expect(found.map((f) => f.message)).toEqual([
      'resources names ../../outside, which is outside the repository: only files and folders of the repository are rendered',
      'helmGlobals.chartHome /usr/share is outside the repository: keep charts in a folder of the repository',
    ]);
  });

  it('finds the kustomization under each name kustomize accepts', () => {
    const w = folderWriter(root);
    w('x/Kustomization', 'resources: []\n');
    w('y/kustomization.yml', 'resources: []\n');
    expect(kustomizationIn(join(root, 'x'))).toBe(join(root, 'x/Kustomization'));
    expect(kustomizationIn(join(root, 'y'))).toBe(join(root, 'y/kustomization.yml'));
    expect(kustomizationIn(root)).toBeUndefined();
  });
});

describe('GIT_PATH with {cluster}', () => {
  it('resolves clusters/{cluster} with CLUSTER_NAME', () => {
    const config = loadConfig({ ...baseEnv, CLUSTER_NAME: 'prod-eu-1', GIT_PATH: 'clusters/{cluster}' });
    expect(config.git.path).toBe('clusters/prod-eu-1');
  });

  it('refuses any other placeholder, naming it', () => {
    const problems: string[] = [];
    resolveGitPath('clusters/{region}/{cluster}', 'a', problems);
    expect(problems).toEqual(['GIT_PATH=clusters/{region}/{cluster} contains {region}: the only placeholder is {cluster} (replaced by CLUSTER_NAME)']);
  });

  it('reads the render settings with safe defaults', () => {
    const config = loadConfig({ ...baseEnv, CLUSTER_NAME: 'a' });
    expect(config.render).toEqual({ allowRemote: false, timeoutSeconds: 60, maxOutputBytes: 16 << 20, kustomize: undefined, helm: undefined });
    expect(() => loadConfig({ ...baseEnv, CLUSTER_NAME: 'a', RENDER_TIMEOUT_SECONDS: '0' })).toThrow(/RENDER_TIMEOUT_SECONDS=0 must be a whole number from 1 to 900/);
  });
});
