/**
 * How the webhook starts a reconcile pass without waiting for it.
 *
 * In AWS: an asynchronous invoke (InvocationType Event) of the reconcile function; Lambda
 * queues it and answers at once, and the pass runs in its own invocation with its own 15
 * minutes. Locally: the pass runs in this process, in the background.
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { reconcileCatchingUp } from '../catch-up';
import type { Deps } from '../deps';
import { errorMessage } from '../errors';
import type { StallHandler } from '../reconcile';
import type { ReconcileReport } from '../report';
import type { PassStarter } from './handle';

export function lambdaStarter(functionName: string, region: string, client = new LambdaClient({ region })): PassStarter {
  return async (push) => {
    const out = await client.send(new InvokeCommand({ FunctionName: functionName, InvocationType: 'Event', Payload: Buffer.from(JSON.stringify({ push })) }));
    if (out.StatusCode !== 202) throw new Error(`asynchronous invoke of ${functionName} answered ${out.StatusCode}, not 202`);
  };
}

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
