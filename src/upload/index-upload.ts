// An index to the registry: each platform's blobs and manifest by digest (uploadImage), then the index under each tag.
import type { BlobSource } from '../image/blob-source.js';
import type { RegistryTransport } from './transport.js';
import type { UploadImageOptions } from './image.js';

export interface PlatformToUpload {
  /** The manifest exactly as it will be PUT. */
  readonly manifest: Buffer;
  readonly config: BlobSource;
  readonly layers: readonly BlobSource[];
  /** os/arch[/variant], for the result; '' when unknown. */
  readonly platform?: string;
}

export interface IndexToUpload {
  readonly bytes: Buffer;
  readonly mediaType: string;
  readonly manifests: readonly PlatformToUpload[];
}

export interface IndexUploadResult {
  /** sha256 of the index bytes, as the registry confirmed it. */
  readonly digest: string;
  readonly mediaType: string;
  /** Per platform manifest, in the order given. */
  readonly manifests: readonly { readonly platform: string; readonly digest: string }[];
  readonly references: readonly string[];
}

export async function uploadIndex(
  transport: RegistryTransport,
  repository: string,
  index: IndexToUpload,
  tags: readonly string[],
  opts: UploadImageOptions = {},
): Promise<IndexUploadResult> {
  void transport;
  void repository;
  void index;
  void tags;
  void opts;
  throw new Error('TODO: uploadIndex');
}
