// How many bytes the next PATCH carries (issues 19 and 21). It starts at chunk-size, doubles while PATCHes finish
// well inside a target duration (fewer round trips: each PATCH waits for its 202 before the next may go), halves on
// a refusal by size (413: nginx's client_max_body_size, Cloudflare's 100/200/500 MB by plan), on a proxy that gave
// up (524) or on the request's own deadline, and never grows above the registry's OCI-Chunk-Max-Length nor above a
// size that followed such a refusal in this run. nextChunkSize is the pure decision; ChunkSizing is the run's memory
// of what it learned, shared by every blob of the run so that a limit met once is not met again.

/** Bytes per PATCH when the caller names none: chunk-size's default ("32MB" in the table of inputs, decimal). */
export const DEFAULT_CHUNK_SIZE = 32_000_000;
/**
 * The bounds of chunk-size (the input checks against these) and of the adaptive size: a smaller chunk makes
 * thousands of requests per GB, a larger one defeats the point of chunks (a proxy may hold one in memory or on disk).
 * A shrinking upload goes no lower than the minimum; a smaller chunk is not shrunk.
 */
export const MIN_CHUNK_SIZE = 1_000_000;
export const MAX_CHUNK_SIZE = 1_000_000_000;
/**
 * How long one PATCH should take at most: far below Cloudflare's 100 s origin timeout, so that a slower link or a
 * slow commit at the registry still leaves room, and long enough that a fast link sends big chunks.
 */
export const DEFAULT_CHUNK_TARGET_MS = 15_000;

/** What one PATCH came to, as far as its size is concerned. */
export type ChunkResult =
  | { readonly kind: 'accepted'; readonly length: number; readonly elapsedMs: number }
  /** 413: the body was over a limit of the registry or of a proxy in front of it. */
  | { readonly kind: 'too-large'; readonly length: number }
  /** A 524 (a proxy gave up waiting for the origin) or the request's own deadline. */
  | { readonly kind: 'gave-up'; readonly length: number };

export interface ChunkSizeInput {
  /** Bytes per PATCH now. */
  readonly size: number;
  readonly result: ChunkResult;
  /** The duration a PATCH should stay under; 0: the size never grows (nor shrinks for being slow). */
  readonly targetMs: number;
  /** The registry's OCI-Chunk-Max-Length, as chunkLimits read it. */
  readonly registryMax: number | null;
  /** The largest size this run may still send (what a refusal taught it); null: nothing learned yet. */
  readonly learnedMax: number | null;
}

export interface ChunkSizeDecision {
  readonly size: number;
  readonly learnedMax: number | null;
  /** The refused chunk was at the floor (MIN_CHUNK_SIZE or smaller): no smaller chunk can follow it. */
  readonly atFloor: boolean;
}

/**
 * Half of `size` rounded up (a whole blob refused in one chunk then goes in two equal ones, not two and a byte), not
 * below MIN_CHUNK_SIZE; a size at or under the floor stays as it is. Above the floor it is strictly smaller.
 */
function halved(size: number): number {
  return size <= MIN_CHUNK_SIZE ? size : Math.max(MIN_CHUNK_SIZE, Math.ceil(size / 2));
}

/**
 * The size after one PATCH. A refusal by size or time at `length` bytes: the next chunk is half of that (strictly
 * below it, not below the floor), and the run never grows above that half again, since growing back between the two
 * would only meet the same refusal (or, for a 524, wait 100 s to learn it). An accepted full chunk that took under a
 * quarter of the target doubles (the doubled one should take half of it); one that took over the target halves.
 * A part chunk (the blob's tail, the rest after a resume) says too little about the link to change anything.
 */
export function nextChunkSize(i: ChunkSizeInput): ChunkSizeDecision {
  const { result, targetMs } = i;
  const cap = Math.min(MAX_CHUNK_SIZE, i.registryMax ?? Infinity, i.learnedMax ?? Infinity);
  // another blob of the run may have learned a limit since this size was chosen
  const size = Math.min(i.size, cap);
  if (result.kind !== 'accepted') {
    if (result.length <= MIN_CHUNK_SIZE) return { size, learnedMax: i.learnedMax, atFloor: true };
    const next = halved(result.length);
    const learnedMax = Math.min(i.learnedMax ?? next, next);
    return { size: Math.min(next, learnedMax), learnedMax, atFloor: false };
  }
  const same = { size, learnedMax: i.learnedMax, atFloor: false };
  if (targetMs <= 0 || result.length < size) return same;
  if (result.elapsedMs > targetMs) return { ...same, size: halved(size) };
  if (result.elapsedMs * 4 <= targetMs) return { ...same, size: Math.max(size, Math.min(size * 2, cap)) };
  return same;
}

/** The run's chunk sizing: its target, and the largest size a refusal left it. One per run, shared by its blobs. */
export class ChunkSizing {
  /** Lowered by each refusal by size or time, never raised. */
  private learned: number | null = null;
  readonly targetMs: number;

  constructor(opts: { readonly targetMs?: number } = {}) {
    this.targetMs = opts.targetMs ?? DEFAULT_CHUNK_TARGET_MS;
  }

  /** What the run learned: the largest size it may still send, null when nothing refused it. */
  get learnedMax(): number | null {
    return this.learned;
  }

  /** `size` within what the run learned. */
  cap(size: number): number {
    return this.learned === null ? size : Math.min(size, this.learned);
  }

  /** nextChunkSize for one PATCH of a blob whose chunks are `size` now; what it learned is kept for the run. */
  after(size: number, result: ChunkResult, registryMax: number | null): ChunkSizeDecision {
    const d = nextChunkSize({ size, result, targetMs: this.targetMs, registryMax, learnedMax: this.learned });
    this.learned = d.learnedMax;
    return d;
  }
}
