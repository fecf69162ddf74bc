/** The S3 layout of DESIGN.md: one prefix per cluster. */
export class StoreKeys {
  readonly root: string;

  constructor(prefix: string, cluster: string) {
    this.root = `${prefix ? `${prefix}/` : ''}${cluster}`;
  }

  lease(): string {
    return `${this.root}/lease.json`;
  }

  /** The state index: a copy of every DaemonSet's state.json, read in one GET (state-index.ts). */
  index(): string {
    return `${this.root}/index.json`;
  }

  /** The objects a pass applied besides DaemonSets, for prune (inventory.ts). */
  inventory(): string {
    return `${this.root}/inventory.json`;
  }

  daemonSets(): string {
    return `${this.root}/daemonsets/`;
  }

  daemonSet(namespace: string, name: string): string {
    return `${this.root}/daemonsets/${namespace}/${name}/`;
  }

  revisions(namespace: string, name: string): string {
    return `${this.daemonSet(namespace, name)}revisions/`;
  }

  revision(namespace: string, name: string, n: number): string {
    return `${this.revisions(namespace, name)}${n}.json`;
  }

  state(namespace: string, name: string): string {
    return `${this.daemonSet(namespace, name)}state.json`;
  }

  /** One object per webhook delivery received, created with If-None-Match: a delivery seen before is a replay. */
  webhookDelivery(id: string): string {
    return `${this.root}/webhook/deliveries/${id}.json`;
  }

  /** The last push the webhook accepted: a pass that held the lease meanwhile runs again for it. */
  pushRequest(): string {
    return `${this.root}/webhook/push.json`;
  }

  /** The namespace/name whose record `key` is, or undefined for a key outside daemonsets/. */
  daemonSetOf(key: string): string | undefined {
    const prefix = this.daemonSets();
    if (!key.startsWith(prefix)) return undefined;
    const m = /^([^/]+)\/([^/]+)\//.exec(key.slice(prefix.length));
    return m ? `${m[1]}/${m[2]}` : undefined;
  }

  /** The revision number in a revision key, or undefined for any other key. */
  static revisionNumber(key: string): number | undefined {
    const m = /\/revisions\/(\d+)\.json$/.exec(key);
    return m ? Number(m[1]) : undefined;
  }
}
