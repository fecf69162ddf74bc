/**
 * The fleet file as Git has it: at the branch head (GIT_REF) for the promotion, the fleet
 * commands and the per-DaemonSet commands' choice of cluster; in any checked-out tree (a
 * promoted commit) for a cluster's pass.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../clock';
import { systemClock } from '../clock';
import type { Config } from '../config';
import { ConfigError } from '../errors';
import { fetchHead, isUntrusted } from '../source/git';
import { commitJudge } from '../source/trust';
import { Fleet, parseFleetFile } from './fleet-file';

/** The fleet file in a checked-out tree. */
export function readFleetFile(dir: string, file: string, at: string): Fleet {
  let text: string;
  try {
    text = readFileSync(join(dir, file), 'utf8');
  } catch {
    throw new ConfigError(`FLEET_FILE=${file}: there is no such file in the repository at ${at}; commit it, or unset FLEET_FILE for a single cluster`);
  }
  return parseFleetFile(text, `${file} at ${at}`);
}

/** The branch head (GIT_REF) and the fleet file in it; an untrusted head (VERIFY_COMMITS) is no head to promote. */
export async function readFleetHead(config: Config, clock: Clock = systemClock): Promise<{ head: string; fleet: Fleet } | { untrusted: string }> {
  if (!config.fleetFile) throw new ConfigError('FLEET_FILE is not set: the fleet commands need the fleet file\'s path in the repository (e.g. fleet.yaml)');
  const git = { ...config.git, cacheDir: join(config.git.cacheDir, 'fleet-head') };
  const head = await fetchHead(git, undefined, { verify: commitJudge(config, () => clock.now()) });
  if (isUntrusted(head)) return { untrusted: `${head.commit.sha.slice(0, 7)} is not trusted: ${head.verdict?.problem ?? 'no trusted signature'}` };
  return { head: head.commit.sha, fleet: readFleetFile(head.dir, config.fleetFile, head.commit.sha.slice(0, 7)) };
}
