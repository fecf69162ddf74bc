/**
 * `dsgitops ui` for the browser tests: the command run in this process as the CLI runs it, and
 * a headless Chromium (Debian's, or CHROMIUM_PATH) to open its page.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, BrowserContext } from 'playwright-core';
import type { CliIO, CliValues } from '../../bin/cli';
import type { MakeDeps } from '../../bin/commands';
import { runUi } from '../../bin/ui';
import { waitFor } from './cluster';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface RunningUi {
  /** The page's address with its token, as the command printed it. */
  url: string;
  /** What the command wrote to stderr. */
  log: string[];
  stop: () => Promise<void>;
}

/** Runs `dsgitops ui` (on a free port, with `values`) in this process, its dependencies made by `makeDeps`; resolves once it has printed its URL. */
export async function startUiInProcess(values: Partial<CliValues>, makeDeps: (budgetMs: number) => ReturnType<MakeDeps>): Promise<RunningUi> {
  const out: string[] = [];
  const log: string[] = [];
  const io: CliIO = { out: (t) => out.push(t), err: (t) => log.push(t) };
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const done = runUi({ port: '0', ...values } as CliValues, io, makeDeps, stopped);
  const url = await waitFor('dsgitops ui to print its URL', async () => /http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/.exec(out.join(''))?.[0], 30_000, 100);
  return { url, log, stop: async () => { stop(); await done; } };
}

export interface HeadlessChromium {
  context: BrowserContext;
  /** Closes the browser and removes its profile. */
  close: () => Promise<void>;
}

/** A headless Chromium with a profile of its own (a temporary folder named after `name`), at 1400×1000. */
export async function launchChromium(name: string): Promise<HeadlessChromium> {
  const profile = mkdtempSync(join(tmpdir(), `dsgitops-${name}-chromium-`));
  const removeProfile = () => rmSync(profile, { recursive: true, force: true });
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1000 },
      // The page's policy forbids eval; the tests' own probes of the page are evaluated as text.
      bypassCSP: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    return { context, close: async () => { await context.close(); removeProfile(); } };
  } catch (err) {
    removeProfile();
    throw err;
  }
}
