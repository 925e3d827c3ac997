// A tar file an image source reads in place: told apart from what it is not (a gzipped tarball, anything else)
// by its first block, then indexed from its headers (tar-index.ts) so that each file is a byte range of it.
import { open } from 'node:fs/promises';
import { detectCompression } from '../compression.js';
import { indexTarFile, type TarIndex } from '../tar-index.js';
import { BLOCK, isHeaderBlock, isZeroBlock, TarFormatError } from '../tar-header.js';
import type { FindFile } from './layout-image.js';

async function firstBlock(file: string): Promise<Buffer> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`no such file ${file}`, { cause: e });
    if (code === 'EISDIR') throw new Error(`${file} is a directory, not a tar file`, { cause: e });
    throw new Error(`cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const head = Buffer.alloc(BLOCK);
    const { bytesRead } = await fh.read(head, 0, BLOCK, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** The tar's index; a compressed file, or one that is no tar, is refused saying what it is. */
export async function openTarFile(file: string, what: string): Promise<TarIndex> {
  const head = await firstBlock(file);
  const compression = detectCompression(head);
  if (compression !== 'none')
    throw new Error(
      `${file} is ${compression}-compressed; ${what} is read as an uncompressed tar (decompress it first)`,
    );
  if (head.length < BLOCK || !(isHeaderBlock(head) || isZeroBlock(head)))
    throw new Error(`${file} is not a tar file, so not ${what}`);
  try {
    return await indexTarFile(file);
  } catch (e) {
    if (e instanceof TarFormatError) throw new Error(`${file} is not a valid tar file: ${e.message}`, { cause: e });
    throw e;
  }
}

/** The tar's files as layout files: byte ranges of `file`. */
export function tarFiles(file: string, index: TarIndex): FindFile {
  return (name) => {
    const entry = index.get(name);
    return entry && { file, offset: entry.offset, size: entry.size };
  };
}
