/**
 * PURE: which objects of the inventory are orphans (recorded by an earlier pass, absent from
 * Git's source now), and which of them a pass may delete (PRUNE=true). DaemonSets are not here:
 * they are pruned with their own records (state.json), by the DaemonSet step.
 *
 * Assumptions / invariants:
 * - Only the inventory makes a candidate (as Flux's inventory does): an object this tool never
 *   recorded is never deleted, whatever labels it carries.
 * - A source that did not load completely prunes nothing: what an unreadable file held is
 *   unknown, so its absence is no evidence of a deletion. A document that is in Git but not
 *   applied (refused by the kinds policy, invalid, a duplicate) is present, not removed, and an
 *   object last applied from a file with an error this pass is not a candidate either.
 * - A cluster-scoped object is deleted only when ALLOWED_KINDS lists its kind by name; `*`
 *   applies every kind but deletes none that is cluster-scoped (a Namespace or a CRD takes
 *   everything in it along).
 * - A ConfigMap, Secret or ServiceAccount that a DaemonSet still running, or a revision kept for
 *   rollback, names is kept (`needed`, gathered by the caller), so no pod of a revision that may
 *   run again finds its configuration gone.
 * - A Namespace that objects of the source still live in, and a CRD whose API group objects of
 *   the source still use, are kept: deleting them would delete those objects too.
 * - Deletions go in the reverse of the apply order: workloads first, Namespaces and CRDs last.
 */
import { namespaceAllowed, Policy, allowedKindsOf } from '../config';
import type { InventoryEntry } from '../store/inventory';
import { entryFor } from './kinds';
import { Stage, stageOf } from './plan';

/** Identifies an object across passes: `group/Kind/namespace/name` (namespace empty when cluster-scoped). */
export function entryKey(e: Pick<InventoryEntry, 'group' | 'kind' | 'namespace' | 'name'>): string {
  return `${e.group}/${e.kind}/${e.namespace ?? ''}/${e.name}`;
}

/** How reports name it, as they name the objects of the source: `ConfigMap logging/fluent-bit`, `Namespace logging`. */
export function describeEntry(e: Pick<InventoryEntry, 'kind' | 'namespace' | 'name'>): string {
  return `${e.kind} ${e.namespace ? `${e.namespace}/` : ''}${e.name}`;
}

export function apiVersionOf(e: Pick<InventoryEntry, 'group' | 'version'>): string {
  return e.group ? `${e.group}/${e.version}` : e.version;
}

/** The stage it was applied in (bundle/plan.ts): deletions run from the last stage to the first. */
export function entryStage(e: Pick<InventoryEntry, 'group' | 'kind' | 'namespace'>): Stage {
  return stageOf(e, e.namespace !== undefined);
}

/** What Git's source holds this pass, whether it is applied or not. */
export interface PresentInGit {
  /** Every object the source loaded, by `entryKey`; a kind of unknown scope (a CRD's, no namespace) as `group/Kind/*\/name`. */
  keys: Set<string>;
  /** Documents that name an object but are not applied (kinds policy, invalid, duplicate): their group is not known. */
  refused: { kind: string; namespace?: string; name: string }[];
  /** Files with an error this pass: what they hold is not known. */
  brokenFiles: Set<string>;
}

function inGit(e: InventoryEntry, present: PresentInGit): boolean {
  if (present.keys.has(entryKey(e)) || present.keys.has(`${e.group}/${e.kind}/*/${e.name}`)) return true;
  if (present.refused.some((r) => r.kind === e.kind && r.name === e.name && (r.namespace === undefined || r.namespace === e.namespace))) return true;
  return e.file !== undefined && present.brokenFiles.has(e.file);
}

/** The inventory's objects that Git's source no longer holds (DaemonSets left to their own step). */
export function orphansOf(recorded: InventoryEntry[], present: PresentInGit): InventoryEntry[] {
  return recorded.filter((e) => !(e.group === 'apps' && e.kind === 'DaemonSet') && !inGit(e, present));
}

/** The kinds whose objects a pod template names, and so a running or kept revision may need. */
export function isReferenceable(e: Pick<InventoryEntry, 'group' | 'kind'>): boolean {
  return e.group === '' && (e.kind === 'ConfigMap' || e.kind === 'Secret' || e.kind === 'ServiceAccount');
}

export interface OrphanDecision {
  entry: InventoryEntry;
  /** `Kind namespace/name`. */
  id: string;
  stage: Stage;
  /** Delete it in this pass. */
  prune: boolean;
  /** Why it is deleted, or why not. */
  message: string;
}

export interface OrphanContext {
  policy: Pick<Policy, 'prune' | 'allowedNamespaces' | 'allowedKinds'>;
  /** False when some file could not be read: nothing is pruned. */
  sourceComplete: boolean;
  /** Objects a running or kept revision needs, by `entryKey`, with who needs them. */
  needed: Map<string, string>;
  /** The namespaces and API groups of what Git's source holds (its objects and DaemonSets): a Namespace or CRD they live in is kept. */
  inUse?: { namespaces: Set<string>; groups: Set<string> };
}

/** Whether ALLOWED_KINDS names this kind itself (a bare Kind or group/Kind), not only through `*`. */
export function listedByName(policy: Pick<Policy, 'allowedKinds'>, e: Pick<InventoryEntry, 'group' | 'kind'>): boolean {
  const kinds = allowedKindsOf(policy);
  return kinds !== '*' && kinds.some((k) => k.kind === e.kind && (k.group === undefined || k.group === e.group));
}

/** Why an orphan is kept, or undefined when the policy lets it be deleted. */
function keptBecause(e: InventoryEntry, ctx: OrphanContext): string | undefined {
  if (e.namespace !== undefined && !namespaceAllowed(ctx.policy, e.namespace)) return `namespace ${e.namespace} is outside ALLOWED_NAMESPACES: left alone`;
  if (e.namespace === undefined && !listedByName(ctx.policy, e)) {
    return `cluster-scoped: pruned only when ALLOWED_KINDS lists ${entryFor(e.group, e.kind)} by name (not through *), so it is left in the cluster`;
  }
  if (e.group === '' && e.kind === 'Namespace' && ctx.inUse?.namespaces.has(e.name)) return `Git's source still has objects in namespace ${e.name}`;
  const crdGroup = e.group === 'apiextensions.k8s.io' && e.kind === 'CustomResourceDefinition' ? e.name.slice(e.name.indexOf('.') + 1) : undefined;
  if (crdGroup && ctx.inUse?.groups.has(crdGroup)) return `Git's source still has objects of API group ${crdGroup}, which it may define`;
  const need = ctx.needed.get(entryKey(e));
  if (need) return `still needed: ${need}; pruned once nothing running or kept for rollback names it`;
  return undefined;
}

/** One decision per orphan, in the order deletions run: the reverse of the apply order. */
export function decideOrphans(orphans: InventoryEntry[], ctx: OrphanContext): OrphanDecision[] {
  const decisions = orphans.map((entry): OrphanDecision => {
    const base = { entry, id: describeEntry(entry), stage: entryStage(entry) };
    const kept = keptBecause(entry, ctx);
    if (!ctx.policy.prune) {
      return { ...base, prune: false, message: `no longer in Git: left in the cluster (PRUNE=false); ${kept ? `PRUNE=true would keep it too: ${kept}` : 'PRUNE=true would delete it'}` };
    }
    if (!ctx.sourceComplete) return { ...base, prune: false, message: 'no longer in Git, but some manifests could not be read this pass, so nothing is pruned' };
    if (kept) return { ...base, prune: false, message: `no longer in Git, not pruned: ${kept}` };
    return { ...base, prune: true, message: 'no longer in Git: deleted (PRUNE=true)' };
  });
  return decisions.sort((a, b) => b.stage - a.stage || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
