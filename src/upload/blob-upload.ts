// The state of one uploadBlob call (blob.ts): its options, counters, chunk size and the request function that keeps
// them, with the failure accounting every step of the protocol shares. Also the uploader's defaults and bounds.
import { sleep } from '../util/timers.js';
import { abortError, UploadError, type UploadPhase } from './errors.js';
import { describeFailure } from './protocol.js';
import type { BlobSource } from '../image/blob-source.js';
import type { RegistryTransport, TransportRequest, TransportResponse } from './transport.js';
import { HttpError } from '../registry/http-request.js';
import { RegistryError } from '../registry/registry-client.js';
import { isRegistryDigest, quoteValue } from '../registry/registry-values.js';
import { backoffDelay } from '../util/retry.js';

/** Bytes per PATCH when the caller names none: chunk-size's default ("32MB" in the table of inputs, decimal). */
export const DEFAULT_CHUNK_SIZE = 32_000_000;
/**
 * The bounds of chunk-size (the input checks against these): a smaller chunk makes thousands of requests per GB, a
 * larger one defeats the point of chunks (one may be held in memory). A shrinking upload goes no lower than the
 * minimum; a smaller chunk is not shrunk.
 */
export const MIN_CHUNK_SIZE = 1_000_000;
export const MAX_CHUNK_SIZE = 1_000_000_000;
/** Failures one blob may meet (chunks, status checks, commits, restarts together) before the upload gives up. */
export const DEFAULT_MAX_TRIES = 6;
/** Deadline of a request without a body (HEAD, POST, the status GET; the final PUT adds time to hash the blob). */
export const SMALL_REQUEST_DEADLINE_MS = 60_000;

export type UploadEvent =
  | { readonly type: 'exists'; readonly digest: string; readonly size: number }
  /** Mounted from another repository of the same registry (blob-mount.ts): nothing was sent. */
  | { readonly type: 'mounted'; readonly digest: string; readonly size: number; readonly from: string }
  | { readonly type: 'chunk-failed'; readonly digest: string; readonly start: number; readonly reason: string }
  | { readonly type: 'resumed'; readonly digest: string; readonly offset: number }
  | { readonly type: 'restarted'; readonly digest: string; readonly reason: string }
  /** The registry refused a chunked PATCH: the blob goes in one request (say so in the log). */
  | { readonly type: 'fallback'; readonly digest: string; readonly status: number; readonly reason: string }
  | {
      readonly type: 'uploaded';
      readonly digest: string;
      readonly size: number;
      readonly mode: 'chunked' | 'single';
      readonly chunks: number;
      readonly elapsedMs: number;
    };

export interface BlobProgress {
  readonly digest: string;
  readonly size: number;
  /** Bytes the registry acknowledged in this upload session. */
  readonly confirmed: number;
  readonly chunks: number;
}

export interface UploadBlobOptions {
  /** Bytes per PATCH; raised to the registry's OCI-Chunk-Min-Length, lowered to its OCI-Chunk-Max-Length. */
  readonly chunkSize?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: BlobProgress) => void;
  readonly onEvent?: (e: UploadEvent) => void;
  /** Deadline of one PATCH; default requestDeadlineMs(its bytes). */
  readonly deadlinePerChunkMs?: number;
  /** Failures allowed per blob; default DEFAULT_MAX_TRIES. */
  readonly maxTries?: number;
  /** Wait before the n-th retry (1-based); default 1 s doubling, at most 15 s, with jitter. */
  readonly retryDelayMs?: (failure: number) => number;
  /** 'single': skip chunking, one request for the whole blob. */
  readonly mode?: 'chunked' | 'single';
}

export interface BlobUploadResult {
  readonly digest: string;
  readonly size: number;
  /** 'exists': the registry had it (HEAD), nothing was sent; 'mounted': linked from another repository. */
  readonly mode: 'exists' | 'mounted' | 'chunked' | 'single';
  readonly requests: number;
  /** Request-body bytes handed to the transport, failed requests included. */
  readonly bytesSent: number;
  readonly resumes: number;
  readonly restarts: number;
  readonly elapsedMs: number;
}

const defaultDelay = (failure: number) =>
  backoffDelay({ retries: 0, firstDelayMs: 1_000, maxDelayMs: 15_000 }, failure, Math.random);

/** The state of one uploadBlob call: counters, and the request function that keeps them. */
export class BlobUpload {
  requests = 0;
  bytesSent = 0;
  failures = 0;
  resumes = 0;
  restarts = 0;
  chunks = 0;
  /** Bytes per PATCH now: halved after a chunk meets a 524 or a timeout, and kept for the sessions after it. */
  chunkSize: number;
  readonly started = Date.now();
  readonly maxTries: number;
  readonly delay: (failure: number) => number;
  readonly digest: string;

  constructor(
    readonly transport: RegistryTransport,
    readonly repository: string,
    readonly source: BlobSource,
    readonly opts: UploadBlobOptions,
  ) {
    this.chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.maxTries = opts.maxTries ?? DEFAULT_MAX_TRIES;
    this.delay = opts.retryDelayMs ?? defaultDelay;
    this.digest = source.digest;
  }

  /** One request; undefined when there was no answer (reset, deadline). A cancel throws. */
  async send(
    phase: UploadPhase,
    req: Omit<TransportRequest, 'repository' | 'push' | 'signal'>,
    bodyBytes = 0,
  ): Promise<{ res?: TransportResponse; error?: unknown }> {
    this.checkAbort(phase);
    this.requests++;
    this.bytesSent += bodyBytes;
    try {
      const res = await this.transport.send({
        ...req,
        repository: this.repository,
        push: true,
        signal: this.opts.signal,
        deadlineMs: req.deadlineMs ?? SMALL_REQUEST_DEADLINE_MS,
      });
      return { res };
    } catch (error) {
      this.checkAbort(phase);
      // A request the client refused to send (plain http from an https registry, a realm that may not have the
      // credentials): no retry changes that.
      if (error instanceof RegistryError && (error.kind === 'unsafe-location' || error.kind === 'unsafe-realm'))
        throw new UploadError(`${this.digest}: ${error.message}`, phase, this.digest, null, false, { cause: error });
      return { error };
    }
  }

  /** The registry's Docker-Content-Digest after the blob's PUT, if it sent one, must be the blob's. */
  checkEcho(phase: UploadPhase, res: TransportResponse): void {
    const echoed = res.headers.get('docker-content-digest');
    if (!echoed || echoed === this.digest) return;
    const what = isRegistryDigest(echoed) ? echoed : `${quoteValue(echoed)}, not a digest`;
    throw this.fatal(phase, `the registry stored the blob as ${what}`, res);
  }

  checkAbort(phase: UploadPhase): void {
    if (this.opts.signal?.aborted) throw abortError(this.opts.signal, this.digest, phase);
  }

  /** Counts a failure; throws once there were too many, else waits before the next try. */
  async failed(phase: UploadPhase, reason: string, status: number | null): Promise<void> {
    this.failures++;
    if (this.failures >= this.maxTries)
      throw new UploadError(
        `${this.digest}: upload failed after ${this.failures} tries (${phase}: ${reason})`,
        phase,
        this.digest,
        status,
      );
    try {
      await sleep(this.delay(this.failures), this.opts.signal);
    } catch {
      throw abortError(this.opts.signal, this.digest, phase);
    }
  }

  fatal(phase: UploadPhase, what: string, answer?: TransportResponse, error?: unknown): UploadError {
    return new UploadError(
      `${this.digest}: ${what} (${describeFailure(answer, error)})`,
      phase,
      this.digest,
      answer?.status ?? null,
      false,
      error === undefined ? undefined : { cause: error },
    );
  }

  /**
   * After a chunk of `length` bytes failed: a proxy that gives up on a request this big (524) or a chunk that
   * outlived its deadline would meet the same end at the same size, so the next requests carry half as much (not
   * below MIN_CHUNK_SIZE, nor below the chunk itself when it was smaller). True when the size changed.
   */
  shrinkAfter(length: number, res: TransportResponse | undefined, error: unknown): boolean {
    if (res?.status !== 524 && !(error instanceof HttpError && error.kind === 'timeout')) return false;
    this.chunkSize = Math.max(Math.min(MIN_CHUNK_SIZE, length), Math.floor(length / 2));
    return true;
  }

  result(mode: BlobUploadResult['mode']): BlobUploadResult {
    return {
      digest: this.digest,
      size: this.source.size,
      mode,
      requests: this.requests,
      bytesSent: this.bytesSent,
      resumes: this.resumes,
      restarts: this.restarts,
      elapsedMs: Date.now() - this.started,
    };
  }
}
