/**
 * How the webhook starts a reconcile pass without waiting for it, in AWS: an asynchronous
 * invoke (InvocationType Event) of the reconcile function; Lambda queues it and answers at
 * once, and the pass runs in its own invocation with its own 15 minutes. (Locally the pass
 * runs in the webhook's process: in-process-starter.ts.)
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { PassStarter } from './handle';

export function lambdaStarter(functionName: string, region: string, client = new LambdaClient({ region })): PassStarter {
  return async (push) => {
    const out = await client.send(new InvokeCommand({ FunctionName: functionName, InvocationType: 'Event', Payload: Buffer.from(JSON.stringify({ push })) }));
    if (out.StatusCode !== 202) throw new Error(`asynchronous invoke of ${functionName} answered ${out.StatusCode}, not 202`);
  };
}
