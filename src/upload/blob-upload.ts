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
import type { SharedBlobs } from './shared-blobs.js';
import { ChunkSizing, DEFAULT_CHUNK_SIZE, type ChunkResult, type ChunkSizeDecision } from './chunk-sizing.js';

// The chunk sizes live with the decision that moves between them (chunk-sizing.ts).
export { DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from './chunk-sizing.js';
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
  /** Bytes per PATCH to start with; raised to the registry's OCI-Chunk-Min-Length, lowered to its
   *  OCI-Chunk-Max-Length; then adapted by `sizing`. */
  readonly chunkSize?: number;
  /** The run's chunk sizing (its target duration, the limits it learned), shared by every blob of the run; default:
   *  one for this call (uploadImage: one for the image), with the default target. */
  readonly sizing?: ChunkSizing;
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
  /** The run's ledger of blobs (shared-blobs.ts): a blob another image of the run is sending is waited for and
   *  mounted, not sent again. Absent: this upload alone. */
  readonly shared?: SharedBlobs;
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
  /** Bytes per PATCH of this blob now (chunk-sizing.ts moves it), kept for the sessions after a restart. */
  chunkSize: number;
  readonly sizing: ChunkSizing;
  readonly started = Date.now();
  readonly maxTries: number;
  readonly delay: (failure: number) => number;
  /** The source's digest; for a blob still being written (blob-growing.ts) a name for it until whole(). */
  digest: string;

  constructor(
    readonly transport: RegistryTransport,
    readonly repository: string,
    public source: BlobSource,
    readonly opts: UploadBlobOptions,
  ) {
    this.sizing = opts.sizing ?? new ChunkSizing();
    this.chunkSize = this.sizing.cap(opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
    this.maxTries = opts.maxTries ?? DEFAULT_MAX_TRIES;
    this.delay = opts.retryDelayMs ?? defaultDelay;
    this.digest = source.digest;
  }

  /** True while the blob is still being written (blob-growing.ts): no progress until its digest is known. */
  pending = false;

  /** Tells onProgress what the registry acknowledged, once the blob's digest and size are known. */
  progress(confirmed: number): void {
    if (this.pending) return;
    this.opts.onProgress?.({ digest: this.digest, size: this.source.size, confirmed, chunks: this.chunks });
  }

  /** A blob that was being written is whole: from now on the upload is of this source (its size and digest). */
  whole(source: BlobSource): void {
    this.source = source;
    this.digest = source.digest;
    this.pending = false;
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
   * After a PATCH of `length` bytes: a 413 (a body limit) and a 524 or a deadline (a proxy that gives up on a request
   * this big would meet the same end at the same size) make the next ones smaller, an accepted one may make them
   * bigger (chunk-sizing.ts). Null when the answer says nothing about size (a reset, a 5xx, a 416...).
   */
  resize(
    length: number,
    answer: { res?: TransportResponse; error?: unknown; elapsedMs: number },
    registryMax: number | null,
  ): ChunkSizeDecision | null {
    const { res, error } = answer;
    const status = res?.status;
    const result: ChunkResult | null =
      status === 202 || status === 201 || status === 204
        ? { kind: 'accepted', length, elapsedMs: answer.elapsedMs }
        : status === 413
          ? { kind: 'too-large', length }
          : status === 524 || (error instanceof HttpError && error.kind === 'timeout')
            ? { kind: 'gave-up', length }
            : null;
    if (!result) return null;
    const d = this.sizing.after(this.chunkSize, result, registryMax);
    this.chunkSize = d.size;
    return d;
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
