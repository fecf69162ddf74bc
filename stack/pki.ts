/**
 * The local cluster's certificates: a CA, the API server's serving certificate, one
 * client certificate per identity, the service-account signing key, and a kubeconfig per
 * identity. Made once with openssl and kept across restarts, so kubeconfigs stay valid.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { paths } from './paths';

export interface Identity {
  /** File stem and kubeconfig name. */
  name: string;
  commonName: string;
  organization?: string;
}

/**
 * admin is system:masters (tests and people); each control-plane component has the identity
 * its bootstrap RBAC role expects; the reconciler gets only what `dsgitops rbac` prints
 * (deploy/rbac.yaml), so the stack proves that role is enough to run the product.
 */
export const identities: Identity[] = [
  { name: 'admin', commonName: 'admin', organization: 'system:masters' },
  { name: 'controller-manager', commonName: 'system:kube-controller-manager' },
  { name: 'scheduler', commonName: 'system:kube-scheduler' },
  { name: 'kwok', commonName: 'kwok', organization: 'system:masters' },
  { name: 'reconciler', commonName: 'daemonset-gitops' },
];

const DAYS = '3650';

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr || (err as Error).message}`);
  }
}

function ecKey(file: string, dir: string): void {
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', file], dir);
}

function signedCert(dir: string, stem: string, subject: string, ext: string): void {
  ecKey(`${stem}.key`, dir);
  openssl(['req', '-new', '-key', `${stem}.key`, '-subj', subject, '-out', `${stem}.csr`], dir);
  writeFileSync(join(dir, `${stem}.ext`), ext);
  openssl(
    ['x509', '-req', '-in', `${stem}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-days', DAYS, '-sha256', '-extfile', `${stem}.ext`, '-out', `${stem}.crt`],
    dir,
  );
}

/** Creates whatever part of the PKI is missing; existing files are left as they are. */
export function ensurePki(): void {
  const dir = paths.pki;
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, 'ca.crt'))) {
    ecKey('ca.key', dir);
    openssl(['req', '-x509', '-new', '-key', 'ca.key', '-days', DAYS, '-sha256', '-subj', '/CN=daemonset-gitops-local-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'ca.crt'], dir);
  }
  if (!existsSync(join(dir, 'apiserver.crt'))) {
    signedCert(dir, 'apiserver', '/CN=kube-apiserver', [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.96.0.1',
      '',
    ].join('\n'));
  }
  for (const id of identities) {
    if (existsSync(join(dir, `${id.name}.crt`))) continue;
    const subject = `${id.organization ? `/O=${id.organization}` : ''}/CN=${id.commonName}`;
    signedCert(dir, id.name, subject, [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=clientAuth',
      '',
    ].join('\n'));
  }
  if (!existsSync(join(dir, 'sa.key'))) {
    openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'], dir);
    openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  }
}

export function kubeconfigPath(identity: string): string {
  return join(paths.pki, `${identity}.kubeconfig`);
}

/**
 * Writes a self-contained kubeconfig (certificates embedded) for each identity; `suffix` names
 * another control plane's set (`admin-2.kubeconfig` for the second cluster's API server).
 */
export function writeKubeconfigs(apiserverPort: number, suffix = ''): void {
  const b64 = (file: string) => readFileSync(join(paths.pki, file)).toString('base64');
  for (const id of identities) {
    const text = [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: local',
      '  cluster:',
      `    server: https://127.0.0.1:${apiserverPort}`,
      `    certificate-authority-data: ${b64('ca.crt')}`,
      'users:',
      `- name: ${id.name}`,
      '  user:',
      `    client-certificate-data: ${b64(`${id.name}.crt`)}`,
      `    client-key-data: ${b64(`${id.name}.key`)}`,
      'contexts:',
      `- name: ${id.name}@local`,
      '  context:',
      '    cluster: local',
      `    user: ${id.name}`,
      `current-context: ${id.name}@local`,
      '',
    ].join('\n');
    writeFileSync(kubeconfigPath(`${id.name}${suffix}`), text, { mode: 0o600 });
  }
}
