/**
 * Pre-pull (opt-in per DaemonSet, `daemonset-gitops.io/pre-pull`): before a wave deletes old
 * pods, one short-lived pod per node of the wave, with the new template's images and a command
 * that exits at once, pulls the images there. A wave starts only once every one of them has
 * started (the images are on the node); a pull that fails, or does not finish by the deadline,
 * stops the rollout before anything is deleted, naming the image and the nodes.
 */
import type { LivePod } from '../cluster/types';
import { waitUntil } from '../cluster/watch-cache';
import type { Deps } from '../deps';
import { errorMessage } from '../errors';
import { PREFIX } from '../labels';

export const PRE_PULL_LABEL = `${PREFIX}pre-pull-for`;
const PULL_FAILURES = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull', 'RegistryUnavailable']);

export type PullVerdict = { kind: 'pulled' } | { kind: 'waiting'; nodes: string[] } | { kind: 'failed'; reason: string; nodes: string[] };

interface PullPod { node: string; phase?: string; containers: { image?: string; waitingReason?: string; waitingMessage?: string; started: boolean }[] }

/** PURE: what the pre-pull pods on `nodes` say, at `nowMs`, against the deadline. */
export function pullVerdict(nodes: readonly string[], pods: readonly PullPod[], deadlineMs: number, nowMs: number): PullVerdict {
  const failures = new Map<string, string[]>();
  const waiting: string[] = [];
  for (const node of nodes) {
    const pod = pods.find((p) => p.node === node);
    const failed = pod?.containers.find((c) => c.waitingReason !== undefined && PULL_FAILURES.has(c.waitingReason));
    if (failed) {
      const key = `${failed.image ?? '?'} (${failed.waitingReason}${failed.waitingMessage ? `: ${failed.waitingMessage}` : ''})`;
      failures.set(key, [...(failures.get(key) ?? []), node]);
      continue;
    }
    const pulled = pod !== undefined && (pod.phase === 'Running' || pod.phase === 'Succeeded' || (pod.containers.length > 0 && pod.containers.every((c) => c.started)));
    if (!pulled) waiting.push(node);
  }
  if (failures.size > 0) {
    const [what, on] = [...failures][0];
    const all = [...failures.values()].flat().sort();
    return { kind: 'failed', reason: `pre-pull: ${what} could not be pulled on ${on.sort().join(', ')}${all.length > on.length ? ` (${all.length} nodes failed in all)` : ''}; nothing of this wave was deleted: fix the image or its pull secret`, nodes: all };
  }
  if (waiting.length === 0) return { kind: 'pulled' };
  if (nowMs >= deadlineMs) return { kind: 'failed', reason: `pre-pull: the new images were not pulled within the pull deadline on ${waiting.sort().join(', ')}; nothing of this wave was deleted`, nodes: waiting.sort() };
  return { kind: 'waiting', nodes: waiting };
}

function toPullPod(p: LivePod): PullPod {
  const statuses = (p.status?.containerStatuses ?? []) as { image?: string; state?: { waiting?: { reason?: string; message?: string }; running?: unknown; terminated?: unknown } }[];
  return {
    node: p.spec.nodeName ?? '',
    phase: p.status?.phase,
    containers: statuses.map((c) => ({ image: c.image, waitingReason: c.state?.waiting?.reason, waitingMessage: c.state?.waiting?.message, started: Boolean(c.state?.running || c.state?.terminated) })),
  };
}

interface Template { spec?: { containers?: { name: string; image?: string; imagePullPolicy?: string }[]; imagePullSecrets?: unknown; tolerations?: unknown[] } }

/**
 * Pulls the template's images on `nodes`: creates the pods, waits (bounded by `deadlineSeconds`)
 * for the verdict, and deletes the pods whatever it is.
 */
export async function prePull(deps: Deps, target: { namespace: string; name: string; revision: number }, template: Template, nodes: readonly string[], deadlineSeconds: number): Promise<Exclude<PullVerdict, { kind: 'waiting' }>> {
  const { namespace, name, revision } = target;
  const selector = `${PRE_PULL_LABEL}=${name}`;
  const cache = await deps.cluster.watchCache('pods', { namespace, labelSelector: selector });
  const created: LivePod[] = [];
  try {
    for (const node of nodes) {
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `${name}-pull-r${revision}-${node}`.toLowerCase().slice(0, 253), namespace, labels: { [PRE_PULL_LABEL]: name } },
        spec: {
          nodeName: node,
          restartPolicy: 'Never',
          terminationGracePeriodSeconds: 0,
          // It only pulls: wherever the DaemonSet's pod runs, this one may too.
          tolerations: [{ operator: 'Exists' }],
          ...(template.spec?.imagePullSecrets ? { imagePullSecrets: template.spec.imagePullSecrets } : {}),
          containers: (template.spec?.containers ?? []).map((c) => ({ name: c.name, image: c.image, command: ['true'], ...(c.imagePullPolicy ? { imagePullPolicy: c.imagePullPolicy } : {}) })),
        },
      };
      created.push(await deps.cluster.applyObject({ group: '', version: 'v1', kind: 'Pod', resource: 'pods', namespaced: true }, pod as never) as unknown as LivePod);
    }
    const deadlineMs = deps.clock.now().getTime() + deadlineSeconds * 1000;
    const verdict = () => pullVerdict(nodes, cache.items().filter((p) => created.some((c) => c.metadata.uid === p.metadata.uid)).map(toPullPod), deadlineMs, deps.clock.now().getTime());
    for (;;) {
      const v = verdict();
      if (v.kind !== 'waiting') return v;
      const left = deadlineMs - deps.clock.now().getTime();
      await waitUntil([cache], () => verdict().kind !== 'waiting', Math.max(100, Math.min(left, 10_000)));
    }
  } finally {
    cache.stop();
    for (const p of created) {
      try {
        await deps.cluster.deletePod(namespace, p.metadata.name, p.metadata.uid ?? '');
      } catch (err) {
        deps.logger.log('warn', `could not delete the pre-pull pod ${p.metadata.name}: ${errorMessage(err)}`, { daemonSet: `${namespace}/${name}` });
      }
    }
  }
}
