// One blob to the registry while it is still being written (issue 21: a classic-store layer sent while it is
// gzipped): the protocol needs the digest only at the final PUT ?digest=, so the chunks go as soon as their bytes
// are in the file. No HEAD and no mount first (the digest is not known yet): POST, each PATCH once a whole chunk is
// written (the last one once the writer finished), then PUT with the file's digest. The chunk sizing, the 413/524
// answers, the resume after GET and the restart are uploadBlob's own (blob.ts); a resume reads back from the file,
// which holds every byte written. A registry that refuses chunks gets the blob in one request once it is whole.
import { UploadError } from './errors.js';
import { chunkStep, commit, openSession, singleRequest, type SessionAt } from './blob.js';
import type { SessionEnd } from './blob-resume.js';
import { BlobUpload, type BlobUploadResult, type UploadBlobOptions } from './blob-upload.js';
import { SourceCursor } from './chunk-body.js';
import { effectiveChunkSize } from './protocol.js';
import type { RegistryTransport } from './transport.js';
import type { BlobSource } from '../image/blob-source.js';
import type { GrowingFile } from '../image/growing-file.js';
import type { BlobClaim } from './shared-blobs.js';
import { mark } from './timeline.js';

/** The least a chunk of a growing blob waits for (unless the registry's minimum is more, or the writer finished). */
export const GROWING_CHUNK_FLOOR = 16_000_000;

/** The blob as uploadBlob's steps read it: until whole, a name for its digest and no size yet. */
function growingSource(g: GrowingFile, mediaType: string, name: string): BlobSource {
  const result = g.result;
  return {
    digest: result?.digest ?? name,
    size: result?.size ?? Number.MAX_SAFE_INTEGER,
    mediaType,
    open: (offset) => g.follow(offset, (s) => mark('tail-end', { digest: result?.digest ?? name, ...s })),
  };
}

/** Resolves at the file's next change; a cancel throws. */
async function nextChange(up: BlobUpload, g: GrowingFile): Promise<void> {
  up.checkAbort('chunk');
  const signal = up.opts.signal;
  let onAbort = () => undefined as void;
  const aborted = new Promise<void>((resolve) => {
    onAbort = resolve;
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([g.wait(), aborted]);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  up.checkAbort('chunk');
}

/**
 * Waits until the file holds `n` bytes or the writer finished: the final size then (and the upload is of the whole
 * blob from now on), else null. A writer's failure is the upload's ('source').
 */
async function reach(up: BlobUpload, g: GrowingFile, n: number): Promise<number | null> {
  const began = Date.now();
  let waits = 0;
  for (;;) {
    if (g.error)
      throw new UploadError(`${up.digest}: ${g.error.message}`, 'source', up.digest, null, false, { cause: g.error });
    if (g.result || g.written >= n) break;
    await nextChange(up, g);
    waits++;
  }
  if (waits) mark('grow-wait', { digest: up.digest, at: n, waits, ms: Date.now() - began });
  if (!g.result) return null;
  if (up.pending) up.whole(growingSource(g, up.source.mediaType, up.digest));
  return g.result.size;
}

/** One upload session of a growing blob: POST, each chunk once written, the PUT. Never a byte twice to it. */
async function growingSession(up: BlobUpload, g: GrowingFile): Promise<SessionEnd> {
  const { location, limits } = await openSession(up);
  const at: SessionAt = { location, offset: 0, until: Infinity };
  let cursor: SourceCursor | null = null;
  try {
    for (;;) {
      if (at.offset >= at.until) at.until = Infinity;
      const size = Math.min(effectiveChunkSize(up.sizing.cap(up.chunkSize), limits), at.until - at.offset);
      // what is written goes once there is enough for a chunk worth a request: the chunks follow the writer, and
      // what is left when it finishes stays small, whatever size the sizing has grown to
      const floor = Math.min(size, Math.max(GROWING_CHUNK_FLOOR, limits.min ?? 0));
      const total = await reach(up, g, at.offset + floor);
      if (total !== null && at.offset >= total) break;
      if (!cursor?.usableAt(at.offset)) {
        cursor?.close();
        cursor = new SourceCursor(up.source, at.offset);
      }
      const chunk = { start: at.offset, length: Math.min(size, (total ?? g.written) - at.offset) };
      const end = await chunkStep(up, limits, at, cursor, chunk);
      if (end) return end;
    }
    return await commit(up, at.location);
  } finally {
    cursor?.close();
  }
}

/** The sessions until one ends with the blob in the registry; a refusal of chunks: one request once whole. */
async function sessions(up: BlobUpload, g: GrowingFile): Promise<'chunked' | 'single'> {
  const { opts } = up;
  for (;;) {
    const end = await growingSession(up, g);
    if (end.kind === 'done') return 'chunked';
    if (end.kind === 'restart') {
      up.restarts++;
      opts.onEvent?.({ type: 'restarted', digest: up.digest, reason: end.reason });
      continue;
    }
    opts.onEvent?.({ type: 'fallback', digest: up.digest, status: end.status, reason: end.reason });
    await reach(up, g, Infinity); // resolves once the writer finished
    if ((await singleRequest(up, true)) === 'done') return 'single';
  }
}

/**
 * The digest's entry in the run's ledger (shared-blobs.ts), made once the writer finished; `end` tells it how the
 * upload ended. Another image of the run that meets the digest then waits for this upload and mounts the blob.
 */
function ledgerEntry(g: GrowingFile, repository: string, opts: UploadBlobOptions): (ok: boolean) => void {
  let claim: BlobClaim | null = null;
  let ended: boolean | null = null;
  g.whole.then(
    (r) => {
      if (ended === false || !opts.shared) return; // failed before the digest was known: nothing to enter
      claim = opts.shared.claim(r.digest, repository);
      if (ended && claim.kind === 'upload') claim.done(true);
    },
    () => undefined,
  );
  return (ok) => {
    ended = ok;
    if (claim?.kind === 'upload') claim.done(ok);
  };
}

/**
 * Uploads a blob while `growing` is written; resolves when the registry holds it (its digest: the file's), rejects
 * with an UploadError as uploadBlob does (a failure of the writer: phase 'source'). `name` stands for the digest in
 * events and errors until the writer finished; progress is told once the digest is known.
 */
export async function uploadGrowingBlob(
  transport: RegistryTransport,
  repository: string,
  growing: GrowingFile,
  what: { readonly mediaType: string; readonly name: string },
  opts: UploadBlobOptions = {},
): Promise<BlobUploadResult> {
  const up = new BlobUpload(transport, repository, growingSource(growing, what.mediaType, what.name), opts);
  up.pending = true;
  mark('blob-start', { digest: what.name, growing: true });
  const ledger = ledgerEntry(growing, repository, opts);
  let mode: 'chunked' | 'single';
  try {
    mode = await sessions(up, growing);
  } catch (e) {
    ledger(false);
    throw e;
  }
  ledger(true);
  const { digest, size } = up.source;
  if (mode === 'single') up.progress(size);
  const result = up.result(mode);
  mark('blob-done', { digest, mode, chunks: up.chunks, ms: result.elapsedMs });
  opts.onEvent?.({ type: 'uploaded', digest, size, mode, chunks: up.chunks, elapsedMs: result.elapsedMs });
  return result;
}
