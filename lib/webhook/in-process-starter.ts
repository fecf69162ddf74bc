/**
 * Starts a reconcile pass in this process, in the background: the local stack's webhook
 * (stack/webhook-server.ts) and tests. Kept apart from the Lambda starter (starters.ts) so
 * that the webhook function's bundle does not carry the whole reconciler.
 */
import { reconcileCatchingUp } from '../catch-up';
import type { Deps } from '../deps';
import { errorMessage } from '../errors';
import type { StallHandler } from '../reconcile';
import type { ReconcileReport } from '../report';
import type { PassStarter } from './handle';

export interface InProcessStarter {
  start: PassStarter;
  /** Resolves when every pass started so far has ended. */
  idle(): Promise<void>;
  /** The reports of the passes that ended, oldest first. */
  reports: ReconcileReport[];
}

export function inProcessStarter(depsFor: () => Deps, onStall?: StallHandler): InProcessStarter {
  const running = new Set<Promise<void>>();
  const reports: ReconcileReport[] = [];
  return {
    reports,
    start: async (push) => {
      const deps = depsFor();
      deps.logger.log('info', `pass started by a push of ${push.commit.slice(0, 7)} to ${push.ref} (${push.provider} delivery ${push.delivery})`, { action: 'push-pass', commit: push.commit });
      const pass: Promise<void> = reconcileCatchingUp(deps, {}, onStall).then(
        (report) => { reports.push(report); },
        (err) => deps.logger.log('error', `pass started by a push failed: ${errorMessage(err)}`, { action: 'push-pass' }),
      ).finally(() => running.delete(pass));
      running.add(pass);
    },
    idle: async () => {
      while (running.size > 0) await Promise.all([...running]);
    },
  };
}
