/**
 * API discovery: which resource serves a kind at a group/version, and whether it is namespaced.
 * Read once per process and API server (a warm Lambda reuses it) with two requests, `/api` and
 * `/apis` in the aggregated form (apidiscovery.k8s.io/v2, served since Kubernetes 1.30); read
 * again only when asked (after this pass created a CRD, or met a kind it did not know).
 */
import type { Cluster } from './client';
import type { ResourceRef } from './resources';

const AGGREGATED = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json';

interface AggregatedList {
  kind?: string;
  items?: {
    metadata?: { name?: string };
    versions?: { version: string; resources?: { resource: string; scope?: string; responseKind?: { group?: string; version?: string; kind?: string } }[] }[];
  }[];
}

interface LegacyResourceList {
  resources?: { name: string; kind: string; namespaced: boolean }[];
}

/** group/version/Kind -> resource. */
export type DiscoveryTable = Map<string, ResourceRef>;

function tableKey(group: string, version: string, kind: string): string {
  return `${group}/${version}/${kind}`;
}

/** The resources an aggregated discovery document lists (subresources are not resources of their own). */
export function readAggregated(doc: unknown, into: DiscoveryTable): boolean {
  const list = doc as AggregatedList;
  if (!list || list.kind !== 'APIGroupDiscoveryList' || !Array.isArray(list.items)) return false;
  for (const g of list.items) {
    const group = g.metadata?.name ?? '';
    for (const v of g.versions ?? []) {
      for (const r of v.resources ?? []) {
        const kind = r.responseKind?.kind;
        if (!kind || r.resource.includes('/')) continue;
        into.set(tableKey(group, v.version, kind), { group, version: v.version, kind, resource: r.resource, namespaced: r.scope === 'Namespaced' });
      }
    }
  }
  return true;
}

/** Marks a table read one group/version at a time. */
const LEGACY = '(legacy discovery)';

/** What one process knows of each API server's resources. */
const known = new Map<string, Promise<DiscoveryTable>>();

export class Discovery {
  constructor(private readonly cluster: Cluster) {}

  private load(): Promise<DiscoveryTable> {
    const { server } = this.cluster;
    let table = known.get(server);
    if (!table) {
      table = this.read();
      known.set(server, table);
      table.catch(() => known.delete(server)); // a failed read is tried again by the next caller
    }
    return table;
  }

  private async read(): Promise<DiscoveryTable> {
    const table: DiscoveryTable = new Map();
    const [core, groups] = await Promise.all([this.cluster.getDiscovery('/api', AGGREGATED), this.cluster.getDiscovery('/apis', AGGREGATED)]);
    if (readAggregated(core, table) && readAggregated(groups, table)) return table;
    // An API server without aggregated discovery: each group/version is read when needed.
    return new Map([[LEGACY, { group: '', version: '', kind: '', resource: '', namespaced: false }]]);
  }

  /** Forget what was read: the next lookup reads discovery again (a CRD was created or changed). */
  invalidate(): void {
    known.delete(this.cluster.server);
  }

  /** The resource serving this kind at this apiVersion, or undefined when the server does not serve it. */
  async resourceFor(apiVersion: string, kind: string): Promise<ResourceRef | undefined> {
    const slash = apiVersion.indexOf('/');
    const group = slash < 0 ? '' : apiVersion.slice(0, slash);
    const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
    const table = await this.load();
    const found = table.get(tableKey(group, version, kind));
    if (found || !table.has(LEGACY)) return found;
    return this.legacy(group, version, kind, table);
  }

  /** Without aggregated discovery: the group/version's resource list, read once and kept in the table. */
  private async legacy(group: string, version: string, kind: string, table: DiscoveryTable): Promise<ResourceRef | undefined> {
    const marker = tableKey(group, version, '');
    if (!table.has(marker)) {
      let doc: LegacyResourceList | undefined;
      try {
        doc = (await this.cluster.getDiscovery(group ? `/apis/${group}/${version}` : `/api/${version}`, 'application/json')) as LegacyResourceList;
      } catch {
        doc = undefined; // not served
      }
      for (const r of doc?.resources ?? []) {
        if (!r.name.includes('/')) table.set(tableKey(group, version, r.kind), { group, version, kind: r.kind, resource: r.name, namespaced: r.namespaced });
      }
      table.set(marker, { group, version, kind: '', resource: '', namespaced: false });
    }
    return table.get(tableKey(group, version, kind));
  }
}
