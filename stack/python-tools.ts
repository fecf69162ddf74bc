/**
 * Python programs the tests and scripts use, each in its own virtual environment in the cache
 * outside the repository, keyed by its pinned requirements and the Python version:
 *
 *   moto      the AWS API emulator (SSM Parameter Store, Secrets Manager) run by the stack
 *   cfn-lint  checks the CloudFormation template that `serverless package` writes
 *   awscli    `aws eks get-token`, the reference for the EKS token test vector
 *
 * A venv is built under a temporary name and renamed into place when pip has finished, so an
 * interrupted install is never mistaken for a complete one. The programs are run by the
 * venv's interpreter (`python <args>`), which works wherever the venv lies.
 *
 *   npx tsx stack/python-tools.ts [moto cfn-lint awscli]   install (default: moto and cfn-lint)
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir } from './paths';

export interface PythonTool {
  name: string;
  /** Exact pins handed to pip. */
  requirements: string[];
  /** The interpreter's arguments that run the program (its own arguments follow). */
  run: string[];
}

export const pythonTools = {
  moto: { name: 'moto', requirements: ['moto[server]==5.2.5'], run: ['-m', 'moto.server'] },
  'cfn-lint': { name: 'cfn-lint', requirements: ['cfn-lint==1.58.0'], run: ['-c', 'import sys; from cfnlint.runner import main; sys.exit(main())'] },
  // awscli 1.46 carries its own copy of botocore (awscli.botocore), which `aws eks get-token` signs with.
  awscli: { name: 'awscli', requirements: ['awscli==1.46.3'], run: ['-m', 'awscli'] },
} satisfies Record<string, PythonTool>;

export type PythonToolName = keyof typeof pythonTools;

function python(): string {
  for (const candidate of [process.env.PYTHON, 'python3', 'python'].filter(Boolean) as string[]) {
    const r = spawnSync(candidate, ['-c', 'import sys, venv; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' });
    if (r.status === 0) return candidate;
  }
  throw new Error('Python 3 with its venv module is needed for the AWS emulator and cfn-lint: install python3 and python3-venv (apt-get install python3-venv)');
}

function pythonVersion(py: string): string {
  return spawnSync(py, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' }).stdout.trim();
}

/** The venv directory of a tool: its name, version and a hash of the pins and the Python version. */
export function venvDir(tool: PythonTool, py = python()): string {
  const key = createHash('sha256').update(JSON.stringify([tool.requirements, pythonVersion(py)])).digest('hex').slice(0, 12);
  const version = tool.requirements[0].split('==')[1] ?? 'unpinned';
  return join(cacheDir, 'venv', `${tool.name}-${version}-${key}`);
}

/** The venv's interpreter, installing the tool first if this machine does not have it yet. */
export function ensurePythonTool(name: PythonToolName, log: (line: string) => void = () => {}): string {
  const tool = pythonTools[name];
  const py = python();
  const dir = venvDir(tool, py);
  const interpreter = join(dir, 'bin', 'python');
  if (existsSync(interpreter)) return interpreter;
  const partial = `${dir}.${process.pid}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(join(cacheDir, 'venv'), { recursive: true });
  log(`installing ${tool.requirements.join(' ')} into ${dir}`);
  const run = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) {
      rmSync(partial, { recursive: true, force: true });
      throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): installing ${tool.name} needs PyPI`);
    }
  };
  run(py, ['-m', 'venv', partial]);
  run(join(partial, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...tool.requirements]);
  try {
    renameSync(partial, dir);
  } catch (err) {
    // Another process finished the same install first: use its venv.
    rmSync(partial, { recursive: true, force: true });
    if (!existsSync(interpreter)) throw err;
  }
  return interpreter;
}

if (require.main === module) {
  const names = process.argv.slice(2);
  for (const name of names.length > 0 ? names : ['moto', 'cfn-lint']) {
    if (!(name in pythonTools)) {
      console.error(`unknown tool "${name}": one of ${Object.keys(pythonTools).join(', ')}`);
      process.exit(2);
    }
    const interpreter = ensurePythonTool(name as PythonToolName, (l) => console.log(l));
    console.log(`${name}: ${interpreter} ${pythonTools[name as PythonToolName].run.map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ')}`);
  }
}
