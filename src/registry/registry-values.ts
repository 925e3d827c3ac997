// Every size, time and digest a registry sends, parsed and clamped in one place before the code acts on it: a
// header is data from the other side of the wire, and a value out of range must neither break a timer nor make the
// uploader send what the registry said it refuses. Pure functions; the callers (registry-client.ts, upload/) use
// nothing else to read these headers. Every delay they yield reaches a timer through clampTimerMs (src/util/timers.ts).
import { logText } from '../util/untrusted.js';

/** The longest wait a Retry-After may ask for: a registry asking for an hour is not waited on for an hour. */
export const MAX_RETRY_AFTER_MS = 10 * 60_000;

/**
 * Retry-After (RFC 9110: delay-seconds, or an HTTP-date) as ms from `nowMs`, within [0, MAX_RETRY_AFTER_MS]; null
 * when absent or neither form. Decimal seconds are taken too (some proxies send them).
 */
export function retryAfterMs(header: string | null | undefined, nowMs: number): number | null {
  const value = (header ?? '').trim();
  if (!value) return null;
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(value)) ms = Number(value) * 1000;
  else if (/[a-z]/i.test(value)) ms = Date.parse(value) - nowMs;
  else return null;
  if (Number.isNaN(ms)) return null;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, Math.ceil(ms)));
}

/** A byte count header (Content-Length, OCI-Chunk-*-Length): a non-negative safe integer in digits only, else null. */
export function byteCount(header: string | null | undefined): number | null {
  const value = (header ?? '').trim();
  if (!/^\d{1,16}$/.test(value)) return null;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * A registry's OCI-Chunk-Max-Length below this is not honoured: 1 MB chunks of a 1 GB layer are already a thousand
 * requests; a registry that truly refuses bigger PATCHes refuses the first one, and the upload falls back to one
 * request for the whole blob.
 */
export const MIN_HONOURED_CHUNK_MAX = 1_000_000;

/** What a registry said about chunk sizes: null where it said nothing usable. */
export interface ChunkLimits {
  readonly min: number | null;
  readonly max: number | null;
}

/**
 * OCI-Chunk-Min-Length and OCI-Chunk-Max-Length, each a positive byte count or null. A min above the max cannot be
 * met by any chunk but the last: the max is kept (a PATCH above it is refused for certain) and the min dropped.
 * A huge min is kept: the chunk is then the whole rest of the blob, and its deadline follows the bytes sent.
 */
export function chunkLimits(minHeader: string | null | undefined, maxHeader: string | null | undefined): ChunkLimits {
  const positive = (n: number | null) => (n !== null && n > 0 ? n : null);
  const min = positive(byteCount(minHeader));
  const rawMax = positive(byteCount(maxHeader));
  const max = rawMax !== null && rawMax >= MIN_HONOURED_CHUNK_MAX ? rawMax : null;
  return { min: min !== null && max !== null && min > max ? null : min, max };
}

/**
 * A digest as the OCI image spec registers them: sha256 with 64 lower-case hex digits, or sha512 with 128. A
 * registry's Docker-Content-Digest is compared, logged and written to outputs only once it passes this.
 */
export function isRegistryDigest(value: string | null | undefined): value is string {
  return typeof value === 'string' && /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/.test(value);
}

/**
 * A registry-supplied value for a message: quoted, through logText (control characters escaped, `::` and `##[`
 * defused, so it can never start a line of its own or a workflow command), cut to 80 characters.
 */
export function quoteValue(value: string): string {
  return `"${logText(value, 80)}"`;
}
