// An OCI image layout directory (`oci:DIR[:REF]`, buildx `type=oci,tar=false`) opened as the image model: REF picks
// the index.json entry of that ref name, the blobs are the layout's files, read when the uploader asks.
import { statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { OpenedImage, OpenSourceOptions } from '../image-model.js';
import { ociLayoutImage, type FindFile } from './layout-image.js';

/** A layout file: a regular file under `dir`, by the layout's own name for it (checked by blobName upstream). */
function dirFiles(dir: string): FindFile {
  return (name) => {
    const file = join(dir, name);
    try {
      const s = statSync(file);
      return s.isFile() ? { file, offset: 0, size: s.size } : undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  };
}

async function checkDirectory(dir: string): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `no such directory ${dir}` : `cannot read ${dir}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (!isDir) throw new Error(`${dir} is not a directory (an OCI archive is named oci-archive:${dir})`);
}

export async function openOciLayout(dir: string, ref: string | null, opts: OpenSourceOptions): Promise<OpenedImage> {
  void opts;
  const name = `oci:${dir}${ref ? `:${ref}` : ''}`;
  try {
    await checkDirectory(dir);
    const image = ociLayoutImage(dirFiles(dir), ref);
    return { image, name, close: async () => undefined };
  } catch (e) {
    throw new Error(`${name}: ${(e as Error).message}`, { cause: e });
  }
}
