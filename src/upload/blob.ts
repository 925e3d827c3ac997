// One blob to the registry in resumable chunks (OCI distribution spec): HEAD (skip what the registry holds) ->
// POST -> PATCH chunks in order, each to the newest Location -> PUT ?digest=. After a chunk fails (reset, deadline,
// 5xx, 524), GET on the newest Location says where the upload stands and the upload continues from there within
// the same call; when that Location is no longer valid, the blob starts again with a new POST. No byte is ever sent
// twice to one upload session. A registry that refuses chunks gets the whole blob in one request. How big each chunk
// is moves with what the link and the proxies in front of the registry allow (chunk-sizing.ts): a 413 (a limit on
// request bodies) is answered with a smaller chunk within the same call, and the run keeps what it learned.
import { UploadError } from './errors.js';
import { awaitUpload } from './shared-blobs.js';
import {
  chunkOutcome,
  type ChunkOutcome,
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
import { MIN_CHUNK_SIZE, type ChunkSizeDecision } from './chunk-sizing.js';
import { formatBytes } from '../util/units.js';
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

interface Chunk {
  readonly start: number;
  readonly length: number;
}

interface Sent {
  readonly res?: TransportResponse;
  readonly error?: unknown;
  readonly elapsedMs: number;
}

/** One PATCH: `chunk` of the source from `cursor` to the newest Location. A source that failed to read throws. */
async function sendChunk(up: BlobUpload, location: string, cursor: SourceCursor, chunk: Chunk): Promise<Sent> {
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

/**
 * A 413 on a chunk: the next one is smaller (the decision made it so), unless the refused one was at the floor or
 * the registry's own minimum keeps chunks as big as the refused one: then nothing this uploader sends can pass.
 */
function tooLarge(up: BlobUpload, limits: ChunkLimits, chunk: Chunk, d: ChunkSizeDecision, res?: TransportResponse) {
  const refused = `a request body of ${chunk.length} bytes (the chunk at ${chunk.start})`;
  if (d.atFloor)
    throw up.fatal(
      'chunk',
      `the registry or a proxy in front of it refused ${refused}: it limits request bodies to less than that, ` +
        `and chunks do not shrink below ${formatBytes(MIN_CHUNK_SIZE)}`,
      res,
    );
  const next = effectiveChunkSize(up.chunkSize, limits);
  if (next >= chunk.length)
    throw up.fatal(
      'chunk',
      `the registry or a proxy in front of it refused ${refused}, and the registry's OCI-Chunk-Min-Length ` +
        `(${limits.min} bytes) keeps chunks that big`,
      res,
    );
}

/** After a PATCH that was not accepted: where to go on from (GET says where the upload stands), or the session's end. */
async function afterFailedChunk(
  up: BlobUpload,
  limits: ChunkLimits,
  at: { readonly location: string; readonly chunk: Chunk },
  sent: Sent,
  outcome: Exclude<ChunkOutcome, { action: 'next' }>,
  resized: ChunkSizeDecision | null,
): Promise<SessionEnd | { offset: number; location: string }> {
  const { res, error } = sent;
  const { chunk } = at;
  const reason = describeFailure(res, error);
  if (outcome.action === 'fallback') return { kind: 'fallback', status: res?.status ?? 0, reason };
  if (outcome.action === 'fail')
    throw up.fatal('chunk', `the registry refused the chunk at ${chunk.start}`, res, error);
  if (outcome.action === 'too-large' && resized) {
    tooLarge(up, limits, chunk, resized, res);
    // answered at once, by a limit that a smaller chunk passes: no try is spent, no wait (halving ends by itself)
    const why = `${reason}: a limit on request bodies; the next chunks carry ${formatBytes(up.chunkSize)}`;
    up.opts.onEvent?.({ type: 'chunk-failed', digest: up.digest, start: chunk.start, reason: why });
  } else {
    up.opts.onEvent?.({ type: 'chunk-failed', digest: up.digest, start: chunk.start, reason });
    await up.failed('chunk', reason, res?.status ?? null);
    if (outcome.action === 'restart') return { kind: 'restart', reason: `chunk at ${chunk.start}: ${reason}` };
  }
  const stands = await whereItStands(up, at.location, chunk);
  if (!stands)
    return {
      kind: 'restart',
      reason: `chunk at ${chunk.start}: ${reason}; the registry acknowledges nothing to resume from`,
    };
  up.resumes++;
  up.opts.onEvent?.({ type: 'resumed', digest: up.digest, offset: stands.offset });
  return stands;
}

/** One upload session: POST, the chunks from 0, the PUT. Never sends a byte twice to this session. */
async function chunkedSession(up: BlobUpload): Promise<SessionEnd> {
  const { source, digest } = up;
  const { location: first, limits } = await openSession(up);
  let location = first;
  let offset = 0; // what the newest Location's upload holds
  // after a resume inside a chunk, the rest of that chunk goes first (then whole chunks again)
  let until = Infinity;
  let cursor: SourceCursor | null = null;
  try {
    while (offset < source.size) {
      if (!cursor?.usableAt(offset)) {
        cursor?.close();
        cursor = new SourceCursor(source, offset);
      }
      if (offset >= until) until = Infinity;
      const size = effectiveChunkSize(up.sizing.cap(up.chunkSize), limits);
      const chunk = { start: offset, length: Math.min(size, until - offset, source.size - offset) };
      const sent = await sendChunk(up, location, cursor, chunk);
      const resized = up.resize(chunk.length, sent, limits.max);
      const outcome = chunkOutcome(
        chunk,
        sent.res && { status: sent.res.status, range: sent.res.headers.get('range') },
      );
      if (outcome.action === 'next') {
        offset = outcome.next;
        location = resolveLocation(location, sent.res?.headers.get('location'));
        up.chunks++;
        up.opts.onProgress?.({ digest, size: source.size, confirmed: offset, chunks: up.chunks });
        continue;
      }
      const next = await afterFailedChunk(up, limits, { location, chunk }, sent, outcome, resized);
      if ('kind' in next) return next;
      const end = chunk.start + chunk.length;
      until = next.offset > chunk.start && next.offset < end && outcome.action !== 'too-large' ? end : Infinity;
      offset = next.offset;
      location = next.location;
    }
    return await commit(up, location);
  } finally {
    cursor?.close();
  }
}

/**
 * The whole blob in one request (POST, then PUT with the body): for registries that refuse chunks. 'too-large': a
 * limit on request bodies refused it (413), and the blob goes in chunks under it, unless the registry refused chunks.
 */
async function singleRequest(up: BlobUpload, chunksRefused: boolean): Promise<'done' | 'too-large'> {
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
