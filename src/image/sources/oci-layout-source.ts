// An OCI image layout directory (`oci:DIR[:REF]`, buildx `type=oci,tar=false`) opened as the image model.
import type { OpenedImage, OpenSourceOptions } from '../image-model.js';

export async function openOciLayout(dir: string, ref: string | null, opts: OpenSourceOptions): Promise<OpenedImage> {
  void dir;
  void ref;
  void opts;
  throw new Error('TODO: oci layout source');
}
