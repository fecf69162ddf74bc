/**
 * Versioned config copies (config-copies.ts) are kept while something may still need them,
 * then deleted. A copy is kept when it is
 *   - a copy the source has now (Git's templates reference it),
 *   - referenced by a live DaemonSet's template (the revision running, pinned or not), or
 *   - in the configuration of a kept revision of a DaemonSet of its namespace: the
 *     CONFIG_REVISIONS_KEPT latest revisions, and every revision since the last one that
 *     rolled out completely (pods of those may still run).
 * The copies to judge come from the pass's own LISTs (no request of its own); revision
 * snapshots are read only when some copy is referenced by nothing in the cluster or in Git, so
 * a pass with nothing to prune reads nothing more. A namespace where a record cannot be read
 * is not judged: nothing in it is deleted.
 */
import type { LiveDaemonSet } from '../cluster/types';
import type { LiveObject, ResourceRef } from '../cluster/resources';
import type { Deps } from '../deps';
import { DsGitopsError, errorMessage } from '../errors';
import type { DaemonSetState } from '../store/records';
import { mapLimit } from '../util';
import { CONFIG_COPY_ANNOTATION, copiesReferenced, copiesToPrune, revisionsKept } from './config-copies';
import type { DesiredObject } from './objects';
import type { JsonObject } from '../source/manifest';

export const CONFIGMAPS: ResourceRef = { group: '', version: 'v1', kind: 'ConfigMap', resource: 'configmaps', namespaced: true };
export const SECRETS: ResourceRef = { group: '', version: 'v1', kind: 'Secret', resource: 'secrets', namespaced: true };

const DEFAULT_KEPT = 10;

export interface CopyKeepers {
  /** The copies the source has now. */
  source: DesiredObject[];
  /** The DaemonSets the pass observed: their live template and their record. */
  daemonSets: { namespace: string; name: string; live?: LiveDaemonSet; state?: DaemonSetState }[];
  /** Namespaces where some DaemonSet's record could not be read: not judged. */
  unjudged: Set<string>;
}

function templateSpec(manifest: unknown): JsonObject {
  const spec = (manifest as { spec?: { template?: { spec?: unknown } } } | undefined)?.spec?.template?.spec;
  return spec && typeof spec === 'object' ? (spec as JsonObject) : {};
}

/**
 * Deletes the copies nothing keeps; returns what it deleted (`ConfigMap ns/name`). A failure to
 * read or delete is logged and leaves the copy for a later pass.
 */
export async function pruneConfigCopies(deps: Deps, live: LiveObject[], keepers: CopyKeepers): Promise<string[]> {
  if (live.length === 0) return [];
  const copies = live.map((o) => ({ kind: o.kind as string, namespace: o.metadata.namespace ?? '', name: o.metadata.name, uid: o.metadata.uid ?? '' }));
  const needed = new Map<string, Set<string>>();
  for (const ns of new Set(copies.map((c) => c.namespace))) if (!keepers.unjudged.has(ns)) needed.set(ns, new Set());
  const keep = (ns: string, ids: Iterable<string>) => {
    const set = needed.get(ns);
    if (set) for (const id of ids) set.add(id);
  };
  for (const o of keepers.source) if (o.namespace) keep(o.namespace, [`${o.kind}/${o.name}`]);
  for (const d of keepers.daemonSets) if (d.live) keep(d.namespace, copiesReferenced(templateSpec(d.live)));
  const candidates = copiesToPrune(copies, needed);
  if (candidates.length === 0) return [];

  // Only now the records: the kept revisions of the DaemonSets in the namespaces of the candidates.
  const kept = deps.config.policy.configRevisionsKept ?? DEFAULT_KEPT;
  const namespaces = new Set(candidates.map((c) => c.namespace));
  await mapLimit(keepers.daemonSets.filter((d) => namespaces.has(d.namespace) && d.state), 4, async (d) => {
    const { from, to } = revisionsKept(d.state!.currentRevision, d.state!.lastHealthyRevision, kept);
    try {
      for (let n = from; n <= to; n++) {
        const snap = (await deps.store.getRevision(d.namespace, d.name, n))?.value;
        if (!snap) continue;
        keep(d.namespace, (snap.config ?? []).map((e) => `${e.kind}/${e.copyName}`));
        keep(d.namespace, copiesReferenced(templateSpec(snap.manifest)));
      }
    } catch (err) {
      if (!(err instanceof DsGitopsError)) throw err;
      needed.delete(d.namespace);
      deps.logger.log('warn', `config copies in ${d.namespace} are not pruned this pass: the revisions of ${d.namespace}/${d.name} could not be read (${errorMessage(err)})`, { action: 'copies-not-judged', namespace: d.namespace });
    }
  });
  const deleted: string[] = [];
  for (const c of copiesToPrune(candidates, needed)) {
    const id = `${c.kind} ${c.namespace}/${c.name}`;
    const original = live.find((o) => o.metadata.uid === c.uid)?.metadata.annotations?.[CONFIG_COPY_ANNOTATION];
    try {
      await deps.cluster.deleteObject(c.kind === 'Secret' ? SECRETS : CONFIGMAPS, c.namespace, c.name, c.uid);
      deleted.push(id);
      deps.logger.log('info', `${id}: pruned: a versioned copy${original ? ` of ${original}` : ''} that no kept revision needs`, { object: id, action: 'prune-copy' });
    } catch (err) {
      if (!(err instanceof DsGitopsError)) throw err;
      deps.logger.log('error', `${id}: could not prune it: ${errorMessage(err)}`, { object: id, action: 'prune-copy-failed' });
    }
  }
  return deleted;
}
