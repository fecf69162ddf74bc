/**
 * `dsgitops eks-token` against `aws eks get-token` (the pinned awscli, in its cached venv),
 * both run as processes with the same credentials: within the same second they must print
 * the same bytes. (The unit test compares with a vector at a fixed clock; this one compares
 * the commands as a user or kubectl runs them.)
 */
import { execFile } from 'node:child_process';
import { devNull } from 'node:os';
import { promisify } from 'node:util';
import { cliCommand, ensureCliBuilt } from '../support/cli-build';
import { ensurePythonTool, pythonTools } from '../../stack/python-tools';

const run = promisify(execFile);

const credentials = {
  AWS_ACCESS_KEY_ID: 'ASIAINTEGRATIONEXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'integration/Secret+Example0123456789abcdefg',
  AWS_SESSION_TOKEN: 'FwoGZXIvYXdzEXAMPLE//token+for=the/integration==test',
};

function environment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  return { ...env, AWS_CONFIG_FILE: devNull, AWS_SHARED_CREDENTIALS_FILE: devNull, AWS_EC2_METADATA_DISABLED: 'true', ...credentials, ...extra };
}

function signedAt(stdout: string): string | null {
  const token = (JSON.parse(stdout) as { status: { token: string } }).status.token;
  return new URL(Buffer.from(token.slice('k8s-aws-v1.'.length), 'base64url').toString()).searchParams.get('X-Amz-Date');
}

let python: string;

beforeAll(() => {
  ensureCliBuilt();
  python = ensurePythonTool('awscli');
}, 300_000);

describe('dsgitops eks-token', () => {
  it.each([
    ['us-east-1', {}],
    ['ap-southeast-2', { KUBERNETES_EXEC_INFO: JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', spec: { interactive: false } }) }],
  ] as const)('prints what aws eks get-token prints (%s)', async (region, extra) => {
    const env = environment(extra);
    let compared = 0;
    for (let attempt = 0; attempt < 6 && compared === 0; attempt++) {
      const [ours, theirs] = await Promise.all([
        run(process.execPath, [cliCommand, 'eks-token', '--cluster', 'prod-cluster', '--region', region], { env }),
        run(python, [...pythonTools.awscli.run, 'eks', 'get-token', '--cluster-name', 'prod-cluster', '--region', region], { env }),
      ]);
      // The two processes start at slightly different moments: compare the runs that signed in the same second.
      if (signedAt(ours.stdout) !== signedAt(theirs.stdout)) continue;
      expect(ours.stdout).toBe(theirs.stdout);
      compared++;
    }
    expect(compared).toBe(1);
  }, 120_000);

  it('says what is missing without a cluster name or a region', async () => {
    const env = environment();
    delete env.AWS_REGION;
    await expect(run(process.execPath, [cliCommand, 'eks-token', '--region', 'us-east-1'], { env })).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('--cluster NAME') });
    await expect(run(process.execPath, [cliCommand, 'eks-token', '--cluster', 'c'], { env })).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('--region REGION') });
  }, 60_000);
});
