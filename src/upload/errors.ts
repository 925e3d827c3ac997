// One error type for everything the uploader gives up on, saying where (so the 524 advisory can say whether a chunk
// or the final PUT failed) and whether it was a cancel rather than a failure.
import type { ChunkedPushResult } from '../run-context.js';
import { clampTimerMs } from '../registry-values.js';

/** Where an upload stopped: the HEAD, the POST that opens it, a chunk, the GET that asks where it stands, the PUT
 *  that closes it, the single-request fallback, the source's bytes, or the manifest. */
export type UploadPhase = 'exists' | 'start' | 'chunk' | 'status' | 'commit' | 'single' | 'source' | 'manifest';

export class UploadError extends Error {
  constructor(
    message: string,
    readonly phase: UploadPhase,
    /** The blob (or manifest) digest; null when not known yet. */
    readonly digest: string | null,
    /** The last HTTP status, null when there was no answer. */
    readonly status: number | null,
    /** The signal was aborted: a cancel, not a failure. */
    readonly aborted = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UploadError';
  }
}

export function abortError(signal: AbortSignal | undefined, digest: string | null, phase: UploadPhase): UploadError {
  const reason = signal?.reason instanceof Error ? `: ${signal.reason.message}` : '';
  return new UploadError(`upload cancelled${reason}`, phase, digest, null, true, { cause: signal?.reason });
}

/**
 * What an upload that threw tells the run: where it stopped and, when the error names a blob that is one of
 * LAYER_DIGESTS (the manifest's layers, in order), which layer (1-based). Anything that is not an UploadError
 * stopped in reading the image.
 */
export function uploadFailure(e: unknown, layerDigests: readonly string[]): ChunkedPushResult & { ok: false } {
  const stop =
    e instanceof UploadError
      ? { status: e.status, phase: e.phase, message: e.message }
      : { status: null, phase: 'source' as const, message: (e as Error).message };
  const at = e instanceof UploadError && e.digest ? layerDigests.indexOf(e.digest) : -1;
  return { ok: false, stop, layer: at >= 0 ? at + 1 : null };
}

/** Resolves after ms, or rejects at once when the signal aborts; no timer outlives it. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 && !signal?.aborted) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason ?? new Error('aborted'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, clampTimerMs(ms));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
