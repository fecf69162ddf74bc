import { handler } from '../../../handlers/fleet';
import { handler as passHandler } from '../../../handlers/fleet-pass';

describe('the fleet handler', () => {
  it.each([
    [{ action: 'hold', by: 'alice' }, /reason/],
    [{ action: 'promote', commit: 'abc', to: 'prod', by: 'alice', reason: 'x' }, /commit: must be a full commit id/],
    [{ action: 'launch' }, /fleet event: /],
    [{ action: 'status', extra: 1 }, /fleet event: /],
  ])('refuses %j before reading any configuration', async (event, message) => {
    await expect(handler(event)).rejects.toMatchObject({ reason: 'InvalidRequest', message: expect.stringMatching(message) });
  });
});

describe('the fleet-pass handler', () => {
  it.each([[{}], [{ cluster: 'Prod A' }], [undefined]])('refuses %j: it needs a cluster name', async (event) => {
    await expect(passHandler(event)).rejects.toMatchObject({ reason: 'InvalidRequest', message: 'fleet-pass takes { "cluster": "NAME" }, NAME a cluster of the fleet file' });
  });
});
