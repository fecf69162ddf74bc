/**
 * Pinned versions of every program the local stack runs. Changing one here (or the
 * wrapper module under stack/build/) changes its cache key, so the next `stack:up`
 * builds it again; nothing else needs to be cleaned by hand.
 */
export const KUBERNETES_VERSION = 'v1.34.4';
export const ETCD_VERSION = 'v3.6.16';
export const KWOK_VERSION = 'v0.8.0';
/** MinIO publishes no semver module tags; this pseudo-version is commit 7aac2a2c5b7c (2026-02-12). */
export const MINIO_VERSION = 'v0.0.0-20260212201848-7aac2a2c5b7c';
/** The renderers of kustomizations and Helm charts (lib/source/render.ts); shipped to Lambda as a layer. */
export const KUSTOMIZE_VERSION = 'v5.8.1';
export const HELM_VERSION = 'v4.3.2';
/** Prometheus tags its Go module v0.<major*100+minor>.<patch>: v0.316.0 is Prometheus 3.16.0. */
export const PROMETHEUS_VERSION = 'v0.316.0';

/** Port layout on 127.0.0.1; STACK_PORT_BASE moves all of them together. */
export interface StackPorts {
  /** STACK_PORT_BASE: every port of the stack lies in base … base + 999. */
  base: number;
  etcdClient: number;
  etcdPeer: number;
  apiserver: number;
  minio: number;
  minioConsole: number;
  git: number;
  kwok: number;
  controllerManager: number;
  scheduler: number;
  /** moto's server: SSM Parameter Store and Secrets Manager. */
  awsEmulator: number;
  /** The push webhook (stack/webhook-server.ts), which the demo repository's post-receive hook calls. */
  webhook: number;
  /** Prometheus, an optional component only the gate tests start (stack/prometheus.ts). */
  prometheus: number;
}

export function stackPorts(base = Number(process.env.STACK_PORT_BASE ?? 31000)): StackPorts {
  if (!Number.isInteger(base) || base < 1024 || base > 65000) {
    throw new Error(`STACK_PORT_BASE=${process.env.STACK_PORT_BASE}: expected an integer between 1024 and 65000`);
  }
  return {
    base,
    etcdClient: base + 379,
    etcdPeer: base + 380,
    apiserver: base + 443,
    minio: base + 900,
    minioConsole: base + 901,
    git: base + 418,
    kwok: base + 247,
    controllerManager: base + 257,
    scheduler: base + 259,
    awsEmulator: base + 566,
    webhook: base + 80,
    prometheus: base + 90,
  };
}
