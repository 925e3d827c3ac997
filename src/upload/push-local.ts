// A local image pushed by the action itself, in resumable chunks: what run.ts calls a chunked push. Two ways to read
// the image, chosen by what was measured fastest for issue 12 (a 120 MB layer):
// - containerd store: through the engine's own `docker push` to the action's receiver on 127.0.0.1
//   (loopback-push.ts), each blob going on to the registry while it arrives (`docker save` exports the content store
//   at ~30 MB/s; the push reads it at ~100 MB/s);
// - classic store, or an engine that cannot reach the receiver (it runs in another network namespace):
//   `docker save` into the work directory, the layers gzipped here (image-source.ts), each uploaded while it is
//   gzipped (issue 21: its chunks follow the compression, blob-growing.ts; source-early-upload.ts), then the
//   manifest (image.ts). On the classic store the engine's own push gzips at ~28 MB/s, the save and our parallel
//   gzip are faster.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { RegistryTransport } from './transport.js';
import type { SharedBlobs } from './shared-blobs.js';
import { ChunkSizing, type BlobProgress, type UploadEvent } from './blob.js';
import { uploadFailure, type ChunkedPushResult } from './errors.js';
import { readImageForUpload, type SavedImage } from './image-source.js';
import { imagePushFailure, pushImage } from './push-image.js';
import { pushThroughLoopback, type EngineNames } from './loopback-push.js';
import { EarlyUploads } from './source-early-upload.js';
import { MEDIA_TYPES } from '../image/oci.js';
import { mark } from './timeline.js';

/** One chunked push (issue 12): the local image read from the engine, its blobs and manifest sent by the action. */
export interface ChunkedPushRequest {
  readonly image: string;
  /** The platform manifest to send from an index (attestations stripped), as `docker push --platform` would. */
  readonly platform: string | null;
  readonly containerdStore: boolean;
  readonly repositoryPath: string;
  /** The manifest is put under each. */
  readonly tags: readonly string[];
  readonly chunkSize: number;
  /** Scratch space for the saved image; the caller removes it. */
  readonly workDir: string;
  readonly env: NodeJS.ProcessEnv;
  /** The engine's names: the push through the receiver tags the image under the receiver's name, and untags it. */
  readonly names: EngineNames;
  readonly signal: AbortSignal;
  readonly transport: RegistryTransport;
  onEvent(e: UploadEvent): void;
  onProgress(p: BlobProgress): void;
}

export type ImageReader = 'auto' | 'save' | 'loopback';

export interface PushLocalOptions {
  /** 'auto' (default): the receiver on the containerd store, `docker save` on the classic store. */
  readonly reader?: ImageReader;
  /** Told when the receiver could not be reached and `docker save` is used instead. */
  readonly onFallback?: (why: string) => void;
  /** The run's chunk sizing, shared by its pushes (a limit one attempt met holds for the next); default: one for
   *  this push. */
  readonly sizing?: ChunkSizing;
  /** The run's ledger of blobs (shared-blobs.ts): a layer another image of the run sends is mounted. */
  readonly shared?: SharedBlobs;
  /** The run's record of the classic-store layers an attempt sent while gzipping them (image and layer tar
   *  number): a later attempt does not send them again, the push's HEAD finds them. Default: one for this push. */
  readonly sentWhileGzipped?: Set<string>;
}

async function throughSave(
  req: ChunkedPushRequest,
  dir: string,
  run: { sizing: ChunkSizing; shared: SharedBlobs | undefined; sentWhileGzipped: Set<string> },
): Promise<ChunkedPushResult> {
  const { sizing, shared } = run;
  const offered: string[] = [];
  const early = new EarlyUploads(req.transport, req.repositoryPath, {
    chunkSize: req.chunkSize,
    sizing,
    shared,
    signal: req.signal,
    onEvent: req.onEvent,
    onProgress: req.onProgress,
  });
  let image: SavedImage;
  let layers = 0;
  try {
    image = await readImageForUpload(req.image, {
      env: req.env,
      workDir: dir,
      signal: req.signal,
      platform: req.platform ?? undefined,
      containerdStore: req.containerdStore,
      // a classic-store layer, gzipped here, goes while it is compressed; the manifest names it only once the
      // archive was read and each layer's diff ID checked against the config
      onGzipStart: (growing) => {
        if (req.containerdStore) return;
        const key = `${req.image}\n${++layers}`;
        // sent by an earlier attempt of this run (docker save writes an image's layers in one order): the push's
        // HEAD finds it, instead of its bytes going again after a failure elsewhere (a manifest's 524)
        if (run.sentWhileGzipped.has(key)) return;
        offered.push(key);
        early.offerGrowing(growing, {
          mediaType: MEDIA_TYPES.dockerLayerGzip,
          name: `layer tar ${layers} of the save (being gzipped)`,
        });
      },
      onEntry: (e) => {
        if (e.gzip) mark('layer-gzipped', { digest: e.gzip.digest, size: e.gzip.size });
      },
    }).finally(() => early.settle());
  } catch (e) {
    return uploadFailure(e, []);
  }
  mark('image-read');
  await early.settle();
  if (early.failure) return imagePushFailure(early.failure, image);
  for (const key of offered) run.sentWhileGzipped.add(key);
  return pushImage({ ...req, image }, { sizing, shared, sentBefore: early.done });
}

export async function pushLocalImage(req: ChunkedPushRequest, opts: PushLocalOptions = {}): Promise<ChunkedPushResult> {
  const reader = opts.reader ?? 'auto';
  const sizing = opts.sizing ?? new ChunkSizing();
  const dir = mkdtempSync(join(req.workDir, 'upload-'));
  try {
    if (reader === 'loopback' || (reader === 'auto' && req.containerdStore)) {
      let layerDigests: readonly string[] = [];
      try {
        const r = await pushThroughLoopback({
          image: req.image,
          names: req.names,
          // the platform manifest only, as the save path takes it; a single-platform image has no --platform
          platform: req.containerdStore ? (req.platform ?? undefined) : undefined,
          env: req.env,
          dir,
          transport: req.transport,
          repositoryPath: req.repositoryPath,
          tags: req.tags,
          chunkSize: req.chunkSize,
          sizing,
          shared: opts.shared,
          signal: req.signal,
          onEvent: req.onEvent,
          onProgress: req.onProgress,
          onManifest: (digests) => (layerDigests = digests),
        });
        if (!('unreachable' in r)) return r;
        opts.onFallback?.(r.why);
      } catch (e) {
        return uploadFailure(e, layerDigests);
      }
    }
    return await throughSave(req, dir, {
      sizing,
      shared: opts.shared,
      sentWhileGzipped: opts.sentWhileGzipped ?? new Set(),
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
