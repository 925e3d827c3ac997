// Media types, attestation detection and platform strings: the OCI image-spec / Docker distribution facts the
// action reads and writes, written once. Pure.

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** Media types of a list of manifests (one per platform, plus attestations on a buildx image). */
export const INDEX_MEDIA_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);

/** Everything a tag can resolve to, for an Accept header: indexes first, as docker asks. */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.dockerManifest,
].join(', ');

export interface Platform {
  readonly os?: string;
  readonly architecture?: string;
  readonly variant?: string;
}

/** An OCI content descriptor, as an index or a manifest lists it. */
export interface Descriptor {
  readonly mediaType?: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: Platform;
  readonly annotations?: Record<string, string>;
}

/** An image manifest's fields the readers use. */
export interface ManifestDoc {
  readonly schemaVersion?: number;
  readonly mediaType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

/** os/architecture[/variant], as `docker push --platform` takes it. */
export function platformString(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** BuildKit's annotation on the manifest that holds provenance/SBOM for its sibling. */
export const ATTESTATION_ANNOTATION = 'vnd.docker.reference.type';
export const ATTESTATION_REFERENCE_TYPE = 'attestation-manifest';

/**
 * Whether an index entry is an attestation manifest rather than an image: BuildKit annotates it and gives it the
 * platform unknown/unknown; the engine API (1.48+) also says Kind "attestation".
 */
export function isAttestation(d: {
  Kind?: string;
  annotations?: Record<string, string>;
  platform?: Platform;
}): boolean {
  return (
    d.Kind === 'attestation' ||
    d.annotations?.[ATTESTATION_ANNOTATION] === ATTESTATION_REFERENCE_TYPE ||
    (d.platform?.os === 'unknown' && d.platform?.architecture === 'unknown')
  );
}

/** Where a blob lives in an OCI layout or a saved archive: `blobs/sha256/HEX`; anything but a sha256 digest throws
 *  (a name from an untrusted index must never reach outside blobs/). */
export function blobName(digest: string): string {
  const m = /^(sha256):([a-f0-9]{64})$/.exec(digest);
  if (!m) throw new Error(`malformed digest ${JSON.stringify(digest)}`);
  return `blobs/${m[1]}/${m[2]}`;
}

/** The short form of a digest the log uses, as docker prints layer IDs: 12 hex digits. */
export function shortDigest(digest: string): string {
  return digest.replace(/^[a-z0-9]+:/, '').slice(0, 12);
}
