/**
 * `dsgitops ui`: the local web page (lib/ui/). Serves until interrupted; prints the URL with
 * the process's token, and each action taken from the page.
 */
import { spawn } from 'node:child_process';
import { userInfo } from 'node:os';
import type { CliIO, CliValues } from './cli';
import type { MakeDeps } from './commands';
import { loadConfig } from '../lib/config';
import { connect, createDeps, Deps } from '../lib/deps';
import { InvalidRequestError } from '../lib/errors';
import { humanLogger } from '../lib/log';
import { UiData } from '../lib/ui/data';
import { startUiServer, UiOptions } from '../lib/ui/server';

export const DEFAULT_UI_PORT = 8420;
/** The page's reads have no deadline of their own: each S3 call keeps its own timeout. */
const SERVE_BUDGET_MS = 365 * 24 * 3600_000;
const ACTION_BUDGET_MS = 11 * 60_000;

function portOf(v: string | undefined): number {
  if (v === undefined) return DEFAULT_UI_PORT;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidRequestError(`--port takes a port number from 0 (any free port) to 65535, not "${v}"`);
  return n;
}

/** Opens the URL in the desktop's browser; says so and goes on when there is none. */
function openBrowser(url: string, io: CliIO): void {
  const command = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(command, [url], { stdio: 'ignore', detached: true });
  child.on('error', () => io.err(`could not start ${command} to open the page: open the URL above yourself\n`));
  child.unref();
}

/** With FLEET_FILE: the fleet's records for the page, and hold/resume as `dsgitops fleet` takes them (loaded only then). */
async function fleetOptions(deps: Deps, data: UiData): Promise<Pick<UiOptions, 'fleet' | 'fleetAct'>> {
  const [{ readFleetHead }, { holdOrResume }, { PromotionStore }, { FleetData }] = await Promise.all([
    import('../lib/fleet/fleet-source'), import('../lib/fleet/operate'), import('../lib/store/promotion-store'), import('../lib/ui/fleet-data'),
  ]);
  const { config, clock } = deps;
  const store = new PromotionStore(data.objects, config.s3.prefix);
  return {
    fleet: new FleetData(store, () => readFleetHead(config, clock), clock, config.cluster.name),
    // The actions' own store: what they read and write is not the page's reads.
    fleetAct: (action, actor) => holdOrResume(config, new PromotionStore(deps.objects, config.s3.prefix), clock, action, actor),
  };
}

export async function runUi(values: CliValues, io: CliIO, makeDeps?: MakeDeps, stop?: Promise<void>): Promise<number> {
  const port = portOf(values.port);
  const verbose = Boolean(values.verbose);
  const config = makeDeps ? undefined : loadConfig();
  const clients = config ? await connect(config) : undefined;
  const depsFor = (budgetMs: number): Deps => (makeDeps
    ? makeDeps(budgetMs, false, verbose)
    : createDeps(config!, { clients, budgetMs, logger: humanLogger((l) => io.err(l), verbose), onProgress: (line) => io.err(`  ${line}\n`) }));
  const serveDeps = depsFor(SERVE_BUDGET_MS);
  const data = await UiData.start(serveDeps);
  const fleet = serveDeps.config.fleetFile ? await fleetOptions(serveDeps, data) : {};
  const server = await startUiServer(data, {
    ...fleet,
    port,
    allowActions: Boolean(values['allow-actions']),
    user: userInfo().username,
    actionDeps: () => depsFor(ACTION_BUDGET_MS),
    log: (line) => io.err(line),
  }).catch((err) => {
    data.stop();
    throw err;
  });
  io.out(`dsgitops ui: ${server.url}\n`);
  io.err(`serving on 127.0.0.1 only, ${values['allow-actions'] ? 'actions allowed (each needs a confirmation in the page)' : 'read-only (--allow-actions to pause, resume, roll back and unpin from the page)'}; Ctrl-C stops it\n`);
  if (values.open) openBrowser(server.url, io);
  await (stop ?? new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  }));
  await server.close();
  data.stop();
  return 0;
}
