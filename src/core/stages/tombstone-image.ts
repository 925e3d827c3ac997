// The tombstone, made in memory: what `docker import` of an empty tar made before (one layer, an empty tar: two zero
// blocks; a config with the tombstone label), as a Docker v2 manifest the action's uploader sends. No engine is
// needed, and the registry sees what it saw before: one empty layer, a config, a schema 2 manifest. The config has
// a fixed creation time, so every tombstone is the same image (the same digest), as an empty image should be.
import { gzipSync } from 'node:zlib';
import { bufferBlobSource, sha256Digest } from '../../image/blob-source.js';
import { dockerManifestImage, type ManifestImage, type OpenedImage } from '../../image/image-model.js';
import { MEDIA_TYPES } from '../../image/oci.js';

/** The label docker import was given (`--change LABEL ...`): how a person tells a tombstone from an image. */
export const TOMBSTONE_LABEL = 'com.replicated-push.tombstone';
export const TOMBSTONE_NAME = 'tombstone (an empty image made by the action)';

/** A tar archive's end marker and nothing else: an archive of no files. */
const EMPTY_TAR = Buffer.alloc(1024);
const CREATED = '1970-01-01T00:00:00Z';

export function tombstoneImage(): ManifestImage {
  const layer = bufferBlobSource(gzipSync(EMPTY_TAR, { level: 9 }), MEDIA_TYPES.dockerLayerGzip);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: CREATED,
      comment: 'replicated-push tombstone',
      config: { Labels: { [TOMBSTONE_LABEL]: 'true' } },
      history: [{ created: CREATED, created_by: 'replicated-push tombstone', comment: 'replicated-push tombstone' }],
      rootfs: { type: 'layers', diff_ids: [sha256Digest(EMPTY_TAR)] },
    }),
  );
  return dockerManifestImage(config, [layer], 'linux/amd64');
}

/** The tombstone as an opened source: nothing to release. */
export function openTombstone(): OpenedImage {
  return { image: tombstoneImage(), name: TOMBSTONE_NAME, close: async () => undefined };
}
