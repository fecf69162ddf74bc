/**
 * The fleet's promotion (FLEET_FILE), a Lambda durable function: started by a push, a
 * schedule or `dsgitops fleet resume`, it carries the branch head wave by wave
 * (lib/fleet/orchestrate.ts). FLEET_PASS_FUNCTION names the per-cluster pass it invokes.
 */
import { withDurableExecution } from '@aws/durable-execution-sdk-js';
import { systemClock } from '../lib/clock';
import { ConfigError } from '../lib/errors';
import { loadConfig } from '../lib/config';
import { readFleetHead } from '../lib/fleet/fleet-source';
import { promotionWorkflow } from '../lib/fleet/orchestrate';
import { s3ObjectStore } from '../lib/store/object-store';
import { PromotionStore } from '../lib/store/promotion-store';

export const handler = withDurableExecution(promotionWorkflow(() => {
  const config = loadConfig();
  const clusterPassFunction = config.fleetPassFunction;
  if (!clusterPassFunction) throw new ConfigError('FLEET_PASS_FUNCTION is required: the name or ARN of the fleet-pass function the promotion invokes');
  return {
    store: new PromotionStore(s3ObjectStore(config.s3), config.s3.prefix),
    clock: systemClock,
    readHead: () => readFleetHead(config),
    clusterPassFunction,
  };
}));
