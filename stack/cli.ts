/**
 * npm run stack:up | stack:down [-- --purge] | stack:nodes -- N | stack:status | stack:build
 *
 * One component alone (with STACK_DIR and STACK_PORT_BASE, e.g. to try a new one beside a
 * running stack):  tsx stack/cli.ts component up|down NAME
 */
// The stack runs on the Node.js this repository supports; the SDK's notice about future Node versions is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { ensureAllBuilt } from './build';
import { components, startGroups } from './components';
import { extraClusterComponents, recordedExtraComponents, stackClusterFiles } from './clusters';
import { stackDown } from './down';
import { listStackNodes, setWorkerCount, waitNodesReady } from './nodes';
import { runningPid, stopProcess } from './processes';
import { ensureComponent, stackUp } from './up';
import { ensurePythonTool } from './python-tools';
import { stackPorts } from './versions';

/** The stack's components and those of every further cluster that was started here. */
function allComponents(): ReturnType<typeof components> {
  const ports = stackPorts();
  const extra = new Set(recordedExtraComponents().map((n) => Number(/-(\d+)$/.exec(n)![1])));
  return Object.assign(components(ports), ...[...extra].map((k) => extraClusterComponents(ports, k)));
}

async function status(): Promise<number> {
  const all = allComponents();
  let down = 0;
  for (const name of [...startGroups.flat(), ...recordedExtraComponents().sort()]) {
    const pid = runningPid(name);
    const healthy = pid !== undefined && (await all[name].healthy());
    if (!healthy) down++;
    console.log(`${name.padEnd(24)} ${pid === undefined ? 'stopped' : `pid ${pid}`.padEnd(12)} ${pid === undefined ? '' : healthy ? 'healthy' : 'UNHEALTHY'}`);
  }
  if (runningPid('kube-apiserver') !== undefined) {
    const { workers, controlPlane } = listStackNodes();
    console.log(`nodes                    ${workers.length} workers${controlPlane ? ' + control plane' : ''}`);
  }
  for (const k of new Set(recordedExtraComponents().map((n) => Number(/-(\d+)$/.exec(n)![1])))) {
    if (runningPid(`kube-apiserver-${k}`) === undefined) continue;
    const { workers } = listStackNodes(stackClusterFiles(k).kubeconfig);
    console.log(`${`nodes (cluster ${k})`.padEnd(24)} ${workers.length} workers`);
  }
  return down === 0 ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'build':
      await ensureAllBuilt();
      // The Python programs: moto (a stack component), cfn-lint (checks the packaged template).
      ensurePythonTool('moto', console.log);
      ensurePythonTool('cfn-lint', console.log);
      // The reference the EKS token is compared with (test/integration/eks-token-cli.test.ts).
      ensurePythonTool('awscli', console.log);
      return 0;
    case 'component': {
      const [action, name] = rest;
      const component = name ? allComponents()[name] : undefined;
      if (!component || (action !== 'up' && action !== 'down')) {
        console.error(`usage: stack/cli.ts component up|down NAME (one of ${Object.keys(components(stackPorts())).join(', ')})`);
        return 2;
      }
      if (action === 'up') await ensureComponent(component);
      else await stopProcess(name);
      console.log(`${name}: ${action === 'up' ? `pid ${runningPid(name)}` : 'stopped'}`);
      return 0;
    }
    case 'up':
      await stackUp();
      return 0;
    case 'down':
      await stackDown({ purge: rest.includes('--purge') });
      return 0;
    case 'nodes': {
      const n = Number(rest[0]);
      if (rest.length !== 1 || !Number.isInteger(n)) {
        console.error('usage: npm run stack:nodes -- <number of worker nodes>');
        return 2;
      }
      setWorkerCount(n);
      await waitNodesReady();
      return 0;
    }
    case 'status':
      return status();
    default:
      console.error('usage: stack/cli.ts build|up|down [--purge]|nodes N|status|component up|down NAME');
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`stack: ${err.message}`);
    process.exit(1);
  },
);
