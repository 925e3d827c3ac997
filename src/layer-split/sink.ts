// Where the relayer's output goes. The planning and cutting (relayer.ts, piece-writer.ts) are the same whether the
// new image becomes a `docker load` archive (archive-sink.ts, for upload: docker) or compressed blob files that the
// action uploads itself (blob-sink.ts): only these three steps differ.
import type { ArchiveEntry } from '../image/docker-archive-stream.js';

export type ChunkWriter = (chunk: Buffer) => Promise<void>;

export interface LayerSink {
  /**
   * One new layer (a piece): `size` bytes of uncompressed tar that `fill` writes, in order, with back-pressure.
   * `name` is unique within the image.
   */
  layer(name: string, size: number, fill: (write: ChunkWriter) => Promise<void>): Promise<void>;
  /**
   * A layer kept whole, as the saved archive holds it (`open` gives its uncompressed tar). Returns the name the
   * image lists it by.
   */
  kept(entry: ArchiveEntry, diffId: string, open: () => AsyncIterable<Buffer>): Promise<string>;
  /** The new config and the image's layers by name, in order: the output is complete. Returns what was written. */
  finish(config: Buffer, configDigest: string, layers: readonly string[]): Promise<string>;
}
