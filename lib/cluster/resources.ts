/**
 * Any kind of object, as the API server serves it: the resource a kind maps to (from API
 * discovery), and the REST paths of its collection and of one object.
 */
import type { ObjectMeta } from './types';

export interface ResourceRef {
  group: string;
  version: string;
  kind: string;
  /** The plural resource name, e.g. configmaps. */
  resource: string;
  namespaced: boolean;
}

/** An object of any kind as the API server sends it. */
export interface LiveObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

const segment = encodeURIComponent;

function groupVersionPath(r: Pick<ResourceRef, 'group' | 'version'>): string {
  return r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
}

/** The collection: in one namespace, or across all (a namespaced kind without `namespace`, or a cluster-scoped one). */
export function collectionPath(r: ResourceRef, namespace?: string): string {
  return r.namespaced && namespace
    ? `${groupVersionPath(r)}/namespaces/${segment(namespace)}/${r.resource}`
    : `${groupVersionPath(r)}/${r.resource}`;
}

export function objectPath(r: ResourceRef, namespace: string | undefined, name: string): string {
  return `${collectionPath(r, r.namespaced ? namespace : undefined)}/${segment(name)}`;
}

/** How a message names one object: `ConfigMap logging/fluent-bit`. */
export function describeObject(r: Pick<ResourceRef, 'kind' | 'namespaced'>, namespace: string | undefined, name: string): string {
  return `${r.kind} ${r.namespaced && namespace ? `${namespace}/` : ''}${name}`;
}

/** The DaemonSet resource, known without discovery (this product's own kind). */
export const DAEMONSETS: ResourceRef = { group: 'apps', version: 'v1', kind: 'DaemonSet', resource: 'daemonsets', namespaced: true };
