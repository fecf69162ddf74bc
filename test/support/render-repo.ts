/**
 * A GitOps repository of the shape teams keep for node agents: a base (a DaemonSet and a
 * ConfigMap generated from a file), one overlay per cluster (namespace, image tag, a patch of
 * maxUnavailable) and a Helm chart of another agent, in the repository or in an HTTP chart
 * repository; and a kustomize that counts its builds. Written for these tests; the chart is
 * this project's own.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export type Write = (path: string, content: string) => unknown;

/** A writer into a plain folder (the contract tests render folders, not checkouts). */
export function folderWriter(root: string): Write {
  return (path, content) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  };
}

/**
 * A kustomization of daemonset.yaml beside it and the ConfigMap `agent-config` generated from
 * agent.conf (a hash-suffixed name kustomize writes into the DaemonSet's volume). `namespace`
 * sets every object's namespace; `partOf` labels every object app.kubernetes.io/part-of.
 */
export function agentKustomization(o: { namespace?: string; partOf?: string } = {}): string {
  return `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
${o.namespace === undefined ? '' : `namespace: ${o.namespace}\n`}${o.partOf === undefined ? '' : `labels:
  - pairs:
      app.kubernetes.io/part-of: ${o.partOf}
`}resources:
  - daemonset.yaml
configMapGenerator:
  - name: agent-config
    files:
      - agent.conf
`;
}

export function writeBase(write: Write, conf = 'level = info\nflush = 5s\n'): void {
  write('base/kustomization.yaml', agentKustomization({ partOf: 'node-agents' }));
  write('base/agent.conf', conf);
  write('base/daemonset.yaml', `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-agent
spec:
  selector:
    matchLabels:
      app: node-agent
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
  template:
    metadata:
      labels:
        app: node-agent
    spec:
      containers:
        - name: agent
          image: registry.example/node-agent:1.0.0
          volumeMounts:
            - name: config
              mountPath: /etc/agent
      volumes:
        - name: config
          configMap:
            name: agent-config
`);
}

export interface ChartValues {
  tag?: string;
  interval?: string;
}

/** The chart `probe-agent` (version `version`) in `dir`/probe-agent. */
export function writeChart(write: Write, dir: string, version = '0.1.0'): void {
  write(`${dir}/probe-agent/Chart.yaml`, `apiVersion: v2
name: probe-agent
description: A node probe, packaged as a chart for the rendering tests
type: application
version: ${version}
appVersion: "2.0.0"
`);
  write(`${dir}/probe-agent/values.yaml`, `image:
  repository: registry.example/probe-agent
  tag: "2.0.0"
interval: 30s
maxUnavailable: 1
`);
  write(`${dir}/probe-agent/templates/daemonset.yaml`, `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .Release.Name }}-probe
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/name: probe-agent
    app.kubernetes.io/instance: {{ .Release.Name }}
    chart-version: {{ .Chart.Version | quote }}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: probe-agent
      app.kubernetes.io/instance: {{ .Release.Name }}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: {{ .Values.maxUnavailable }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: probe-agent
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      containers:
        - name: probe
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          args:
            - --interval={{ .Values.interval }}
`);
}

/**
 * The chart's base, `base/probe`: the chart vendored in its own folder (kustomize reads a chart's
 * files through its load restrictor, so the chart lives under the kustomization that names it),
 * with the values in Git. kustomize leaves a chart's objects in the namespace Helm gives them
 * (helmCharts[].namespace), not in an overlay's `namespace`.
 */
export function writeProbeBase(write: Write, namespace: string, values: ChartValues = {}, chartVersion = '0.1.0'): void {
  writeChart(write, 'base/probe/charts', chartVersion);
  write('base/probe/kustomization.yaml', `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
helmCharts:
  - name: probe-agent
    releaseName: edge
    namespace: ${namespace}
    valuesInline:${valuesYaml(values)}
`);
}

function valuesYaml(v: ChartValues): string {
  const lines = [...(v.tag ? ['image:', `  tag: "${v.tag}"`] : []), ...(v.interval ? [`interval: ${v.interval}`] : [])];
  return lines.length === 0 ? ' {}' : `\n${lines.map((l) => `      ${l}`).join('\n')}`;
}

export interface OverlayOptions {
  namespace: string;
  tag: string;
  maxUnavailable?: number;
  /** The chart: from base/probe (writeProbeBase), or pulled from an HTTP chart repository by the overlay itself. */
  chart?: 'base' | (ChartValues & { repo: string; version?: string });
}

/** An overlay at `path` (two folders deep, as clusters/NAME) on ../../base, with the chart from ../../base/probe or `chart.repo`. */
export function writeOverlay(write: Write, path: string, o: OverlayOptions): void {
  const remote = o.chart && o.chart !== 'base' ? o.chart : undefined;
  const chart = remote
    ? `helmCharts:
  - name: probe-agent
    releaseName: edge
    namespace: ${o.namespace}
    repo: ${remote.repo}
    version: ${remote.version ?? '0.1.0'}
    valuesInline:${valuesYaml(remote)}
`
    : '';
  write(`${path}/kustomization.yaml`, `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: ${o.namespace}
resources:
  - ../../base
${o.chart === 'base' ? '  - ../../base/probe\n' : ''}images:
  - name: registry.example/node-agent
    newTag: "${o.tag}"
patches:
  - target:
      kind: DaemonSet
      name: node-agent
    patch: |-
      - op: replace
        path: /spec/updateStrategy/rollingUpdate/maxUnavailable
        value: ${o.maxUnavailable ?? 2}
${chart}`);
}

/**
 * An HTTP chart repository on 127.0.0.1: `helm package` of the chart written by writeChart,
 * `helm repo index` over the folder, served as files. `stop()` takes it down (a chart
 * repository that is down); `hang` answers nothing (a render that waits on the network).
 */
export class ChartRepository {
  readonly dir = mkdtempSync(join(tmpdir(), 'dsgitops-charts-'));
  private server?: Server;
  url = '';

  constructor(private readonly helm: string) {}

  /** Packages the chart at `version` into the repository and indexes it. */
  publish(version: string): this {
    const src = mkdtempSync(join(tmpdir(), 'dsgitops-chart-src-'));
    writeChart(folderWriter(src), '.', version);
    const env = { ...process.env, HELM_CONFIG_HOME: join(src, '.config'), HELM_CACHE_HOME: join(src, '.cache'), HELM_DATA_HOME: join(src, '.data') };
    execFileSync(this.helm, ['package', join(src, 'probe-agent'), '--destination', this.dir], { env, stdio: 'pipe' });
    execFileSync(this.helm, ['repo', 'index', this.dir, ...(this.url ? ['--url', this.url] : [])], { env, stdio: 'pipe' });
    return this;
  }

  async start(mode: 'serve' | 'hang' = 'serve'): Promise<string> {
    this.server = createServer((req, res) => {
      if (mode === 'hang') return; // accepts the request and never answers
      try {
        const body = readFileSync(join(this.dir, decodeURIComponent((req.url ?? '/').split('?')[0]).replace(/^\/+/, '').replace(/\.\./g, '')));
        res.writeHead(200).end(body);
      } catch {
        res.writeHead(404).end('not found');
      }
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    const address = this.server.address();
    this.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    return this.url;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}

/**
 * A kustomize that notes each `build` in a file, then runs `kustomize` (the stack's): an
 * oracle for "rendered (again)". `bin` goes in KUSTOMIZE_BIN; `runs()` counts the builds so far.
 */
export function countingKustomize(kustomize: string): { bin: string; runs: () => number } {
  const dir = mkdtempSync(join(tmpdir(), 'dsgitops-kcount-'));
  const bin = join(dir, 'kustomize');
  const count = join(dir, 'runs');
  writeFileSync(count, '');
  writeFileSync(bin, `#!/bin/sh\n[ "$1" = build ] && echo run >> ${count}\nexec ${kustomize} "$@"\n`);
  chmodSync(bin, 0o755);
  return { bin, runs: () => readFileSync(count, 'utf8').split('\n').filter(Boolean).length };
}
