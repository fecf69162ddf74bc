/**
 * A DaemonSet runs with its configuration: the ConfigMaps and Secrets of the same source that
 * its pod template names. Their digest goes into the pod template (an annotation), so a change
 * of configuration is a change of template: it rolls within maxUnavailable (or in managed
 * waves), it is a new revision with its commit, and `kubectl rollout history` shows it. A
 * Secret contributes only the digest of its object, never a value.
 */
import { createHash } from 'node:crypto';
import { PREFIX } from '../labels';
import { DesiredDaemonSet, digestOf } from '../source/manifest';
import { companionsOf } from './companions';
import type { DesiredObject } from './objects';

export const CONFIG_DIGEST_ANNOTATION = `${PREFIX}config-digest`;

/** The digest of the configuration this DaemonSet runs with, from the source's objects; undefined when the source holds none of it. */
export function configDigestOf(d: DesiredDaemonSet, objects: DesiredObject[]): string | undefined {
  const parts: string[] = [];
  for (const ref of companionsOf(d.manifest.spec.template.spec as Record<string, unknown>)) {
    if (ref.kind === 'ServiceAccount') continue;
    const o = objects.find((x) => x.group === '' && x.kind === ref.kind && x.name === ref.name && x.namespace === d.namespace);
    if (o) parts.push(`${o.kind}/${o.name}=${o.digest}`);
  }
  if (parts.length === 0) return undefined;
  return `sha256:${createHash('sha256').update(parts.sort().join('\n')).digest('hex')}`;
}

/** The DaemonSets with the digest of their configuration in their pod template (and in their own digest). */
export function withConfigDigests(desired: DesiredDaemonSet[], objects: DesiredObject[]): DesiredDaemonSet[] {
  return desired.map((d) => {
    const digest = configDigestOf(d, objects);
    if (!digest) return d;
    const manifest = structuredClone(d.manifest);
    const template = manifest.spec.template;
    template.metadata.annotations = { ...template.metadata.annotations, [CONFIG_DIGEST_ANNOTATION]: digest };
    return { ...d, manifest, digest: digestOf(manifest) };
  });
}
