// Which entries of a saved archive are the image's config and layers. `docker save` writes manifest.json in
// both layouts (Docker 25+ adds the OCI index.json beside it); a pure OCI archive has only index.json, whose
// image may sit behind nested indexes together with BuildKit's attestation manifests, which are skipped:
// the relayered archive holds the single platform image only.

import { blobName, INDEX_MEDIA_TYPES, isAttestation } from './oci.js';

export interface ImageRefs {
  /** Archive entry names. */
  readonly config: string;
  readonly layers: readonly string[];
  readonly source: 'manifest.json' | 'index.json';
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

function parse<T>(read: (name: string) => Buffer | undefined, name: string): T {
  const data = read(name);
  if (!data) throw new Error(`the archive has no ${name}`);
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch (e) {
    throw new Error(`${name} is not JSON: ${(e as Error).message}`, { cause: e });
  }
}

function fromLegacyManifest(read: (name: string) => Buffer | undefined): ImageRefs {
  const list = parse<Array<{ Config: string; Layers: string[] }>>(read, 'manifest.json');
  if (!Array.isArray(list) || list.length !== 1) {
    throw new Error(
      `manifest.json lists ${Array.isArray(list) ? list.length : 'no'} images; the relayer takes an archive of exactly one`,
    );
  }
  const [m] = list;
  if (typeof m.Config !== 'string' || !Array.isArray(m.Layers))
    throw new Error('manifest.json has no Config or Layers');
  return { config: m.Config, layers: m.Layers, source: 'manifest.json' };
}

function fromOciIndex(read: (name: string) => Buffer | undefined): ImageRefs {
  const images: Descriptor[] = [];
  const visit = (descriptors: Descriptor[], depth: number) => {
    if (depth > 4) throw new Error('index.json nests indexes too deeply');
    for (const d of descriptors) {
      if (isAttestation(d)) continue;
      if (d.mediaType && INDEX_MEDIA_TYPES.has(d.mediaType))
        visit(parse<{ manifests: Descriptor[] }>(read, blobName(d.digest)).manifests ?? [], depth + 1);
      else images.push(d);
    }
  };
  visit(parse<{ manifests: Descriptor[] }>(read, 'index.json').manifests ?? [], 0);
  const distinct = [...new Map(images.map((d) => [d.digest, d])).values()];
  if (distinct.length !== 1) {
    const platforms = distinct.map(
      (d) => [d.platform?.os, d.platform?.architecture, d.platform?.variant].filter(Boolean).join('/') || d.digest,
    );
    throw new Error(
      `index.json holds ${distinct.length} images (${platforms.join(', ')}); the relayer takes exactly one`,
    );
  }
  const manifest = parse<{ config: Descriptor; layers: Descriptor[] }>(read, blobName(distinct[0].digest));
  return {
    config: blobName(manifest.config.digest),
    layers: manifest.layers.map((l) => blobName(l.digest)),
    source: 'index.json',
  };
}

export function resolveImage(read: (name: string) => Buffer | undefined): ImageRefs {
  return read('manifest.json') ? fromLegacyManifest(read) : fromOciIndex(read);
}
