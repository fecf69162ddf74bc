/**
 * Typed errors. Every failure the product reports is one of these: `reason` is a stable
 * machine-readable name, `retryable` tells a caller whether the next run may succeed
 * without anyone changing anything, and `cause` keeps the underlying error.
 */
export class DsGitopsError extends Error {
  readonly reason: string;
  readonly retryable: boolean;

  constructor(reason: string, message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.reason = reason;
    this.retryable = options.retryable ?? false;
  }

  toJSON(): Record<string, unknown> {
    return { error: this.name, reason: this.reason, message: this.message, retryable: this.retryable };
  }
}

export class ConfigError extends DsGitopsError {
  constructor(message: string) {
    super('ConfigInvalid', message);
  }
}

export class InvalidRequestError extends DsGitopsError {
  constructor(message: string) {
    super('InvalidRequest', message);
  }
}

export class NotFoundError extends DsGitopsError {
  constructor(message: string) {
    super('NotFound', message);
  }
}

export class ManifestInvalidError extends DsGitopsError {
  constructor(message: string) {
    super('ManifestInvalid', message);
  }
}

export class SourceError extends DsGitopsError {
  constructor(message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super('SourceUnavailable', message, { retryable: options.retryable ?? true, cause: options.cause });
  }
}

export interface LeaseHolder {
  holder: string;
  operation: string;
  acquiredAt: string;
  expiresAt: string;
  /** The holder is only watching rollouts: a rollback may take the lease over. */
  preemptible?: boolean;
}

export class LeaseHeldError extends DsGitopsError {
  readonly current: LeaseHolder;

  constructor(current: LeaseHolder) {
    super(
      'LeaseHeld',
      `another run holds the lease: ${current.holder} (${current.operation}) since ${current.acquiredAt}, until ${current.expiresAt}` +
        (current.preemptible ? ' (only watching rollouts: a rollback may take it over)' : ''),
      { retryable: true },
    );
    this.current = current;
  }
}

export class LeaseLostError extends DsGitopsError {
  /** The run that holds the lease now, when known. */
  readonly takenBy?: LeaseHolder;

  constructor(message: string, takenBy?: LeaseHolder) {
    super('LeaseLost', message, { retryable: true });
    this.takenBy = takenBy;
  }
}

/** A conditional write failed: someone else wrote the object first. Carries what is there now. */
export class PreconditionFailedError extends DsGitopsError {
  readonly key: string;

  constructor(key: string, cause?: unknown) {
    super('PreconditionFailed', `s3 object ${key} changed or already exists (conditional write refused)`, {
      retryable: true,
      cause,
    });
    this.key = key;
  }
}

export class StoreError extends DsGitopsError {
  constructor(message: string, cause?: unknown) {
    super('StoreUnavailable', message, { retryable: true, cause });
  }
}

/**
 * A record of one DaemonSet (its state.json, a revision snapshot) is in S3 but cannot be
 * read as one: not JSON, or not the expected shape. Only that DaemonSet is blocked, and
 * nothing is written over the record: `dsgitops repair NS/NAME` shows what can restore it.
 */
export class RecordUnreadableError extends DsGitopsError {
  readonly key: string;
  /** The DaemonSet the record belongs to, as namespace/name. */
  readonly daemonSet?: string;

  constructor(key: string, problem: string, daemonSet?: string, cause?: unknown) {
    super(
      'RecordUnreadable',
      `s3 object ${key} cannot be read as a record (was it edited by hand or truncated?): ${problem}; ` +
        (daemonSet
          ? `nothing was written over it and ${daemonSet} is left alone until it is repaired: \`dsgitops repair ${daemonSet}\` shows the last version that parses (the bucket is versioned) or a state rebuilt from the live DaemonSet, and --yes restores it`
          : 'nothing was written over it'),
      { retryable: false, cause },
    );
    this.key = key;
    this.daemonSet = daemonSet;
  }
}

export class SnapshotWriteError extends DsGitopsError {
  constructor(message: string, cause?: unknown) {
    super('SnapshotWriteFailed', message, { retryable: true, cause });
  }
}

export class ClusterError extends DsGitopsError {
  readonly status?: number;
  /** How long the API server asked the client to wait before asking again (Retry-After). */
  readonly retryAfterSeconds?: number;

  constructor(message: string, options: { status?: number; cause?: unknown; retryable?: boolean; retryAfterSeconds?: number } = {}) {
    super('ClusterUnavailable', message, {
      retryable: options.retryable ?? (options.status === undefined || options.status >= 500 || options.status === 429),
      cause: options.cause,
    });
    this.status = options.status;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/**
 * The API server refused a request because the identity this product runs as lacks a
 * permission (HTTP 403). Nothing changes until someone grants it, so it is not retryable.
 */
export class PermissionDeniedError extends DsGitopsError {
  readonly status = 403;

  constructor(message: string, cause?: unknown) {
    super('PermissionDenied', message, { cause });
  }
}

/** The API server did not accept this client's credentials (HTTP 401): an expired token or certificate. */
export class CredentialsRejectedError extends DsGitopsError {
  readonly status = 401;

  constructor(message: string, cause?: unknown) {
    super('CredentialsRejected', message, { cause });
  }
}

export class ApplyError extends DsGitopsError {
  readonly status?: number;

  constructor(message: string, options: { status?: number; cause?: unknown } = {}) {
    super('ApplyFailed', message, {
      retryable: options.status === undefined || options.status >= 500 || options.status === 429 || options.status === 409,
      cause: options.cause,
    });
    this.status = options.status;
  }
}

export class RollbackRefusedError extends DsGitopsError {
  constructor(message: string) {
    super('RollbackRefused', message);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A reconcile pass that failed, thrown by the Lambda handler after it logged the whole report,
 * so that the invocation counts in Lambda's Errors metric and its alarms.
 */
export class PassFailedError extends DsGitopsError {
  constructor(message: string, options: { retryable?: boolean } = {}) {
    super('PassFailed', message, options);
  }
}
