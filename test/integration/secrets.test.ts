/**
 * Secrets kept in AWS, read from the AWS API emulator the stack runs (moto in server mode:
 * SSM Parameter Store and Secrets Manager): the Git token in an SSM SecureString or a
 * Secrets Manager secret fetches from the stack's token-checking git server, through the
 * dsgitops command as a user runs it; a value is read once per process and never shown.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { CreateSecretCommand, DeleteSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DeleteParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { ConfigError } from '../../lib/errors';
import { readSecret, SecretClients } from '../../lib/secrets';
import { adminClients, createNamespace, deleteNamespace, stackEnv, uniqueName } from '../support/cluster';
import { TestRepo } from '../support/git';
import { dsYaml } from '../support/manifests';
import { runCliProcess, stackConfigEnv } from '../support/reconciler';

const env = stackEnv();
const endpoint = process.env.AWS_EMULATOR_ENDPOINT ?? env.AWS_EMULATOR_ENDPOINT;
// moto accepts any credentials; these are not the stack's MinIO keys.
const awsOptions = { endpoint, region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };
const ssm = new SSMClient(awsOptions);
const secretsManager = new SecretsManagerClient(awsOptions);
const { core } = adminClients();

const parameterName = `/daemonset-gitops/it/${uniqueName('git-token')}`;
const secretName = uniqueName('it-git-token');
let secretArn: string;
let ns: string;
let served: string;
let repo: TestRepo;

beforeAll(async () => {
  if (!endpoint) throw new Error('the stack runs no AWS API emulator (AWS_EMULATOR_ENDPOINT is missing from .stack/env): run npm run stack:up');
  ns = await createNamespace(core, 'secrets');
  repo = new TestRepo();
  repo.write('ds.yaml', dsYaml({ name: 'from-secret', namespace: ns })).commit('a DaemonSet behind a token');
  served = `it-${ns}.git`;
  execFileSync('git', ['clone', '--quiet', '--bare', repo.bare, join(env.GIT_HTTP_ROOT, served)]);
  await ssm.send(new PutParameterCommand({ Name: parameterName, Type: 'SecureString', Value: env.GIT_HTTP_TOKEN }));
  secretArn = (await secretsManager.send(new CreateSecretCommand({ Name: secretName, SecretString: env.GIT_HTTP_TOKEN }))).ARN!;
}, 60_000);

afterAll(async () => {
  await ssm.send(new DeleteParameterCommand({ Name: parameterName })).catch(() => undefined);
  await secretsManager.send(new DeleteSecretCommand({ SecretId: secretName, ForceDeleteWithoutRecovery: true })).catch(() => undefined);
  rmSync(join(env.GIT_HTTP_ROOT, served), { recursive: true, force: true });
  repo.cleanup();
  await deleteNamespace(core, ns);
}, 60_000);

function planEnv(overrides: Record<string, string>): Record<string, string> {
  return stackConfigEnv({
    GIT_URL: `${env.GIT_HTTP_BASE}/${served}`,
    ALLOWED_NAMESPACES: ns,
    AWS_ENDPOINT_URL_SSM: endpoint,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: endpoint,
    ...overrides,
  });
}

describe('the Git token from the secret store', () => {
  it.each([
    ['an SSM SecureString parameter', () => ({ GIT_TOKEN_PARAMETER: parameterName })],
    ['a Secrets Manager secret', () => ({ GIT_TOKEN_SECRET_ARN: secretArn })],
  ])('fetches with the token kept in %s, and shows it nowhere', async (_what, settings) => {
    const run = await runCliProcess(['plan', '--json'], planEnv(settings()));

    expect(run.stderr).not.toContain('error');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as { daemonSets: { namespace: string; name: string; action: string }[] };
    expect(report.daemonSets).toEqual([expect.objectContaining({ namespace: ns, name: 'from-secret', action: 'create' })]);
    expect(run.stdout + run.stderr).not.toContain(env.GIT_HTTP_TOKEN);
  });

  it('fails to fetch with a wrong token from the store, naming the setting to check and showing no token', async () => {
    const name = `${parameterName}-wrong`;
    await ssm.send(new PutParameterCommand({ Name: name, Type: 'SecureString', Value: 'wrong-token-5e1d' }));
    try {
      const run = await runCliProcess(['plan'], planEnv({ GIT_TOKEN_PARAMETER: name }));

      expect(run.code).not.toBe(0);
      expect(run.stdout + run.stderr).toMatch(/git fetch of .* failed[\s\S]*check GIT_TOKEN_PARAMETER/);
      expect(run.stdout + run.stderr).not.toContain('wrong-token-5e1d');
    } finally {
      await ssm.send(new DeleteParameterCommand({ Name: name }));
    }
  });

  it('names the setting when the parameter does not exist', async () => {
    const run = await runCliProcess(['plan'], planEnv({ GIT_TOKEN_PARAMETER: `${parameterName}-missing` }));

    expect(run.code).not.toBe(0);
    expect(run.stdout + run.stderr).toContain(`GIT_TOKEN_PARAMETER: SSM parameter ${parameterName}-missing does not exist`);
  });
});

describe('readSecret', () => {
  function counting(): { clients: SecretClients; requests: string[] } {
    const requests: string[] = [];
    const wrap = <C extends { send: (...a: never[]) => Promise<unknown> }>(c: C): C => ({
      send: (command: { constructor: { name: string } }) => {
        requests.push(command.constructor.name);
        return (c.send as (x: unknown) => Promise<unknown>).call(c, command);
      },
    }) as unknown as C;
    return { clients: { ssm: wrap(ssm), secretsManager: wrap(secretsManager) }, requests };
  }

  it('reads a secret once per process, however often it is asked for', async () => {
    const { clients, requests } = counting();
    const source = { setting: 'WEBHOOK_SECRET_SECRET_ARN', secretArn };

    const values = await Promise.all([readSecret(source, { clients }), readSecret(source, { clients })]);
    const later = await readSecret(source, { clients });

    expect([...values, later]).toEqual([env.GIT_HTTP_TOKEN, env.GIT_HTTP_TOKEN, env.GIT_HTTP_TOKEN]);
    expect(requests).toEqual(['GetSecretValueCommand']);
  });

  it('answers a failed read from memory until its back-off has passed, then asks again', async () => {
    const { clients, requests } = counting();
    const name = `${parameterName}-later`;
    const source = { setting: 'GIT_TOKEN_PARAMETER', parameter: name };
    let clock = 1_000_000;
    const now = () => clock;

    await expect(readSecret(source, { clients, now })).rejects.toBeInstanceOf(ConfigError);
    await ssm.send(new PutParameterCommand({ Name: name, Type: 'SecureString', Value: 'created-later' }));
    try {
      // Within the first second after the failure: the same error, and no request to SSM.
      clock += 999;
      await expect(readSecret(source, { clients, now })).rejects.toThrow(/does not exist/);
      expect(requests).toEqual(['GetParameterCommand']);
      clock += 2;
      expect(await readSecret(source, { clients, now })).toBe('created-later');
      expect(requests).toEqual(['GetParameterCommand', 'GetParameterCommand']);
    } finally {
      await ssm.send(new DeleteParameterCommand({ Name: name }));
    }
  });

  it('backs off longer after each failure in a row, up to a minute', async () => {
    const { clients, requests } = counting();
    const source = { setting: 'WEBHOOK_SECRET_PARAMETER', parameter: `${parameterName}-never` };
    let clock = 5_000_000;
    const now = () => clock;
    const asked: number[] = [];
    // Anonymous requests every 100 ms for three minutes.
    for (let t = 0; t < 180_000; t += 100) {
      clock = 5_000_000 + t;
      const before = requests.length;
      await readSecret(source, { clients, now }).catch(() => undefined);
      if (requests.length > before) asked.push(t);
    }
    // 1 s, 2 s, 4 s, … 32 s, then every 60 s: a dozen reads instead of 1800.
    expect(asked.slice(0, 4)).toEqual([0, 1000, 3000, 7000]);
    expect(asked.length).toBeLessThanOrEqual(12);
    expect(asked[asked.length - 1] - asked[asked.length - 2]).toBe(60_000);
  });
});
