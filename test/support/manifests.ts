/** DaemonSet manifests as a user would write them in Git, for tests. */
import { stringify } from 'yaml';

export interface DsOptions {
  name: string;
  namespace: string;
  image?: string;
  maxUnavailable?: number | string;
  minReadySeconds?: number;
  updateStrategy?: 'RollingUpdate' | 'OnDelete';
  annotations?: Record<string, string>;
  podAnnotations?: Record<string, string>;
  podLabels?: Record<string, string>;
  nodeSelector?: Record<string, string>;
  tolerateControlPlane?: boolean;
  selectorLabel?: string;
}

export function dsObject(o: DsOptions): Record<string, unknown> {
  const label = o.selectorLabel ?? o.name;
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: o.name, namespace: o.namespace, ...(o.annotations ? { annotations: o.annotations } : {}) },
    spec: {
      selector: { matchLabels: { app: label } },
      updateStrategy: o.updateStrategy === 'OnDelete'
        ? { type: 'OnDelete' }
        : { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: o.maxUnavailable ?? 1 } },
      ...(o.minReadySeconds !== undefined ? { minReadySeconds: o.minReadySeconds } : {}),
      template: {
        metadata: {
          labels: { app: label, ...o.podLabels },
          ...(o.podAnnotations ? { annotations: o.podAnnotations } : {}),
        },
        spec: {
          ...(o.nodeSelector ? { nodeSelector: o.nodeSelector } : {}),
          ...(o.tolerateControlPlane ? { tolerations: [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' }] } : {}),
          containers: [{ name: 'agent', image: o.image ?? 'registry.local/agent:1.0' }],
        },
      },
    },
  };
}

export function dsYaml(o: DsOptions): string {
  return stringify(dsObject(o));
}
