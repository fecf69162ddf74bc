/**
 * An object store in memory that answers conditional writes as S3 does: If-None-Match: *
 * fails when the key exists, If-Match fails unless the ETag is the current one; every write
 * gets a new ETag, and reads report the store's own clock. Each call may be held by a
 * scheduler (fast-check's), so that property tests choose the order in which concurrent
 * calls reach the store: a call's effect happens when the scheduler releases it.
 */
import { PreconditionFailedError } from '../../lib/errors';
import type { ObjectStore, StoredText, WriteCondition } from '../../lib/store/object-store';

export type Gate = (label: string) => Promise<void>;

export class MemoryObjectStore implements ObjectStore {
  private readonly objects = new Map<string, { body: string; etag: string; lastModified: Date }>();
  private writes = 0;

  constructor(
    private readonly gate: Gate = () => Promise.resolve(),
    /** the store's clock */
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async get(key: string): Promise<StoredText | undefined> {
    await this.gate(`GET ${key}`);
    const o = this.objects.get(key);
    return o ? { body: o.body, etag: o.etag, lastModified: o.lastModified, serverTime: this.clock() } : undefined;
  }

  async put(key: string, body: string, condition?: WriteCondition): Promise<string> {
    await this.gate(`PUT ${key}${condition?.ifMatch ? ` If-Match ${condition.ifMatch}` : condition?.ifNoneMatch ? ' If-None-Match *' : ''}`);
    const there = this.objects.get(key);
    if (condition?.ifNoneMatch === '*' && there) throw new PreconditionFailedError(key);
    if (condition?.ifMatch !== undefined && there?.etag !== condition.ifMatch) throw new PreconditionFailedError(key);
    this.writes += 1;
    const etag = `"${this.writes}"`;
    this.objects.set(key, { body, etag, lastModified: this.clock() });
    return etag;
  }

  async list(prefix: string): Promise<string[]> {
    await this.gate(`LIST ${prefix}`);
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  }

  async delete(key: string): Promise<void> {
    await this.gate(`DELETE ${key}`);
    this.objects.delete(key);
  }

  /** What the key holds now, without going through the gate. */
  peek(key: string): { body: string; etag: string } | undefined {
    return this.objects.get(key);
  }
}
