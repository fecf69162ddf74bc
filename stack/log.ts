/** Progress lines of the stack scripts go to stderr so stdout stays free for `--json`. */
export function log(message: string): void {
  const time = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[stack ${time}] ${message}\n`);
}
