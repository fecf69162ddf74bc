/**
 * The inventory: `<prefix>/<cluster>/inventory.json`, every object other than a DaemonSet that
 * passes applied and that this tool still manages (DaemonSets have their own records, state.json
 * and index.json). Prune reads only this record (as Flux's inventory): an object is a prune
 * candidate because an earlier pass recorded it here, never because of what a LIST happened to
 * find. Written conditionally (If-None-Match: * for the first, If-Match on the ETag read), under
 * the cluster's lease, and before anything is deleted: the objects a pass is about to delete
 * stay listed (`pruning`) until they are gone, so a run killed between the write and the
 * deletes leaves them for the next pass to delete.
 */
import * as z from 'zod/mini';
import '../schema';
import { RecordUnreadableError } from '../errors';
import type { StoreKeys } from './keys';
import type { ObjectStore } from './object-store';
import type { Versioned } from './state-store';
import { parseRecord } from './state-store';

export const inventoryEntrySchema = z.object({
  group: z.string(),
  version: z.string(),
  kind: z.string(),
  /** Absent for a cluster-scoped object. */
  namespace: z.optional(z.string()),
  name: z.string(),
  /** The file of Git's source it was last applied from: a file that does not load this pass keeps its objects. */
  file: z.optional(z.string()),
});
export type InventoryEntry = z.infer<typeof inventoryEntrySchema>;

export const inventorySchema = z.object({
  schema: z.literal(1),
  cluster: z.string(),
  /** The Git commit of the pass that wrote it. */
  commit: z.optional(z.string()),
  runId: z.string(),
  at: z.string(),
  /** Every object applied and still managed, orphans not (yet) pruned included. */
  objects: z.array(inventoryEntrySchema),
  /** Objects a pass is deleting: written before the first delete, removed once each is gone. */
  pruning: z._default(z.array(inventoryEntrySchema), []),
});
export type Inventory = z.infer<typeof inventorySchema>;

export class InventoryStore {
  constructor(private readonly objects: ObjectStore, private readonly keys: StoreKeys) {}

  get key(): string {
    return this.keys.inventory();
  }

  /** The inventory with its ETag; undefined when none was written yet. Throws RecordUnreadableError for one that does not parse. */
  async read(): Promise<Versioned<Inventory> | undefined> {
    const got = await this.objects.get(this.key);
    if (!got) return undefined;
    const parsed = parseRecord(got.body, inventorySchema);
    if (!parsed.ok) throw new RecordUnreadableError(this.key, `${parsed.problem}; nothing is pruned until it is deleted or restored from an earlier version (the next pass then records a new inventory)`);
    return { value: parsed.value, etag: got.etag };
  }

  /** Writes the inventory over the version read (`etag`), or as the first one; PreconditionFailedError when another writer came between. */
  write(inventory: Inventory, etag: string | undefined): Promise<string> {
    return this.objects.put(this.key, JSON.stringify(inventory), etag ? { ifMatch: etag } : { ifNoneMatch: '*' });
  }
}
