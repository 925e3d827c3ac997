// Which entries of a saved archive are the image's config and layers, for the split (which takes exactly one
// image). `docker save` writes manifest.json in both layouts (Docker 25+ adds the OCI index.json beside it); a pure
// OCI archive has only index.json, whose image may sit behind nested indexes together with BuildKit's attestation
// manifests, which are skipped. What the documents say is read in saved-image.ts, as every archive reader does.
import { blobName, platformString } from './oci.js';
import type { ManifestDoc, ReadDoc } from './oci-layout.js';
import { parseJson, reachableManifests, savedManifest } from './saved-image.js';

export interface ImageRefs {
  /** Archive entry names. */
  readonly config: string;
  readonly layers: readonly string[];
  readonly source: 'manifest.json' | 'index.json';
}

function fromLegacyManifest(read: ReadDoc): ImageRefs {
  const list = savedManifest(read);
  if (list.length !== 1)
    throw new Error(`manifest.json lists ${list.length} images; the relayer takes an archive of exactly one`);
  return { config: list[0].config, layers: list[0].layers, source: 'manifest.json' };
}

function fromOciIndex(read: ReadDoc): ImageRefs {
  const distinct = reachableManifests(read);
  if (distinct.length !== 1) {
    const platforms = distinct.map((d) => (d.platform && platformString(d.platform)) || d.digest);
    throw new Error(
      `index.json holds ${distinct.length} images (${platforms.join(', ')}); the relayer takes exactly one`,
    );
  }
  const name = blobName(distinct[0].digest);
  const bytes = read(name);
  if (!bytes) throw new Error(`the archive has no ${name}`);
  const manifest = parseJson<ManifestDoc>(bytes, name);
  return {
    config: blobName(manifest.config.digest),
    layers: manifest.layers.map((l) => blobName(l.digest)),
    source: 'index.json',
  };
}

export function resolveImage(read: ReadDoc): ImageRefs {
  return read('manifest.json') ? fromLegacyManifest(read) : fromOciIndex(read);
}
