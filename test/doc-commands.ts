/**
 * Every shell command shown in the README and docs/ (fenced ```sh, ```bash, ```console blocks,
 * and unlabelled blocks that start like a command), keyed by its text as test/support/markdown.ts
 * extracts it (continuation lines joined, prompt and trailing comment removed, spaces collapsed),
 * and what makes sure it still works:
 *
 * - `run`: test/integration/doc-commands.test.ts runs it as written, against the local stack,
 *   in the order the pages show them (the README's tour after `npm start`);
 * - `tests`: each string of `invokes` (the command, or the call the test makes for it: the CLI
 *   subcommand and its flags, the function behind an npm script) is in one of the files, tests
 *   or CI scripts that run on every CI run;
 * - `notRunnable`: why it cannot be run here (a real AWS account, the reader's own keys); the
 *   unit test prints this list.
 *
 * test/unit/doc-commands.test.ts fails for a command in a page with no entry here, for an entry
 * no page shows any more, and for a `dsgitops` or `npm run` command whose subcommand, script or
 * flags the CLI's own usage (or package.json) does not have.
 */
export type Coverage =
  | { run: true; /** run in the background until its output shows this, then stopped */ until?: string; /** appended when run, and why */ append?: [string, string] }
  | { tests: string[]; invokes: string[] }
  | { notRunnable: string };

export const DOC_COMMANDS: Record<string, Coverage> = {
  // README.md: two commands
  'npm ci && npm start': { tests: ['.ci/run', 'test/integration/doc-commands.test.ts'], invokes: ['npm ci', "'npm', ['start']"] },
  'npm test': { tests: ['.ci/run'], invokes: ['npm test'] },
  'export PATH="$(scripts/node24):$PATH"': { tests: ['.ci/run'], invokes: ['scripts/node24', 'export PATH="$node_dir:$PATH"'] },

  // README.md: the five-minute tour, run as written after `npm start`
  'set -a; . .stack/env; set +a': { run: true },
  'export GIT_URL=$GIT_HTTP_URL GIT_TOKEN=$GIT_HTTP_TOKEN GIT_PATH=daemonsets CLUSTER_NAME=local-demo KUBECONFIG=$RECONCILER_KUBECONFIG ALLOWED_NAMESPACES=logging,monitoring,kube-dns-cache': { run: true },
  'npx dsgitops status': { run: true },
  'npx dsgitops plan': { run: true },
  'npx dsgitops history logging/fluent-bit': { run: true },
  'npx dsgitops rollback logging/fluent-bit --reason "try a rollback"': { run: true },
  'npx dsgitops ui --open': {
    run: true, until: 'http://127.0.0.1:',
    append: [' --port 0', 'the default port, 8420, may be taken on a machine shared with other runs'],
  },
  'npm run stack:down': { tests: ['test/support/global-teardown.ts'], invokes: ['stackDown('] },

  // docs/development.md, docs/performance.md
  'npm run stack:up': { run: true },
  'npm run stack:status': { run: true },
  'npm run stack:nodes -- 12': { tests: ['test/integration/stack.test.ts'], invokes: ['setWorkerCount('] },
  'npm run stack:down -- --purge': { notRunnable: 'stops the stack the integration suites run on and deletes its data and caches; stack/down.ts does what `stack:down` does first, tested by every suite\'s teardown' },
  'npm run bench:ui -- --write': { run: true },

  // docs/aws.md, docs/fleet.md: deploying on AWS
  'aws ssm put-parameter --name /daemonset-gitops/git-token --type SecureString --value "$TOKEN"': { notRunnable: 'writes a parameter in a real AWS account; reading it back is tested against the stack\'s SSM (moto) by test/integration/secrets.test.ts' },
  'export GIT_TOKEN_PARAMETER=/daemonset-gitops/git-token': { tests: ['test/integration/secrets.test.ts'], invokes: ['GIT_TOKEN_PARAMETER'] },
  'aws ssm put-parameter --name /daemonset-gitops/trusted-keys --type String --value "$(gpg --armor --export KEYID)"': { notRunnable: 'writes a parameter in a real AWS account from the reader\'s own key' },
  'export VERIFY_COMMITS=true TRUSTED_GPG_KEYS_PARAMETER=/daemonset-gitops/trusted-keys': { tests: ['test/integration/deploy-template.test.ts'], invokes: ['TRUSTED_GPG_KEYS_PARAMETER', 'VERIFY_COMMITS'] },
  'aws eks update-cluster-config --name prod --access-config authenticationMode=API_AND_CONFIG_MAP': { notRunnable: 'changes a real EKS cluster; the local stack has no EKS API' },
  'ALLOWED_NAMESPACES=logging,monitoring npx dsgitops rbac | kubectl apply -f -': { tests: ['test/integration/rbac.test.ts'], invokes: ["'rbac'", 'apply'] },
  'export AWS_REGION=eu-west-1 CLUSTER_NAME=prod-eu-1 EKS_CLUSTER_NAME=prod GIT_URL=https://github.com/example/node-agents.git GIT_PATH=clusters/prod GIT_TOKEN_PARAMETER=/daemonset-gitops/git-token ALLOWED_NAMESPACES=logging,monitoring ALLOWED_KINDS=DaemonSet,ConfigMap,ServiceAccount VPC_SUBNET_IDS=none ALARM_EMAIL=oncall@example.com': {
    tests: ['test/integration/deploy-template.test.ts'], invokes: ["readFileSync(join(repoRoot, 'docs', 'aws.md')", 'npx serverless deploy'],
  },
  'npx serverless deploy': { tests: ['test/integration/deploy-template.test.ts'], invokes: ['npx serverless deploy', 'package'] },
  'CLUSTER_NAME=fleet-eu npx serverless deploy': {
    tests: ['test/unit/deploy-settings.test.ts', 'test/integration/deploy-template.test.ts'], invokes: ["'docs', 'fleet.md'", 'SETTINGS_FILE'],
  },
  'npx serverless invoke -f reconcile --data \'{"dryRun": true}\'': { notRunnable: 'invokes the deployed function in a real AWS account; the same event is run by the packaged function in test/e2e/serverless.test.ts' },
  'npx serverless invoke -f reconcile': { notRunnable: 'invokes the deployed function in a real AWS account' },
  'npx serverless logs -f reconcile': { notRunnable: 'reads CloudWatch Logs of a real AWS account' },
  'aws lambda invoke --function-name daemonset-gitops-prod-eu-1-dev-rollback --cli-read-timeout 0 --cli-binary-format raw-in-base64-out --payload \'{"namespace":"logging","name":"fluent-bit","reason":"3.1.10 drops logs"}\' out.json': { notRunnable: 'invokes the deployed function in a real AWS account' },
  'aws lambda invoke --function-name daemonset-gitops-prod-eu-1-dev-rollback --invocation-type Event --cli-binary-format raw-in-base64-out --payload \'{"namespace":"logging","name":"fluent-bit"}\' /dev/null': { notRunnable: 'invokes the deployed function in a real AWS account' },
  'npx serverless invoke -f history --data \'{"namespace":"logging","name":"fluent-bit"}\'': { notRunnable: 'invokes the deployed function in a real AWS account' },

  // docs/usage.md
  'npx serverless invoke local -f rollback --data \'{"namespace":"logging","name":"fluent-bit","toRevision":1,"reason":"3.1.10 drops logs"}\'': { tests: ['test/support/serverless.ts', 'test/e2e/serverless.test.ts'], invokes: ["'invoke', 'local'", 'rollback'] },

  // docs/bundles.md: what the cluster shows (output of a scenario with configuration copies)
  'kubectl -n logging get configmap': { tests: ['test/integration/config-revisions.test.ts'], invokes: ['readNamespacedConfigMap', 'config-copy-of'] },
  'kubectl -n logging get configmap -l daemonset-gitops.io/config-copy-of=fluent-bit-config': { tests: ['test/integration/config-revisions.test.ts'], invokes: ['config-copy-of'] },
  'kubectl -n logging get ds fluent-bit -o jsonpath=\'{.spec.template.spec.volumes[0].configMap.name}\'': { tests: ['test/integration/config-revisions.test.ts'], invokes: ['configMap?.name'] },

  // docs/commit-verification.md: signing commits with the reader's own keys
  "gpg --quick-gen-key 'Alice <alice@example.com>' ed25519 sign 1y": { tests: ['test/integration/verify-commits.test.ts'], invokes: ['--quick-gen-key'] },
  'git config user.signingkey <FINGERPRINT>': { tests: ['test/integration/verify-commits.test.ts'], invokes: ['user.signingkey'] },
  'git commit -S -m "…"': { tests: ['test/integration/verify-commits.test.ts'], invokes: ['-S'] },
  'gpg --armor --export <FINGERPRINT>': { tests: ['test/integration/verify-commits.test.ts'], invokes: ["'--armor'", "'--export'"] },
  'git config gpg.format ssh': { tests: ['test/integration/verify-commits.test.ts'], invokes: ['gpg.format'] },
  'git config user.signingkey ~/.ssh/id_ed25519.pub': { tests: ['test/integration/verify-commits.test.ts'], invokes: ['user.signingkey', 'ssh-keygen'] },
  'cat ~/.ssh/id_ed25519.pub': { notRunnable: 'prints the reader\'s own public key' },

  // docs/fleet.md: the fleet commands
  'dsgitops fleet status [--json]': { tests: ['test/integration/fleet-promotion.test.ts'], invokes: ["'fleet', 'status'", "'--json'"] },
  'dsgitops fleet hold --reason "incident 42"': { tests: ['test/integration/fleet-promotion.test.ts'], invokes: ["'fleet', 'hold'", "'--reason'"] },
  'dsgitops fleet resume --reason "incident over"': { tests: ['test/integration/fleet-promotion.test.ts'], invokes: ["'fleet', 'resume'", "'--reason'"] },
  'dsgitops fleet promote <sha> --to prod --reason "hotfix for CVE-…"': { tests: ['test/integration/fleet-promotion.test.ts'], invokes: ["'fleet', 'promote'", "'--to'"] },

  // docs/ui.md
  'npx dsgitops ui [--port N] [--open] [--allow-actions]': { tests: ['test/integration/ui.test.ts', 'test/support/ui.ts'], invokes: ['runUi(', "port: '0'", "'allow-actions': true"] },

  // docs/webhook.md: the stack's git server calls the webhook from its hook
  'git -C repo.git config core.hooksPath "$PWD/stack/hooks"': { tests: ['test/integration/webhook.test.ts'], invokes: ['core.hooksPath'] },
  'git -C repo.git config dsgitops.webhookUrl http://127.0.0.1:31080/': { tests: ['test/integration/webhook.test.ts'], invokes: ['dsgitops.webhookUrl'] },
  'git -C repo.git config dsgitops.webhookSecretFile "$PWD/.stack/config/webhook-secret"': { tests: ['test/integration/webhook.test.ts'], invokes: ['dsgitops.webhookSecretFile'] },
};
