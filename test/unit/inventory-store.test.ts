import { PreconditionFailedError, RecordUnreadableError } from '../../lib/errors';
import { Inventory, InventoryStore } from '../../lib/store/inventory';
import { StoreKeys } from '../../lib/store/keys';
import { MemoryObjectStore } from '../support/memory-object-store';

const inventory = (runId: string, names: string[]): Inventory => ({
  schema: 1, cluster: 'c1', commit: 'abc', runId, at: '2026-01-01T00:00:00Z',
  objects: names.map((name) => ({ group: '', version: 'v1', kind: 'ConfigMap', namespace: 'agents', name })), pruning: [],
});

describe('InventoryStore', () => {
  it('lives at <prefix>/<cluster>/inventory.json', () => {
    expect(new InventoryStore(new MemoryObjectStore(), new StoreKeys('dsg', 'prod-eu-1')).key).toBe('dsg/prod-eu-1/inventory.json');
  });

  it('never overwrites blindly: a second first write, or a write over a version it did not read, is refused', async () => {
    const objects = new MemoryObjectStore();
    const a = new InventoryStore(objects, new StoreKeys('p', 'c1'));
    const b = new InventoryStore(objects, new StoreKeys('p', 'c1'));
    const etag = await a.write(inventory('run-a', ['one']), undefined);
    await expect(b.write(inventory('run-b', ['two']), undefined)).rejects.toBeInstanceOf(PreconditionFailedError);
    const read = (await b.read())!;
    expect(read.value.runId).toBe('run-a');
    await a.write(inventory('run-a', ['one', 'three']), etag);
    await expect(b.write(inventory('run-b', ['two']), read.etag)).rejects.toBeInstanceOf(PreconditionFailedError);
    expect((await a.read())!.value.objects.map((o) => o.name)).toEqual(['one', 'three']);
  });

  it('refuses a record that does not parse, naming its key and what to do, rather than taking it as empty', async () => {
    const objects = new MemoryObjectStore();
    await objects.put('p/c1/inventory.json', '{"schema":1,"objects":"oops"}');
    const err = await new InventoryStore(objects, new StoreKeys('p', 'c1')).read().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RecordUnreadableError);
    expect((err as Error).message).toMatch(/p\/c1\/inventory\.json cannot be read as a record.*nothing is pruned until it is deleted or restored/);
  });
});
