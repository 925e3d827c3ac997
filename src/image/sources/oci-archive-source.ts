// An OCI image layout in an uncompressed tar (`oci-archive:FILE[:REF]`, buildx `type=oci,dest=`), opened as the
// image model without extracting it: the tar's headers are read once and every blob is a byte range of the file.
import type { OpenedImage, OpenSourceOptions } from '../image-model.js';
import { ociLayoutImage } from './layout-image.js';
import { openTarFile, tarFiles } from './tar-file.js';

export async function openOciArchive(file: string, ref: string | null, opts: OpenSourceOptions): Promise<OpenedImage> {
  void opts;
  const name = `oci-archive:${file}${ref ? `:${ref}` : ''}`;
  try {
    const image = ociLayoutImage(tarFiles(file, await openTarFile(file, 'an OCI archive')), ref);
    return { image, name, close: async () => undefined };
  } catch (e) {
    throw new Error(`${name}: ${(e as Error).message}`, { cause: e });
  }
}
