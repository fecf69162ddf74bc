import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { paths } from './paths';

/** What `stack:up` publishes in .stack/env for people, tests and the demo. */
export interface StackEnv {
  KUBECONFIG: string;
  /** Kubeconfig of the RBAC-limited identity the reconciler runs as (deploy/rbac.yaml). */
  RECONCILER_KUBECONFIG: string;
  KUBECTL: string;
  AUDIT_LOG: string;
  S3_ENDPOINT: string;
  S3_BUCKET: string;
  AWS_ACCESS_KEY_ID: string;
  AWS_SECRET_ACCESS_KEY: string;
  AWS_REGION: string;
  GIT_HTTP_URL: string;
  GIT_HTTP_TOKEN: string;
  GIT_HTTP_ROOT: string;
  GIT_HTTP_BASE: string;
  /** moto's server (SSM Parameter Store, Secrets Manager); absent from a stack brought up before it was a component. */
  AWS_EMULATOR_ENDPOINT?: string;
  /** The push webhook the demo repository's post-receive hook calls (absent in an env file written before it existed). */
  WEBHOOK_URL?: string;
  /** The renderers built with the stack (lib/source/render.ts); absent in an env file written before they were. */
  KUSTOMIZE_BIN?: string;
  HELM_BIN?: string;
  /** How many clusters the stack runs when more than one (stack/clusters.ts finds their kubeconfigs). */
  STACK_CLUSTERS?: string;
}

function quote(value: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]*$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

export function writeStackEnv(env: StackEnv): void {
  const lines = Object.entries(env).map(([k, v]) => `${k}=${quote(String(v))}`);
  writeFileSync(paths.env, `# written by npm run stack:up; source it: set -a; . .stack/env; set +a\n${lines.join('\n')}\n`);
}

/** Reads .stack/env; undefined when the stack has never been brought up here. */
export function readStackEnv(): StackEnv | undefined {
  if (!existsSync(paths.env)) return undefined;
  const env: Record<string, string> = {};
  for (const line of readFileSync(paths.env, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2];
    if (value.startsWith("'") && value.endsWith("'")) value = value.slice(1, -1).replace(/'\\''/g, "'");
    env[m[1]] = value;
  }
  return env as unknown as StackEnv;
}
