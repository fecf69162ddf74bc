/**
 * A deployment's committed settings file (deploy/settings-file.ts): read, its safety settings
 * required, the shell refused where it contradicts the file.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDeploySettings } from '../../deploy/settings-file';

let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dsgitops-settings-'));
  mkdirSync(join(root, 'deploy', 'settings'), { recursive: true });
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

const PROD = `
GIT_URL: https://github.com/example/node-agents.git
CLUSTER_NAME: prod-eu-1
EKS_CLUSTER_NAME: prod
GIT_TOKEN_PARAMETER: /daemonset-gitops/git-token
ALLOWED_NAMESPACES: [logging, monitoring]
ALLOWED_KINDS: [DaemonSet, ConfigMap, ServiceAccount]
VPC_SUBNET_IDS: none
PROGRESS_DEADLINE_SECONDS: 600
AUTO_ROLLBACK: true
`;

function write(name: string, text: string): void {
  writeFileSync(join(root, 'deploy', 'settings', name), text);
}

describe('loadDeploySettings', () => {
  it('reads deploy/settings/<deployment>.yaml as environment values: lists joined with commas, numbers and booleans as text', () => {
    write('prod-eu-1.yaml', PROD);
    const s = loadDeploySettings(root, { CLUSTER_NAME: 'prod-eu-1' });
    expect(s.problems).toEqual([]);
    expect(s.file).toBe('deploy/settings/prod-eu-1.yaml');
    expect(s.values).toMatchObject({
      ALLOWED_NAMESPACES: 'logging,monitoring',
      ALLOWED_KINDS: 'DaemonSet,ConfigMap,ServiceAccount',
      VPC_SUBNET_IDS: 'none',
      PROGRESS_DEADLINE_SECONDS: '600',
      AUTO_ROLLBACK: 'true',
    });
  });

  it('reads the file SETTINGS_FILE names, and refuses one that is not there', () => {
    write('elsewhere.yaml', PROD);
    expect(loadDeploySettings(root, { SETTINGS_FILE: 'deploy/settings/elsewhere.yaml' }).values.CLUSTER_NAME).toBe('prod-eu-1');
    expect(loadDeploySettings(root, { SETTINGS_FILE: 'deploy/settings/nope.yaml' }).problems).toEqual([
      expect.stringContaining('SETTINGS_FILE=deploy/settings/nope.yaml: there is no such file'),
    ]);
  });

  it('without a file, takes nothing and finds nothing wrong: the shell alone, as before', () => {
    expect(loadDeploySettings(root, { CLUSTER_NAME: 'prod-eu-1', ALLOWED_NAMESPACES: '*' })).toEqual({ values: {}, problems: [] });
  });

  it('refuses a fleet (FLEET_FILE) without a file, naming the file to write; takes a fleet from its file', () => {
    const shell = { CLUSTER_NAME: 'fleet-eu', ALLOWED_NAMESPACES: 'logging', ALLOWED_KINDS: 'DaemonSet', VPC_SUBNET_IDS: 'none', FLEET_FILE: 'fleet.yaml', FLEET_CLUSTERS: 'staging=staging-eks' };
    const refused = loadDeploySettings(root, shell);
    expect(refused.values).toEqual({});
    expect(refused.problems).toEqual([expect.stringContaining('FLEET_FILE=fleet.yaml: a fleet\'s stack is deployed from a committed settings file, and there is none: write deploy/settings/fleet-eu.yaml')]);
    write('fleet-eu.yaml', `${PROD.replace('prod-eu-1', 'fleet-eu')}FLEET_FILE: fleet.yaml\nFLEET_CLUSTERS: [staging=staging-eks, prod-a=prod-a-eks]\n`);
    const read = loadDeploySettings(root, { CLUSTER_NAME: 'fleet-eu' });
    expect(read.problems).toEqual([]);
    expect(read.values).toMatchObject({ FLEET_FILE: 'fleet.yaml', FLEET_CLUSTERS: 'staging=staging-eks,prod-a=prod-a-eks' });
  });

  it('reads the fleet\'s settings file of docs/fleet.md as it is shown there', () => {
    const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'fleet.md'), 'utf8');
    const shown = /```yaml\n# deploy\/settings\/fleet-eu\.yaml\n([\s\S]*?)```/.exec(doc);
    expect(shown).not.toBeNull();
    write('fleet-eu.yaml', shown![1]);
    const read = loadDeploySettings(root, { CLUSTER_NAME: 'fleet-eu' });
    expect(read.problems).toEqual([]);
    expect(read.values).toMatchObject({ CLUSTER_NAME: 'fleet-eu', FLEET_FILE: 'fleet.yaml', FLEET_CLUSTERS: 'staging=staging-eks,prod-a=prod-a-eks,prod-b=prod-b-eks', VPC_SUBNET_IDS: 'none' });
  });

  it('refuses a file without a safety setting, naming the file and the key', () => {
    write('prod-eu-1.yaml', PROD.replace('ALLOWED_KINDS: [DaemonSet, ConfigMap, ServiceAccount]\n', '').replace('VPC_SUBNET_IDS: none\n', ''));
    const s = loadDeploySettings(root, { CLUSTER_NAME: 'prod-eu-1' });
    expect(s.problems).toEqual([
      expect.stringMatching(/^deploy\/settings\/prod-eu-1\.yaml: ALLOWED_KINDS is missing/),
      expect.stringMatching(/^deploy\/settings\/prod-eu-1\.yaml: VPC_SUBNET_IDS is missing.*VPC_SUBNET_IDS: none/),
    ]);
  });

  it('refuses a shell value of a safety setting that differs from the file, and one the file leaves out', () => {
    write('prod-eu-1.yaml', PROD);
    const s = loadDeploySettings(root, { CLUSTER_NAME: 'prod-eu-1', ALLOWED_NAMESPACES: '*', VPC_SECURITY_GROUP_IDS: 'sg-0123456789abcdef0' });
    expect(s.problems).toEqual([
      'ALLOWED_NAMESPACES=* in the shell differs from deploy/settings/prod-eu-1.yaml (ALLOWED_NAMESPACES: logging,monitoring), a safety setting: a setting comes from one place; change the file, or unset ALLOWED_NAMESPACES in the shell',
      expect.stringMatching(/^VPC_SECURITY_GROUP_IDS=sg-0123456789abcdef0 is set in the shell, but deploy\/settings\/prod-eu-1\.yaml does not set it/),
    ]);
  });

  it('accepts a shell that says the same as the file, spaces in a list aside; refuses any other setting it contradicts', () => {
    write('prod-eu-1.yaml', PROD);
    expect(loadDeploySettings(root, { CLUSTER_NAME: 'prod-eu-1', ALLOWED_NAMESPACES: 'logging, monitoring', AWS_REGION: 'eu-west-1' }).problems).toEqual([]);
    expect(loadDeploySettings(root, { CLUSTER_NAME: 'prod-eu-1', PROGRESS_DEADLINE_SECONDS: '60' }).problems).toEqual([
      expect.stringMatching(/^PROGRESS_DEADLINE_SECONDS=60 in the shell differs from deploy\/settings\/prod-eu-1\.yaml \(PROGRESS_DEADLINE_SECONDS: 600\): /),
    ]);
  });

  it('refuses unknown keys, committed secrets and values that are no setting, each by file and key', () => {
    write('prod-eu-1.yaml', `${PROD}GIT_TOKEN: ghp_x\nALLOWED_NAMESAPCES: [logging]\nPRUNE: { enabled: true }\n`);
    const s = loadDeploySettings(root, { CLUSTER_NAME: 'prod-eu-1' });
    expect(s.problems).toEqual([
      expect.stringMatching(/^deploy\/settings\/prod-eu-1\.yaml: GIT_TOKEN: a secret is never committed/),
      expect.stringMatching(/^deploy\/settings\/prod-eu-1\.yaml: ALLOWED_NAMESAPCES is not a setting of a deployment/),
      'deploy/settings/prod-eu-1.yaml: PRUNE must be a string, a number, a boolean or a list of strings',
    ]);
    expect(JSON.stringify(s)).not.toContain('ghp_x');
  });

  it('refuses a file that is not a mapping, or not YAML', () => {
    write('a.yaml', '- one\n- two\n');
    write('b.yaml', 'ALLOWED_KINDS: [DaemonSet\n');
    expect(loadDeploySettings(root, { SETTINGS_FILE: 'deploy/settings/a.yaml' }).problems).toEqual([expect.stringMatching(/^deploy\/settings\/a\.yaml: must be a mapping/)]);
    expect(loadDeploySettings(root, { SETTINGS_FILE: 'deploy/settings/b.yaml' }).problems[0]).toMatch(/^deploy\/settings\/b\.yaml: not YAML: /);
  });
});
