// One blob to the registry in resumable chunks (OCI distribution spec): HEAD (skip what the registry holds) ->
// POST -> PATCH chunks in order, each to the newest Location -> PUT ?digest=. After a chunk fails (reset, deadline,
// 5xx, 524), GET on the newest Location says where the upload stands and the upload continues from there within
// the same call; when that Location is no longer valid, the blob starts again with a new POST. No byte is ever sent
// twice to one upload session. A registry that refuses chunks gets the whole blob in one request. How big each chunk
// is moves with what the link and the proxies in front of the registry allow (chunk-sizing.ts): a 413 (a limit on
// request bodies) is answered with a smaller chunk within the same call, and the run keeps what it learned. What a
// failed request means for the session is blob-resume.ts; a blob still being written goes through blob-growing.ts.
import { UploadError } from './errors.js';
import { awaitUpload } from './shared-blobs.js';
import {
  chunkOutcome,
  contentRange,
  describeFailure,
  errorCodes,
  effectiveChunkSize,
  requestDeadlineMs,
  resolveLocation,
  withDigest,
  isTransientStatus,
} from './protocol.js';
import { SourceCursor } from './chunk-body.js';
import { afterFailedChunk, whereItStands, type Chunk, type SessionEnd, type Sent } from './blob-resume.js';
import type { BlobSource } from '../image/blob-source.js';
import type { RegistryTransport } from './transport.js';
import { chunkLimits, type ChunkLimits } from '../registry/registry-values.js';
import { mountBlob, takeOfferedSession } from './blob-mount.js';
import { BlobUpload, SMALL_REQUEST_DEADLINE_MS, type BlobUploadResult, type UploadBlobOptions } from './blob-upload.js';
import { mark } from './timeline.js';

// The uploader's defaults and the types of its options, events and result live with the upload's state.
export { DEFAULT_CHUNK_SIZE, DEFAULT_MAX_TRIES, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from './blob-upload.js';
export type { BlobProgress, BlobUploadResult, UploadBlobOptions, UploadEvent } from './blob-upload.js';
export { ChunkSizing, DEFAULT_CHUNK_TARGET_MS } from './chunk-sizing.js';

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
export async function openSession(up: BlobUpload): Promise<{ location: string; limits: ChunkLimits }> {
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

/** PUT ?digest=: closes the upload. On no answer or a transient one, HEAD tells whether the blob got in. */
export async function commit(up: BlobUpload, location: string): Promise<SessionEnd> {
  for (;;) {
    mark('put-start', { digest: up.digest });
    const { res, error } = await up.send('commit', {
      method: 'PUT',
      url: withDigest(location, up.digest),
      headers: { 'Content-Length': '0', 'Content-Type': OCTET_STREAM },
      deadlineMs: SMALL_REQUEST_DEADLINE_MS + Math.ceil(up.source.size / (20 * 1024 * 1024)) * 1000,
    });
    mark('put-answer', { digest: up.digest, status: res?.status ?? 0 });
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
export async function sendChunk(up: BlobUpload, location: string, cursor: SourceCursor, chunk: Chunk): Promise<Sent> {
  const { start, length } = chunk;
  const began = Date.now();
  const body = cursor.take(length);
  mark('patch-start', { digest: up.digest, start, length });
  body.once('end', () => mark('patch-body-end', { digest: up.digest, start }));
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
      body,
      // the bytes of this request, not the chunk size: a registry's huge minimum makes one chunk of the rest
      deadlineMs: up.opts.deadlinePerChunkMs ?? requestDeadlineMs(length),
    },
    length,
  );
  mark('patch-answer', { digest: up.digest, start, status: sent.res?.status ?? 0, ms: Date.now() - began });
  if (cursor.sourceError)
    throw new UploadError(`${up.digest}: ${cursor.sourceError.message}`, 'source', up.digest, null, false, {
      cause: cursor.sourceError,
    });
  return { ...sent, elapsedMs: Date.now() - began };
}

/** Where a session stands: its newest Location, what that upload holds, the end of a resumed chunk's rest. */
export interface SessionAt {
  location: string;
  offset: number;
  /** After a resume inside a chunk, the rest of that chunk goes first (then whole chunks again). */
  until: number;
}

/** One PATCH of `chunk` and what its answer means: `at` moved on (null), or the session's end. */
export async function chunkStep(
  up: BlobUpload,
  limits: ChunkLimits,
  at: SessionAt,
  cursor: SourceCursor,
  chunk: Chunk,
): Promise<SessionEnd | null> {
  const sent = await sendChunk(up, at.location, cursor, chunk);
  const resized = up.resize(chunk.length, sent, limits.max);
  const outcome = chunkOutcome(chunk, sent.res && { status: sent.res.status, range: sent.res.headers.get('range') });
  if (outcome.action === 'next') {
    at.offset = outcome.next;
    at.location = resolveLocation(at.location, sent.res?.headers.get('location'));
    up.chunks++;
    up.progress(at.offset);
    return null;
  }
  const next = await afterFailedChunk(up, limits, { location: at.location, chunk }, sent, outcome, resized);
  if ('kind' in next) return next;
  const end = chunk.start + chunk.length;
  at.until = next.offset > chunk.start && next.offset < end && outcome.action !== 'too-large' ? end : Infinity;
  at.offset = next.offset;
  at.location = next.location;
  return null;
}

/** One upload session: POST, the chunks from 0, the PUT. Never sends a byte twice to this session. */
async function chunkedSession(up: BlobUpload): Promise<SessionEnd> {
  const { source } = up;
  const { location, limits } = await openSession(up);
  const at: SessionAt = { location, offset: 0, until: Infinity };
  let cursor: SourceCursor | null = null;
  try {
    while (at.offset < source.size) {
      if (!cursor?.usableAt(at.offset)) {
        cursor?.close();
        cursor = new SourceCursor(source, at.offset);
      }
      if (at.offset >= at.until) at.until = Infinity;
      const size = effectiveChunkSize(up.sizing.cap(up.chunkSize), limits);
      const chunk = { start: at.offset, length: Math.min(size, at.until - at.offset, source.size - at.offset) };
      const end = await chunkStep(up, limits, at, cursor, chunk);
      if (end) return end;
    }
    return await commit(up, at.location);
  } finally {
    cursor?.close();
  }
}

/**
 * The whole blob in one request (POST, then PUT with the body): for registries that refuse chunks. 'too-large': a
 * limit on request bodies refused it (413), and the blob goes in chunks under it, unless the registry refused chunks.
 */
export async function singleRequest(up: BlobUpload, chunksRefused: boolean): Promise<'done' | 'too-large'> {
  for (;;) {
    const { location } = await openSession(up);
    const body = up.source.open(0);
    const began = Date.now();
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
    if (res && (res.status === 201 || res.status === 204)) {
      up.checkEcho('single', res);
      return 'done';
    }
    if (res?.status === 413) {
      const what = `the registry or a proxy in front of it refused the whole blob (${up.source.size} bytes) in one request`;
      if (chunksRefused) throw up.fatal('single', `${what}, and the registry refused it in chunks`, res);
      const d = up.resize(up.source.size, { res, elapsedMs: Date.now() - began }, null);
      if (d?.atFloor) throw up.fatal('single', `${what}: it limits request bodies to less than that`, res);
      return 'too-large';
    }
    if (res && !isTransientStatus(res.status) && res.status !== 404 && res.status !== 401)
      throw up.fatal('single', 'the registry refused the blob', res);
    const reason = describeFailure(res, error);
    if (await blobExists(up)) return 'done';
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
  const { shared } = opts;
  if (!shared) return uploadOne(transport, repository, source, opts);
  for (;;) {
    const claim = shared.claim(source.digest, repository);
    if (claim.kind === 'upload') {
      try {
        const result = await uploadOne(transport, repository, source, opts);
        claim.done(true);
        return result;
      } catch (e) {
        claim.done(false);
        throw e;
      }
    }
    // another image of the run is sending these bytes: wait, then mount from its repository (or HEAD finds it)
    if (await awaitUpload(claim.end, source.digest, opts.signal))
      return uploadOne(transport, repository, source, opts, claim.repository);
  }
}

/** HEAD, the mount (from `sibling`, the repository another image uploaded it to, or the source's), the upload. */
async function uploadOne(
  transport: RegistryTransport,
  repository: string,
  source: BlobSource,
  opts: UploadBlobOptions,
  sibling?: string,
): Promise<BlobUploadResult> {
  const up = new BlobUpload(transport, repository, source, opts);
  const { digest, size } = source;
  mark('blob-start', { digest, size });
  if (await blobExists(up)) {
    opts.onEvent?.({ type: 'exists', digest, size });
    opts.onProgress?.({ digest, size, confirmed: size, chunks: 0 });
    return up.result('exists');
  }
  const from = await mountBlob(up, sibling);
  if (from) {
    opts.onEvent?.({ type: 'mounted', digest, size, from });
    opts.onProgress?.({ digest, size, confirmed: size, chunks: 0 });
    return up.result('mounted');
  }
  let mode: 'chunked' | 'single' = opts.mode ?? 'chunked';
  let chunksRefused = false;
  for (;;) {
    if (mode === 'single') {
      if ((await singleRequest(up, chunksRefused)) === 'done') break;
      mode = 'chunked';
      continue;
    }
    const end = await chunkedSession(up);
    if (end.kind === 'done') break;
    if (end.kind === 'fallback') {
      opts.onEvent?.({ type: 'fallback', digest, status: end.status, reason: end.reason });
      mode = 'single';
      chunksRefused = true;
    } else {
      up.restarts++;
      opts.onEvent?.({ type: 'restarted', digest, reason: end.reason });
    }
  }
  if (mode === 'single') opts.onProgress?.({ digest, size, confirmed: size, chunks: 1 });
  const result = up.result(mode);
  mark('blob-done', { digest, mode, chunks: up.chunks, ms: result.elapsedMs });
  opts.onEvent?.({ type: 'uploaded', digest, size, mode, chunks: up.chunks, elapsedMs: result.elapsedMs });
  return result;
}
