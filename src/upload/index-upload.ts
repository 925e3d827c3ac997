// An index to the registry: each manifest it lists uploaded first (uploadImage with no tags: its blobs, skipping
// what the registry holds, and the manifest PUT by digest), then the index under every tag, by digest when there are
// none. A registry refuses an index that names a manifest it does not hold, so the order is the protocol's.
import { sha256Digest } from '../image/blob-source.js';
import type { IndexImage } from '../image/image-model.js';
import { INDEX_MEDIA_TYPES } from '../image/oci.js';
import { UploadError } from './errors.js';
import { putManifest, uploadImage, type ImageUploadResult, type UploadImageOptions } from './image.js';
import type { RegistryTransport } from './transport.js';

/** What the uploader reads of an IndexImage (or of the index selectPlatforms made from one). */
export type IndexBlobs = Pick<IndexImage, 'bytes' | 'mediaType' | 'manifests' | 'attestations'>;

export interface IndexUploadResult {
  /** sha256 of the index bytes, as the registry confirmed it. */
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  /** Per manifest, in the order given: the platforms, then the attestations. */
  readonly manifests: readonly {
    readonly platform: string;
    readonly digest: string;
    readonly result: ImageUploadResult;
  }[];
  readonly references: readonly string[];
}

function indexError(message: string, digest: string): UploadError {
  return new UploadError(message, 'manifest', digest, null);
}

/** Throws unless it is an index whose every entry is among the given manifests (its platforms and attestations). */
function checkIndex(index: IndexBlobs, digest: string): void {
  if (!INDEX_MEDIA_TYPES.has(index.mediaType))
    throw indexError(`${index.mediaType} is not an index media type`, digest);
  let doc: { manifests?: Array<{ digest?: unknown }> };
  try {
    doc = JSON.parse(index.bytes.toString('utf8')) as typeof doc;
  } catch (e) {
    throw new UploadError('the index is not JSON', 'manifest', digest, null, false, { cause: e });
  }
  const given = new Set([...index.manifests, ...index.attestations].map((m) => sha256Digest(m.bytes)));
  for (const d of doc.manifests ?? [])
    if (typeof d?.digest !== 'string' || !given.has(d.digest))
      throw indexError(`the index lists ${String(d?.digest)}, which is not among the manifests given`, digest);
}

export async function uploadIndex(
  transport: RegistryTransport,
  repository: string,
  index: IndexBlobs,
  tags: readonly string[],
  opts: UploadImageOptions = {},
): Promise<IndexUploadResult> {
  const digest = sha256Digest(index.bytes);
  checkIndex(index, digest);
  const platformOpts: UploadImageOptions = { ...opts, onManifest: undefined };
  const manifests: IndexUploadResult['manifests'][number][] = [];
  // One manifest at a time: platforms share blobs (a base layer), and the second finds them by HEAD.
  for (const m of [...index.manifests, ...index.attestations]) {
    const result = await uploadImage(transport, repository, m, [], platformOpts);
    manifests.push({ platform: m.platform, digest: result.digest, result });
  }
  const references = tags.length ? [...tags] : [digest];
  for (const reference of references) {
    await putManifest(transport, repository, reference, index.bytes, index.mediaType, digest, opts);
    opts.onManifest?.({ reference, digest });
  }
  return { digest, mediaType: index.mediaType, size: index.bytes.length, manifests, references };
}
