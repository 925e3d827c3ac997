// Re-layering (issue 5): rewrites an image so no layer is bigger than a limit, with the same filesystem.
// relayerArchive works on archive streams; relayerImage wraps it between `docker save` and `docker load`;
// relayerBlobs writes the new image as blobs for the action's own upload (no `docker load`).
export { relayerArchive } from './relayer.js';
export { relayerBlobs, relayerImage, type BlobsOptions, type RelayeredBlobs } from './docker-pipe.js';
export { relayerToSink, type SinkOptions } from './relayer.js';
export { BlobSink } from './blob-sink.js';
export type { LayerReport, PieceReport, RelayerOptions, RelayerReport, UnsplittableEntry } from './types.js';
