/**
 * The web server of `dsgitops ui`: on 127.0.0.1 only, in the CLI's process, with the user's own
 * credentials. Every request must carry the process's token (the URL it prints has it), so
 * another local user's browser cannot read or drive it; the Host header must name this server
 * (a page on another site cannot reach it through DNS rebinding). Read-only unless started with
 * `allowActions`; an action then needs the DaemonSet's name typed back as its confirmation, goes
 * through the same library calls as the CLI (lease, pins and records as there), and is logged.
 * Live updates are server-sent events, sent when a watch cache changes. S3 is read again only
 * when something says it may have changed: a change of the managed DaemonSets or of the open
 * DaemonSet's Events, an action from the page, or the slow interval (`refreshMs`, default 30 s)
 * for what changes in S3 alone (a pass that only finds a new problem in Git) — never on a
 * timer of a few seconds. With a fleet (`fleet`), the fleet's promotion record is looked at
 * with one conditional GET per `fleetCheckMs` (fleet-data.ts says what else is read, and when),
 * and hold/resume of the promotion go through `fleetAct`, as `dsgitops fleet hold|resume`.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Deps } from '../deps';
import { DsGitopsError, errorMessage, InvalidRequestError, NotFoundError } from '../errors';
import { parseEvent, rollbackEvent, targetEvent } from '../events';
import { pause, resume } from '../pause';
import { unpin } from '../pins';
import { rollback } from '../rollback';
import type { UiData } from './data';
import type { FleetData } from './fleet-data';
import type { Promotion } from '../fleet/decide';

/** How often an open page's server looks at the fleet's promotion record (one conditional GET). */
export const DEFAULT_FLEET_CHECK_MS = 5_000;
export const FLEET_ACTIONS = ['hold', 'resume'] as const;

/** The slow re-read of S3 while a page is open: for what changes in S3 alone (a pass in Lambda that only finds a new problem). */
export const DEFAULT_REFRESH_MS = 30_000;
/** S3 is read again at most this often, however many watch events arrive. */
export const MIN_S3_GAP_MS = 1_000;
/** The cluster's view is reused this long while nothing it rests on changed. */
const CLUSTER_VIEW_MS = 3_000;
/** Changes that come within this long are sent as one. */
const PUSH_DELAY_MS = 250;

export const UI_ACTIONS = ['pause', 'resume', 'rollback', 'unpin'] as const;
export type UiAction = (typeof UI_ACTIONS)[number];

export interface UiOptions {
  port: number;
  allowActions: boolean;
  /** Who acts (recorded in pins, pauses and the log). */
  user: string;
  /** Deps for one action: a fresh run id, the CLI's logger and budget. */
  actionDeps: () => Deps;
  /** Where each action is written down (the terminal). */
  log: (line: string) => void;
  /** The slow re-read of S3 while a page is open, for changes no watch sees (default 30 s). */
  refreshMs?: number;
  /** The token (tests and the benchmark pass their own; otherwise a random one). */
  token?: string;
  /** The fleet's records (FLEET_FILE set): the page shows the fleet by wave. */
  fleet?: FleetData;
  /** Hold or resume the fleet's promotion, as `dsgitops fleet hold|resume` does (lib/fleet/operate.ts, holdOrResume). */
  fleetAct?: (action: (typeof FLEET_ACTIONS)[number], actor: { by: string; reason: string }) => Promise<{ promotion: Promotion; started?: string }>;
  /** How often the promotion record is looked at while a page is open (default 5 s). */
  fleetCheckMs?: number;
}

export interface UiServer {
  url: string;
  token: string;
  port: number;
  close(): Promise<void>;
}

/** The folder of the page's own files (ui/ at the package's root), from the source or the built bundle. */
export function uiAssetDir(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'ui', 'index.html'))) return join(dir, 'ui');
    dir = dirname(dir);
  }
  throw new Error(`the page's files (ui/index.html) are not beside ${__dirname}: reinstall the package`);
}

/** A file of uPlot's, found as Node finds the package (also when the CLI runs from its bundle in dist/). */
function vendorFile(file: string): string {
  return join(dirname(createRequire(__filename).resolve('uplot/package.json')), 'dist', file);
}

const ASSETS: Record<string, { file: () => string; type: string }> = {
  '/assets/app.js': { file: () => join(uiAssetDir(), 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/assets/style.css': { file: () => join(uiAssetDir(), 'style.css'), type: 'text/css; charset=utf-8' },
  '/assets/uplot.js': { file: () => vendorFile('uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/assets/uplot.css': { file: () => vendorFile('uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

function sameToken(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function send(res: ServerResponse, status: number, body: string, type = 'application/json; charset=utf-8'): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, JSON.stringify(value));
}

function statusOf(err: unknown): number {
  if (err instanceof NotFoundError) return 404;
  if (err instanceof InvalidRequestError) return 400;
  if (err instanceof DsGitopsError) return 409;
  return 500;
}

async function readBody(req: IncomingMessage, limit = 16_384): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new InvalidRequestError(`the request body is over ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

interface Client {
  res: ServerResponse;
  /** The DaemonSet the page shows, if any. */
  key?: string;
}

export async function startUiServer(data: UiData, options: UiOptions): Promise<UiServer> {
  const token = options.token ?? randomBytes(24).toString('base64url');
  const clients = new Set<Client>();
  let port = options.port;
  const hosts = () => new Set([`127.0.0.1:${port}`, `localhost:${port}`]);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    if (!hosts().has(req.headers.host ?? '')) return send(res, 421, JSON.stringify({ error: 'this server answers only as 127.0.0.1 or localhost' }));
    const given = url.searchParams.get('token') ?? (req.headers['x-dsgitops-token'] as string | undefined);
    if (!sameToken(given ?? undefined, token)) return send(res, 403, JSON.stringify({ error: 'missing or wrong token: open the URL that dsgitops ui printed' }));
    const path = url.pathname;

    if (req.method === 'GET' && (path === '/' || path === '/index.html')) {
      const html = readFileSync(join(uiAssetDir(), 'index.html'), 'utf8').replaceAll('{{TOKEN}}', encodeURIComponent(token)).replaceAll('{{ACTIONS}}', options.allowActions ? 'on' : 'off');
      return send(res, 200, html, 'text/html; charset=utf-8');
    }
    const asset = ASSETS[path];
    if (req.method === 'GET' && asset) {
      res.writeHead(200, { ...SECURITY_HEADERS, 'Cache-Control': 'private, max-age=3600', 'Content-Type': asset.type });
      res.end(readFileSync(asset.file()));
      return;
    }
    // A look after a long quiet time (no page open to follow the slow interval) reads S3 again.
    if (req.method === 'GET' && path.startsWith('/api/') && Date.now() - data.s3.lastAt > refreshMs) data.invalidate();
    if (req.method === 'GET' && path === '/api/cluster') return send(res, 200, await clusterJson());
    const ds = /^\/api\/daemonsets\/([^/]+)\/([^/]+)(\/diff|\/actions\/([a-z]+))?$/.exec(path);
    if (req.method === 'GET' && ds && !ds[3]) return sendJson(res, 200, await data.daemonSet(decodeURIComponent(ds[1]), decodeURIComponent(ds[2])));
    if (req.method === 'GET' && ds && ds[3] === '/diff') {
      const a = Number(url.searchParams.get('a'));
      const b = Number(url.searchParams.get('b'));
      if (!Number.isInteger(a) || !Number.isInteger(b) || a <= 0 || b <= 0) throw new InvalidRequestError('diff needs two revision numbers: ?a=1&b=2');
      return send(res, 200, await data.diff(decodeURIComponent(ds[1]), decodeURIComponent(ds[2]), a, b), 'text/plain; charset=utf-8');
    }
    if (req.method === 'GET' && path === '/api/fleet') return send(res, 200, await fleetJson());
    const fleetAction = /^\/api\/fleet\/actions\/([a-z]+)$/.exec(path);
    if (req.method === 'POST' && fleetAction) return actOnFleet(req, res, fleetAction[1]);
    if (req.method === 'GET' && path === '/api/live') return openStream(req, res, url.searchParams.get('ds') ?? undefined);
    if (req.method === 'POST' && ds?.[4]) return act(req, res, decodeURIComponent(ds[1]), decodeURIComponent(ds[2]), ds[4]);
    return send(res, 404, JSON.stringify({ error: `no such page: ${req.method} ${path}` }));
  };

  const fleetJson = async (): Promise<string> => (options.fleet
    ? JSON.stringify(await options.fleet.view().catch((err: unknown) => ({ configured: true, problem: `the fleet's records cannot be read: ${errorMessage(err)}` })))
    : JSON.stringify({ configured: false }));

  /** The body of an action: JSON, from this server's own page. */
  const actionBody = async (req: IncomingMessage): Promise<{ confirm?: unknown; reason?: unknown; toRevision?: unknown } | undefined> => {
    const origin = req.headers.origin;
    if (origin !== undefined && !hosts().has(origin.replace(/^http:\/\//, ''))) return undefined;
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) throw new InvalidRequestError('an action is a JSON body: {"confirm": "…", "reason": "…"}');
    try {
      return JSON.parse(await readBody(req)) as { confirm?: unknown; reason?: unknown; toRevision?: unknown };
    } catch (err) {
      throw err instanceof DsGitopsError ? err : new InvalidRequestError(`the action's body is not JSON: ${errorMessage(err)}`);
    }
  };

  // Hold or resume the fleet's promotion: the promotion's commit typed back as the confirmation, and a reason.
  const actOnFleet = async (req: IncomingMessage, res: ServerResponse, action: string): Promise<void> => {
    if (!options.allowActions) {
      options.log(`ui: refused fleet ${action}: the page is read-only (start dsgitops ui with --allow-actions)\n`);
      return sendJson(res, 403, { error: 'this page is read-only: start dsgitops ui with --allow-actions to hold or resume the promotion from it' });
    }
    if (!options.fleet || !options.fleetAct) throw new InvalidRequestError('there is no fleet here: FLEET_FILE is not set');
    if (!(FLEET_ACTIONS as readonly string[]).includes(action)) throw new InvalidRequestError(`unknown fleet action "${action}": one of ${FLEET_ACTIONS.join(', ')}`);
    const body = await actionBody(req);
    if (!body) return sendJson(res, 403, { error: `actions are taken only from this server's own page, not from ${req.headers.origin}` });
    const view = await options.fleet.view();
    const commit = 'promotion' in view ? view.promotion?.commit.short : undefined;
    if (!commit) return sendJson(res, 409, { error: `there is no promotion to ${action}` });
    if (body.confirm !== commit) {
      options.log(`ui: refused fleet ${action}: not confirmed\n`);
      return sendJson(res, 400, { error: `not confirmed: type ${commit} (the promotion's commit) to ${action} it` });
    }
    const reason = typeof body.reason === 'string' ? body.reason.trim() : '';
    if (!reason) return sendJson(res, 400, { error: `fleet ${action} needs a reason: it is recorded with who ${action === 'hold' ? 'held' : 'resumed'} the promotion` });
    const started = `ui: fleet ${action} of ${commit} by ${options.user} (${reason})`;
    options.log(`${started}\n`);
    const deps = options.actionDeps();
    deps.logger.log('info', started, { action: `ui-fleet-${action}`, by: options.user });
    try {
      const done = await options.fleetAct(action as (typeof FLEET_ACTIONS)[number], { by: options.user, reason });
      const message = `promotion ${done.promotion.id} of ${commit} ${action === 'hold' ? 'held' : `resumed${done.started ? `: ${done.started} started` : ': the next promotion run goes on'}`} by ${options.user}`;
      options.log(`ui: fleet ${action}: done: ${message}\n`);
      deps.logger.log('info', `fleet ${action} done: ${message}`, { action: `ui-fleet-${action}`, by: options.user });
      options.fleet.invalidate();
      push();
      return sendJson(res, 200, { ok: true, message });
    } catch (err) {
      options.log(`ui: fleet ${action}: failed: ${errorMessage(err)}\n`);
      deps.logger.log('error', `fleet ${action} failed: ${errorMessage(err)}`, { action: `ui-fleet-${action}`, by: options.user });
      throw err;
    }
  };

  const act = async (req: IncomingMessage, res: ServerResponse, namespace: string, name: string, action: string): Promise<void> => {
    const key = `${namespace}/${name}`;
    if (!options.allowActions) {
      options.log(`ui: refused ${action} of ${key}: the page is read-only (start dsgitops ui with --allow-actions)\n`);
      return sendJson(res, 403, { error: 'this page is read-only: start dsgitops ui with --allow-actions to pause, resume, roll back or unpin from it' });
    }
    if (!(UI_ACTIONS as readonly string[]).includes(action)) throw new InvalidRequestError(`unknown action "${action}": one of ${UI_ACTIONS.join(', ')}`);
    const body = await actionBody(req);
    if (!body) return sendJson(res, 403, { error: `actions are taken only from this server's own page, not from ${req.headers.origin}` });
    if (body.confirm !== key) {
      options.log(`ui: refused ${action} of ${key}: not confirmed\n`);
      return sendJson(res, 400, { error: `not confirmed: type ${key} to ${action} it` });
    }
    const reason = typeof body.reason === 'string' && body.reason.trim() ? body.reason.trim() : undefined;
    const deps = options.actionDeps();
    const started = `ui: ${action} ${key}${action === 'rollback' && body.toRevision !== undefined ? ` to revision ${String(body.toRevision)}` : ''} by ${options.user}${reason ? ` (${reason})` : ''}`;
    options.log(`${started}\n`);
    deps.logger.log('info', started, { daemonSet: key, action: `ui-${action}`, by: options.user });
    try {
      let message: string;
      if (action === 'rollback') {
        const request = parseEvent(rollbackEvent, { namespace, name, toRevision: body.toRevision, reason: reason ?? `rolled back from dsgitops ui by ${options.user}` }, 'rollback', '{"toRevision": 3}');
        const report = await rollback(deps, { ...request, by: options.user });
        message = `${report.message}${report.rollout ? `; rollout: ${report.rollout.phase}` : ''}`;
      } else if (action === 'unpin') {
        message = (await unpin(deps, parseEvent(targetEvent, { namespace, name, reason }, 'unpin', '{}'))).message;
      } else {
        const request = parseEvent(targetEvent, { namespace, name, reason }, action, '{}');
        message = (await (action === 'pause' ? pause : resume)(deps, { ...request, by: options.user })).message;
      }
      options.log(`ui: ${action} ${key}: done: ${message}\n`);
      deps.logger.log('info', `${action} done: ${message}`, { daemonSet: key, action: `ui-${action}`, by: options.user });
      data.invalidate();
      push();
      return sendJson(res, 200, { ok: true, message });
    } catch (err) {
      options.log(`ui: ${action} ${key}: failed: ${errorMessage(err)}\n`);
      deps.logger.log('error', `${action} failed: ${errorMessage(err)}`, { daemonSet: key, action: `ui-${action}`, by: options.user });
      throw err;
    }
  };

  // The cluster's view: drawn from the caches and from what was last read of S3 (UiData reads
  // S3 again only after an invalidate()).
  const refreshMs = options.refreshMs ?? DEFAULT_REFRESH_MS;
  // Kept while no cache changed and S3 was not read again, for at most CLUSTER_VIEW_MS (a phase
  // depends on the time too: a rollout past its deadline is stalled).
  let lastCluster: { json: string; at: number; basis: string } | undefined;
  const clusterJson = async (): Promise<string> => {
    const basis = `${data.recordsGeneration} ${data.caches().map((c) => c.version).join()}`;
    if (lastCluster && lastCluster.basis === basis && Date.now() - lastCluster.at < CLUSTER_VIEW_MS) return lastCluster.json;
    const json = JSON.stringify(await data.cluster());
    lastCluster = { json, at: Date.now(), basis };
    return json;
  };

  // ---- live updates ----------------------------------------------------------------------
  let pending: ReturnType<typeof setTimeout> | undefined;
  let sending = false;
  let again = false;
  let s3Stale = false;
  // A burst of changes is sent as one; S3 is read again at most once per MIN_S3_GAP_MS.
  const fire = () => {
    pending = undefined;
    if (s3Stale) {
      const wait = data.s3.lastAt + MIN_S3_GAP_MS - Date.now();
      if (wait > 0) {
        pending = setTimeout(fire, wait);
        return;
      }
      data.invalidate();
      options.fleet?.invalidate();
      s3Stale = false;
    }
    void sendAll();
  };
  const push = () => {
    if (clients.size === 0 || pending) return;
    pending = setTimeout(fire, PUSH_DELAY_MS);
  };
  const s3MayHaveChanged = () => {
    s3Stale = true;
    push();
  };
  const sendAll = async () => {
    if (sending) {
      again = true;
      return;
    }
    sending = true;
    try {
      const cluster = await clusterJson();
      const fleet = options.fleet ? await fleetJson() : undefined;
      const pages = new Map<string, string>();
      for (const c of clients) {
        c.res.write(`event: cluster\ndata: ${cluster}\n\n`);
        if (fleet) c.res.write(`event: fleet\ndata: ${fleet}\n\n`);
        if (!c.key) continue;
        if (!pages.has(c.key)) {
          const [ns, name] = c.key.split('/');
          pages.set(c.key, JSON.stringify(await data.daemonSet(ns, name).catch((err) => ({ error: errorMessage(err) }))));
        }
        c.res.write(`event: daemonset\ndata: ${pages.get(c.key)}\n\n`);
      }
    } catch (err) {
      for (const c of clients) c.res.write(`event: problem\ndata: ${JSON.stringify({ error: errorMessage(err) })}\n\n`);
    } finally {
      sending = false;
      if (again) {
        again = false;
        push();
      }
    }
  };
  let subscriptions: (() => void)[] = [];
  // A pass that writes S3 also writes the DaemonSets it changes (a new generation, this tool's
  // annotations), or adds or removes one, and a rollout it tracks ends when its DaemonSet's pods
  // are all updated and available. The rest of the status moves with every pod (on any node, of
  // any DaemonSet) and says nothing of S3: those changes redraw from the caches alone.
  const written = () =>
    data.daemonSets
      .items()
      .map((d) => {
        const own = Object.entries(d.metadata.annotations ?? {}).filter(([k]) => k.startsWith('daemonset-gitops.io/')).sort();
        const st = d.status;
        const settled = !!st && st.updatedNumberScheduled === st.desiredNumberScheduled && st.numberAvailable === st.desiredNumberScheduled;
        return `${d.metadata.namespace}/${d.metadata.name} ${d.metadata.generation ?? ''} ${settled} ${JSON.stringify(own)}`;
      })
      .sort()
      .join('\n');
  let lastWritten = written();
  const daemonSetsChanged = () => {
    const now = written();
    if (now === lastWritten) return push();
    lastWritten = now;
    s3MayHaveChanged();
  };
  const follow = () => {
    for (const u of subscriptions) u();
    const signals = new Set(data.s3Signals());
    subscriptions = data.caches().map((c) => c.subscribe(c === data.daemonSets ? daemonSetsChanged : signals.has(c) ? s3MayHaveChanged : push));
  };
  const refresh = setInterval(() => {
    if (clients.size > 0) s3MayHaveChanged();
  }, refreshMs);
  refresh.unref();
  // The fleet's promotion record: one conditional GET per interval while a page is open; a change is pushed at once.
  let checking = false;
  const fleetCheck = options.fleet ? setInterval(() => {
    if (clients.size === 0 || checking) return;
    checking = true;
    options.fleet!.check().then((changed) => {
      if (changed) push();
    }, (err: unknown) => {
      for (const c of clients) c.res.write(`event: problem\ndata: ${JSON.stringify({ error: `the fleet's promotion record: ${errorMessage(err)}` })}\n\n`);
    }).finally(() => {
      checking = false;
    });
  }, options.fleetCheckMs ?? DEFAULT_FLEET_CHECK_MS) : undefined;
  fleetCheck?.unref();

  const openStream = async (req: IncomingMessage, res: ServerResponse, key: string | undefined): Promise<void> => {
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive' });
    const client: Client = { res, key };
    if (key) {
      const [ns, name] = key.split('/');
      // Opens the DaemonSet's caches, so that their changes are followed too.
      await data.daemonSet(ns, name).catch(() => undefined);
    }
    clients.add(client);
    follow();
    req.on('close', () => clients.delete(client));
    res.write(': live\n\n');
    push();
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (res.headersSent) {
        res.end();
        return;
      }
      sendJson(res, statusOf(err), { error: errorMessage(err) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new InvalidRequestError(`port ${options.port} on 127.0.0.1 is in use: choose another with --port N (0: any free port)`) : err));
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  port = typeof address === 'object' && address ? address.port : options.port;
  return {
    url: `http://127.0.0.1:${port}/?token=${encodeURIComponent(token)}`,
    token,
    port,
    close: () => new Promise<void>((resolve) => {
      clearInterval(refresh);
      if (fleetCheck) clearInterval(fleetCheck);
      if (pending) clearTimeout(pending);
      for (const u of subscriptions) u();
      for (const c of clients) c.res.end();
      clients.clear();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
