/**
 * The S3 adapter: the only module that imports @aws-sdk/client-s3. Everything above it
 * sees an ObjectStore with conditional writes, and a refused condition as a typed error.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import type { S3Config } from '../config';
import { PreconditionFailedError, StoreError } from '../errors';

/** S3_TIMEOUT_SECONDS when a configuration does not say. */
export const DEFAULT_S3_CALL_TIMEOUT_MS = 20_000;
/** Opening a connection to S3 takes milliseconds; a server that does not accept one in this long is not there. */
const CONNECT_TIMEOUT_MS = 3_000;
/** A call made after the run's deadline (releasing the lease) still gets this long, within what the handler keeps for returning. */
const AFTER_DEADLINE_MS = 5_000;

export interface StoredText {
  body: string;
  etag: string;
  /** When the object was last written, by the store's clock (whole seconds). */
  lastModified?: Date;
  /** The store's own time when it answered this read (the HTTP Date header; whole seconds). */
  serverTime?: Date;
}

export interface WriteCondition {
  /** Create only: fail if the key exists (If-None-Match: *). */
  ifNoneMatch?: '*';
  /** Replace only the version we read (If-Match: <etag>). */
  ifMatch?: string;
}

export interface ObjectStore {
  /** The object, its ETag, and the store's clock: when it was written and when the store answered. */
  get(key: string): Promise<StoredText | undefined>;
  /**
   * The object unless its ETag is still `etag` (a conditional GET, If-None-Match: S3 answers
   * 304 without a body). Optional: a store without it is read with `get` and compared.
   */
  getIfNoneMatch?(key: string, etag: string): Promise<StoredText | 'not-modified' | undefined>;
  /** Writes the object; returns its new ETag. Throws PreconditionFailedError when the condition fails. */
  put(key: string, body: string, condition?: WriteCondition): Promise<string>;
  /** Every key under the prefix, in lexical order. */
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
}

/** One stored version of an object (a bucket with versioning on keeps every write). */
export interface ObjectVersion {
  versionId: string;
  lastModified?: Date;
  isLatest: boolean;
}

/** A store that keeps earlier versions of its objects and can read them. */
export interface VersionedObjectStore extends ObjectStore {
  /** The versions of exactly this key, newest first; delete markers are left out. */
  versions(key: string): Promise<ObjectVersion[]>;
  getVersion(key: string, versionId: string): Promise<StoredText | undefined>;
}

export function keepsVersions(store: ObjectStore): store is VersionedObjectStore {
  return typeof (store as Partial<VersionedObjectStore>).versions === 'function';
}

export function createS3Client(config: S3Config): S3Client {
  const callMs = (config.timeoutSeconds ?? DEFAULT_S3_CALL_TIMEOUT_MS / 1000) * 1000;
  return new S3Client({
    // Each attempt: a connection within CONNECT_TIMEOUT_MS, and no socket idle for longer than
    // the whole call may take. The whole call, retries included, is bounded by S3ObjectStore.
    requestHandler: { connectionTimeout: Math.min(CONNECT_TIMEOUT_MS, callMs), requestTimeout: callMs },
    region: config.region,
    endpoint: config.endpoint,
    ...(config.credentials ? { credentials: config.credentials } : {}),
    forcePathStyle: Boolean(config.endpoint),
    // S3-compatible servers (MinIO) reject the SDK's default trailing checksums on some calls.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 4,
  });
}

function statusOf(err: unknown): number | undefined {
  return (err as S3ServiceException)?.$metadata?.httpStatusCode;
}

function describe(err: unknown): string {
  const e = err as S3ServiceException;
  return e?.name && e?.message ? `${e.name}: ${e.message}` : String(err);
}

/**
 * Records the Date header of the response to this one command (the last attempt, when the
 * SDK retried). S3 hides it from the command's output; the store's clock is in it.
 */
function captureServerTime(command: GetObjectCommand): { at?: Date } {
  const answered: { at?: Date } = {};
  command.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args);
      const date = (result.response as { headers?: Record<string, string | undefined> }).headers?.date;
      const at = date ? new Date(date) : undefined;
      answered.at = at && !Number.isNaN(at.getTime()) ? at : undefined;
      return result;
    },
    { step: 'deserialize', name: 'captureServerTime' },
  );
  return answered;
}

/** The S3 store of a configuration: its client, bucket and call bound. */
export function s3ObjectStore(config: S3Config): S3ObjectStore {
  return new S3ObjectStore(createS3Client(config), config.bucket, { callTimeoutMs: (config.timeoutSeconds ?? DEFAULT_S3_CALL_TIMEOUT_MS / 1000) * 1000 });
}

export interface S3StoreOptions {
  /** The longest one call may take, retries included (S3_TIMEOUT_SECONDS). */
  callTimeoutMs?: number;
  /** Epoch milliseconds by which the run using this store must have returned: no call outlasts it by more than AFTER_DEADLINE_MS. */
  deadline?: number;
}

/** A call abandoned because S3 did not answer in time: which call, and how long it waited. */
export class StoreTimeoutError extends StoreError {
  constructor(readonly call: string, readonly waitedMs: number, readonly boundMs: number, bound: string) {
    super(`${call}: no answer from S3 within ${(waitedMs / 1000).toFixed(1)}s (${bound}); the call was abandoned`);
  }
}

export class S3ObjectStore implements VersionedObjectStore {
  private readonly callTimeoutMs: number;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly options: S3StoreOptions = {},
  ) {
    this.callTimeoutMs = options.callTimeoutMs ?? DEFAULT_S3_CALL_TIMEOUT_MS;
  }

  /** The same client and bucket, for one run that must return by `deadline`. */
  forDeadline(deadline: number): S3ObjectStore {
    return new S3ObjectStore(this.client, this.bucket, { ...this.options, deadline });
  }

  /**
   * Runs one call (the SDK's retries and reading the body included) within its bound: the
   * call's signal is aborted when the bound passes, and the call is abandoned then even if
   * the SDK does not stop at once, so a server that accepts connections and never answers
   * (a stopped process) costs at most the bound.
   */
  private async bounded<T>(call: string, run: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    const started = Date.now();
    const untilDeadline = this.options.deadline === undefined ? Infinity : Math.max(AFTER_DEADLINE_MS, this.options.deadline - started);
    const boundMs = Math.min(this.callTimeoutMs, untilDeadline);
    const bound = boundMs < this.callTimeoutMs ? `the run's deadline` : `S3_TIMEOUT_SECONDS=${this.callTimeoutMs / 1000}`;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new StoreTimeoutError(call, Date.now() - started, boundMs, bound));
      }, boundMs);
    });
    try {
      return await Promise.race([run(controller.signal), expired]);
    } catch (err) {
      if (controller.signal.aborted && !(err instanceof StoreTimeoutError)) throw new StoreTimeoutError(call, Date.now() - started, boundMs, bound);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async get(key: string): Promise<StoredText | undefined> {
    return this.read(key);
  }

  async getIfNoneMatch(key: string, etag: string): Promise<StoredText | 'not-modified' | undefined> {
    return this.read(key, etag);
  }

  /**
   * One GET of the object: absent is undefined. With `ifNoneMatch` it is conditional
   * (If-None-Match), and S3's 304 (the ETag is still that one) is 'not-modified'.
   */
  private read(key: string): Promise<StoredText | undefined>;
  private read(key: string, ifNoneMatch: string): Promise<StoredText | 'not-modified' | undefined>;
  private async read(key: string, ifNoneMatch?: string): Promise<StoredText | 'not-modified' | undefined> {
    try {
      return await this.bounded(`reading s3://${this.bucket}/${key}${ifNoneMatch === undefined ? '' : ' if changed'}`, async (abortSignal) => {
        const command = new GetObjectCommand({ Bucket: this.bucket, Key: key, IfNoneMatch: ifNoneMatch });
        const answered = captureServerTime(command);
        const out = await this.client.send(command, { abortSignal });
        const body = (await out.Body?.transformToString('utf8')) ?? '';
        return { body, etag: out.ETag ?? '', lastModified: out.LastModified, serverTime: answered.at };
      });
    } catch (err) {
      if (err instanceof StoreTimeoutError) throw err;
      const status = statusOf(err);
      if (ifNoneMatch !== undefined && (status === 304 || (err as Error)?.name === 'NotModified')) return 'not-modified';
      if (status === 404 || (err as Error)?.name === 'NoSuchKey') return undefined;
      throw new StoreError(`reading s3://${this.bucket}/${key} failed: ${describe(err)}`, err);
    }
  }

  async put(key: string, body: string, condition: WriteCondition = {}): Promise<string> {
    try {
      const out = await this.bounded(`writing s3://${this.bucket}/${key}`, (abortSignal) => this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/json',
          IfNoneMatch: condition.ifNoneMatch,
          IfMatch: condition.ifMatch,
        }),
        { abortSignal },
      ));
      return out.ETag ?? '';
    } catch (err) {
      if (err instanceof StoreTimeoutError) throw err;
      const status = statusOf(err);
      // 412: the condition did not hold. 409: S3's ConditionalRequestConflict (a concurrent
      // conditional write to the same key won); both mean "someone else wrote first".
      if (status === 412 || status === 409 || (err as Error)?.name === 'PreconditionFailed') {
        throw new PreconditionFailedError(key, err);
      }
      throw new StoreError(`writing s3://${this.bucket}/${key} failed: ${describe(err)}`, err);
    }
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    try {
      do {
        const out = await this.bounded(`listing s3://${this.bucket}/${prefix}`, (abortSignal) => this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
          { abortSignal },
        ));
        for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key);
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      if (err instanceof StoreTimeoutError) throw err;
      throw new StoreError(`listing s3://${this.bucket}/${prefix} failed: ${describe(err)}`, err);
    }
    return keys.sort();
  }

  async versions(key: string): Promise<ObjectVersion[]> {
    const out: ObjectVersion[] = [];
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    try {
      do {
        const page = await this.bounded(`listing the versions of s3://${this.bucket}/${key}`, (abortSignal) => this.client.send(
          new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: key, KeyMarker: keyMarker, VersionIdMarker: versionMarker }),
          { abortSignal },
        ));
        for (const v of page.Versions ?? []) {
          // An unversioned bucket answers with the one object, version "null": there is nothing earlier to read.
          if (v.Key === key && v.VersionId) out.push({ versionId: v.VersionId, lastModified: v.LastModified, isLatest: Boolean(v.IsLatest) });
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        versionMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
      } while (keyMarker);
    } catch (err) {
      if (err instanceof StoreTimeoutError) throw err;
      throw new StoreError(`listing the versions of s3://${this.bucket}/${key} failed: ${describe(err)}`, err);
    }
    return out.sort((a, b) => (b.lastModified?.getTime() ?? 0) - (a.lastModified?.getTime() ?? 0) || Number(b.isLatest) - Number(a.isLatest));
  }

  async getVersion(key: string, versionId: string): Promise<StoredText | undefined> {
    try {
      return await this.bounded(`reading version ${versionId} of s3://${this.bucket}/${key}`, async (abortSignal) => {
        const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, VersionId: versionId }), { abortSignal });
        const body = (await out.Body?.transformToString('utf8')) ?? '';
        return { body, etag: out.ETag ?? '', lastModified: out.LastModified };
      });
    } catch (err) {
      if (err instanceof StoreTimeoutError) throw err;
      const status = statusOf(err);
      if (status === 404 || (err as Error)?.name === 'NoSuchKey' || (err as Error)?.name === 'NoSuchVersion') return undefined;
      throw new StoreError(`reading version ${versionId} of s3://${this.bucket}/${key} failed: ${describe(err)}`, err);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.bounded(`deleting s3://${this.bucket}/${key}`, (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal }));
    } catch (err) {
      if (err instanceof StoreTimeoutError) throw err;
      throw new StoreError(`deleting s3://${this.bucket}/${key} failed: ${describe(err)}`, err);
    }
  }
}
