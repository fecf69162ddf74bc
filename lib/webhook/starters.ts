/**
 * How the webhook starts a reconcile pass without waiting for it, in AWS: an asynchronous
 * invoke (InvocationType Event) of the reconcile function; Lambda queues it and answers at
 * once, and the pass runs in its own invocation with its own 15 minutes. (Locally the pass
 * runs in the webhook's process: in-process-starter.ts.)
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { lambdaPromotionStarter } from '../fleet/start';
import type { PassStarter } from './handle';

export function lambdaStarter(functionName: string, region: string, client = new LambdaClient({ region })): PassStarter {
  return async (push) => {
    const out = await client.send(new InvokeCommand({ FunctionName: functionName, InvocationType: 'Event', Payload: Buffer.from(JSON.stringify({ push })) }));
    if (out.StatusCode !== 202) throw new Error(`asynchronous invoke of ${functionName} answered ${out.StatusCode}, not 202`);
  };
}

/**
 * In a fleet a push starts the promotion, not one cluster's pass: the promotion reads the head
 * itself, so the push only names who started it; the same delivery starts one execution.
 */
export function promotionStarterForPushes(functionName: string, region: string, client = new LambdaClient({ region })): PassStarter {
  const start = lambdaPromotionStarter(functionName, region, client);
  return (push) => start({ by: `push (${push.provider} delivery ${push.delivery})`, reason: `push of ${push.commit.slice(0, 7)} to ${push.ref}` }, `push-${push.commit}`);
}
