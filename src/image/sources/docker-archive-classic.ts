// A classic-store image of a `docker save` archive: its layers are uncompressed tars, which a registry takes only
// compressed, so each is gzipped into the work directory, deterministically (gzip.ts: the same layer always gives
// the same blob, and a re-push finds it by HEAD), its own bytes hashed on the way and checked against the config's
// diff ID. The manifest is a Docker v2 schema 2 one made as the engine's save path makes it (oci-layout.ts).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileBlobSource, type BlobSource } from '../blob-source.js';
import { gzipToFile } from '../docker-archive-stream.js';
import { dockerManifestImage, type ManifestImage } from '../image-model.js';
import { MEDIA_TYPES } from '../oci.js';
import type { ClassicImage } from '../saved-image.js';
import { logText } from '../../util/untrusted.js';
import type { FindFile, FileRange } from './layout-image.js';

/** Gzips a layer's byte range into `out`: the tar's own digest (its diff ID) and the gzip blob's. */
async function gzipRange(range: FileRange, out: string, signal?: AbortSignal) {
  const raw = createHash('sha256');
  const input =
    range.size === 0
      ? Readable.from([])
      : createReadStream(range.file, {
          start: range.offset,
          end: range.offset + range.size - 1,
          highWaterMark: 1 << 20,
          signal,
        });
  const hashed = async function* () {
    for await (const chunk of input) {
      raw.update(chunk as Buffer);
      yield chunk as Buffer;
    }
  };
  try {
    const gz = await gzipToFile(hashed(), out);
    return { diffId: `sha256:${raw.digest('hex')}`, digest: gz.digest };
  } finally {
    input.destroy();
  }
}

/** Null when the config's layer `i` (from 0) hashes, as a tar, to `actual`, its diff ID; else why it is refused. */
export function diffIdMismatch(layer: ClassicImage['layers'][number], i: number, actual: string): string | null {
  if (actual === layer.diffId) return null;
  return `the layer ${logText(layer.name)} hashes to ${actual}, the config names ${layer.diffId} (layer ${i + 1})`;
}

/** The image, its layers gzipped into `workDir` (created if missing; the run removes it). */
export async function classicManifestImage(
  find: FindFile,
  image: ClassicImage,
  workDir: string,
  signal?: AbortSignal,
): Promise<ManifestImage> {
  await mkdir(workDir, { recursive: true });
  const done = new Map<string, BlobSource>();
  const layers: BlobSource[] = [];
  for (const [i, layer] of image.layers.entries()) {
    let blob = done.get(layer.name);
    if (!blob) {
      const range = find(layer.name);
      if (!range) throw new Error(`the archive lacks the layer ${logText(layer.name)}`);
      const out = join(workDir, `layer-${done.size + 1}.tar.gz`);
      const gz = await gzipRange(range, out, signal);
      const mismatch = diffIdMismatch(layer, i, gz.diffId);
      if (mismatch) throw new Error(mismatch);
      blob = await fileBlobSource(out, MEDIA_TYPES.dockerLayerGzip, gz.digest);
      done.set(layer.name, blob);
    }
    layers.push(blob);
  }
  return dockerManifestImage(image.configBytes, layers, image.platform);
}
