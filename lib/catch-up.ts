/**
 * A reconcile pass that does not lose a push that arrived while it held the lease.
 *
 * The pass the webhook starts for such a push finds the lease held and ends without doing
 * anything. Before starting it, the webhook wrote the push to push.json; this pass reads
 * push.json after releasing the lease (reconcile releases it before returning), so it sees
 * every push whose own pass it kept out, and runs once more when push.json names a commit
 * other than the one it applied. See lib/webhook/push-request.ts.
 */
import type { Deps } from './deps';
import { errorMessage } from './errors';
import { reconcile, ReconcileRequest, StallHandler } from './reconcile';
import type { ReconcileReport } from './report';
import { readPushRequest } from './webhook/push-request';

/** Passes run again for pushes in one invocation; a push after that has its own pass. */
const MAX_FOLLOW_UPS = 3;
/** A pass run again needs time to apply and watch a rollout; with less left, the next pass applies the push. */
const MIN_BUDGET_MS = 60_000;

export async function reconcileCatchingUp(deps: Deps, req: ReconcileRequest = {}, onStall?: StallHandler): Promise<ReconcileReport> {
  const first = await reconcile(deps, req, onStall);
  if (req.dryRun) return first;
  let last = first;
  let followed: string | undefined;
  for (let i = 0; i < MAX_FOLLOW_UPS && last.leaseTaken; i += 1) {
    let pending;
    try {
      pending = await readPushRequest(deps.objects, deps.store.keys);
    } catch (err) {
      deps.logger.log('warn', `could not read the last push (push.json): ${errorMessage(err)}; the next pass applies it`, { action: 'follow-up' });
      break;
    }
    if (!pending || pending.etag === followed || pending.value.commit === last.source?.commit?.sha) break;
    const commit = pending.value.commit.slice(0, 7);
    if (deps.deadline - deps.clock.now().getTime() < MIN_BUDGET_MS) {
      deps.logger.log('warn', `a push of ${commit} arrived while this pass held the lease, and too little time is left to apply it: the next pass does`, { action: 'follow-up', commit: pending.value.commit });
      break;
    }
    followed = pending.etag;
    deps.logger.log('info', `a push of ${commit} arrived while this pass held the lease: running again to apply it`, { action: 'follow-up', commit: pending.value.commit, delivery: pending.value.delivery });
    const next = await reconcile(deps, { ...req, only: undefined }, onStall);
    last.followUp = next;
    last = next;
  }
  return first;
}
