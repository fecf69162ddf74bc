/**
 * Prometheus as an optional stack component: built from Go modules on first use (build.ts,
 * `optionalBuilds`), started only by the tests that need it, scraping the targets they name
 * every second, and stopped by them (or by `stack:down`).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binDir, ensureBuilt, optionalBuilds } from './build';
import { paths } from './paths';
import { probe } from './probe';
import { logTail, runningPid, sleep, startProcess, stopProcess } from './processes';
import { stackPorts } from './versions';

/** Components that `stack:up` does not start; `stack:down` stops them first. */
export const optionalComponents = ['prometheus'];

const NAME = 'prometheus';

export interface StartedPrometheus {
  /** http://127.0.0.1:<port> */
  address: string;
  pid: number;
}

/**
 * Starts Prometheus scraping `targets` (host:port) every second, with an empty TSDB, and waits
 * until it is ready; a running one is stopped first, so each caller gets its own configuration.
 */
export async function startPrometheus(targets: string[], timeoutMs = 60_000): Promise<StartedPrometheus> {
  const spec = optionalBuilds.find((b) => b.name === NAME)!;
  await ensureBuilt(spec);
  await stopProcess(NAME);
  const dir = join(paths.data, NAME);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'tsdb'), { recursive: true });
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: agents',
    '    honor_labels: true',
    '    static_configs:',
    `      - targets: [${targets.map((t) => JSON.stringify(t)).join(', ')}]`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), config);
  const port = stackPorts().prometheus;
  const address = `http://127.0.0.1:${port}`;
  const pid = startProcess({
    name: NAME,
    command: join(binDir(spec), NAME),
    args: [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await probe(`${address}/-/ready`))?.status === 200) return { address, pid };
    if (runningPid(NAME) === undefined) break;
    await sleep(200);
  }
  await stopProcess(NAME);
  throw new Error(`Prometheus did not become ready at ${address} within ${timeoutMs / 1000}s:\n${logTail(NAME)}`);
}

export function stopPrometheus(): Promise<boolean> {
  return stopProcess(NAME);
}
