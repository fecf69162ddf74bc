import { rmSync } from 'node:fs';
import { recordedExtraComponents } from './clusters';
import { startGroups } from './components';
import { log } from './log';
import { optionalComponents } from './prometheus';
import { stackDir } from './paths';
import { runningPid, stopProcess } from './processes';

/** Every component, in the order they must stop (the reverse of the start order): further clusters' control planes before etcd. */
export const stopOrder: string[] = [...optionalComponents, ...startGroups.flat().reverse()];

function stopOrderNow(): string[] {
  const extras = recordedExtraComponents().sort((a, b) => Number(a.startsWith('kube-apiserver')) - Number(b.startsWith('kube-apiserver')));
  return [...extras, ...stopOrder];
}

/**
 * Stops the named components (default: all) that this stack started, by their recorded
 * pids, in reverse start order. Processes it did not start are never signalled.
 */
export async function stackDown(options: { only?: string[]; purge?: boolean } = {}): Promise<string[]> {
  const stopped: string[] = [];
  for (const name of stopOrderNow()) {
    if (options.only && !options.only.includes(name)) continue;
    const pid = runningPid(name);
    if (await stopProcess(name)) {
      stopped.push(name);
      log(`stopped ${name} (pid ${pid})`);
    }
  }
  if (options.purge) {
    const still = stopOrderNow().filter((n) => runningPid(n) !== undefined);
    if (still.length > 0) throw new Error(`not purging ${stackDir}: ${still.join(', ')} still running`);
    rmSync(stackDir, { recursive: true, force: true });
    log(`removed ${stackDir}`);
  }
  if (stopped.length === 0) log('nothing of the stack was running');
  return stopped;
}
