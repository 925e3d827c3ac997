// The image model: what every image source yields and every uploader takes (issue 17's seam). A source (the engine,
// an OCI layout, an archive, another registry, the split's pieces) opens to a SourceImage: one image manifest, or an
// index of platform manifests, each with a BlobSource per blob. Nothing here reads or writes; the sources live
// beside their transport (image/sources/, registry/registry-source.ts), the uploaders in upload/.
import { bufferBlobSource, sha256Digest, type BlobSource } from './blob-source.js';
import { MEDIA_TYPES } from './oci.js';
import { dockerManifest, type Descriptor } from './oci-layout.js';

/** One image manifest, its bytes exact (its digest is theirs), with a BlobSource for its config and each layer. */
export interface ManifestImage {
  readonly kind: 'manifest';
  readonly bytes: Buffer;
  /** sha256 of `bytes`. */
  readonly digest: string;
  readonly mediaType: string;
  /** os/architecture[/variant] as the index or the config says; '' when neither does. */
  readonly platform: string;
  readonly config: BlobSource;
  /** In the manifest's order (an image may name a layer twice). */
  readonly layers: readonly BlobSource[];
}

/** An index as the source holds it: its platform manifests, and the attestation manifests BuildKit adds beside them. */
export interface IndexImage {
  readonly kind: 'index';
  /** The source's own index bytes (pushed unchanged when nothing is left out). */
  readonly bytes: Buffer;
  readonly digest: string;
  readonly mediaType: string;
  /** Every descriptor of the index, in its order, exactly as written (platform, annotations kept). */
  readonly descriptors: readonly Descriptor[];
  /** The image manifests the descriptors name, in index order; a descriptor the source lacks is left out. */
  readonly manifests: readonly ManifestImage[];
  /** The attestation manifests (isAttestation), in index order, their blobs readable as the platforms' are. */
  readonly attestations: readonly ManifestImage[];
}

export type SourceImage = ManifestImage | IndexImage;

/** A source opened for one run: the image, and what it holds open until the run ends. */
export interface OpenedImage {
  readonly image: SourceImage;
  /** The transport-qualified name, for the log (`oci:out/app:1.0`, `docker://ghcr.io/o/app@sha256:…`). */
  readonly name: string;
  /** Releases what the source holds open (files, spill space); called once, when the run ends. */
  close(): Promise<void>;
}

/** Every manifest of an image (one, or the index's platforms), for callers that treat both alike. */
export function platformManifests(image: SourceImage): readonly ManifestImage[] {
  return image.kind === 'manifest' ? [image] : image.manifests;
}

/** The image of a config and gzip layers under a Docker v2 schema 2 manifest made here (oci-layout.ts). */
export function dockerManifestImage(config: Buffer, layers: readonly BlobSource[], platform: string): ManifestImage {
  const configBlob = bufferBlobSource(config, MEDIA_TYPES.dockerConfig);
  const bytes = dockerManifest(configBlob, layers);
  const mediaType = MEDIA_TYPES.dockerManifest;
  return { kind: 'manifest', bytes, digest: sha256Digest(bytes), mediaType, platform, config: configBlob, layers };
}

/** What every source's open takes; a source that needs more (credentials) extends it. */
export interface OpenSourceOptions {
  /** Scratch space the source may write to (a classic layer gzipped); the run removes it. */
  readonly workDir: string;
  readonly signal?: AbortSignal;
}
