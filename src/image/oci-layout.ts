// Which image of a saved archive to upload, and the manifest that names it. Pure: documents in, choices out.
// - containerd store: the platform manifest the image's index points to, its bytes unchanged (the registry then
//   holds the manifest `docker push --platform` would push). BuildKit's attestation manifests are skipped; when the
//   index holds several platforms, `platform` chooses.
// - classic store: a Docker v2 schema 2 manifest made here for the gzipped layers.
import { blobName, INDEX_MEDIA_TYPES, isAttestation, MEDIA_TYPES, platformString, type Platform } from './oci.js';

export interface Descriptor {
  readonly mediaType?: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: Platform;
  readonly annotations?: Record<string, string>;
}

export interface ManifestDoc {
  readonly schemaVersion?: number;
  readonly mediaType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

export interface ManifestChoice {
  /** The manifest's exact bytes (its digest is theirs). */
  readonly bytes: Buffer;
  readonly digest: string;
  readonly mediaType: string;
  readonly doc: ManifestDoc;
  /** os/architecture[/variant], '' when neither the index nor the config says. */
  readonly platform: string;
}

export type ReadDoc = (name: string) => Buffer | undefined;

const MANIFEST_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
/** Layer media types a content store keeps compressed (nondistributable/foreign variants are not in oci.ts). */
const COMPRESSED_LAYERS: ReadonlySet<string> = new Set([
  MEDIA_TYPES.ociLayerGzip,
  MEDIA_TYPES.ociLayerZstd,
  MEDIA_TYPES.dockerLayerGzip,
]);

function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw new Error(`${what} is not JSON: ${(e as Error).message}`, { cause: e });
  }
}

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
  const indexBytes = read('index.json');
  if (!indexBytes) throw new Error('the archive has no index.json');
  const found: Descriptor[] = [];
  const visit = (manifests: readonly Descriptor[] | undefined, depth: number) => {
    if (depth > 4) throw new Error('index.json nests indexes too deeply');
    for (const d of manifests ?? []) {
      if (isAttestation(d)) continue;
      if (d.mediaType && INDEX_MEDIA_TYPES.has(d.mediaType)) {
        const nested = read(blobName(d.digest));
        if (!nested) throw new Error(`the archive lacks the index ${d.digest}`);
        visit(parseJson<{ manifests?: Descriptor[] }>(nested, `index ${d.digest}`).manifests, depth + 1);
      } else if (!d.mediaType || MANIFEST_TYPES.has(d.mediaType)) found.push(d);
    }
  };
  visit(parseJson<{ manifests?: Descriptor[] }>(indexBytes, 'index.json').manifests, 0);

  const choices = [...new Map(found.map((d) => [d.digest, d])).values()].flatMap((d): ManifestChoice[] => {
    const bytes = read(blobName(d.digest));
    if (!bytes) return [];
    const doc = parseJson<ManifestDoc>(bytes, `manifest ${d.digest}`);
    if (!doc.config?.digest || !Array.isArray(doc.layers)) throw new Error(`manifest ${d.digest} names no config`);
    const mediaType = doc.mediaType ?? d.mediaType ?? MEDIA_TYPES.ociManifest;
    let p = d.platform;
    if (!p?.os) {
      const config = read(blobName(doc.config.digest));
      p = config ? parseJson<Platform>(config, `config ${doc.config.digest}`) : undefined;
    }
    const plat = p ? platformString({ os: p.os, architecture: p.architecture, variant: p.variant }) : '';
    return [{ bytes, digest: d.digest, mediaType, doc, platform: plat }];
  });
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
