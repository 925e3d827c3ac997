// One blob to the registry in resumable chunks (OCI distribution spec): HEAD (skip what the registry holds) ->
// POST -> PATCH chunks in order, each to the newest Location -> PUT ?digest=. After a chunk fails (reset, deadline,
// 5xx, 524), GET on the newest Location says where the upload stands and the upload continues from there within
// the same call; when that Location is no longer valid, the blob starts again with a new POST. No byte is ever sent
// twice to one upload session. A registry that refuses chunks gets the whole blob in one request.
import { sleep } from '../util/timers.js';
import { abortError, UploadError, type UploadPhase } from './errors.js';
import {
  chunkOutcome,
  contentRange,
  describeFailure,
  errorCodes,
  effectiveChunkSize,
  requestDeadlineMs,
  resolveLocation,
  statusOutcome,
  withDigest,
  isTransientStatus,
} from './protocol.js';
import { SourceCursor } from './chunk-body.js';
import type { BlobSource } from '../image/blob-source.js';
import type { RegistryTransport, TransportRequest, TransportResponse } from './transport.js';
import { HttpError } from '../registry/http-request.js';
import { RegistryError } from '../registry/registry-client.js';
import { chunkLimits, isRegistryDigest, quoteValue, type ChunkLimits } from '../registry/registry-values.js';
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
const SMALL_REQUEST_DEADLINE_MS = 60_000;
const OCTET_STREAM = 'application/octet-stream';

export type UploadEvent =
  | { readonly type: 'exists'; readonly digest: string; readonly size: number }
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
  /** 'exists': the registry had it (HEAD), nothing was sent. */
  readonly mode: 'exists' | 'chunked' | 'single';
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
class BlobUpload {
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

/** HEAD: does the registry hold the blob already? Only a 200 says yes; a failed HEAD just means "upload it". */
async function blobExists(up: BlobUpload): Promise<boolean> {
  const { res } = await up.send('exists', {
    method: 'HEAD',
    url: `/v2/${up.repository}/blobs/${up.digest}`,
  });
  return res?.status === 200;
}

/** POST: a new upload session; its Location, and its chunk limits. Retries transient failures. */
async function openSession(up: BlobUpload): Promise<{ location: string; limits: ChunkLimits }> {
  for (;;) {
    const { res, error } = await up.send('start', {
      method: 'POST',
      url: `/v2/${up.repository}/blobs/uploads/`,
      headers: { 'Content-Length': '0' },
    });
    const location = res?.headers.get('location');
    if (res && res.status === 202 && location)
      return {
        location: resolveLocation(`/v2/${up.repository}/blobs/uploads/`, location),
        limits: chunkLimits(res.headers.get('oci-chunk-min-length'), res.headers.get('oci-chunk-max-length')),
      };
    if (res && !isTransientStatus(res.status)) throw up.fatal('start', 'the registry refused to open an upload', res);
    await up.failed('start', describeFailure(res, error), res?.status ?? null);
  }
}

type SessionEnd =
  | { readonly kind: 'done' }
  | { readonly kind: 'restart'; readonly reason: string }
  | { readonly kind: 'fallback'; readonly status: number; readonly reason: string };

/** GET on the upload URL after a failed chunk: resume at an offset inside the chunk, or start again. */
async function whereItStands(
  up: BlobUpload,
  location: string,
  chunk: { start: number; length: number },
): Promise<{ offset: number; location: string } | null> {
  for (;;) {
    const { res, error } = await up.send('status', { method: 'GET', url: location });
    const decision = statusOutcome(chunk, res && { status: res.status, range: res.headers.get('range') });
    if (decision.action === 'resume')
      return { offset: decision.offset, location: resolveLocation(location, res?.headers.get('location')) };
    if (decision.action === 'restart') return null;
    if (decision.action === 'fail') throw up.fatal('status', 'the registry refused the upload status', res, error);
    await up.failed('status', describeFailure(res, error), res?.status ?? null);
  }
}

/** PUT ?digest=: closes the upload. On no answer or a transient one, HEAD tells whether the blob got in. */
async function commit(up: BlobUpload, location: string): Promise<SessionEnd> {
  for (;;) {
    const { res, error } = await up.send('commit', {
      method: 'PUT',
      url: withDigest(location, up.digest),
      headers: { 'Content-Length': '0', 'Content-Type': OCTET_STREAM },
      deadlineMs: SMALL_REQUEST_DEADLINE_MS + Math.ceil(up.source.size / (20 * 1024 * 1024)) * 1000,
    });
    if (res && (res.status === 201 || res.status === 204)) {
      up.checkEcho('commit', res);
      return { kind: 'done' };
    }
    if (res && !isTransientStatus(res.status)) {
      // The registry hashed what it received, and no byte went twice to this upload: the source is not its digest.
      if (errorCodes(res.body).includes('DIGEST_INVALID'))
        throw up.fatal('source', `the registry computed another digest for the source's bytes`, res);
      // 404: the upload is gone; start again.
      if (res.status === 404) {
        await up.failed('commit', describeFailure(res), res.status);
        return { kind: 'restart', reason: `final PUT: ${describeFailure(res)}` };
      }
      throw up.fatal('commit', 'the registry refused the final PUT', res);
    }
    const reason = describeFailure(res, error);
    if (await blobExists(up)) return { kind: 'done' };
    await up.failed('commit', reason, res?.status ?? null);
    // The answer was lost: if the registry still has the whole upload open, PUT again; else start again.
    const at = await whereItStands(up, location, { start: up.source.size, length: 0 });
    if (!at) return { kind: 'restart', reason: `final PUT: ${reason}` };
    location = at.location;
  }
}

/** One upload session: POST, the chunks from 0, the PUT. Never sends a byte twice to this session. */
async function chunkedSession(up: BlobUpload): Promise<SessionEnd> {
  const { source, digest } = up;
  const session = await openSession(up);
  let location = session.location;
  let size = effectiveChunkSize(up.chunkSize, session.limits);
  let offset = 0; // what the newest Location's upload holds
  let cursor: SourceCursor | null = null;
  try {
    while (offset < source.size) {
      if (!cursor?.usableAt(offset)) {
        cursor?.close();
        cursor = new SourceCursor(source, offset);
      }
      // chunks stay on multiples of the chunk size: after a resume mid-chunk, the rest of that chunk
      const length = Math.min(size - (offset % size), source.size - offset);
      const chunk = { start: offset, length };
      const { res, error } = await up.send(
        'chunk',
        {
          method: 'PATCH',
          url: location,
          headers: {
            'Content-Type': OCTET_STREAM,
            'Content-Range': contentRange(offset, length),
            'Content-Length': String(length),
          },
          body: cursor.take(length),
          // the bytes of this request, not the chunk size: a registry's huge minimum makes one chunk of the rest
          deadlineMs: up.opts.deadlinePerChunkMs ?? requestDeadlineMs(length),
        },
        length,
      );
      if (cursor.sourceError)
        throw new UploadError(`${digest}: ${cursor.sourceError.message}`, 'source', digest, null, false, {
          cause: cursor.sourceError,
        });
      const outcome = chunkOutcome(chunk, res && { status: res.status, range: res.headers.get('range') });
      if (outcome.action === 'next') {
        offset = outcome.next;
        location = resolveLocation(location, res?.headers.get('location'));
        up.chunks++;
        up.opts.onProgress?.({ digest, size: source.size, confirmed: offset, chunks: up.chunks });
        continue;
      }
      const reason = describeFailure(res, error);
      if (outcome.action === 'fallback') return { kind: 'fallback', status: res?.status ?? 0, reason };
      if (outcome.action === 'fail') throw up.fatal('chunk', `the registry refused the chunk at ${offset}`, res, error);
      up.opts.onEvent?.({ type: 'chunk-failed', digest, start: offset, reason });
      await up.failed('chunk', reason, res?.status ?? null);
      // A proxy that gives up on a request this big (524) or a chunk that outlived its deadline: the same size
      // would meet the same end, so the next requests carry half as much (not below the registry's minimum).
      if (res?.status === 524 || (error instanceof HttpError && error.kind === 'timeout')) {
        up.chunkSize = Math.max(Math.min(MIN_CHUNK_SIZE, length), Math.floor(length / 2));
        size = effectiveChunkSize(up.chunkSize, session.limits);
      }
      if (outcome.action === 'restart') return { kind: 'restart', reason: `chunk at ${offset}: ${reason}` };
      const at = await whereItStands(up, location, chunk);
      if (!at)
        return {
          kind: 'restart',
          reason: `chunk at ${offset}: ${reason}; the registry acknowledges nothing to resume from`,
        };
      offset = at.offset;
      location = at.location;
      up.resumes++;
      up.opts.onEvent?.({ type: 'resumed', digest, offset });
    }
    return await commit(up, location);
  } finally {
    cursor?.close();
  }
}

/** The whole blob in one request (POST, then PUT with the body): for registries that refuse chunks. */
async function singleRequest(up: BlobUpload): Promise<void> {
  for (;;) {
    const { location } = await openSession(up);
    const body = up.source.open(0);
    const { res, error } = await up.send(
      'single',
      {
        method: 'PUT',
        url: withDigest(location, up.digest),
        headers: { 'Content-Type': OCTET_STREAM, 'Content-Length': String(up.source.size) },
        body,
        deadlineMs: up.opts.deadlinePerChunkMs ?? requestDeadlineMs(up.source.size),
      },
      up.source.size,
    );
    body.destroy();
    if (res && (res.status === 201 || res.status === 204)) return up.checkEcho('single', res);
    if (res && !isTransientStatus(res.status) && res.status !== 404 && res.status !== 401)
      throw up.fatal('single', 'the registry refused the blob', res);
    const reason = describeFailure(res, error);
    if (await blobExists(up)) return;
    await up.failed('single', reason, res?.status ?? null);
  }
}

/**
 * Uploads one blob unless the registry holds it. Resolves when the registry has it; rejects with an UploadError
 * (phase: where it stopped; aborted: a cancel). Chunks are streamed from the source: none is held in memory.
 */
export async function uploadBlob(
  transport: RegistryTransport,
  repository: string,
  source: BlobSource,
  opts: UploadBlobOptions = {},
): Promise<BlobUploadResult> {
  const up = new BlobUpload(transport, repository, source, opts);
  const { digest, size } = source;
  if (await blobExists(up)) {
    opts.onEvent?.({ type: 'exists', digest, size });
    opts.onProgress?.({ digest, size, confirmed: size, chunks: 0 });
    return up.result('exists');
  }
  let mode: 'chunked' | 'single' = opts.mode ?? 'chunked';
  while (mode === 'chunked') {
    const end = await chunkedSession(up);
    if (end.kind === 'done') break;
    if (end.kind === 'fallback') {
      opts.onEvent?.({ type: 'fallback', digest, status: end.status, reason: end.reason });
      mode = 'single';
    } else {
      up.restarts++;
      opts.onEvent?.({ type: 'restarted', digest, reason: end.reason });
    }
  }
  if (mode === 'single') {
    await singleRequest(up);
    opts.onProgress?.({ digest, size, confirmed: size, chunks: 1 });
  }
  const result = up.result(mode);
  opts.onEvent?.({ type: 'uploaded', digest, size, mode, chunks: up.chunks, elapsedMs: result.elapsedMs });
  return result;
}
