import { existsSync, readFileSync, rmSync } from 'node:fs';
import { stackDown } from '../../stack/down';
import { startedFile } from './global-setup';

/** Stops only the stack components this test run started; a stack that was already up stays up. */
export default async function globalTeardown(): Promise<void> {
  if (!existsSync(startedFile)) return;
  const started: string[] = JSON.parse(readFileSync(startedFile, 'utf8'));
  rmSync(startedFile, { force: true });
  if (process.env.KEEP_STACK === '1') return;
  await stackDown({ only: started });
}
