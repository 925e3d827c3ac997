// One blob to the registry in resumable chunks (OCI distribution spec): HEAD (skip what the registry holds) ->
// POST -> PATCH chunks in order, each to the newest Location -> PUT ?digest=. After a chunk fails (reset, deadline,
// 5xx, 524), GET on the newest Location says where the upload stands and the upload continues from there within
// the same call; when that Location is no longer valid, the blob starts again with a new POST. No byte is ever sent
// twice to one upload session. A registry that refuses chunks gets the whole blob in one request.
import { UploadError } from './errors.js';
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
import type { RegistryTransport, TransportResponse } from './transport.js';
import { chunkLimits, type ChunkLimits } from '../registry/registry-values.js';
import { mountBlob, takeOfferedSession } from './blob-mount.js';
import { BlobUpload, SMALL_REQUEST_DEADLINE_MS, type BlobUploadResult, type UploadBlobOptions } from './blob-upload.js';

// The uploader's defaults and the types of its options, events and result live with the upload's state.
export { DEFAULT_CHUNK_SIZE, DEFAULT_MAX_TRIES, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from './blob-upload.js';
export type { BlobProgress, BlobUploadResult, UploadBlobOptions, UploadEvent } from './blob-upload.js';

const OCTET_STREAM = 'application/octet-stream';

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
  const offered = takeOfferedSession(up); // a 202 to the mount opened one already
  if (offered) return offered;
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

/** One PATCH: `chunk` of the source from `cursor` to the newest Location. A source that failed to read throws. */
async function sendChunk(
  up: BlobUpload,
  location: string,
  cursor: SourceCursor,
  chunk: { start: number; length: number },
): Promise<{ res?: TransportResponse; error?: unknown }> {
  const { start, length } = chunk;
  const sent = await up.send(
    'chunk',
    {
      method: 'PATCH',
      url: location,
      headers: {
        'Content-Type': OCTET_STREAM,
        'Content-Range': contentRange(start, length),
        'Content-Length': String(length),
      },
      body: cursor.take(length),
      // the bytes of this request, not the chunk size: a registry's huge minimum makes one chunk of the rest
      deadlineMs: up.opts.deadlinePerChunkMs ?? requestDeadlineMs(length),
    },
    length,
  );
  if (cursor.sourceError)
    throw new UploadError(`${up.digest}: ${cursor.sourceError.message}`, 'source', up.digest, null, false, {
      cause: cursor.sourceError,
    });
  return sent;
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
      const { res, error } = await sendChunk(up, location, cursor, chunk);
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
      if (up.shrinkAfter(length, res, error)) size = effectiveChunkSize(up.chunkSize, session.limits);
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
  if (await mountBlob(up)) {
    opts.onEvent?.({ type: 'mounted', digest, size, from: source.sourceRepository?.repository ?? '' });
    opts.onProgress?.({ digest, size, confirmed: size, chunks: 0 });
    return up.result('mounted');
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
