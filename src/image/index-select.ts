// Which manifests of an index to push, and the index that lists them. Pure.
import type { IndexImage, ManifestImage } from './image-model.js';

export interface SelectPlatformsOptions {
  /** os/arch[/variant] to keep; null: every platform. */
  readonly platforms: readonly string[] | null;
  readonly attestations: 'strip' | 'keep';
}

export interface SelectedIndex {
  readonly bytes: Buffer;
  readonly digest: string;
  readonly mediaType: string;
  readonly manifests: readonly ManifestImage[];
  readonly attestations: readonly ManifestImage[];
  /** False when the bytes are the source's own. */
  readonly changed: boolean;
}

export function selectPlatforms(index: IndexImage, opts: SelectPlatformsOptions): SelectedIndex {
  void opts;
  return {
    bytes: index.bytes,
    digest: index.digest,
    mediaType: index.mediaType,
    manifests: index.manifests,
    attestations: index.attestations,
    changed: false,
  };
}
