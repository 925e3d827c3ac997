// One image to the registry by the action's own uploader, whatever made it (the split's blob files, a source opened
// as the image model, the engine's image read with `docker save`): a manifest with uploadImage, an index with
// uploadIndex. Never throws: a failure says where it stopped and which layer (1-based), as the plan numbers them.
// Each attempt that needs it uploads the same image again; the registry's HEAD per blob skips what an earlier one sent.
import { uploadBlob, type BlobProgress, type ChunkSizing, type UploadEvent } from './blob.js';
import type { SharedBlobs } from './shared-blobs.js';
import { uploadFailure, UploadError, type ChunkedPushResult } from './errors.js';
import { uploadImage } from './image.js';
import { uploadIndex } from './index-upload.js';
import type { BlobSource } from '../image/blob-source.js';
import { platformManifests, type ManifestImage, type SourceImage } from '../image/image-model.js';
import type { RegistryTransport } from './transport.js';

/** The phase a push reports when the PUT that failed was an index's own (not one of its platform manifests'). */
export const INDEX_PHASE = 'index';

/** What every image push by the action's uploader takes besides the image itself. */
export interface ImagePushCommon {
  readonly repositoryPath: string;
  /** The manifest (or index) is put under each. */
  readonly tags: readonly string[];
  readonly chunkSize: number;
  readonly signal: AbortSignal;
  readonly transport: RegistryTransport;
  onEvent(e: UploadEvent): void;
  onProgress(p: BlobProgress): void;
}

export interface ImagePushRequest extends ImagePushCommon {
  readonly image: SourceImage;
}

/** The run's chunk sizing, shared by its uploads (a limit one met holds for the others); default: one per call. */
export interface ImageUploadOptions {
  readonly sizing?: ChunkSizing;
  /** The run's ledger of blobs: one another image of the run sends is mounted, not sent twice. */
  readonly shared?: SharedBlobs;
  /** Blobs sent already while the image was still being read (uploadImage's sentBefore). */
  readonly sentBefore?: ReadonlySet<string>;
}

/**
 * A layer's place in the plan, 1-based: each platform manifest's layers in its order (a blob it names twice at each
 * place, as the engine lists it), a blob an earlier platform named (a layer two platforms share) not again.
 */
export function numberedLayers(
  manifests: readonly ManifestImage[],
): { readonly manifest: number; readonly at: number; readonly blob: BlobSource }[] {
  const earlier = new Set<string>();
  return manifests.flatMap((m, manifest) => {
    const mine = m.layers.flatMap((blob, at) => (earlier.has(blob.digest) ? [] : [{ manifest, at, blob }]));
    for (const l of m.layers) earlier.add(l.digest);
    return mine;
  });
}

/** Uploads an image (a manifest, or an index and its manifests) under every tag; never throws. */
export async function pushImage(req: ImagePushRequest, opts: ImageUploadOptions = {}): Promise<ChunkedPushResult> {
  const { image } = req;
  const upload = {
    chunkSize: req.chunkSize,
    sizing: opts.sizing,
    shared: opts.shared,
    sentBefore: opts.sentBefore,
    signal: req.signal,
    onEvent: req.onEvent,
    onProgress: req.onProgress,
  };
  try {
    const r =
      image.kind === 'manifest'
        ? await uploadImage(req.transport, req.repositoryPath, image, req.tags, upload)
        : await uploadIndex(req.transport, req.repositoryPath, image, req.tags, upload);
    return { ok: true, digest: r.digest };
  } catch (e) {
    return imagePushFailure(e, image);
  }
}

/** What an upload of IMAGE that threw tells the run; the index's own PUT told apart from a platform manifest's. */
export function imagePushFailure(e: unknown, image: SourceImage): ChunkedPushResult & { ok: false } {
  const failed = uploadFailure(
    e,
    numberedLayers(platformManifests(image)).map((l) => l.blob.digest),
  );
  const atIndex = image.kind === 'index' && e instanceof UploadError && e.digest === image.digest;
  return atIndex && e.phase === 'manifest' ? { ...failed, stop: { ...failed.stop, phase: INDEX_PHASE } } : failed;
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
  opts: ImageUploadOptions = {},
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
