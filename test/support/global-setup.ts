/**
 * Integration and e2e tests run against the real local stack. Bring it up if it is not
 * running, and remember what this test run started so the teardown stops exactly that.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stackDir } from '../../stack/paths';
import { stackUp } from '../../stack/up';

export const startedFile = join(stackDir, 'started-by-tests.json');

export default async function globalSetup(): Promise<void> {
  const { started } = await stackUp();
  const before: string[] = existsSync(startedFile) ? JSON.parse(readFileSync(startedFile, 'utf8')) : [];
  const all = [...new Set([...before, ...started])];
  if (all.length > 0) writeFileSync(startedFile, JSON.stringify(all));
}
