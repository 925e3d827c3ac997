// After a request of an upload session (blob.ts) failed: what the registry says of where the upload stands (GET on
// its newest Location), and whether and where the session goes on, with the chunk sizing told of a refused size.
import { type ChunkOutcome, describeFailure, effectiveChunkSize, resolveLocation, statusOutcome } from './protocol.js';
import type { TransportResponse } from './transport.js';
import type { ChunkLimits } from '../registry/registry-values.js';
import type { BlobUpload } from './blob-upload.js';
import { MIN_CHUNK_SIZE, type ChunkSizeDecision } from './chunk-sizing.js';
import { formatBytes } from '../util/units.js';

export type SessionEnd =
  | { readonly kind: 'done' }
  | { readonly kind: 'restart'; readonly reason: string }
  | { readonly kind: 'fallback'; readonly status: number; readonly reason: string };

export interface Chunk {
  readonly start: number;
  readonly length: number;
}

export interface Sent {
  readonly res?: TransportResponse;
  readonly error?: unknown;
  readonly elapsedMs: number;
}

/** GET on the upload URL after a failed chunk: resume at an offset inside the chunk, or start again. */
export async function whereItStands(
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
export async function afterFailedChunk(
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
