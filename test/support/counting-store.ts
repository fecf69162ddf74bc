/** The real S3 adapter, with a count of the requests that go through it (a tally, not a fake). */
import type { Deps } from '../../lib/deps';
import type { ObjectStore, StoredText, WriteCondition } from '../../lib/store/object-store';
import { StateStore } from '../../lib/store/state-store';

export class CountingObjectStore implements ObjectStore {
  reads = 0;
  writes = 0;
  readonly written: string[] = [];
  /** What was read: `GET key` or `LIST prefix`. */
  readonly read: string[] = [];

  constructor(private readonly real: ObjectStore) {}

  get(key: string): Promise<StoredText | undefined> {
    this.reads++;
    this.read.push(`GET ${key}`);
    return this.real.get(key);
  }

  put(key: string, body: string, condition?: WriteCondition): Promise<string> {
    this.writes++;
    this.written.push(key);
    return this.real.put(key, body, condition);
  }

  list(prefix: string): Promise<string[]> {
    this.reads++;
    this.read.push(`LIST ${prefix}`);
    return this.real.list(prefix);
  }

  delete(key: string): Promise<void> {
    this.writes++;
    this.written.push(key);
    return this.real.delete(key);
  }
}

/** The same run's dependencies, with every S3 request counted. */
export function countingDeps(deps: Deps): { deps: Deps; s3: CountingObjectStore } {
  const s3 = new CountingObjectStore(deps.objects);
  return { deps: { ...deps, objects: s3, store: new StateStore(s3, deps.store.keys, deps.clock) }, s3 };
}
