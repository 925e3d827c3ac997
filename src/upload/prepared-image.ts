// An image made by the action itself, ready to upload: blob files in the run's work directory and the manifest that
// names them (layer-split: auto's pieces, blob-sink.ts). It is uploaded as it is, by every attempt that needs it: no
// `docker save` again, nothing loaded into the engine; the registry's HEAD per blob skips what an earlier attempt
// already sent.
import { uploadBlob, type BlobProgress, type ChunkSizing, type UploadEvent } from './blob.js';
import type { SharedBlobs } from './shared-blobs.js';
import { uploadFailure, type ChunkedPushResult } from './errors.js';
import { uploadImage } from './image.js';
import type { ImageManifest } from './image-source.js';
import type { BlobSource } from '../image/blob-source.js';
import type { RegistryTransport } from './transport.js';

export interface PreparedImage {
  readonly config: BlobSource;
  /** In the manifest's order. */
  readonly layers: readonly BlobSource[];
  readonly manifest: ImageManifest;
  /** The directory holding the blob files; whoever made it removes it (or the run's work directory goes). */
  readonly dir: string;
}

/** What every image push by the action's uploader takes besides the image itself (a split's, or a source's). */
export interface ImagePushCommon {
  readonly repositoryPath: string;
  /** The manifest is put under each. */
  readonly tags: readonly string[];
  readonly chunkSize: number;
  readonly signal: AbortSignal;
  readonly transport: RegistryTransport;
  onEvent(e: UploadEvent): void;
  onProgress(p: BlobProgress): void;
}

export interface PreparedPushRequest extends ImagePushCommon {
  readonly image: PreparedImage;
}

/** The run's chunk sizing, shared by its uploads (a limit one met holds for the others); default: one per call. */
export interface PreparedUploadOptions {
  readonly sizing?: ChunkSizing;
  /** The run's ledger of blobs: one another image of the run sends is mounted, not sent twice. */
  readonly shared?: SharedBlobs;
}

/** Uploads a prepared image; never throws: a failure says where it stopped and which layer (1-based) it was. */
export async function pushPreparedImage(
  req: PreparedPushRequest,
  opts: PreparedUploadOptions = {},
): Promise<ChunkedPushResult> {
  const { image } = req;
  try {
    const result = await uploadImage(
      req.transport,
      req.repositoryPath,
      { manifest: image.manifest.bytes, config: image.config, layers: image.layers, tags: req.tags },
      {
        chunkSize: req.chunkSize,
        sizing: opts.sizing,
        shared: opts.shared,
        signal: req.signal,
        onEvent: req.onEvent,
        onProgress: req.onProgress,
      },
    );
    return { ok: true, digest: result.digest };
  } catch (e) {
    return uploadFailure(
      e,
      image.layers.map((l) => l.digest),
    );
  }
}

export interface PreparedBlobRequest {
  readonly blob: BlobSource;
  readonly repositoryPath: string;
  readonly chunkSize: number;
  readonly signal: AbortSignal;
  readonly transport: RegistryTransport;
  onEvent(e: UploadEvent): void;
}

/**
 * One blob of an image still being prepared, sent while the next piece is cut (a HEAD first, as for every blob).
 * Resolves with what went wrong, null when the blob is in the registry: the push that follows sends it again if not.
 */
export async function pushPreparedBlob(
  req: PreparedBlobRequest,
  opts: PreparedUploadOptions = {},
): Promise<string | null> {
  try {
    await uploadBlob(req.transport, req.repositoryPath, req.blob, {
      chunkSize: req.chunkSize,
      sizing: opts.sizing,
      shared: opts.shared,
      signal: req.signal,
      onEvent: req.onEvent,
      // one try: a blob that fails here is the push attempt's to send, under the push policy
      maxTries: 1,
    });
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
