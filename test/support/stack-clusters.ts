/**
 * Tests that need several clusters start them (STACK_CLUSTERS for the stack itself); every
 * other test keeps the light one-cluster stack. What this starts is stopped by the global
 * teardown with the rest of what the test run started.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ensureExtraClusters, stackClusterFiles, StackClusterFiles } from '../../stack/clusters';
import { stackPorts } from '../../stack/versions';
import { ensureComponent } from '../../stack/up';
import { startedFile } from './global-setup';

/** Makes the stack run clusters 1…n and returns where each one's kubeconfigs are. */
export async function ensureStackClusters(n: number): Promise<StackClusterFiles[]> {
  const started = await ensureExtraClusters(stackPorts(), n, ensureComponent);
  if (started.length > 0) {
    const before: string[] = existsSync(startedFile) ? JSON.parse(readFileSync(startedFile, 'utf8')) : [];
    writeFileSync(startedFile, JSON.stringify([...new Set([...before, ...started])]));
  }
  return Array.from({ length: n }, (_, i) => stackClusterFiles(i + 1));
}
