// The relayer's public shapes (re-exported by index.ts).

export interface RelayerOptions {
  /** Bytes of uncompressed layer tar each piece should stay at or under. */
  maxLayerSize: number;
  /**
   * diffId -> target piece size. When given, only these layers are split (adaptive re-splitting after a 524);
   * otherwise every layer whose uncompressed size is over maxLayerSize is split to maxLayerSize.
   */
  split?: Map<string, number>;
  /** repo:tag the loaded image carries (RepoTags of the archive written); unused by a blob output. */
  tag: string;
  /** Temp space the caller owns and removes; the relayer uses a subdirectory, at most about the archive's size. */
  workDir: string;
  log: (line: string) => void;
  /**
   * When no layer needs splitting, write nothing and end the output (relayerImage uses this to skip a
   * `docker load` that would change nothing). Default false: the output always holds a loadable archive.
   */
  skipUnchanged?: boolean;
}

export interface PieceReport {
  diffId: string;
  /** Uncompressed bytes. */
  size: number;
}

export interface LayerReport {
  /** The original layer's diff ID. */
  diffId: string;
  /** Uncompressed bytes (for a compressed layer this runtime cannot decompress, the blob's size). */
  size: number;
  /** The history entry that made the layer, '' when history does not match the layers. */
  createdBy: string;
  /** What replaces the layer in the new image, in order: the layer itself when it is not split. */
  pieces: PieceReport[];
}

export interface UnsplittableEntry {
  /** Absolute path in the image filesystem. */
  path: string;
  size: number;
  layerDiffId: string;
}

export interface RelayerReport {
  /** True when at least one layer was split. */
  changed: boolean;
  /** sha256 of the new image's config. */
  configDigest: string;
  layers: LayerReport[];
  /** Single entries bigger than the piece size: each went into a piece of its own. */
  unsplittable: UnsplittableEntry[];
}
