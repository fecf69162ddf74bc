/**
 * Starting the promotion without waiting for it, in AWS: an asynchronous invoke of the durable
 * promotion function (PROMOTE_FUNCTION_NAME, its `durable` alias: a durable function is
 * invoked qualified). Lambda answers 202 at once and the execution runs for as long as the
 * promotion takes. A push (the webhook) and `fleet resume` start one.
 *
 * The execution is named after what started it (DurableExecutionName): the same push delivered
 * twice starts one execution, not two.
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { PromotionRequest } from './orchestrate';

export type PromotionStarter = (request: PromotionRequest, executionName: string) => Promise<void>;

/** Lambda's rule for an execution name: 1 to 64 of letters, digits, - and _. */
export function executionName(...parts: string[]): string {
  return parts.join('-').replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64);
}

export function lambdaPromotionStarter(functionName: string, region: string, client: Pick<LambdaClient, 'send'> = new LambdaClient({ region })): PromotionStarter {
  return async (request, name) => {
    const out = await client.send(new InvokeCommand({
      FunctionName: functionName,
      InvocationType: 'Event',
      DurableExecutionName: executionName(name),
      Payload: Buffer.from(JSON.stringify(request)),
    }));
    if (out.StatusCode !== 202) throw new Error(`asynchronous invoke of ${functionName} answered ${out.StatusCode}, not 202`);
  };
}
