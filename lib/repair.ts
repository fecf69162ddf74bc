/**
 * `dsgitops repair NS/NAME`: the records of one DaemonSet that cannot be read (its
 * state.json, its revision snapshots) and what would restore each, shown first and written
 * only when asked (`yes`).
 *
 * - A record is restored from the newest earlier version of the same key that parses (the
 *   bucket is versioned, so every write is kept).
 * - A state with no such version (or with `rebuild`) is rebuilt from the live DaemonSet and
 *   the snapshot of the revision it runs, as a run that stopped before recording does.
 * - Every write is conditional on the unreadable object's ETag as shown: a record that
 *   changed after it was shown is not overwritten.
 */
import type { Deps } from './deps';
import { errorMessage, InvalidRequestError, PreconditionFailedError } from './errors';
import { liveRevision } from './plan/plan';
import { keepsVersions, VersionedObjectStore } from './store/object-store';
import { DaemonSetState, RevisionSnapshot, revisionSchema, stateAfterApply, stateSchema } from './store/records';
import { StoreKeys } from './store/keys';
import { parseRecord } from './store/state-store';

export interface RepairRequest {
  namespace: string;
  name: string;
  /** Write what the plan shows; without it nothing is written. */
  yes?: boolean;
  /** Rebuild the state from the live DaemonSet even when an earlier version parses. */
  rebuild?: boolean;
}

export interface RecordRepair {
  key: string;
  record: 'state' | 'revision';
  /** Why the record as stored cannot be read. */
  problem: string;
  /** How it would be (or was) repaired. */
  fix: 'restore-version' | 'rebuild-from-live' | 'none';
  /** restore-version: the version restored, and when it was written. */
  versionId?: string;
  versionWrittenAt?: string;
  /** What the restored record says, in a line. */
  restores?: string;
  message: string;
  written: boolean;
}

export interface RepairReport {
  kind: 'RepairReport';
  namespace: string;
  name: string;
  /** Whether this call wrote (yes) or only showed. */
  applied: boolean;
  records: RecordRepair[];
  message: string;
}

interface Planned {
  repair: RecordRepair;
  etag: string;
  /** What is written: a state goes through the state index, a revision is written as it was stored. */
  write?: { state: DaemonSetState } | { body: string };
}

function describeState(s: DaemonSetState): string {
  return `revision ${s.currentRevision}${s.rollout ? ` (${s.rollout.phase})` : ''}, updated ${s.updatedAt}${s.pin ? `, pinned at revision ${s.pin.revision}` : ''}`;
}

function describeRevision(r: RevisionSnapshot): string {
  return `revision ${r.revision} (${r.cause}, ${r.outcome}), written ${r.createdAt}`;
}

/** The newest version of `key`, older than the one stored now, that parses as a record of this DaemonSet. */
async function lastGoodVersion<T>(
  objects: VersionedObjectStore,
  key: string,
  check: (body: string) => { ok: true; value: T } | { ok: false; problem: string },
): Promise<{ versionId: string; at?: Date; value: T; body: string } | undefined> {
  for (const v of await objects.versions(key)) {
    if (v.isLatest) continue;
    const got = await objects.getVersion(key, v.versionId);
    if (!got) continue;
    const parsed = check(got.body);
    if (parsed.ok) return { versionId: v.versionId, at: v.lastModified, value: parsed.value, body: got.body };
  }
  return undefined;
}

export async function repair(deps: Deps, req: RepairRequest): Promise<RepairReport> {
  const { namespace, name } = req;
  const { objects, store } = deps;
  const keys = store.keys;
  const ds = `${namespace}/${name}`;
  if (!keepsVersions(objects)) throw new InvalidRequestError('repair needs the S3 store itself (this store keeps no versions)');

  const isThis = (v: { namespace: string; name: string }) => v.namespace === namespace && v.name === name;
  const checkState = (body: string) => {
    const p = parseRecord(body, stateSchema);
    return p.ok && !isThis(p.value) ? { ok: false as const, problem: `it is the state of ${p.value.namespace}/${p.value.name}` } : p;
  };
  const checkRevision = (n: number) => (body: string) => {
    const p = parseRecord(body, revisionSchema);
    return p.ok && (!isThis(p.value) || p.value.revision !== n) ? { ok: false as const, problem: `it is revision ${p.value.revision} of ${p.value.namespace}/${p.value.name}` } : p;
  };

  // Revisions first: a state rebuilt from the live object reads the snapshot of the revision it runs.
  const planned: Planned[] = [];
  const revisions = new Map<number, RevisionSnapshot>();
  for (const key of await objects.list(keys.revisions(namespace, name))) {
    const n = StoreKeys.revisionNumber(key);
    if (n === undefined) continue;
    const got = await objects.get(key);
    if (!got) continue;
    const parsed = checkRevision(n)(got.body);
    if (parsed.ok) {
      revisions.set(n, parsed.value);
      continue;
    }
    const good = await lastGoodVersion(objects, key, checkRevision(n));
    if (good) {
      revisions.set(n, good.value);
      planned.push({
        etag: got.etag,
        write: { body: good.body },
        repair: {
          key, record: 'revision', problem: parsed.problem, fix: 'restore-version', versionId: good.versionId, versionWrittenAt: good.at?.toISOString(),
          restores: describeRevision(good.value), message: `restore the version written ${good.at?.toISOString() ?? '(time unknown)'}: ${describeRevision(good.value)}`, written: false,
        },
      });
    } else {
      planned.push({
        etag: got.etag,
        repair: {
          key, record: 'revision', problem: parsed.problem, fix: 'none', written: false,
          message: 'no earlier version of this object parses: restore it from a backup, or remove it by hand once no rollback needs this revision (history reads it, and fails, until then)',
        },
      });
    }
  }

  const stateKey = keys.state(namespace, name);
  const got = await objects.get(stateKey);
  const parsed = got ? checkState(got.body) : undefined;
  if (got && parsed && !parsed.ok) {
    const good = req.rebuild ? undefined : await lastGoodVersion(objects, stateKey, checkState);
    const base = { key: stateKey, record: 'state' as const, problem: parsed.problem, written: false };
    if (good) {
      planned.push({
        etag: got.etag,
        write: { state: good.value },
        repair: {
          ...base, fix: 'restore-version', versionId: good.versionId, versionWrittenAt: good.at?.toISOString(), restores: describeState(good.value),
          message: `restore the version written ${good.at?.toISOString() ?? '(time unknown)'}: ${describeState(good.value)} (a pass then records what ran after it)`,
        },
      });
    } else {
      const rebuilt = await rebuildState(deps, namespace, name, revisions);
      planned.push(rebuilt.state
        ? { etag: got.etag, write: { state: rebuilt.state }, repair: { ...base, fix: 'rebuild-from-live', restores: describeState(rebuilt.state), message: rebuilt.message } }
        : { etag: got.etag, repair: { ...base, fix: 'none', message: rebuilt.message } });
    }
  }

  if (req.yes) {
    for (const p of planned) {
      if (!p.write) continue;
      try {
        if ('state' in p.write) await store.putState(p.write.state, p.etag);
        else await objects.put(p.repair.key, p.write.body, { ifMatch: p.etag });
        p.repair.written = true;
        deps.logger.log('info', `repaired ${p.repair.key}: ${p.repair.message}`, { daemonSet: ds, action: 'repair', key: p.repair.key, fix: p.repair.fix, versionId: p.repair.versionId });
      } catch (err) {
        if (!(err instanceof PreconditionFailedError)) throw err;
        p.repair.message = `not written: ${p.repair.key} changed after it was read (${errorMessage(err)}); run repair again to see it as it is now`;
      }
    }
  }

  const records = planned.map((p) => p.repair);
  const writable = records.filter((r) => r.fix !== 'none');
  const message = records.length === 0
    ? `every record of ${ds} in S3 can be read: nothing to repair`
    : req.yes
      ? `${records.filter((r) => r.written).length} of ${records.length} unreadable record(s) of ${ds} repaired`
      : `${records.length} unreadable record(s) of ${ds}; ${writable.length} can be repaired: run again with --yes to write ${writable.length === 1 ? 'it' : 'them'}`;
  return { kind: 'RepairReport', namespace, name, applied: Boolean(req.yes), records, message };
}

/** The state of a DaemonSet from what runs (its revision annotation) and that revision's snapshot. */
async function rebuildState(deps: Deps, namespace: string, name: string, revisions: Map<number, RevisionSnapshot>): Promise<{ state?: DaemonSetState; message: string }> {
  const live = await deps.cluster.getDaemonSet(namespace, name);
  const rev = liveRevision(live);
  if (!live || rev === undefined) {
    return { message: 'no earlier version parses and no live DaemonSet names its revision: remove the object by hand; the next pass then adopts or creates the DaemonSet' };
  }
  const snap = revisions.get(rev);
  if (!snap) return { message: `no earlier version parses, and revision ${rev}, which runs, has no readable snapshot to rebuild from` };
  const healthy = [...revisions.values()].filter((r) => r.outcome === 'healthy' && r.revision <= rev).map((r) => r.revision);
  const now = deps.clock.now().toISOString();
  const state = stateAfterApply(undefined, {
    namespace,
    name,
    revision: rev,
    digest: snap.digest,
    mode: snap.rolloutMode,
    generation: live.metadata.generation,
    at: now,
    source: snap.source,
    commit: snap.commit,
    pin: snap.pin,
    message: 'rebuilt by dsgitops repair from the live DaemonSet and its revision snapshot',
  });
  if (healthy.length > 0) state.lastHealthyRevision = Math.max(...healthy);
  return { state, message: `rebuild from the live DaemonSet (revision ${rev}) and its snapshot: ${describeState(state)}; the next pass tracks its rollout` };
}

export function formatRepair(r: RepairReport): string {
  const lines = [r.message];
  for (const rec of r.records) {
    lines.push(`  ${rec.key}`, `    unreadable: ${rec.problem}`, `    ${rec.written ? 'done' : rec.fix === 'none' ? 'cannot repair' : r.applied ? 'not done' : 'would'}: ${rec.message}`);
  }
  return `${lines.join('\n')}\n`;
}
