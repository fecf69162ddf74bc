/**
 * The configuration the demo reconciles with (npm start on the local stack), shared by the
 * demo and by the stack's webhook, which runs passes for pushes to the demo repository.
 */
import { join } from 'node:path';
import { paths } from './paths';
import { kubeconfigPath } from './pki';
import { readSecret } from './secrets';
import type { StackPorts } from './versions';

export const SERVED_REPO = 'demo.git';
export const DEMO_NAMESPACES = ['logging', 'monitoring', 'kube-dns-cache'];
export const DEMO_CLUSTER = 'local-demo';
export const BUCKET = 'daemonset-gitops';

/** The environment of a reconcile pass against the demo repository, as a user would set it. */
export function demoTargetEnv(ports: StackPorts): Record<string, string> {
  return {
    GIT_URL: `http://127.0.0.1:${ports.git}/${SERVED_REPO}`,
    GIT_TOKEN: readSecret('git-token'),
    GIT_REF: 'main',
    GIT_PATH: 'daemonsets',
    S3_BUCKET: BUCKET,
    S3_ENDPOINT: `http://127.0.0.1:${ports.minio}`,
    S3_PREFIX: 'daemonset-gitops',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'dsgitops',
    AWS_SECRET_ACCESS_KEY: readSecret('minio-password'),
    CLUSTER_NAME: DEMO_CLUSTER,
    KUBECONFIG: kubeconfigPath('reconciler'),
    ALLOWED_NAMESPACES: DEMO_NAMESPACES.join(','),
  };
}

/** The shared secret of the demo repository's webhook (the post-receive hook reads it from this file). */
export function webhookSecretFile(): string {
  readSecret('webhook-secret');
  return join(paths.config, 'webhook-secret');
}
