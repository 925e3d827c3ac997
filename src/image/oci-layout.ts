// Which image of a saved archive to upload, and the manifest that names it. Pure: documents in, choices out.
// - containerd store: the platform manifest the image's index points to, its bytes unchanged (the registry then
//   holds the manifest `docker push --platform` would push). BuildKit's attestation manifests are skipped; when the
//   index holds several platforms, `platform` chooses.
// - classic store: a Docker v2 schema 2 manifest made here for the gzipped layers.
import { MEDIA_TYPES, platformString, type ManifestDoc, type Platform } from './oci.js';
import { layoutManifest, reachableManifests, type ReadDoc } from './saved-image.js';

// The descriptor and manifest shapes are the spec's (oci.ts); re-exported where the readers have always found them.
export type { Descriptor, ManifestDoc } from './oci.js';
export type { ReadDoc } from './saved-image.js';

export interface ManifestChoice {
  /** The manifest's exact bytes (its digest is theirs). */
  readonly bytes: Buffer;
  readonly digest: string;
  readonly mediaType: string;
  readonly doc: ManifestDoc;
  /** os/architecture[/variant], '' when neither the index nor the config says. */
  readonly platform: string;
}

/** Layer media types a content store keeps compressed (nondistributable/foreign variants are not in oci.ts). */
const COMPRESSED_LAYERS: ReadonlySet<string> = new Set([
  MEDIA_TYPES.ociLayerGzip,
  MEDIA_TYPES.ociLayerZstd,
  MEDIA_TYPES.dockerLayerGzip,
]);

/** "linux/arm64/v8" or a Platform -> Platform. */
export function parsePlatform(p: string | Platform): Platform {
  if (typeof p !== 'string') return p;
  const [os, architecture, variant] = p.split('/');
  if (!os || !architecture) throw new Error(`platform ${JSON.stringify(p)} is not os/architecture[/variant]`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** As containerd matches: os and architecture equal; a variant only when asked for (arm64's v8 is the default). */
export function platformMatches(want: Platform, have: Platform): boolean {
  if (want.os !== have.os || want.architecture !== have.architecture) return false;
  if (!want.variant) return true;
  const norm = (v?: string) => (have.architecture === 'arm64' && (v ?? 'v8') === 'v8' ? 'v8' : v);
  return norm(want.variant) === norm(have.variant);
}

/** Whether every layer the manifest names is compressed (a content store's blobs, not a classic store's tars). */
export function hasCompressedLayers(doc: ManifestDoc): boolean {
  return doc.layers.length > 0 && doc.layers.every((l) => COMPRESSED_LAYERS.has(l.mediaType ?? ''));
}

/**
 * The image manifest index.json leads to: attestations skipped, nested indexes followed, manifests the archive
 * does not hold left out (an index may list platforms the engine never pulled); several left: the one matching
 * `platform`, which must then be given. Throws naming what was found.
 */
export function selectManifest(read: ReadDoc, platform?: string | Platform): ManifestChoice {
  const want = platform === undefined || platform === '' ? null : parsePlatform(platform);
  const found = reachableManifests(read);
  const choices: ManifestChoice[] = found.flatMap((d) => layoutManifest(read, d, 'manifest') ?? []);
  if (choices.length === 0)
    throw new Error(`index.json leads to no image manifest the archive holds (${found.length} listed)`);
  const matching = want
    ? choices.filter((c) => c.platform && platformMatches(want, parsePlatform(c.platform)))
    : choices;
  const list = choices.map((c) => c.platform || c.digest).join(', ');
  if (matching.length === 0)
    throw new Error(`the image has no ${platformString(want as Platform)} manifest (it has ${list})`);
  if (matching.length > 1) throw new Error(`the image has ${matching.length} platforms (${list}); name one`);
  return matching[0];
}

/**
 * A Docker v2 schema 2 manifest, serialized one way only (keys in this order, three-space indent and no trailing
 * newline, as docker's own schema2 manifests are), so the same blobs always give the same manifest digest.
 */
export function dockerManifest(
  config: { readonly digest: string; readonly size: number },
  layers: readonly { readonly digest: string; readonly size: number }[],
): Buffer {
  const doc = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.dockerManifest,
    config: { mediaType: MEDIA_TYPES.dockerConfig, size: config.size, digest: config.digest },
    layers: layers.map((l) => ({ mediaType: MEDIA_TYPES.dockerLayerGzip, size: l.size, digest: l.digest })),
  };
  return Buffer.from(JSON.stringify(doc, null, 3));
}
