// An OCI image layout in an uncompressed tar (`oci-archive:FILE[:REF]`), opened as the image model.
import type { OpenedImage, OpenSourceOptions } from '../image-model.js';

export async function openOciArchive(file: string, ref: string | null, opts: OpenSourceOptions): Promise<OpenedImage> {
  void file;
  void ref;
  void opts;
  throw new Error('TODO: oci archive source');
}
