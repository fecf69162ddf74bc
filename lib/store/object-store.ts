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
  return new S3Client({
    region: config.region,
    endpoint: config.endpoint,
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

export class S3ObjectStore implements VersionedObjectStore {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  async get(key: string): Promise<StoredText | undefined> {
    try {
      const command = new GetObjectCommand({ Bucket: this.bucket, Key: key });
      const answered = captureServerTime(command);
      const out = await this.client.send(command);
      const body = (await out.Body?.transformToString('utf8')) ?? '';
      return { body, etag: out.ETag ?? '', lastModified: out.LastModified, serverTime: answered.at };
    } catch (err) {
      const status = statusOf(err);
      if (status === 404 || (err as Error)?.name === 'NoSuchKey') return undefined;
      throw new StoreError(`reading s3://${this.bucket}/${key} failed: ${describe(err)}`, err);
    }
  }

  async put(key: string, body: string, condition: WriteCondition = {}): Promise<string> {
    try {
      const out = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/json',
          IfNoneMatch: condition.ifNoneMatch,
          IfMatch: condition.ifMatch,
        }),
      );
      return out.ETag ?? '';
    } catch (err) {
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
        const out = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key);
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
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
        const page = await this.client.send(
          new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: key, KeyMarker: keyMarker, VersionIdMarker: versionMarker }),
        );
        for (const v of page.Versions ?? []) {
          // An unversioned bucket answers with the one object, version "null": there is nothing earlier to read.
          if (v.Key === key && v.VersionId) out.push({ versionId: v.VersionId, lastModified: v.LastModified, isLatest: Boolean(v.IsLatest) });
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        versionMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
      } while (keyMarker);
    } catch (err) {
      throw new StoreError(`listing the versions of s3://${this.bucket}/${key} failed: ${describe(err)}`, err);
    }
    return out.sort((a, b) => (b.lastModified?.getTime() ?? 0) - (a.lastModified?.getTime() ?? 0) || Number(b.isLatest) - Number(a.isLatest));
  }

  async getVersion(key: string, versionId: string): Promise<StoredText | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, VersionId: versionId }));
      const body = (await out.Body?.transformToString('utf8')) ?? '';
      return { body, etag: out.ETag ?? '', lastModified: out.LastModified };
    } catch (err) {
      const status = statusOf(err);
      if (status === 404 || (err as Error)?.name === 'NoSuchKey' || (err as Error)?.name === 'NoSuchVersion') return undefined;
      throw new StoreError(`reading version ${versionId} of s3://${this.bucket}/${key} failed: ${describe(err)}`, err);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      throw new StoreError(`deleting s3://${this.bucket}/${key} failed: ${describe(err)}`, err);
    }
  }
}
