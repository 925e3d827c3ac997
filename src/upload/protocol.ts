// The OCI distribution spec's chunked blob upload, the pure parts: what to send (Content-Range, the URL that closes
// the upload), what the registry's answers mean (Range, Location, OCI-Chunk-Min-Length), and what to do after a
// chunk failed. No I/O: the uploader (blob.ts) does the requests and follows these decisions.
//
// Facts checked against the rig's registry (CNCF distribution 2.8.2, Debian), not from memory:
// - Range is `0-END` inclusive, and `0-0` both for an empty upload and for one of 1 byte (ambiguous).
// - Content-Range is not checked at all: a re-sent chunk is appended (the final PUT then answers 400
//   DIGEST_INVALID), and a `bytes 0-99` prefix is accepted as well. Newer registries answer 416 to a wrong start.
// - Every upload URL carries `_state` (HMAC of the offset); a request with a Location older than the newest, or
//   after a request whose bytes reached the registry but whose answer was lost (a reset mid-body included), answers
//   404 BLOB_UPLOAD_INVALID, GET included, and that upload is gone: the blob starts again with a new POST.
import { logText } from '../util/untrusted.js';

import { byteCount, type ChunkLimits } from '../registry/registry-values.js';
import { clampTimerMs } from '../util/timers.js';

/** `START-END`, inclusive, without the `bytes ` prefix and without a total (distribution 3 rejects the prefix). */
export function contentRange(start: number, length: number): string {
  return `${start}-${start + length - 1}`;
}

/** What a Range answer says the registry holds. */
export type RangeState =
  | { readonly kind: 'bytes'; readonly next: number }
  /** `0-0`: nothing, or exactly one byte: which, the header cannot tell. */
  | { readonly kind: 'ambiguous' }
  | { readonly kind: 'missing' };

/**
 * The offset the next byte goes to, from `Range: 0-N` (also `bytes=0-N` and `bytes 0-N`, as some registries write
 * it). An upload's range always starts at 0; anything else is treated as missing.
 */
export function parseUploadRange(header: string | null | undefined): RangeState {
  const m = /^\s*(?:bytes[= ]\s*)?(\d+)-(\d+)\s*$/i.exec(header ?? '');
  if (!m || m[1] !== '0') return { kind: 'missing' };
  const end = byteCount(m[2]);
  if (end === null) return { kind: 'missing' };
  return end === 0 ? { kind: 'ambiguous' } : { kind: 'bytes', next: end + 1 };
}

/**
 * Where the next request of an upload goes: the Location the registry just gave (absolute, or a path that the
 * transport resolves against the registry, or relative to the current upload URL), the current one when it gave none.
 */
export function resolveLocation(current: string, location: string | null | undefined): string {
  const loc = (location ?? '').trim();
  if (!loc) return current;
  if (/^https?:\/\//i.test(loc) || loc.startsWith('/')) return loc;
  const base = /^https?:\/\//i.test(current) ? current : `http://registry.invalid${current}`;
  const resolved = new URL(loc, base);
  return /^https?:\/\//i.test(current) ? resolved.href : `${resolved.pathname}${resolved.search}`;
}

/** The upload URL with `digest=` added to its query (a Location usually carries one already: `_state=...`). */
export function withDigest(url: string, digest: string): string {
  const hash = url.indexOf('#');
  const base = hash < 0 ? url : url.slice(0, hash);
  const sep = !base.includes('?') ? '?' : base.endsWith('?') || base.endsWith('&') ? '' : '&';
  return `${base}${sep}digest=${encodeURIComponent(digest)}`;
}

/**
 * The chunk size to use: the one asked for, raised to the registry's OCI-Chunk-Min-Length and lowered to its
 * OCI-Chunk-Max-Length (as chunkLimits read them: a max wins over a min it contradicts), so no PATCH goes above the
 * max a registry names.
 */
export function effectiveChunkSize(requested: number, limits: ChunkLimits): number {
  const wanted = Math.max(1, Math.floor(requested));
  const raised = limits.min !== null && limits.min > wanted ? limits.min : wanted;
  return limits.max !== null && raised > limits.max ? limits.max : raised;
}

/**
 * A deadline for one request carrying `bytes`: a minute for the round trip plus the bytes at 512 KiB/s, the slowest
 * link worth waiting for (32 MiB: 124 s), within what a timer can hold. A request that outlives a proxy's origin
 * timeout fails there anyway.
 */
export function requestDeadlineMs(bytes: number): number {
  return clampTimerMs(60_000 + Math.ceil(bytes / (512 * 1024)) * 1000);
}

/** What one PATCH's outcome means. `status` undefined: no answer (reset, timeout). */
export type ChunkOutcome =
  /** Accepted: go on from `next` (the Range when the registry sent one, else the chunk's end + 1). */
  | { readonly action: 'next'; readonly next: number }
  /** Ask the upload URL where the upload stands (GET), then resume or start again. */
  | { readonly action: 'check' }
  /** The upload is gone (404): start the blob again with a new POST. */
  | { readonly action: 'restart' }
  /** The registry does not take chunks: one request for the whole blob. */
  | { readonly action: 'fallback' }
  /** A limit on request bodies (413, most often a proxy's, which never passed the body on): a smaller chunk, from
   *  where GET says the upload stands. */
  | { readonly action: 'too-large' }
  | { readonly action: 'fail' };

/** Statuses a retry may cure: 5xx (Cloudflare's 52x included), request timeout, too many requests. */
export function isTransientStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

/**
 * The decision after one PATCH of [start, start+length). A 413 asks for a smaller chunk. A refusal of the first
 * chunk (400, 405, 415, 416, 501) means the registry does not take chunked uploads; a 416 later means our view of
 * the upload is off, which GET settles, as it does after a 401 (a token that expired: the registry read nothing). A
 * 2xx whose Range disagrees with what was sent cannot be trusted: start again.
 */
export function chunkOutcome(
  chunk: { readonly start: number; readonly length: number },
  answer: { readonly status: number; readonly range: string | null } | undefined,
): ChunkOutcome {
  if (!answer) return { action: 'check' };
  const { status } = answer;
  const end = chunk.start + chunk.length;
  if (status === 202 || status === 201 || status === 204) {
    const range = parseUploadRange(answer.range);
    if (range.kind === 'missing') return { action: 'next', next: end };
    if (range.kind === 'ambiguous') return end === 1 ? { action: 'next', next: 1 } : { action: 'restart' };
    return range.next === end ? { action: 'next', next: end } : { action: 'restart' };
  }
  // before the fallback: a 413 to the first chunk is about its size, not about chunks
  if (status === 413) return { action: 'too-large' };
  if (chunk.start === 0 && [400, 405, 415, 416, 501].includes(status)) return { action: 'fallback' };
  // 401: a token that expired mid-upload; a streamed body is not replayed by the transport, the GET re-authorizes.
  if (status === 416 || status === 401 || isTransientStatus(status)) return { action: 'check' };
  if (status === 404) return { action: 'restart' };
  return { action: 'fail' };
}

/** The decision after GET on the newest upload URL, following a failed chunk [start, start+length). */
export type StatusOutcome =
  | { readonly action: 'resume'; readonly offset: number }
  | { readonly action: 'restart' }
  /** No answer or a transient one: ask again (counts as a try). */
  | { readonly action: 'check' }
  | { readonly action: 'fail' };

/**
 * Resume only from what the registry reports, and only inside the failed chunk (from its start up to its end):
 * anything else means the upload is not the one we think, so the blob starts again rather than risk a byte twice.
 */
export function statusOutcome(
  chunk: { readonly start: number; readonly length: number },
  answer: { readonly status: number; readonly range: string | null } | undefined,
): StatusOutcome {
  if (!answer) return { action: 'check' };
  const { status } = answer;
  if (status === 204 || status === 200) {
    const range = parseUploadRange(answer.range);
    // `0-0` after a failed first chunk: 0 bytes or 1, unknowable; a new upload costs nothing then.
    if (range.kind !== 'bytes') return { action: 'restart' };
    const { next } = range;
    return next >= chunk.start && next <= chunk.start + chunk.length
      ? { action: 'resume', offset: next }
      : { action: 'restart' };
  }
  if (isTransientStatus(status)) return { action: 'check' };
  if (status === 401 || status === 403) return { action: 'fail' };
  return { action: 'restart' };
}

/** Registry error codes from a JSON error body, e.g. ['BLOB_UPLOAD_INVALID']; [] when it is not one. */
export function errorCodes(body: Buffer | string): string[] {
  try {
    const doc = JSON.parse(body.toString()) as { errors?: Array<{ code?: unknown }> };
    return (doc.errors ?? []).map((e) => String(e.code ?? '')).filter(Boolean);
  } catch {
    return [];
  }
}

/** Codes a reason quotes; a spec code is a short upper-case word, anything longer is cut. */
const CODES_SHOWN = 4;
const CODE_MAX = 64;

/**
 * A short reason for logs: `HTTP 524`, `HTTP 404 BLOB_UPLOAD_INVALID`, or the transport's error message. The codes
 * are the registry's words: they are quoted as data (logText), never as a line or a command of their own.
 */
export function describeFailure(answer: { status: number; body?: Buffer } | undefined, error?: unknown): string {
  if (!answer) return logText(error instanceof Error ? error.message : String(error ?? 'no answer'));
  const codes = (answer.body ? errorCodes(answer.body) : []).slice(0, CODES_SHOWN).map((c) => logText(c, CODE_MAX));
  return `HTTP ${answer.status}${codes.length ? ` ${codes.join(', ')}` : ''}`;
}
