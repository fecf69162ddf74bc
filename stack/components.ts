/**
 * The programs of the local stack, how each is started, and how each proves it is up.
 */
import { join } from 'node:path';
import { binaryPath } from './build';
import { kubeconfigPath } from './pki';
import { paths, repoRoot } from './paths';
import { ProcessSpec } from './processes';
import { probe } from './probe';
import { ensurePythonTool, pythonTools } from './python-tools';
import { StackPorts } from './versions';
import { readSecret } from './secrets';
import { demoTargetEnv } from './demo-target';
import { controlPlaneQpsArgs, kwokConfigFile, nodeLiveness } from './node-liveness';

export interface Component {
  name: string;
  spec(): ProcessSpec;
  healthy(): Promise<boolean>;
  /** Seconds to wait for health after a start before giving up. */
  startTimeoutSeconds: number;
}

const pki = (file: string) => join(paths.pki, file);

/** What the controller manager and the scheduler share: their identity, and /healthz on a local port. */
function controlPlaneArgs(identity: string, port: number, cluster: ControlPlane): string[] {
  const kubeconfig = kubeconfigPath(`${identity}${cluster.suffix}`);
  return [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${join(paths.data, `${identity}${cluster.suffix}`)}`,
    '--leader-elect=false',
  ];
}

/**
 * One Kubernetes control plane of the stack: the first is the stack's own cluster (component
 * names without a suffix); further ones (STACK_CLUSTERS, stack/clusters.ts) share etcd under
 * their own key prefix and have their own API server, controller manager, scheduler and kwok.
 */
export interface ControlPlane {
  /** Appended to component names, kubeconfig and data directory names: '' for the first cluster, `-2`, `-3`, … for the others. */
  suffix: string;
  apiserver: number;
  controllerManager: number;
  scheduler: number;
  kwok: number;
  /** etcd key prefix; undefined keeps the API server's default (/registry). */
  etcdPrefix?: string;
  clusterName: string;
}

export function firstControlPlane(ports: StackPorts): ControlPlane {
  return { suffix: '', apiserver: ports.apiserver, controllerManager: ports.controllerManager, scheduler: ports.scheduler, kwok: ports.kwok, clusterName: 'daemonset-gitops-local' };
}

/** The API server, controller manager, scheduler and kwok of one control plane, keyed by component name. */
export function controlPlaneComponents(ports: StackPorts, cluster: ControlPlane): Record<string, Component> {
  const apiserverUrl = `https://127.0.0.1:${cluster.apiserver}`;
  const s = cluster.suffix;
  const apiserver = `kube-apiserver${s}`;
  const controllerManager = `kube-controller-manager${s}`;
  const scheduler = `kube-scheduler${s}`;
  const kwok = `kwok${s}`;
  return {
    [apiserver]: {
      name: apiserver,
      startTimeoutSeconds: 120,
      spec: () => ({
        name: apiserver,
        command: binaryPath('kube-apiserver'),
        args: [
          '--advertise-address=127.0.0.1',
          '--bind-address=127.0.0.1',
          `--secure-port=${cluster.apiserver}`,
          `--etcd-servers=http://127.0.0.1:${ports.etcdClient}`,
          ...(cluster.etcdPrefix ? [`--etcd-prefix=${cluster.etcdPrefix}`] : []),
          `--tls-cert-file=${pki('apiserver.crt')}`,
          `--tls-private-key-file=${pki('apiserver.key')}`,
          `--client-ca-file=${pki('ca.crt')}`,
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          `--service-account-key-file=${pki('sa.pub')}`,
          `--service-account-signing-key-file=${pki('sa.key')}`,
          '--service-cluster-ip-range=10.96.0.0/16',
          '--authorization-mode=RBAC',
          '--allow-privileged=true',
          `--audit-policy-file=${join(repoRoot, 'stack', 'audit-policy.yaml')}`,
          `--audit-log-path=${join(paths.logs, `audit${s}.log`)}`,
          '--audit-log-format=json',
          '--audit-log-mode=blocking',
          '--audit-log-maxsize=200',
          '--audit-log-maxbackup=1',
          '--profiling=false',
          `--cert-dir=${join(paths.data, `apiserver${s}`)}`,
        ],
      }),
      healthy: async () => (await probe(`${apiserverUrl}/readyz`, { adminTls: true }))?.status === 200,
    },
    [controllerManager]: {
      name: controllerManager,
      startTimeoutSeconds: 60,
      spec: () => ({
        name: controllerManager,
        command: binaryPath('kube-controller-manager'),
        args: [
          ...controlPlaneArgs('controller-manager', cluster.controllerManager, cluster),
          `--service-account-private-key-file=${pki('sa.key')}`,
          `--root-ca-file=${pki('ca.crt')}`,
          // Each controller acts as its own service account with its bootstrap role, as in kubeadm clusters.
          '--use-service-account-credentials=true',
          `--cluster-name=${cluster.clusterName}`,
          '--controllers=*',
          // How long a node may stay silent (no lease renewal, no status) before it is NotReady.
          `--node-monitor-grace-period=${nodeLiveness().gracePeriodSeconds}s`,
          ...controlPlaneQpsArgs(nodeLiveness()),
        ],
      }),
      healthy: async () => (await probe(`https://127.0.0.1:${cluster.controllerManager}/healthz`, { insecure: true }))?.status === 200,
    },
    [scheduler]: {
      name: scheduler,
      startTimeoutSeconds: 60,
      spec: () => ({
        name: scheduler,
        command: binaryPath('kube-scheduler'),
        args: [
          ...controlPlaneArgs('scheduler', cluster.scheduler, cluster),
          ...controlPlaneQpsArgs(nodeLiveness()),
        ],
      }),
      healthy: async () => (await probe(`https://127.0.0.1:${cluster.scheduler}/healthz`, { insecure: true }))?.status === 200,
    },
    [kwok]: {
      name: kwok,
      startTimeoutSeconds: 60,
      spec: () => ({
        name: kwok,
        command: binaryPath('kwok'),
        args: [
          `--kubeconfig=${kubeconfigPath(`kwok${s}`)}`,
          `--config=${join(repoRoot, 'stack', 'kwok-stages.yaml')}`,
          `--config=${kwokConfigFile(nodeLiveness())}`,
          '--manage-all-nodes=false',
          '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
          '--cidr=10.244.0.1/16',
          '--node-ip=10.0.0.1',
          `--node-lease-duration-seconds=${nodeLiveness().leaseSeconds}`,
          `--server-address=127.0.0.1:${cluster.kwok}`,
        ],
      }),
      healthy: async () => (await probe(`http://127.0.0.1:${cluster.kwok}/healthz`))?.status === 200,
    },
  };
}

export function components(ports: StackPorts): Record<string, Component> {
  return {
    etcd: {
      name: 'etcd',
      startTimeoutSeconds: 60,
      spec: () => ({
        name: 'etcd',
        command: binaryPath('etcd'),
        args: [
          '--name=local',
          `--data-dir=${join(paths.data, 'etcd')}`,
          `--listen-client-urls=http://127.0.0.1:${ports.etcdClient}`,
          `--advertise-client-urls=http://127.0.0.1:${ports.etcdClient}`,
          `--listen-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
          `--initial-cluster=local=http://127.0.0.1:${ports.etcdPeer}`,
          // A throwaway test cluster: durability across power loss is not worth the fsync latency.
          '--unsafe-no-fsync=true',
          '--log-level=warn',
        ],
      }),
      healthy: async () => (await probe(`http://127.0.0.1:${ports.etcdClient}/health`))?.body.includes('"health":"true"') ?? false,
    },
    ...controlPlaneComponents(ports, firstControlPlane(ports)),
    minio: {
      name: 'minio',
      startTimeoutSeconds: 60,
      spec: () => ({
        name: 'minio',
        command: binaryPath('minio'),
        args: ['server', join(paths.data, 'minio'), '--address', `127.0.0.1:${ports.minio}`,
          '--console-address', `127.0.0.1:${ports.minioConsole}`, '--quiet'],
        env: {
          MINIO_ROOT_USER: 'dsgitops',
          MINIO_ROOT_PASSWORD: readSecret('minio-password'),
          MINIO_BROWSER: 'off',
          MINIO_UPDATE: 'off',
          CI: 'true',
        },
      }),
      healthy: async () => (await probe(`http://127.0.0.1:${ports.minio}/minio/health/live`))?.status === 200,
    },
    // moto in server mode: the AWS APIs the functions read secrets from (SSM Parameter Store,
    // Secrets Manager), in memory; any credentials are accepted.
    'aws-emulator': {
      name: 'aws-emulator',
      startTimeoutSeconds: 60,
      spec: () => ({
        name: 'aws-emulator',
        command: ensurePythonTool('moto'),
        args: [...pythonTools.moto.run, '-H', '127.0.0.1', '-p', String(ports.awsEmulator)],
      }),
      healthy: async () => (await probe(`http://127.0.0.1:${ports.awsEmulator}/moto-api/`))?.status === 200,
    },
    'git-server': {
      name: 'git-server',
      startTimeoutSeconds: 30,
      spec: () => ({
        name: 'git-server',
        command: process.execPath,
        args: ['--import', 'tsx', join(repoRoot, 'stack', 'git-http-server.ts'),
          '--root', paths.gitRoot, '--port', String(ports.git), '--token-file', join(paths.config, 'git-token')],
        cwd: repoRoot,
      }),
      healthy: async () => (await probe(`http://127.0.0.1:${ports.git}/healthz`))?.status === 200,
    },
    webhook: {
      name: 'webhook',
      startTimeoutSeconds: 30,
      spec: () => ({
        name: 'webhook',
        command: process.execPath,
        args: ['--import', 'tsx', join(repoRoot, 'stack', 'webhook-server.ts'), '--port', String(ports.webhook)],
        cwd: repoRoot,
        // Passes for pushes to the demo repository, with the demo's configuration.
        env: {
          ...demoTargetEnv(ports),
          WEBHOOK_SECRET: readSecret('webhook-secret'),
          GIT_CACHE_DIR: join(paths.data, 'webhook-git-cache'),
          AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        },
      }),
      healthy: async () => (await probe(`http://127.0.0.1:${ports.webhook}/healthz`))?.status === 200,
    },
  };
}

/** Start order: a component starts once everything before it in its group is healthy. */
export const startGroups: string[][] = [
  ['etcd', 'minio', 'git-server', 'aws-emulator'],
  ['kube-apiserver'],
  ['kube-controller-manager', 'kube-scheduler', 'kwok', 'webhook'],
];
