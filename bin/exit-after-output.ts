/**
 * Ends the process with `code` once what it wrote has reached the other end. process.exit drops
 * whatever a pipe has not taken yet: with a reader slower than the command (`dsgitops rbac |
 * kubectl apply -f -`, `dsgitops status --json | jq`) everything past the pipe's buffer, 64 KiB,
 * was lost while the command still exited 0. An empty write's callback runs after every write
 * queued before it, so the exit waits for both streams.
 */
export function exitAfterOutput(code: number): void {
  let pending = 2;
  const flushed = (): void => {
    pending -= 1;
    if (pending === 0) process.exit(code);
  };
  process.stdout.write('', flushed);
  process.stderr.write('', flushed);
}
