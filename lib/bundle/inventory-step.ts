/**
 * The inventory and prune steps of a pass (objects other than DaemonSets; bundle/prune.ts
 * decides, this module reads and carries the decision out):
 *
 *   look: read inventory.json -> orphans (recorded, absent from Git) -> what running and kept
 *         revisions need -> one decision per orphan; whether the inventory must be written
 *   act (under the lease, after every apply of the pass): write the inventory with the objects
 *         about to be deleted listed as `pruning` -> delete them, workloads first, Namespaces and
 *         CRDs last -> write it again without them
 *
 * A run killed between the two writes leaves `pruning` in the record: the next pass takes those
 * objects as recorded, finds them still absent from Git, and deletes what is left of them.
 */
import type { Deps } from '../deps';
import { Discovery } from '../cluster/discovery';
import type { LiveDaemonSet } from '../cluster/types';
import { DsGitopsError, errorMessage, LeaseLostError, RecordUnreadableError } from '../errors';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, PREFIX } from '../labels';
import type { DesiredDaemonSet, ManifestProblem } from '../source/manifest';
import { Inventory, InventoryEntry, InventoryStore } from '../store/inventory';
import type { Versioned } from '../store/state-store';
import type { BundleLook, ObjectApplied } from './apply';
import { companionsOf } from './companions';
import type { DesiredObject, RefusedObject } from './objects';
import { apiVersionOf, decideOrphans, entryKey, isReferenceable, OrphanDecision, orphansOf, PresentInGit } from './prune';

/** The label of the versioned copies of a DaemonSet's configuration: they are managed by the revisions that use them, never pruned here. */
export const CONFIG_COPY_LABEL = `${PREFIX}config-copy-of`;

/** What the pass knows of Git's source, for the inventory. */
export interface InventorySource {
  commit: string;
  objects: DesiredObject[];
  refused: RefusedObject[];
  problems: ManifestProblem[];
  /** False when some file could not be read: nothing is pruned. */
  complete: boolean;
}

/** The DaemonSets whose pod templates may need an orphaned ConfigMap, Secret or ServiceAccount. */
export interface DaemonSetsInView {
  /** The managed DaemonSets in the cluster, by namespace/name. */
  live: Map<string, LiveDaemonSet>;
  /** The revision recorded as current for each, when known. */
  currentRevision: (key: string) => number | undefined;
  /** Git's DaemonSets. */
  desired: DesiredDaemonSet[];
  /** DaemonSets this pass deletes (PRUNE=true): what they name is not needed any more. */
  pruned: Set<string>;
}

export interface InventoryLook {
  /** The record as read (undefined: none yet). */
  read?: Versioned<Inventory>;
  /** The record cannot be read: nothing is recorded or pruned until it is repaired. */
  unreadable?: RecordUnreadableError;
  orphans: OrphanDecision[];
  /** The pass writes the inventory (its objects changed, or it prunes, or a killed run left `pruning`). */
  writes: boolean;
}

/** What the source holds this pass, applied or not. */
export function presentInGit(source: InventorySource): PresentInGit {
  const keys = new Set<string>();
  for (const o of source.objects) {
    keys.add(entryKey(o));
    // A kind that neither Kubernetes nor a CRD of the source defines: its scope is known only to discovery.
    if (o.namespaced === undefined) keys.add(`${o.group}/${o.kind}/*/${o.name}`);
  }
  const brokenFiles = new Set(source.problems.filter((p) => p.severity === 'error').map((p) => p.file));
  return { keys, refused: source.refused.map(({ kind, namespace, name }) => ({ kind, namespace, name })), brokenFiles };
}

function isConfigCopy(o: DesiredObject): boolean {
  const labels = (o.manifest.metadata as { labels?: Record<string, unknown> } | undefined)?.labels;
  return labels?.[CONFIG_COPY_LABEL] !== undefined;
}

function entryOf(o: DesiredObject, version?: string): InventoryEntry {
  const slash = o.apiVersion.indexOf('/');
  return {
    group: o.group,
    version: version ?? (slash < 0 ? o.apiVersion : o.apiVersion.slice(slash + 1)),
    kind: o.kind,
    ...(o.namespace !== undefined && o.namespaced !== false ? { namespace: o.namespace } : {}),
    name: o.name,
    file: o.source.file,
  };
}

/** The objects of the source that are in the cluster after this pass: already there, or applied now (`applied`; undefined: as planned). */
function recordedNow(bundle: BundleLook, applied?: Map<string, ObjectApplied>): InventoryEntry[] {
  const out: InventoryEntry[] = [];
  for (const item of bundle.items) {
    if (item.action === 'failed') continue;
    const done = applied?.get(item.object.id);
    const there = item.action !== 'create' || (applied ? done?.applied === true : true);
    if (!there) continue;
    const object = done?.item.object ?? item.object;
    // A versioned configuration copy belongs to the revisions that use it (bundle/prune-copies.ts), not to the inventory.
    if (isConfigCopy(object)) continue;
    out.push(entryOf(object, (done?.item.resource ?? item.resource)?.version));
  }
  return out;
}

/** Recorded objects, orphans kept included; one entry per object, sorted. */
function merged(...lists: InventoryEntry[][]): InventoryEntry[] {
  const byKey = new Map<string, InventoryEntry>();
  for (const list of lists) for (const e of list) byKey.set(entryKey(e), e);
  return [...byKey.values()].sort((a, b) => (entryKey(a) < entryKey(b) ? -1 : 1));
}

function sameEntries(a: InventoryEntry[], b: InventoryEntry[]): boolean {
  return JSON.stringify(merged(a)) === JSON.stringify(merged(b));
}

/**
 * The ConfigMaps, Secrets and ServiceAccounts of these namespaces that a DaemonSet still needs:
 * named by its running template, by Git's version of it, or by one of the revisions kept for
 * rollback (the last `revisionHistoryLimit` before the current one, default 10, as the cluster
 * keeps its ControllerRevisions; read from their snapshots in S3). A snapshot that cannot be
 * read keeps every candidate of its namespace.
 */
async function neededIn(deps: Deps, candidates: InventoryEntry[], ds: DaemonSetsInView): Promise<{ needed: Map<string, string>; unread: Set<string> }> {
  const namespaces = new Set(candidates.map((e) => e.namespace!));
  const needed = new Map<string, string>();
  // Snapshots are read only while some candidate is not yet known to be needed.
  const allNeeded = () => candidates.every((e) => needed.has(entryKey(e)));
  const note = (namespace: string, podSpec: unknown, who: string) => {
    for (const ref of companionsOf((podSpec ?? {}) as Record<string, unknown>)) {
      const key = entryKey({ group: '', kind: ref.kind, namespace, name: ref.name });
      if (!needed.has(key)) needed.set(key, `${who} names it (${ref.field})`);
    }
  };
  for (const d of ds.desired) if (namespaces.has(d.namespace)) note(d.namespace, d.manifest.spec.template.spec, `DaemonSet ${d.key} in Git`);
  const unread = new Set<string>();
  for (const [key, live] of ds.live) {
    const [namespace, name] = key.split('/');
    if (!namespaces.has(namespace) || ds.pruned.has(key)) continue;
    note(namespace, live.spec.template.spec, `DaemonSet ${key} (running)`);
    const current = ds.currentRevision(key);
    if (current === undefined || allNeeded()) continue;
    const window = Math.max(1, live.spec.revisionHistoryLimit ?? 10);
    for (let n = current; n >= Math.max(1, current - window); n--) {
      try {
        const snapshot = await deps.store.getRevision(namespace, name, n);
        const spec = (snapshot?.value.manifest as { spec?: { template?: { spec?: unknown } } } | undefined)?.spec?.template?.spec;
        if (spec) note(namespace, spec, `revision ${n} of DaemonSet ${key}${n === current ? '' : ', kept for rollback,'}`);
      } catch (err) {
        unread.add(namespace);
        deps.logger.log('warn', `revision ${n} of ${key} cannot be read (${errorMessage(err)}): nothing it could need in ${namespace} is pruned`, { daemonSet: key, action: 'prune-revision-unread' });
        break;
      }
    }
  }
  return { needed, unread };
}

/**
 * Step (reads only): the inventory, its orphans and what becomes of each. Undefined when the
 * pass has no source (Git down, an untrusted head) or is limited to some DaemonSets: then
 * nothing is recorded or pruned.
 */
export async function lookAtInventory(deps: Deps, source: InventorySource | undefined, bundle: BundleLook, ds: DaemonSetsInView): Promise<InventoryLook | undefined> {
  if (!source) return undefined;
  const store = new InventoryStore(deps.objects, deps.store.keys);
  let read: Versioned<Inventory> | undefined;
  try {
    read = await store.read();
  } catch (err) {
    if (!(err instanceof RecordUnreadableError)) throw err;
    deps.logger.log('error', err.message, { action: 'record-unreadable', key: err.key });
    return { unreadable: err, orphans: [], writes: false };
  }
  const recorded = merged(read?.value.objects ?? [], read?.value.pruning ?? []);
  const orphans = orphansOf(recorded, presentInGit(source));
  const policy = deps.config.policy;
  const candidates = orphans.filter((e) => isReferenceable(e) && e.namespace !== undefined);
  const needed = new Map<string, string>();
  if (policy.prune && source.complete && candidates.length > 0) {
    const found = await neededIn(deps, candidates, ds);
    for (const e of candidates) {
      const why = found.needed.get(entryKey(e)) ?? (found.unread.has(e.namespace!) ? `a revision of a DaemonSet in ${e.namespace} cannot be read, so what it needs is not known` : undefined);
      if (why) needed.set(entryKey(e), why);
    }
  }
  const inUse = {
    namespaces: new Set([...source.objects.flatMap((o) => (o.namespace ? [o.namespace] : [])), ...ds.desired.map((d) => d.namespace)]),
    groups: new Set(source.objects.map((o) => o.group)),
  };
  const decided = decideOrphans(orphans, { policy, sourceComplete: source.complete, needed, inUse });
  // What is recorded stays recorded until it is pruned (an object in Git that failed this pass included).
  const planned = merged(recorded, recordedNow(bundle));
  const writes = decided.some((d) => d.prune) || (read?.value.pruning.length ?? 0) > 0 || (read ? !sameEntries(read.value.objects, planned) : planned.length > 0);
  return { read, orphans: decided, writes };
}

/** What became of one orphan in this pass. */
export interface OrphanOutcome {
  decision: OrphanDecision;
  /** Deleted in this pass. */
  deleted: boolean;
  /** Dropped from the inventory: deleted, found gone, or no longer this tool's. */
  forgotten: boolean;
  message: string;
  error?: { reason: string; message: string };
}

/**
 * Step (under the lease, after every apply of the pass): records the inventory, then deletes the
 * orphans decided for pruning, in order, then records the inventory without them. A lost lease
 * stops it (LeaseLostError is thrown); what was deleted until then stays listed in `pruning`
 * for the next pass.
 */
export async function recordAndPrune(deps: Deps, look: InventoryLook, bundle: BundleLook, applied: Map<string, ObjectApplied>, commit: string, confirmLease: () => Promise<void>): Promise<OrphanOutcome[]> {
  if (look.unreadable) return [];
  const store = new InventoryStore(deps.objects, deps.store.keys);
  const now = () => deps.clock.now().toISOString();
  const pruning = look.orphans.filter((d) => d.prune);
  const toPrune = new Set(pruning.map((d) => entryKey(d.entry)));
  const before = merged(look.read?.value.objects ?? [], look.read?.value.pruning ?? []).filter((e) => !toPrune.has(entryKey(e)));
  const objects = merged(before, recordedNow(bundle, applied));
  const record = (objs: InventoryEntry[], pr: InventoryEntry[]): Inventory => ({ schema: 1, cluster: deps.config.cluster.name, commit, runId: deps.runId, at: now(), objects: objs, pruning: pr });
  const outcomes: OrphanOutcome[] = look.orphans.filter((d) => !d.prune).map((decision) => ({ decision, deleted: false, forgotten: false, message: decision.message }));
  const unchanged = look.read ? look.read.value.pruning.length === 0 && sameEntries(look.read.value.objects, objects) : objects.length === 0;
  if (pruning.length === 0 && unchanged) return outcomes;
  await confirmLease();
  let etag = await store.write(record(objects, pruning.map((d) => d.entry)), look.read?.etag);
  if (pruning.length === 0) return outcomes;
  deps.logger.log('info', `inventory recorded with ${pruning.length} object(s) to prune: ${pruning.map((d) => d.id).join(', ')}`, { action: 'inventory', pruning: pruning.length });
  const discovery = new Discovery(deps.cluster);
  const left: InventoryEntry[] = [];
  for (const d of pruning) {
    await confirmLease();
    const out = await pruneOne(deps, discovery, d);
    if (out.deleted && deps.config.fault === 'kill-mid-prune') process.kill(process.pid, 'SIGKILL');
    outcomes.push(out);
    if (!out.forgotten) left.push(d.entry);
  }
  etag = await store.write(record(merged(objects, left), []), etag);
  return outcomes;
}

/** Deletes one orphan, if it is still this tool's object: it carries the managed-by label and is no versioned configuration copy. */
async function pruneOne(deps: Deps, discovery: Discovery, decision: OrphanDecision): Promise<OrphanOutcome> {
  const e = decision.entry;
  const done = (deleted: boolean, forgotten: boolean, message: string, error?: OrphanOutcome['error']): OrphanOutcome => {
    deps.logger.log(error ? 'error' : 'info', `${decision.id}: ${message}`, { object: decision.id, action: deleted ? 'prune' : error ? 'prune-failed' : 'prune-skipped' });
    return { decision, deleted, forgotten, message, ...(error ? { error } : {}) };
  };
  try {
    const resource = await discovery.resourceFor(apiVersionOf(e), e.kind);
    if (!resource) return done(false, true, `no longer in Git, and the API server no longer serves ${e.kind} at ${apiVersionOf(e)}: nothing to delete, forgotten`);
    const live = await deps.cluster.getObject(resource, e.namespace, e.name);
    if (!live) return done(false, true, 'no longer in Git, and already gone from the cluster');
    const labels = live.metadata.labels ?? {};
    if (labels[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE) return done(false, true, `no longer in Git, but it no longer carries ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE} (someone took it over): left alone and forgotten`);
    if (labels[CONFIG_COPY_LABEL] !== undefined) return done(false, true, `a versioned configuration copy (${CONFIG_COPY_LABEL}): kept while a revision needs it, never pruned here`);
    if (!live.metadata.uid) return done(false, false, 'no longer in Git, but the API server gave no uid to delete it by: kept', { reason: 'PruneFailed', message: `${decision.id} has no uid` });
    const deleted = await deps.cluster.deleteObject(resource, e.namespace, e.name, live.metadata.uid);
    return done(deleted, true, deleted ? decision.message : 'no longer in Git, and already gone from the cluster');
  } catch (err) {
    if (err instanceof LeaseLostError) throw err;
    const error = { reason: (err as DsGitopsError).reason ?? 'Error', message: `${decision.id}: could not be pruned: ${errorMessage(err)}` };
    return done(false, false, `${decision.message}, but the delete failed: ${errorMessage(err)}; the next pass tries again`, error);
  }
}
