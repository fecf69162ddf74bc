/**
 * Shared builders for the unit tests: a valid DaemonSet as Git would hold it, as YAML text,
 * and as the cluster would return it. Each test changes only what it is about.
 */
import type { LiveDaemonSet } from '../../lib/cluster/types';
import type { Policy } from '../../lib/config';
import { render } from '../../lib/plan/render';
import { DesiredDaemonSet, SourceLocation, validateDocument } from '../../lib/source/manifest';

export interface DaemonSetOptions {
  name?: string;
  namespace?: string;
  image?: string;
}

/** A plain, valid apps/v1 DaemonSet document, as parsed from YAML. */
export function daemonSetDoc({ name = 'fluentd', namespace = 'kube-system', image = 'fluent/fluentd:v1.16' }: DaemonSetOptions = {}) {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name, image }] },
      },
    },
  };
}

/** The same DaemonSet as YAML text, one document without the `---` separator. */
export function daemonSetYaml({ name = 'fluentd', namespace = 'kube-system', image = 'fluent/fluentd:v1.16' }: DaemonSetOptions = {}): string {
  return [
    'apiVersion: apps/v1',
    'kind: DaemonSet',
    'metadata:',
    `  name: ${name}`,
    `  namespace: ${namespace}`,
    'spec:',
    '  selector:',
    '    matchLabels:',
    `      app: ${name}`,
    '  template:',
    '    metadata:',
    '      labels:',
    `        app: ${name}`,
    '    spec:',
    '      containers:',
    `        - name: ${name}`,
    `          image: ${image}`,
    '',
  ].join('\n');
}

export const anyNamespace: Pick<Policy, 'allowedNamespaces'> = { allowedNamespaces: '*' };

export function policy(overrides: Partial<Policy> = {}): Policy {
  return { allowedNamespaces: '*', selfHeal: true, prune: false, progressDeadlineSeconds: 600, autoRollback: false, ...overrides };
}

/** A document validated the way the loader validates it; fails the test if it is not valid. */
export function desiredOf(doc: unknown, source: SourceLocation = { file: 'manifests/fluentd.yaml', document: 1 }): DesiredDaemonSet {
  const result = validateDocument(doc, source, anyNamespace);
  if (!result.ok) throw new Error(`fixture is invalid: ${result.problem.message}`);
  return result.desired;
}

/** What the cluster returns after applying `desired` as `revision`, at `generation`. */
export function liveOf(desired: DesiredDaemonSet, { revision, generation, commit = 'c0ffee' }: { revision: number; generation: number; commit?: string }): LiveDaemonSet {
  const applied = render(desired.manifest, { revision, commit, digest: desired.digest, sourcePath: desired.source.file, changeCause: `${commit.slice(0, 7)} fixture commit` });
  return {
    ...applied,
    metadata: { ...applied.metadata, uid: 'uid-1', generation, resourceVersion: '100' },
    status: { observedGeneration: generation, desiredNumberScheduled: 3, currentNumberScheduled: 3, numberReady: 3, updatedNumberScheduled: 3, numberAvailable: 3 },
  };
}
