/**
 * Logging: one structured JSON line per event for machines (Lambda -> CloudWatch), or
 * short human lines for people at a terminal. Both go to stderr; stdout belongs to results.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  log(level: Level, message: string, fields?: Record<string, unknown>): void;
}

export function jsonLogger(base: Record<string, unknown> = {}, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  return {
    log(level, message, fields = {}) {
      if (level === 'debug') return;
      write(`${JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...base, ...fields })}\n`);
    },
  };
}

/** For people: warnings and errors, and with `verbose` every step. The final report says the rest. */
export function humanLogger(write: (line: string) => void = (l) => process.stderr.write(l), verbose = false): Logger {
  return {
    log(level, message, fields = {}) {
      if (!verbose && (level === 'debug' || level === 'info')) return;
      if (fields.action === 'pass' || fields.action === 'pass-failed') return;
      const key = typeof fields.daemonSet === 'string' ? `${fields.daemonSet}: ` : '';
      const prefix = level === 'warn' ? 'warning: ' : level === 'error' ? 'error: ' : '';
      write(`${prefix}${key}${message}\n`);
    },
  };
}

/** True until the process's first invocation has begun: its init was part of that invocation's latency. */
let coldStart = true;

/**
 * The fields every log line of one invocation carries, as Lambda's own logs name them: the
 * request id (the key to the invocation's REPORT line and its X-Ray trace), the function and
 * whether this invocation started the process. Call once per invocation.
 */
export function invocationFields(context: { awsRequestId?: string; functionName?: string } | undefined): Record<string, unknown> {
  const fields = {
    ...(context?.awsRequestId ? { requestId: context.awsRequestId } : {}),
    ...(context?.functionName ? { function: context.functionName } : {}),
    coldStart,
  };
  coldStart = false;
  return fields;
}

export const silentLogger: Logger = { log: () => undefined };
