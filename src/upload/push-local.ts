// A local image pushed by the action itself: `docker save` into the work directory (image-source.ts), then its
// blobs in resumable chunks and the manifest under each tag (image.ts). What run.ts calls a chunked push.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ChunkedPushRequest, ChunkedPushResult } from '../run-context.js';
import { UploadError } from './errors.js';
import { uploadImage } from './image.js';
import { readImageForUpload } from './image-source.js';

export async function pushLocalImage(req: ChunkedPushRequest): Promise<ChunkedPushResult> {
  const dir = mkdtempSync(join(req.workDir, 'upload-'));
  let layerDigests: string[] = [];
  try {
    const image = await readImageForUpload(req.image, {
      env: req.env,
      workDir: dir,
      signal: req.signal,
      platform: req.platform ?? undefined,
      containerdStore: req.containerdStore,
    });
    layerDigests = image.layers.map((l) => l.digest);
    const result = await uploadImage(
      req.transport,
      req.repositoryPath,
      { manifest: image.manifest.bytes, config: image.config, layers: image.layers, tags: req.tags },
      { chunkSize: req.chunkSize, signal: req.signal, onEvent: req.onEvent, onProgress: req.onProgress },
    );
    return { ok: true, digest: result.digest };
  } catch (e) {
    const stop =
      e instanceof UploadError
        ? { status: e.status, phase: e.phase, message: e.message }
        : { status: null, phase: 'source', message: (e as Error).message };
    const at = e instanceof UploadError && e.digest ? layerDigests.indexOf(e.digest) : -1;
    return { ok: false, stop, layer: at >= 0 ? at + 1 : null };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
