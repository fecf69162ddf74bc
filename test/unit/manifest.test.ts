import fc from 'fast-check';
import {
  AUTO_ROLLBACK_ANNOTATION,
  CANARY_ANNOTATION,
  CANARY_HOLD_ANNOTATION,
  PAUSED_ANNOTATION,
  PROGRESS_DEADLINE_ANNOTATION,
  ROLLOUT_ANNOTATION,
  USER_ANNOTATIONS,
} from '../../lib/labels';
import { canonicalJson, LabelSelector, selectorMatches } from '../../lib/k8s-values';
import { digestOf, formatProblem, imagesOf, validateDocument } from '../../lib/source/manifest';
import { anyNamespace, daemonSetDoc } from './fixtures';

const loc = { file: 'manifests/fluentd.yaml', document: 2 };

type Doc = ReturnType<typeof daemonSetDoc>;

/** A valid DaemonSet document with one change made to it. */
function docWith(change: (doc: Doc & Record<string, unknown>) => void): unknown {
  const doc = daemonSetDoc() as Doc & Record<string, unknown>;
  change(doc);
  return doc;
}

function problemOf(doc: unknown, policy = anyNamespace) {
  const result = validateDocument(doc, loc, policy);
  if (result.ok) throw new Error(`expected a problem, got ${result.desired.key}`);
  return result.problem;
}

describe('validateDocument', () => {
  it('accepts a valid DaemonSet and names it namespace/name with a sha256 digest', () => {
    const result = validateDocument(daemonSetDoc(), loc, anyNamespace);

    expect(result).toEqual({
      ok: true,
      desired: expect.objectContaining({ key: 'kube-system/fluentd', namespace: 'kube-system', name: 'fluentd', source: loc }),
    });
    expect(result.ok && result.desired.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('puts a DaemonSet without a namespace in "default", with the same digest as writing it out', () => {
    const withoutNamespace = docWith((d) => {
      delete (d.metadata as { namespace?: string }).namespace;
    });
    const explicit = docWith((d) => {
      d.metadata.namespace = 'default';
    });

    const a = validateDocument(withoutNamespace, loc, anyNamespace);
    const b = validateDocument(explicit, loc, anyNamespace);

    expect(a.ok && a.desired.key).toBe('default/fluentd');
    expect(a.ok && a.desired.manifest.metadata.namespace).toBe('default');
    expect(a.ok && b.ok && a.desired.digest === b.desired.digest).toBe(true);
  });

  it('checks the namespace it defaults to against ALLOWED_NAMESPACES', () => {
    const withoutNamespace = docWith((d) => {
      delete (d.metadata as { namespace?: string }).namespace;
    });

    const problem = problemOf(withoutNamespace, { allowedNamespaces: ['kube-system'] });

    expect(problem).toMatchObject({ code: 'namespace-not-allowed', key: 'default/fluentd' });
  });

  it.each<[string, unknown]>([
    ['a list', [daemonSetDoc()]],
    ['a string', 'kind: DaemonSet'],
    ['a number', 42],
  ])('reports %s as a schema problem: a Kubernetes object is a mapping', (_, doc) => {
    expect(problemOf(doc)).toEqual({
      file: 'manifests/fluentd.yaml',
      document: 2,
      key: undefined,
      code: 'schema',
      severity: 'error',
      message: expect.stringContaining('not a mapping'),
    });
  });

  it.each([
    ['kind', (d: Record<string, unknown>) => delete d.kind],
    ['apiVersion', (d: Record<string, unknown>) => delete d.apiVersion],
  ])('reports a document without %s as a schema problem that says what a DaemonSet needs', (_, remove) => {
    const problem = problemOf(docWith(remove));

    expect(problem).toMatchObject({ code: 'schema', severity: 'error' });
    expect(problem.message).toContain('apiVersion: apps/v1 and kind: DaemonSet');
  });

  it.each([
    ['Deployment', { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'default' } }, 'Deployment web is not applied'],
    ['ClusterRoleBinding', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'fluentd' } }, 'ClusterRoleBinding fluentd is not applied'],
    ['ConfigMap without a name', { apiVersion: 'v1', kind: 'ConfigMap', data: {} }, 'ConfigMap is not applied'],
  ])('skips a %s rather than failing on it: only DaemonSets are applied', (_, doc, says) => {
    const problem = problemOf(doc);

    expect(problem).toMatchObject({ code: 'not-a-daemonset', severity: 'skipped', file: loc.file, document: loc.document });
    expect(problem.message).toContain(says);
    expect(problem.message).toContain('applies only apps/v1 DaemonSet');
  });

  it.each(['extensions/v1beta1', 'apps/v1beta2'])('refuses a DaemonSet in %s and says apps/v1 is needed', (apiVersion) => {
    const problem = problemOf(docWith((d) => {
      d.apiVersion = apiVersion;
    }));

    expect(problem).toMatchObject({ code: 'old-api-version', severity: 'error', key: 'kube-system/fluentd' });
    expect(problem.message).toContain(`apiVersion ${apiVersion} is not served`);
    expect(problem.message).toContain('use apiVersion: apps/v1');
  });

  it.each<[string, (d: Doc & Record<string, unknown>) => void, string]>([
    ['no spec.selector', (d) => delete (d.spec as Partial<Doc['spec']>).selector, 'spec.selector is required in apps/v1'],
    ['an empty spec.selector', (d) => { d.spec.selector = {} as Doc['spec']['selector']; }, 'spec.selector is empty'],
    ['no pod template metadata', (d) => delete (d.spec.template as Partial<Doc['spec']['template']>).metadata, 'spec.template.metadata.labels is required'],
    ['pod template metadata without labels', (d) => delete (d.spec.template.metadata as Partial<Doc['spec']['template']['metadata']>).labels, 'spec.template.metadata.labels is required'],
    ['no containers', (d) => { d.spec.template.spec.containers = []; }, 'needs at least one container'],
    ['an upper-case name', (d) => { d.metadata.name = 'Fluentd'; }, 'metadata.name'],
    ['a namespace that is not a DNS label', (d) => { d.metadata.namespace = 'kube_system'; }, 'metadata.namespace: must be a lower-case DNS label'],
    ['an unknown update strategy', (d) => { (d.spec as Record<string, unknown>).updateStrategy = { type: 'Recreate' }; }, 'spec.updateStrategy.type'],
    ['a negative minReadySeconds', (d) => { (d.spec as Record<string, unknown>).minReadySeconds = -5; }, 'spec.minReadySeconds'],
    ['a label value that is not a string', (d) => { (d.metadata.labels as Record<string, unknown>).tier = 3; }, 'metadata.labels.tier'],
  ])('reports a DaemonSet with %s as a schema error naming the field', (_, change, says) => {
    const problem = problemOf(docWith(change));

    expect(problem).toMatchObject({ code: 'schema', severity: 'error', file: loc.file, document: loc.document });
    expect(problem.message).toContain(says);
  });

  it('reports a selector that does not match the pod template, showing both sides', () => {
    const doc = docWith((d) => {
      d.spec.selector.matchLabels = { name: 'fluentd' } as unknown as { app: string };
    });

    const problem = problemOf(doc);

    expect(problem).toMatchObject({ code: 'selector-mismatch', severity: 'error', key: 'kube-system/fluentd' });
    expect(formatProblem(problem)).toBe(
      'manifests/fluentd.yaml (document 2): spec.selector does not match spec.template.metadata.labels (name=fluentd vs app=fluentd)',
    );
  });

  it('describes matchExpressions in a selector mismatch', () => {
    const doc = docWith((d) => {
      (d.spec.selector as LabelSelector).matchExpressions = [{ key: 'tier', operator: 'In', values: ['node', 'edge'] }];
    });

    expect(problemOf(doc).message).toContain('(app=fluentd,tier In (node,edge) vs app=fluentd)');
  });

  it('refuses a namespace outside ALLOWED_NAMESPACES and says how to fix it', () => {
    const problem = problemOf(daemonSetDoc({ namespace: 'default' }), { allowedNamespaces: ['kube-system', 'logging'] });

    expect(problem).toMatchObject({ code: 'namespace-not-allowed', severity: 'error', key: 'default/fluentd' });
    expect(problem.message).toBe(
      'namespace default is not in ALLOWED_NAMESPACES (kube-system, logging): move the DaemonSet to an allowed namespace or add default to ALLOWED_NAMESPACES',
    );
  });

  it('accepts a namespace listed in ALLOWED_NAMESPACES', () => {
    const result = validateDocument(daemonSetDoc({ namespace: 'logging' }), loc, { allowedNamespaces: ['kube-system', 'logging'] });

    expect(result.ok).toBe(true);
  });

  it.each<[string, (d: Doc & Record<string, unknown>) => void, string]>([
    ['a DaemonSet label', (d) => { (d.metadata.labels as Record<string, string>)['daemonset-gitops.io/revision'] = '9'; }, 'metadata.labels daemonset-gitops.io/revision'],
    ['a pod template label', (d) => { (d.spec.template.metadata.labels as Record<string, string>)['daemonset-gitops.io/owner'] = 'me'; }, 'spec.template.metadata.labels daemonset-gitops.io/owner'],
    ['an annotation the tool writes', (d) => { (d.metadata as Record<string, unknown>).annotations = { 'daemonset-gitops.io/manifest-digest': 'sha256:0' }; }, 'metadata.annotations daemonset-gitops.io/manifest-digest is reserved'],
    ['the pinned annotation', (d) => { (d.metadata as Record<string, unknown>).annotations = { 'daemonset-gitops.io/pinned': 'yes' }; }, 'daemonset-gitops.io/pinned is reserved'],
  ])('refuses %s under the reserved daemonset-gitops.io/ prefix', (_, change, says) => {
    const problem = problemOf(docWith(change));

    expect(problem).toMatchObject({ code: 'reserved-key', severity: 'error', key: 'kube-system/fluentd' });
    expect(problem.message).toContain(says);
  });

  it('lists the annotations a manifest may set when it refuses a reserved one', () => {
    const problem = problemOf(docWith((d) => {
      (d.metadata as Record<string, unknown>).annotations = { 'daemonset-gitops.io/revision': '3' };
    }));

    for (const allowed of USER_ANNOTATIONS) expect(problem.message).toContain(allowed);
  });

  it('accepts every annotation a manifest may set under the prefix', () => {
    const annotations = {
      [ROLLOUT_ANNOTATION]: 'managed',
      [CANARY_ANNOTATION]: '2',
      [CANARY_HOLD_ANNOTATION]: '60s',
      [PAUSED_ANNOTATION]: 'false',
      [AUTO_ROLLBACK_ANNOTATION]: 'true',
      [PROGRESS_DEADLINE_ANNOTATION]: '300',
      'daemonset-gitops.io/gates': 'restarts: 1',
      'daemonset-gitops.io/pre-pull': '2m',
    };
    const doc = docWith((d) => {
      (d.metadata as Record<string, unknown>).annotations = annotations;
    });

    const result = validateDocument(doc, loc, anyNamespace);

    expect(Object.keys(annotations).sort()).toEqual([...USER_ANNOTATIONS].sort());
    expect(result.ok && result.desired.manifest.metadata.annotations).toEqual(annotations);
  });

  it('accepts the managed-by label and annotations outside the prefix', () => {
    const doc = docWith((d) => {
      (d.metadata.labels as Record<string, string>)['daemonset-gitops.io/managed-by'] = 'daemonset-gitops';
      (d.metadata as Record<string, unknown>).annotations = { 'example.com/team': 'observability' };
    });

    expect(validateDocument(doc, loc, anyNamespace).ok).toBe(true);
  });

  it('keeps fields it does not read, so they reach the cluster', () => {
    const doc = docWith((d) => {
      (d.spec.template.spec as Record<string, unknown>).tolerations = [{ operator: 'Exists' }];
    });

    const result = validateDocument(doc, loc, anyNamespace);

    expect(result.ok && result.desired.manifest.spec.template.spec.tolerations).toEqual([{ operator: 'Exists' }]);
  });
});

describe('selectorMatches', () => {
  const labels = { app: 'fluentd', tier: 'node' };

  it.each<[string, LabelSelector, boolean]>([
    ['an empty selector', {}, true],
    ['matchLabels that are all present', { matchLabels: { app: 'fluentd', tier: 'node' } }, true],
    ['matchLabels with another value', { matchLabels: { app: 'fluent-bit' } }, false],
    ['matchLabels with a missing key', { matchLabels: { zone: 'a' } }, false],
    ['In with the value listed', { matchExpressions: [{ key: 'tier', operator: 'In', values: ['edge', 'node'] }] }, true],
    ['In with the value not listed', { matchExpressions: [{ key: 'tier', operator: 'In', values: ['edge'] }] }, false],
    ['In on a missing key', { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }, false],
    ['NotIn with the value listed', { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['node'] }] }, false],
    ['NotIn with the value not listed', { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['edge'] }] }, true],
    ['NotIn on a missing key', { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, true],
    ['Exists on a present key', { matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, true],
    ['Exists on a missing key', { matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, false],
    ['DoesNotExist on a missing key', { matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, true],
    ['DoesNotExist on a present key', { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, false],
    ['matchLabels that match and an expression that does not', { matchLabels: { app: 'fluentd' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['edge'] }] }, false],
    ['Exists on an inherited property name', { matchExpressions: [{ key: 'toString', operator: 'Exists' }] }, false],
  ])('decides %s as the API server does (%s)', (_, selector, expected) => {
    expect(selectorMatches(selector, labels)).toBe(expected);
  });

  type Requirement =
    | { kind: 'label'; value: string }
    | { kind: 'In'; values: string[]; pick: number }
    | { kind: 'NotIn'; values: string[]; present: boolean }
    | { kind: 'Exists'; value: string }
    | { kind: 'DoesNotExist' };

  const labelKey = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/);
  const labelValue = fc.stringMatching(/^[a-z0-9]{0,6}$/);
  const requirement: fc.Arbitrary<Requirement> = fc.oneof(
    labelValue.map((value) => ({ kind: 'label' as const, value })),
    fc.tuple(fc.array(labelValue, { minLength: 1, maxLength: 4 }), fc.nat()).map(([values, pick]) => ({ kind: 'In' as const, values, pick })),
    fc.tuple(fc.array(labelValue, { maxLength: 4 }), fc.boolean()).map(([values, present]) => ({ kind: 'NotIn' as const, values, present })),
    labelValue.map((value) => ({ kind: 'Exists' as const, value })),
    fc.constant({ kind: 'DoesNotExist' as const }),
  );
  const requirements = fc.uniqueArray(fc.tuple(labelKey, requirement), { selector: ([k]) => k, minLength: 1, maxLength: 6 });
  const extraLabels = fc.dictionary(labelKey.map((k) => `example.com/${k}`), labelValue, { maxKeys: 3 });

  function selectorOf(reqs: [string, Requirement][]): LabelSelector {
    const selector: LabelSelector = { matchLabels: {}, matchExpressions: [] };
    for (const [key, r] of reqs) {
      if (r.kind === 'label') selector.matchLabels![key] = r.value;
      else if (r.kind === 'In' || r.kind === 'NotIn') selector.matchExpressions!.push({ key, operator: r.kind, values: r.values });
      else selector.matchExpressions!.push({ key, operator: r.kind });
    }
    return selector;
  }

  /** Labels chosen to satisfy every requirement, plus unrelated ones. */
  function satisfying(reqs: [string, Requirement][], extra: Record<string, string>): Record<string, string> {
    const labels: Record<string, string> = { ...extra };
    for (const [key, r] of reqs) {
      if (r.kind === 'label' || r.kind === 'Exists') labels[key] = r.value;
      if (r.kind === 'In') labels[key] = r.values[r.pick % r.values.length];
      // Longer than every listed value, so never one of them.
      if (r.kind === 'NotIn' && r.present) labels[key] = `${r.values.join('')}x`;
    }
    return labels;
  }

  it('matches any label set built to satisfy the selector', () => {
    fc.assert(
      fc.property(requirements, extraLabels, (reqs, extra) => selectorMatches(selectorOf(reqs), satisfying(reqs, extra))),
    );
  });

  it('stops matching when a label a requirement needs is removed', () => {
    const needsLabel = (r: Requirement) => r.kind === 'label' || r.kind === 'In' || r.kind === 'Exists';
    fc.assert(
      fc.property(requirements, extraLabels, fc.nat(), (reqs, extra, which) => {
        const needed = reqs.filter(([, r]) => needsLabel(r));
        fc.pre(needed.length > 0);
        const labels = satisfying(reqs, extra);
        delete labels[needed[which % needed.length][0]];
        return !selectorMatches(selectorOf(reqs), labels);
      }),
    );
  });
});

/** The same JSON value with the keys of every object in reverse order. */
function reversedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reversedKeys(v)]));
  }
  return value;
}

describe('canonicalJson', () => {
  it('sorts keys at every level', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}');
  });

  it('leaves out undefined fields, as JSON does', () => {
    expect(canonicalJson({ a: 1, b: undefined })).toBe(canonicalJson({ a: 1 }));
  });

  it('gives the same text whatever the key order', () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => canonicalJson(reversedKeys(value)) === canonicalJson(value)));
  });
});

describe('digestOf', () => {
  it('is a sha256 digest', () => {
    expect(digestOf(daemonSetDoc())).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('does not change when only the key order changes', () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => digestOf(reversedKeys(value)) === digestOf(value)));
  });

  it.each<[string, (d: Doc & Record<string, unknown>) => void]>([
    ['the image tag', (d) => { d.spec.template.spec.containers[0].image = 'fluent/fluentd:v1.17'; }],
    ['maxUnavailable from 1 to "1"', (d) => { (d.spec as Record<string, unknown>).updateStrategy = { rollingUpdate: { maxUnavailable: '1' } }; }],
    ['a label value', (d) => { d.metadata.labels.app = 'fluentd2'; }],
    ['a field set to null', (d) => { (d.spec as Record<string, unknown>).minReadySeconds = null; }],
    ['the order of containers', (d) => { d.spec.template.spec.containers.unshift({ name: 'sidecar', image: 'busybox' }); }],
  ])('changes when %s changes', (_, change) => {
    const before = digestOf(daemonSetDoc());
    const after = digestOf(docWith(change));

    expect(after).not.toBe(before);
  });

  it('changes when any value changes', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue(), { minKeys: 1 }), fc.nat(), fc.jsonValue(), (object, which, replacement) => {
        const keys = Object.keys(object);
        const key = keys[which % keys.length];
        fc.pre(canonicalJson(replacement) !== canonicalJson(object[key]));
        const changed = Object.fromEntries(Object.entries(object).map(([k, v]) => [k, k === key ? replacement : v]));
        return digestOf(changed) !== digestOf(object);
      }),
    );
  });
});

describe('imagesOf', () => {
  it('lists init container images first, then container images', () => {
    const doc = daemonSetDoc();
    (doc.spec.template.spec as Record<string, unknown>).initContainers = [{ name: 'setup', image: 'busybox:1.36' }];
    doc.spec.template.spec.containers.push({ name: 'exporter', image: 'prom/node-exporter:v1.8' });

    expect(imagesOf(doc as never)).toEqual(['busybox:1.36', 'fluent/fluentd:v1.16', 'prom/node-exporter:v1.8']);
  });

  it('shows "(none)" for a container without an image', () => {
    expect(imagesOf({ spec: { selector: {}, template: { metadata: { labels: {} }, spec: { containers: [{ name: 'x' }] } } } })).toEqual(['(none)']);
  });
});
