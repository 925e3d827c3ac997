// Another registry as the image's source (`docker://HOST/REPO[:TAG|@DIGEST]`): its manifest (or index and every
// child manifest) fetched and checked against its digest, and every blob a BlobSource that streams from the
// registry with a Range request, resuming by itself after a reset or a stall.
import type { OpenedImage, OpenSourceOptions } from '../image/image-model.js';
import type { Credentials, RegistryClientOptions } from './registry-client.js';

export interface RegistrySourceRef {
  readonly host: string;
  readonly repository: string;
  /** A tag or a digest (`sha256:…`). */
  readonly reference: string;
}

export interface RegistrySourceOptions extends OpenSourceOptions, RegistryClientOptions {
  /** null: anonymous. */
  readonly credentials: Credentials | null;
  /** A blob read that receives nothing for this long is cut and resumed; default 60 s. */
  readonly idleMs?: number;
  /** Resumes one blob read may make after a reset or stall; default 5. */
  readonly maxResumes?: number;
}

export async function openRegistrySource(src: RegistrySourceRef, opts: RegistrySourceOptions): Promise<OpenedImage> {
  void src;
  void opts;
  throw new Error('not yet');
}
