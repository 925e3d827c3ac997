// The 512-byte tar header block. Layer entries are copied byte for byte, never re-encoded, so decoding only
// needs what locates an entry (its size and extension headers) and what the split rules look at (path, type,
// link target). Encoding exists for the outer archive, whose entries are plain files with short names.
//
// Strings are decoded as latin1: one char per byte, so a path compares equal to itself whether it came from
// a ustar field or a pax record, whatever its encoding. Convert with `displayPath` before showing it.
import { posix } from 'node:path';
import { logText } from '../util/untrusted.js';

export const BLOCK = 512;
/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);

export class TarFormatError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at byte ${offset}`);
    this.name = 'TarFormatError';
  }
}

/**
 * What the scanner reads of a header: what locates an entry and what the split rules look at. Everything else
 * (mode, owner, times, device numbers) reaches the pieces as the original bytes and is never decoded.
 */
export interface TarHeader {
  readonly name: string;
  /** Bytes of data after the header, as the header says (a pax `size` record overrides it). */
  readonly size: number;
  /** One character; the old NUL flag of a regular file is reported as '0'. */
  readonly typeflag: string;
  readonly linkname: string;
  /** GNU old-style sparse file whose sparse map continues in extension blocks after this one. */
  readonly sparseContinues: boolean;
}

// A layer is untrusted data (an image FROM a base someone else wrote): every number that decides how many
// bytes the scanner skips is checked, and rejected where Go's archive/tar rejects it. Docker and containerd
// read layers with that package, so a layer refused here could not have been loaded by them either, and a
// layer they load is never refused here.

/** Go's archive/tar reads pax and GNU long-name data up to this size and refuses the archive beyond it. */
export const MAX_EXTENSION_SIZE = 1024 * 1024;

export function paddedSize(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

/**
 * The bytes a data size makes the scanner skip (the size padded to whole blocks), once the size is known to be
 * a whole number of bytes: not negative, not NaN or infinite, and small enough that its padding and every
 * offset after it stay exact in a double. Whatever the parser that produced it, a size that passes here
 * cannot make the scanner stand still or go backwards. `what`: the entry, and `at` its header, for the error;
 * `dataStart`: the offset of the data's first byte.
 */
export function checkedSize(size: number, what: string, at: number, dataStart: number): number {
  if (!Number.isSafeInteger(size)) throw new TarFormatError(`invalid size ${size} for ${what}`, at);
  if (size < 0) throw new TarFormatError(`negative size ${size} for ${what}`, at);
  const padded = paddedSize(size);
  if (!Number.isSafeInteger(dataStart + padded))
    throw new TarFormatError(`size ${size} for ${what} runs past any archive`, at);
  return padded;
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

function field(block: Buffer, start: number, length: number): string {
  let end = start;
  while (end < start + length && block[end] !== 0) end++;
  return block.toString('latin1', start, end);
}

/**
 * A numeric field as Go's archive/tar parses it: octal text (leading and trailing NULs and spaces ignored, the
 * text ends at a NUL), or GNU base-256 when the high bit of the first byte is set (the next bit is the sign).
 * NaN when malformed, or when the value is beyond what a double holds exactly (2^53: 8 PiB).
 */
export function parseNumeric(block: Buffer, start: number, length: number): number {
  if (block[start] & 0x80) {
    const invert = block[start] & 0x40 ? 0xff : 0; // negative: two's complement, read as -(~x) - 1
    let value = 0;
    for (let i = start; i < start + length; i++) {
      const byte = (block[i] ^ invert) & (i === start ? 0x3f : 0xff);
      value = value * 256 + byte;
      if (value > Number.MAX_SAFE_INTEGER) return NaN;
    }
    return invert ? -value - 1 : value;
  }
  let from = start;
  let to = start + length;
  const pad = (b: number) => b === 0 || b === 0x20;
  while (from < to && pad(block[from])) from++;
  while (to > from && pad(block[to - 1])) to--;
  const nul = block.indexOf(0, from);
  if (nul >= 0 && nul < to) to = nul;
  const text = block.toString('latin1', from, to);
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return NaN;
  const value = parseInt(text, 8);
  return Number.isSafeInteger(value) ? value : NaN;
}

function checksums(block: Buffer): { unsigned: number; signed: number } {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return { unsigned, signed };
}

/** True when the block is a header whose checksum matches: how a plain tar is told from other bytes. */
export function isHeaderBlock(block: Buffer): boolean {
  if (block.length < BLOCK) return false;
  const stored = parseNumeric(block, 148, 8);
  const { unsigned, signed } = checksums(block);
  return stored === unsigned || stored === signed;
}

/** `"text"` for an error message: printable ASCII as is, the rest escaped, at most 40 characters. */
export function quoted(text: string): string {
  const shown = text.length > 40 ? `${text.slice(0, 40)}...` : text;
  return JSON.stringify(shown);
}

export function decodeHeader(block: Buffer, offset: number): TarHeader {
  if (!isHeaderBlock(block)) throw new TarFormatError('invalid tar header checksum', offset);
  const magic = block.toString('latin1', 257, 263);
  let name = field(block, 0, 100);
  // Only POSIX ustar has the prefix field; GNU keeps access/change times there.
  if (magic === 'ustar\0' && block[345] !== 0) name = `${field(block, 345, 155)}/${name}`;
  const flag = block[156];
  const size = parseNumeric(block, 124, 12);
  if (Number.isNaN(size)) {
    const raw = block.toString('latin1', 124, 136);
    throw new TarFormatError(`invalid size field ${quoted(raw)} in the header of ${quoted(name)}`, offset);
  }
  return {
    name,
    size,
    typeflag: flag === 0 ? '0' : String.fromCharCode(flag),
    linkname: field(block, 157, 100),
    sparseContinues: flag === 0x53 /* S */ && block[482] !== 0,
  };
}

/**
 * `<length> <key>=<value>\n` records of a pax extended header, checked as Go's archive/tar checks them. With
 * `keys`, only those records are decoded and returned (the others, xattrs of any size, are only checked).
 */
export function parsePaxRecords(data: Buffer, offset: number, keys?: ReadonlySet<string>): Map<string, string> {
  const records = new Map<string, string>();
  const bad = (why: string): never => {
    throw new TarFormatError(`malformed pax record: ${why}`, offset);
  };
  let pos = 0;
  // Go stops at no NUL; tar writers pad the data block, never the data: NULs here only end the records.
  while (pos < data.length && data[pos] !== 0) {
    const space = data.indexOf(0x20, pos);
    const lengthText = data.toString('latin1', pos, space < 0 ? Math.min(data.length, pos + 20) : space);
    if (space < 0 || !/^\+?[0-9]{1,15}$/.test(lengthText)) bad(`length ${quoted(lengthText)} is not a number`);
    const length = Number(lengthText);
    // the shortest record is "5 k=\n"
    if (length < 5 || length > data.length - pos)
      bad(`length ${length} does not fit its data (${data.length - pos} bytes left)`);
    const end = pos + length;
    if (space + 1 >= end || data[end - 1] !== 0x0a) bad(`record of length ${length} does not end in a newline`);
    const eq = data.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= end - 1) bad('record without "="');
    const key = data.toString('latin1', space + 1, eq);
    if (key === '') bad('empty key');
    if (!keys || keys.has(key)) {
      const value = data.toString('latin1', eq + 1, end - 1);
      if ((key === 'path' || key === 'linkpath') && value.includes('\0')) bad(`NUL in ${key}`);
      records.set(key, value);
    }
    pos = end;
  }
  return records;
}

/** A plain-file ustar header for the outer archive. */
export function encodeFileHeader(name: string, size: number, mtime = 0): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`archive entry name longer than 100 bytes: ${name}`);
  const block = Buffer.alloc(BLOCK);
  block.write(name, 0, 'utf8');
  const octal = (value: number, length: number) => value.toString(8).padStart(length - 1, '0');
  block.write(octal(0o644, 8), 100, 'latin1');
  block.write(octal(0, 8), 108, 'latin1');
  block.write(octal(0, 8), 116, 'latin1');
  if (size < 8 ** 11) block.write(octal(size, 12), 124, 'latin1');
  else {
    // base-256 for entries of 8 GiB and more
    block[124] = 0x80;
    let rest = size;
    for (let i = 135; i > 124; i--) {
      block[i] = rest % 256;
      rest = Math.floor(rest / 256);
    }
  }
  block.write(octal(mtime, 12), 136, 'latin1');
  block[156] = 0x30; // '0' regular file
  block.write('ustar\0', 257, 'latin1');
  block.write('00', 263, 'latin1');
  block.write(octal(checksums(block).unsigned, 7), 148, 'latin1');
  block[155] = 0x20;
  return block;
}

/** Tar paths as the layer appliers compare them: no leading `./` or `/`, no trailing `/`; the root is ''. */
export function normalizePath(name: string): string {
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    parts.push(part);
  }
  return parts.join('/');
}

/** Records a link entry: a hardlink names the archive's path, a symlink one relative to its own directory. */
export function addLink(links: Map<string, string>, name: string, symlink: boolean, linkname: string): void {
  if (linkname) links.set(name, normalizePath(symlink ? posix.join(posix.dirname(name), linkname) : linkname));
}

/** The entry `name` names, through at most 8 links (`addLink`'s): older `docker save` links a repeated layer. */
export function followLinks<T>(
  name: string,
  entries: ReadonlyMap<string, T>,
  links: ReadonlyMap<string, string>,
): T | undefined {
  let n = normalizePath(name);
  for (let hops = 0; hops < 8 && !entries.has(n) && links.has(n); hops++) n = links.get(n) as string;
  return entries.get(n);
}

/**
 * A latin1-decoded path as a person reads it (tar paths are UTF-8 in practice). Whoever built the layer chose the
 * name: it is shown as data (untrusted.ts), so a newline or `::error::` in it cannot become a line or a command.
 */
export function displayPath(path: string): string {
  return logText(`/${Buffer.from(path, 'latin1').toString('utf8')}`);
}
