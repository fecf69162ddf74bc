import fc from 'fast-check';
import { PreconditionFailedError } from '../../lib/errors';
import { StoreKeys } from '../../lib/store/keys';
import { canonicalJson } from '../../lib/k8s-values';
import { stateSchema, type DaemonSetState } from '../../lib/store/records';
import { StateStore } from '../../lib/store/state-store';
import { MemoryObjectStore } from '../support/memory-object-store';

/*
 * The state index against state.json, with writers racing as separate processes would: each
 * process has its own StateStore (its own index queue) and its own clock, and every S3 call
 * reaches the in-memory store (conditional writes as S3 answers them) in an order fast-check
 * chooses. The oracle is the store itself: whenever an index entry carries no writer's token,
 * it is exactly the state.json that is stored (value and ETag); once every writer has
 * finished, every entry is.
 */

const T = Date.parse('2024-05-01T12:00:00.000Z');
const MIN = 60_000;
const KEY = 'agents/agent';
const keys = new StoreKeys('dsg', 'c1');

type Op = 'decision' | 'pause' | 'resume' | 'unpin' | 'read-repair';
const opArb = fc.constantFrom<Op>('decision', 'decision', 'pause', 'resume', 'unpin', 'read-repair');

function initial(at: string): DaemonSetState {
  return {
    schema: 1, namespace: 'agents', name: 'agent', currentRevision: 3, appliedDigest: 'd3', gitDigest: 'd2',
    pin: { revision: 1, reason: 'rollback to revision 1', at, gitDigest: 'd2' },
    rollout: { revision: 3, mode: 'managed', phase: 'progressing', startedAt: at, lastProgressAt: at },
    updatedAt: at,
  };
}

/** One process's operation, as the driver, `dsgitops pause`/`resume`/`unpin` and a pass's read do it. */
async function perform(store: StateStore, op: Op, n: number, now: () => Date): Promise<void> {
  const at = now().toISOString();
  switch (op) {
    case 'decision':
      // managed.ts: read, decide, write conditionally; a refusal means decide again on fresh data.
      for (let attempt = 0; attempt < 3; attempt++) {
        const read = await store.getState('agents', 'agent');
        if (!read) return;
        const rollout = { ...read.value.rollout!, lastProgressAt: at, message: `decision ${n}.${attempt}` };
        try {
          await store.putState({ ...read.value, rollout, updatedAt: at }, read.etag);
          return;
        } catch (err) {
          if (!(err instanceof PreconditionFailedError)) throw err;
        }
      }
      return;
    case 'pause':
      await store.updateState('agents', 'agent', (cur) => (cur ? { ...cur, paused: { at, by: `op${n}` }, updatedAt: at } : undefined));
      return;
    case 'resume':
      await store.updateState('agents', 'agent', (cur) => (cur ? { ...cur, paused: undefined, updatedAt: at } : undefined));
      return;
    case 'unpin':
      await store.updateState('agents', 'agent', (cur) => (cur ? { ...cur, pin: undefined, updatedAt: at } : undefined));
      return;
    case 'read-repair':
      await store.readStates([KEY], { repair: true });
  }
}

describe('the state index, against state.json, with racing writers', () => {
  it('never vouches for anything but the stored state.json: an entry without tokens equals it, at every moment and once writers settle', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.record({ clockOffsetMin: fc.constantFrom(0, 0, -25, 25), ops: fc.array(opArb, { minLength: 1, maxLength: 3 }) }), { minLength: 2, maxLength: 3 }),
        async (s, processes) => {
          // prepare: the state and its index entry, settled, before anyone races
          let storeTime = T;
          let gated = false;
          const problems: string[] = [];
          const objects: MemoryObjectStore = new MemoryObjectStore(async (label) => {
            if (!gated) return;
            await s.schedule(Promise.resolve(label), label);
            storeTime += 1000;
          }, () => new Date(storeTime));
          const check = (when: string) => {
            const state = objects.peek(keys.state('agents', 'agent'));
            const index = objects.peek(keys.index());
            if (!state || !index) return;
            const entry = (JSON.parse(index.body) as { entries: Record<string, { etag?: string; state?: unknown; pending?: Record<string, string> }> }).entries[KEY];
            if (!entry || entry.pending) return;
            const stored = stateSchema.parse(JSON.parse(state.body));
            if (entry.etag !== state.etag || canonicalJson(entry.state) !== canonicalJson(stored)) {
              problems.push(`${when}: the index vouches for etag ${entry.etag} ${JSON.stringify(pick(entry.state))} but state.json is etag ${state.etag} ${JSON.stringify(pick(stored))}`);
            }
          };
          const put = objects.put.bind(objects);
          objects.put = async (key, body, condition) => {
            const etag = await put(key, body, condition);
            check(`after PUT ${key.replace('dsg/c1/', '')}`);
            return etag;
          };
          await new StateStore(objects, keys, { now: () => new Date(T) }).putState(initial(new Date(T).toISOString()), undefined);
          gated = true;
          // act: every process runs its operations one after another; the processes race
          const runs = processes.map(async (p, i) => {
            const now = () => new Date(storeTime + p.clockOffsetMin * MIN);
            const store = new StateStore(objects, keys, { now });
            for (const [j, op] of p.ops.entries()) {
              try {
                await perform(store, op, i * 10 + j, now);
              } catch (err) {
                // A command that lost the race every time it tried says so, and changed nothing: not the index's business.
                if (!(err instanceof PreconditionFailedError)) throw err;
              }
            }
          });
          await s.waitFor(Promise.all(runs));
          // assert
          check('once every writer finished');
          if (problems.length) throw new Error(`${problems[0]}\nprocesses: ${JSON.stringify(processes)}\nschedule:\n${s.report().filter((t) => t.status !== 'pending').map((t) => `  ${t.label}`).join('\n')}`);
        },
      ),
      { numRuns: Number(process.env.INDEX_ORACLE_RUNS ?? 400) },
    );
  });
});

function pick(state: unknown): unknown {
  const s = state as DaemonSetState | undefined;
  return s && { paused: Boolean(s.paused), pin: Boolean(s.pin), message: s.rollout?.message };
}
