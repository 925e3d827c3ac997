// Where each file of a tar on disk starts and how long it is, from its headers alone: the headers are read at
// their offsets and the data between them is skipped, never read, so an archive of any size is indexed in a few
// small reads, and each file can then be served as a byte range of the tar (an OCI archive's blobs, a saved
// image's layers) without extracting anything. The headers are decoded and checked as the layer scanner does
// (tar-header.ts, tar-extensions.ts: the rules of Go's archive/tar, which wrote and reads these archives).
import { open, type FileHandle } from 'node:fs/promises';
import { checkExtensionSize, checkGlobalRecords, hasExtensionData, paxNumber } from './tar-extensions.js';
import {
  addLink,
  BLOCK,
  checkedSize,
  decodeHeader,
  followLinks,
  isZeroBlock,
  normalizePath,
  paddedSize,
  parsePaxRecords,
  quoted,
  TarFormatError,
} from './tar-header.js';

export interface TarFileEntry {
  /** Normalized (tar-header.ts normalizePath). */
  readonly name: string;
  /** Offset of the file's first data byte in the tar. */
  readonly offset: number;
  readonly size: number;
}

export interface TarIndex {
  /** A regular file by normalized name; a symlinked or hardlinked name resolves to its target. */
  get(name: string): TarFileEntry | undefined;
  readonly files: ReadonlyMap<string, TarFileEntry>;
  /** The tar's size in bytes. */
  readonly size: number;
}

/** More entries than any image archive holds (one per blob and directory): past it the tar is not one. */
export const MAX_TAR_ENTRIES = 100_000;
const PAX_KEYS: ReadonlySet<string> = new Set(['path', 'linkpath', 'size']);
// Go skips no data for these, whatever their size field says.
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

/** What the extension headers before an entry said (the last of each kind, as Go reads them). */
interface Pending {
  pax: Map<string, string>;
  longName: string;
  longLink: string;
}

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await fh.read(buffer, filled, length - filled, offset + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled === length ? buffer : buffer.subarray(0, filled);
}

function nulText(data: Buffer): string {
  const nul = data.indexOf(0);
  return data.toString('latin1', 0, nul < 0 ? data.length : nul);
}

/** Reads one extension header's data into `pending`; returns the offset after it. */
async function readExtension(fh: FileHandle, at: number, block: Buffer, pending: Pending, size: number) {
  const header = decodeHeader(block, at);
  checkExtensionSize(header, at);
  if (at + BLOCK + header.size > size) throw new TarFormatError('truncated tar archive in an extension header', at);
  const data = await readAt(fh, at + BLOCK, header.size);
  if (header.typeflag === 'x') pending.pax = parsePaxRecords(data, at, PAX_KEYS);
  else if (header.typeflag === 'L') pending.longName = nulText(data);
  else if (header.typeflag === 'K') pending.longLink = nulText(data);
  else checkGlobalRecords(data, at);
  return at + BLOCK + paddedSize(header.size);
}

/**
 * Indexes the tar at `path` (see the top of this file). Throws a TarFormatError naming the byte where the tar is
 * not one, or an error from the file system.
 */
export async function indexTarFile(path: string): Promise<TarIndex> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const files = new Map<string, TarFileEntry>();
    const links = new Map<string, string>();
    let pending: Pending = { pax: new Map(), longName: '', longLink: '' };
    let entries = 0;
    let zeros = 0;
    for (let at = 0; ;) {
      const block = await readAt(fh, at, BLOCK);
      // Go accepts an archive that ends after a whole entry without its zero blocks.
      if (block.length === 0 && at > 0 && zeros === 0) break;
      if (block.length < BLOCK) throw new TarFormatError('truncated tar archive', at);
      if (isZeroBlock(block)) {
        if (++zeros === 2) break;
        at += BLOCK;
        continue;
      }
      if (zeros > 0) throw new TarFormatError('single zero block inside the archive', at);
      if (++entries > MAX_TAR_ENTRIES) throw new TarFormatError(`more than ${MAX_TAR_ENTRIES} entries`, at);
      const header = decodeHeader(block, at);
      if (hasExtensionData(header.typeflag)) {
        at = await readExtension(fh, at, block, pending, size);
        continue;
      }
      if (header.typeflag === 'S') throw new TarFormatError('a GNU sparse entry, which no image archive holds', at);
      const name = normalizePath(pending.longName || (pending.pax.get('path') ?? header.name));
      const paxSize = pending.pax.get('size');
      const declared = paxSize === undefined ? header.size : paxNumber(paxSize);
      const dataSize = HEADER_ONLY.has(header.typeflag) ? 0 : declared;
      const padded = checkedSize(dataSize, quoted(name), at, at + BLOCK);
      if (at + BLOCK + dataSize > size)
        throw new TarFormatError(`${quoted(name)} runs past the end of the tar (${size} bytes)`, at);
      const link = pending.longLink || (pending.pax.get('linkpath') ?? header.linkname);
      if (header.typeflag === '0' || header.typeflag === '7')
        files.set(name, { name, offset: at + BLOCK, size: dataSize });
      else if (header.typeflag === '1' || header.typeflag === '2') addLink(links, name, header.typeflag === '2', link);
      pending = { pax: new Map(), longName: '', longLink: '' };
      at += BLOCK + padded;
    }
    return { files, size, get: (name: string) => followLinks(name, files, links) };
  } finally {
    await fh.close();
  }
}
