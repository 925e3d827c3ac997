// `docker save` output (either store) or buildx `type=docker,dest=` (`docker-archive:FILE[:NAME]`) as the image model.
import type { OpenedImage, OpenSourceOptions } from '../image-model.js';

export async function openDockerArchive(
  file: string,
  name: string | null,
  opts: OpenSourceOptions,
): Promise<OpenedImage> {
  void file;
  void name;
  void opts;
  throw new Error('TODO: docker archive source');
}
