import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadManifests, MAX_ALIASES } from '../../lib/source/load';
import { anyNamespace, daemonSetYaml } from './fixtures';

const MAX_BYTES = 1 << 20;

let repo: string;

beforeEach(() => {
  repo = mkdtempSync(join(tmpdir(), 'dsgitops-load-'));
});

afterEach(() => {
  rmSync(repo, { recursive: true, force: true });
});

/** Writes a file in the repository, creating its directories. */
function write(path: string, text: string): void {
  const full = join(repo, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, text);
}

function load(gitPath = '.', maxBytes = MAX_BYTES) {
  return loadManifests(repo, gitPath, anyNamespace, maxBytes);
}

/** A "billion laughs" document: nine levels of ten aliases each expand to 10^9 strings. */
function aliasBomb(): string {
  const names = 'abcdefghi';
  const lines = [`a: &a [${Array(10).fill('"lol"').join(', ')}]`];
  for (let i = 1; i < names.length; i++) {
    lines.push(`${names[i]}: &${names[i]} [${Array(10).fill(`*${names[i - 1]}`).join(', ')}]`);
  }
  return ['apiVersion: apps/v1', 'kind: DaemonSet', 'metadata:', '  name: bomb', ...lines, ''].join('\n');
}

describe('loadManifests', () => {
  it('reads every DaemonSet of a multi-document file, each with its document number', () => {
    write('agents.yaml', [daemonSetYaml({ name: 'fluentd' }), daemonSetYaml({ name: 'node-exporter' }), daemonSetYaml({ name: 'cilium' })].join('---\n'));

    const result = load();

    expect(result.problems).toEqual([]);
    expect(result.desired.map((d) => [d.key, d.source])).toEqual([
      ['kube-system/cilium', { file: 'agents.yaml', document: 3 }],
      ['kube-system/fluentd', { file: 'agents.yaml', document: 1 }],
      ['kube-system/node-exporter', { file: 'agents.yaml', document: 2 }],
    ]);
  });

  it('reads *.yaml and *.yml files in nested directories under GIT_PATH, naming them from the repository root', () => {
    write('clusters/prod/fluentd.yaml', daemonSetYaml({ name: 'fluentd' }));
    write('clusters/prod/monitoring/exporters/node-exporter.yml', daemonSetYaml({ name: 'node-exporter', namespace: 'monitoring' }));
    write('clusters/staging/other.yaml', daemonSetYaml({ name: 'other' }));

    const result = load('clusters/prod');

    expect(result.files).toEqual(['clusters/prod/fluentd.yaml', 'clusters/prod/monitoring/exporters/node-exporter.yml']);
    expect(result.desired.map((d) => [d.key, d.source.file])).toEqual([
      ['kube-system/fluentd', 'clusters/prod/fluentd.yaml'],
      ['monitoring/node-exporter', 'clusters/prod/monitoring/exporters/node-exporter.yml'],
    ]);
  });

  it('ignores files that are not YAML, and the .git directory', () => {
    write('fluentd.yaml', daemonSetYaml());
    write('README.md', daemonSetYaml({ name: 'readme' }));
    write('fluentd.json', JSON.stringify({ kind: 'DaemonSet' }));
    write('fluentd.yaml.bak', daemonSetYaml({ name: 'backup' }));
    write('.git/objects/leftover.yaml', daemonSetYaml({ name: 'leftover' }));

    const result = load();

    expect(result.files).toEqual(['fluentd.yaml']);
    expect(result.desired.map((d) => d.key)).toEqual(['kube-system/fluentd']);
    expect(result.problems).toEqual([]);
  });

  it('does not follow symbolic links to files or directories', () => {
    const outside = mkdtempSync(join(tmpdir(), 'dsgitops-outside-'));
    try {
      writeFileSync(join(outside, 'secret.yaml'), daemonSetYaml({ name: 'outside' }));
      write('manifests/fluentd.yaml', daemonSetYaml());
      symlinkSync(join(outside, 'secret.yaml'), join(repo, 'manifests/linked.yaml'));
      symlinkSync(outside, join(repo, 'manifests/linked-dir'));

      const result = load('manifests');

      expect(result.files).toEqual(['manifests/fluentd.yaml']);
      expect(result.desired.map((d) => d.name)).toEqual(['fluentd']);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it.each([
    ['a parent folder linked to an absolute path', 'clusters', (outside: string) => outside],
    ['a parent folder linked upwards', 'clusters', (outside: string) => join('..', '..', outside)],
    ['GIT_PATH itself linked', 'clusters/prod', (outside: string) => join(outside, 'prod')],
  ])('reads nothing outside the checkout through %s', (_what, link, target) => {
    const outside = mkdtempSync(join(tmpdir(), 'dsgitops-outside-'));
    try {
      mkdirSync(join(outside, 'prod'));
      writeFileSync(join(outside, 'prod', 'agent.yaml'), daemonSetYaml({ name: 'outside' }));
      mkdirSync(dirname(join(repo, link)), { recursive: true });
      symlinkSync(target(outside), join(repo, link));

      const result = load('clusters/prod');

      expect(result.desired).toEqual([]);
      expect(result.files).toEqual([]);
      expect(result.problems).toEqual([{ file: 'clusters/prod', code: 'path-missing', severity: 'error', message: expect.stringMatching(/^GIT_PATH clusters\/prod leads outside the repository through a symbolic link \(clusters(\/prod)? -> .*\): nothing under it is read; make it a real directory in the repository, or point GIT_PATH at one/) }]);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('follows a symbolic link that stays inside the checkout', () => {
    write('base/prod/agent.yaml', daemonSetYaml({ name: 'inside' }));
    symlinkSync('base', join(repo, 'clusters'));
    expect(load('clusters/prod').desired.map((d) => d.name)).toEqual(['inside']);
  });

  it('skips empty documents without a problem and keeps counting them', () => {
    write('agents.yaml', `${daemonSetYaml({ name: 'fluentd' })}---\n---\n# nothing here\n---\n${daemonSetYaml({ name: 'cilium' })}---\n`);
    write('empty.yaml', '');
    write('comments.yml', '# to be written\n');

    const result = load();

    expect(result.problems).toEqual([]);
    expect(result.desired.map((d) => [d.name, d.source])).toEqual([
      ['cilium', { file: 'agents.yaml', document: 4 }],
      ['fluentd', { file: 'agents.yaml', document: 1 }],
    ]);
  });

  it('reports a YAML syntax error with its file, document and line, and still loads the other documents', () => {
    const broken = ['apiVersion: apps/v1', 'kind: DaemonSet', 'metadata:', '  name: broken', 'spec: selector: {}', ''].join('\n');
    // Document 2 starts on line 19 (17 lines + the separator), so its fifth line is line 23 of the file.
    write('agents.yaml', [daemonSetYaml({ name: 'fluentd' }), broken, daemonSetYaml({ name: 'cilium' })].join('---\n'));

    const result = load();

    expect(result.problems).toEqual([{ file: 'agents.yaml', document: 2, code: 'yaml-syntax', severity: 'error', message: expect.stringMatching(/^YAML syntax error at line 23: Nested mappings/) }]);
    expect(result.desired.map((d) => d.name)).toEqual(['cilium', 'fluentd']);
  });

  it('reports a duplicate key in a mapping as a syntax error', () => {
    write('fluentd.yaml', `${daemonSetYaml()}kind: DaemonSet\n`);

    const result = load();

    expect(result.problems).toEqual([expect.objectContaining({ file: 'fluentd.yaml', document: 1, code: 'yaml-syntax' })]);
    expect(result.desired).toEqual([]);
  });

  it('reports an alias bomb as alias-limit without expanding it', () => {
    write('bomb.yaml', `${aliasBomb()}---\n${daemonSetYaml({ name: 'fluentd' })}`);

    const result = load();

    expect(result.problems).toEqual([{ file: 'bomb.yaml', document: 1, code: 'alias-limit', severity: 'error', message: expect.stringContaining(`limit of ${MAX_ALIASES}`) }]);
    expect(result.desired.map((d) => d.key)).toEqual(['kube-system/fluentd']);
  }, 5000);

  it('accepts a few ordinary aliases', () => {
    write('fluentd.yaml', daemonSetYaml().replace('  selector:\n    matchLabels:\n      app: fluentd\n', '  selector:\n    matchLabels: &labels\n      app: fluentd\n').replace('      labels:\n        app: fluentd\n', '      labels: *labels\n'));

    const result = load();

    expect(result.problems).toEqual([]);
    expect(result.desired[0].manifest.spec.template.metadata.labels).toEqual({ app: 'fluentd' });
  });

  it('reports a file over maxBytes as too-large, without a document number, and loads the others', () => {
    const big = `${daemonSetYaml({ name: 'big' })}# ${'x'.repeat(2000)}\n`;
    write('big.yaml', big);
    write('small.yaml', daemonSetYaml({ name: 'small' }));

    const result = load('.', 1024);

    expect(result.problems).toEqual([{
      file: 'big.yaml',
      code: 'too-large',
      severity: 'error',
      message: `the file is ${Buffer.byteLength(big)} bytes, over the 1024-byte limit (MAX_MANIFEST_BYTES): split it into smaller files`,
    }]);
    expect(result.problems[0]).not.toHaveProperty('document');
    expect(result.desired.map((d) => d.name)).toEqual(['small']);
  });

  it('reports a Deployment and a ClusterRoleBinding the default ALLOWED_KINDS does not allow as skipped, naming the setting that would allow each', () => {
    const deployment = ['apiVersion: apps/v1', 'kind: Deployment', 'metadata:', '  name: fluentd', '  namespace: kube-system', 'spec: {}', ''].join('\n');
    const binding = ['apiVersion: rbac.authorization.k8s.io/v1', 'kind: ClusterRoleBinding', 'metadata:', '  name: fluentd', 'roleRef: {}', ''].join('\n');
    write('fluentd.yaml', [binding, daemonSetYaml({ name: 'fluentd' }), deployment].join('---\n'));

    const result = load();

    expect(result.problems).toEqual([
      expect.objectContaining({ file: 'fluentd.yaml', document: 1, code: 'kind-not-allowed', severity: 'skipped', message: expect.stringContaining('ClusterRoleBinding fluentd (rbac.authorization.k8s.io/v1) is not applied: ALLOWED_KINDS (DaemonSet,ConfigMap,Secret,ServiceAccount,Role,RoleBinding,Service) does not allow it; add rbac.authorization.k8s.io/ClusterRoleBinding to ALLOWED_KINDS') }),
      expect.objectContaining({ file: 'fluentd.yaml', document: 3, code: 'kind-not-allowed', severity: 'skipped', message: expect.stringContaining('add apps/Deployment to ALLOWED_KINDS') }),
    ]);
    expect(result.objects).toEqual([]);
    expect(result.desired.map((d) => [d.manifest.kind, d.key, d.source.document])).toEqual([['DaemonSet', 'kube-system/fluentd', 2]]);
  });

  it('reports a DaemonSet defined in two files as duplicate in both places and applies neither', () => {
    write('a.yaml', daemonSetYaml({ name: 'fluentd', namespace: 'logging' }));
    write('b/c.yaml', `${daemonSetYaml({ name: 'cilium' })}---\n${daemonSetYaml({ name: 'fluentd', namespace: 'logging', image: 'fluent/fluentd:v1.17' })}`);

    const result = load();

    const message = 'DaemonSet logging/fluentd is defined more than once (a.yaml (document 1) and b/c.yaml (document 2)): neither is applied until only one remains';
    expect(result.problems).toEqual([
      { file: 'a.yaml', document: 1, key: 'logging/fluentd', code: 'duplicate', severity: 'error', message },
      { file: 'b/c.yaml', document: 2, key: 'logging/fluentd', code: 'duplicate', severity: 'error', message },
    ]);
    expect(result.desired.map((d) => d.key)).toEqual(['kube-system/cilium']);
  });

  it('does not treat the same name in two namespaces as a duplicate', () => {
    write('fluentd.yaml', `${daemonSetYaml({ namespace: 'logging' })}---\n${daemonSetYaml({ namespace: 'kube-system' })}`);

    const result = load();

    expect(result.problems).toEqual([]);
    expect(result.desired.map((d) => d.key)).toEqual(['kube-system/fluentd', 'logging/fluentd']);
  });

  it('reports a document that fails validation with its file and document, and loads the rest', () => {
    write('agents.yaml', `${daemonSetYaml({ name: 'fluentd' })}---\n${daemonSetYaml({ name: 'cilium' }).replace('      app: cilium\n', '      name: cilium\n')}`);

    const result = load();

    expect(result.problems).toEqual([expect.objectContaining({ file: 'agents.yaml', document: 2, key: 'kube-system/cilium', code: 'selector-mismatch' })]);
    expect(result.desired.map((d) => d.key)).toEqual(['kube-system/fluentd']);
  });

  it.each([
    ['a missing directory', 'deploy/daemonsets'],
    ['a file', 'fluentd.yaml'],
  ])('reports GIT_PATH pointing at %s as path-missing', (_, gitPath) => {
    write('fluentd.yaml', daemonSetYaml());

    const result = load(gitPath);

    expect(result).toEqual({
      desired: [],
      objects: [],
      files: [],
      problems: [{
        file: gitPath,
        code: 'path-missing',
        severity: 'error',
        message: `GIT_PATH ${gitPath} is not a directory in the repository: fix GIT_PATH or the repository layout`,
      }],
    });
  });
});
