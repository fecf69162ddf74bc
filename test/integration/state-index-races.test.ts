/**
 * The state index never vouches for a state that is not state.json's, whatever the order in
 * which concurrent writers land and whatever their clocks say. Each writer is its own
 * StateStore over the stack's MinIO (as two processes are); a gate in front of one writer's
 * S3 calls holds it at a named step while the other acts, and the conditional writes are
 * MinIO's own.
 */
import type { Clock } from '../../lib/clock';
import { createS3Client, S3ObjectStore } from '../../lib/store/object-store';
import type { ObjectStore, StoredText, WriteCondition } from '../../lib/store/object-store';
import { StoreKeys } from '../../lib/store/keys';
import type { DaemonSetState } from '../../lib/store/records';
import { StateStore } from '../../lib/store/state-store';
import { stackEnv, uniqueName } from '../support/cluster';

const env = stackEnv();
process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;

const cluster = uniqueName('index-races');
const keys = new StoreKeys('it', cluster);
const s3 = new S3ObjectStore(createS3Client({ bucket: env.S3_BUCKET, prefix: 'it', endpoint: env.S3_ENDPOINT, region: env.AWS_REGION }), env.S3_BUCKET);
const ns = 'ops';

afterAll(async () => {
  for (const key of await s3.list(`${keys.root}/`)) await s3.delete(key);
});

/** The real store, holding a write at the step `hold` names until `release()` is called; `reached` resolves when it is held. */
class Gate implements ObjectStore {
  private puts: string[] = [];
  private open!: () => void;
  private readonly opened = new Promise<void>((r) => (this.open = r));
  private arrive!: () => void;
  readonly reached = new Promise<void>((r) => (this.arrive = r));

  constructor(private readonly real: ObjectStore, private readonly hold: (key: string, putsBefore: string[]) => boolean) {}

  get(key: string): Promise<StoredText | undefined> {
    return this.real.get(key);
  }

  async put(key: string, body: string, condition?: WriteCondition): Promise<string> {
    if (this.hold(key, this.puts)) {
      this.arrive();
      await this.opened;
    }
    this.puts.push(key);
    return this.real.put(key, body, condition);
  }

  list(prefix: string): Promise<string[]> {
    return this.real.list(prefix);
  }

  delete(key: string): Promise<void> {
    return this.real.delete(key);
  }

  release(): void {
    this.open();
  }
}

const isIndex = (key: string) => key === keys.index();
const isState = (name: string) => (key: string) => key === keys.state(ns, name);

function initial(name: string): DaemonSetState {
  return { schema: 1, namespace: ns, name, currentRevision: 2, appliedDigest: 'sha256:2', updatedAt: new Date().toISOString(), rollout: { revision: 2, mode: 'managed', phase: 'progressing', startedAt: 'x', lastProgressAt: 'x' } };
}

/** A wave decision, as the managed driver writes it. */
const waveDecision = (cur: DaemonSetState | undefined): DaemonSetState => ({ ...cur!, rollout: { ...cur!.rollout!, message: 'wave 2', lastProgressAt: new Date().toISOString() }, updatedAt: new Date().toISOString() });
/** `dsgitops pause`. */
const pause = (cur: DaemonSetState | undefined): DaemonSetState => ({ ...cur!, paused: { at: new Date().toISOString(), by: 'alice' }, updatedAt: new Date().toISOString() });
/** `dsgitops unpin`. */
const unpin = (cur: DaemonSetState | undefined): DaemonSetState => ({ ...cur!, pin: undefined, updatedAt: new Date().toISOString() });

/** What the index says of the DaemonSet, and what state.json holds. */
async function indexAndTruth(name: string): Promise<{ entry: { state?: DaemonSetState; pending?: Record<string, string> } | undefined; truth: DaemonSetState | undefined }> {
  const index = JSON.parse((await s3.get(keys.index()))!.body) as { entries: Record<string, { state?: DaemonSetState; pending?: Record<string, string> }> };
  const truth = (await new StateStore(s3, keys).getState(ns, name))?.value;
  return { entry: index.entries[`${ns}/${name}`], truth };
}

describe('a settle that loses the race for the index', () => {
  it.each([
    ['a pause', pause, 'paused'],
    ['an unpin', unpin, 'pin'],
  ] as const)('%s racing a wave decision leaves the index entry equal to state.json', async (_what, change, field) => {
    const name = uniqueName('agent');
    const start = initial(name);
    if (field === 'pin') start.pin = { revision: 1, reason: 'held', at: 'x', gitDigest: 'sha256:2' };
    await new StateStore(s3, keys).updateState(ns, name, () => start);

    // The operator's command is held just before its settle writes the index (its state.json is written).
    let stateWritten = false;
    const gate = new Gate(s3, (key, before) => {
      stateWritten ||= before.some(isState(name));
      return isIndex(key) && stateWritten;
    });
    const operator = new StateStore(gate, keys);
    const command = operator.updateState(ns, name, change);
    await gate.reached;
    // Meanwhile the driver decides a wave on what the command wrote, and settles it.
    const driver = new StateStore(s3, keys);
    await driver.updateState(ns, name, waveDecision);
    gate.release();
    await command;

    const { entry, truth } = await indexAndTruth(name);
    expect(truth!.rollout!.message).toBe('wave 2');
    expect(entry?.pending).toBeUndefined();
    expect(entry?.state).toEqual(truth);
    // And a pass reading through the index sees exactly that.
    const read = await new StateStore(s3, keys).readStates([`${ns}/${name}`]);
    expect(read.states.get(`${ns}/${name}`)?.value).toEqual(truth);
    expect(read.unvouched).toEqual([]);
  });
});

describe('a writer whose clock is slow', () => {
  it('keeps its token while it lives: a pass never takes it for a dead writer\'s and vouches for the state it is replacing', async () => {
    const name = uniqueName('agent');
    await new StateStore(s3, keys).updateState(ns, name, () => initial(name));

    // The writer's clock is 30 minutes behind (more than any writer lives, WRITER_MAX_MS); it is
    // held after its mark, before its state write.
    const slow: Clock = { now: () => new Date(Date.now() - 30 * 60_000) };
    const gate = new Gate(s3, isState(name));
    const writer = new StateStore(gate, keys, slow);
    const pausing = writer.updateState(ns, name, pause);
    await gate.reached;

    // A pass with a right clock reads the fleet and repairs the entries of dead writers.
    const pass = await new StateStore(s3, keys).readStates([`${ns}/${name}`], { repair: true });
    expect(pass.unvouched).toEqual([`${ns}/${name}`]);
    const during = await indexAndTruth(name);
    expect(Object.keys(during.entry?.pending ?? {})).toHaveLength(1);

    gate.release();
    await pausing;
    const { entry, truth } = await indexAndTruth(name);
    expect(truth!.paused).toMatchObject({ by: 'alice' });
    expect(entry?.state).toEqual(truth);
  });

  it('a token the store\'s clock says is older than any writer lives is repaired, whatever the reader\'s clock says', async () => {
    const name = uniqueName('agent');
    const store = new StateStore(s3, keys);
    await store.updateState(ns, name, () => initial(name));
    // A writer that died after its mark, 25 minutes ago by the store's clock.
    await store.index.mark(`${ns}/${name}`, 'dead-writer', new Date(Date.now() - 25 * 60_000).toISOString());
    // A reader whose own clock is 30 minutes behind still judges by the store's.
    const reader = new StateStore(s3, keys, { now: () => new Date(Date.now() - 30 * 60_000) });
    await reader.readStates([`${ns}/${name}`], { repair: true });
    const { entry, truth } = await indexAndTruth(name);
    expect(entry?.pending).toBeUndefined();
    expect(entry?.state).toEqual(truth);
  });
});
