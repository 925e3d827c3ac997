// One error type for everything the uploader gives up on, saying where (so the 524 advisory can say whether a chunk
// or the final PUT failed) and whether it was a cancel rather than a failure.
import { RegistryError } from '../registry/registry-client.js';

/** Where an upload stopped: the HEAD, the POST that opens it, a chunk, the GET that asks where it stands, the PUT
 *  that closes it, the single-request fallback, the source's bytes, or the manifest. */
export type UploadPhase = 'exists' | 'start' | 'chunk' | 'status' | 'commit' | 'single' | 'source' | 'manifest';

/** Where the uploader stopped, as the core's failure classification reads it (src/core/policy/failure.ts). */
export interface UploadStop {
  readonly status: number | null;
  readonly phase: string;
  readonly message: string;
  /** The action refused to send what the registry asked for (registry-client's unsafe-location/-realm): final. */
  readonly refused?: boolean;
}

/** What one push of an image by the action's own uploader came to. */
export type ChunkedPushResult =
  | { readonly ok: true; readonly digest: string }
  | {
      readonly ok: false;
      readonly stop: UploadStop;
      /** 1-based index of the layer whose blob failed, when it was a layer. */
      readonly layer: number | null;
    };

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
  const refused =
    e instanceof UploadError &&
    e.cause instanceof RegistryError &&
    (e.cause.kind === 'unsafe-location' || e.cause.kind === 'unsafe-realm');
  const stop =
    e instanceof UploadError
      ? { status: e.status, phase: e.phase, message: e.message, refused }
      : { status: null, phase: 'source' as const, message: (e as Error).message };
  const at = e instanceof UploadError && e.digest ? layerDigests.indexOf(e.digest) : -1;
  return { ok: false, stop, layer: at >= 0 ? at + 1 : null };
}
