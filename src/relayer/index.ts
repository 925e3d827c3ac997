// Re-layering (issue 5): rewrites an image so no layer is bigger than a limit, with the same filesystem.
// relayerArchive works on archive streams; relayerImage wraps it between `docker save` and `docker load`.
export { relayerArchive } from './relayer.js';
export { relayerImage } from './docker-pipe.js';
export type { LayerReport, PieceReport, RelayerOptions, RelayerReport, UnsplittableEntry } from './types.js';
