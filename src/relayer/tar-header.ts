// The 512-byte tar header block. Layer entries are copied byte for byte, never re-encoded, so decoding only
// needs what locates an entry (its size and extension headers) and what the split rules look at (path, type,
// link target). Encoding exists for the outer archive, whose entries are plain files with short names.
//
// Strings are decoded as latin1: one char per byte, so a path compares equal to itself whether it came from
// a ustar field or a pax record, whatever its encoding. Convert with `displayPath` before showing it.

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

export interface TarHeader {
  readonly name: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime: number;
  /** One character; the old NUL flag of a regular file is reported as '0'. */
  readonly typeflag: string;
  readonly linkname: string;
  readonly uname: string;
  readonly gname: string;
  /** GNU old-style sparse file whose sparse map continues in extension blocks after this one. */
  readonly sparseContinues: boolean;
}

export function paddedSize(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
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

/** Octal (NUL/space padded) or, when the high bit of the first byte is set, GNU base-256. */
function numeric(block: Buffer, start: number, length: number): number {
  if (block[start] & 0x80) {
    let value = block[start] & 0x3f; // 0x40 would be the sign of a negative number: none here is negative
    for (let i = start + 1; i < start + length; i++) value = value * 256 + block[i];
    return value;
  }
  const text = field(block, start, length).trim();
  return text === '' ? 0 : parseInt(text, 8);
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
  const stored = numeric(block, 148, 8);
  const { unsigned, signed } = checksums(block);
  return stored === unsigned || stored === signed;
}

export function decodeHeader(block: Buffer, offset: number): TarHeader {
  if (!isHeaderBlock(block)) throw new TarFormatError('invalid tar header checksum', offset);
  const magic = block.toString('latin1', 257, 263);
  let name = field(block, 0, 100);
  // Only POSIX ustar has the prefix field; GNU keeps access/change times there.
  if (magic === 'ustar\0' && block[345] !== 0) name = `${field(block, 345, 155)}/${name}`;
  const flag = block[156];
  return {
    name,
    mode: numeric(block, 100, 8),
    uid: numeric(block, 108, 8),
    gid: numeric(block, 116, 8),
    size: numeric(block, 124, 12),
    mtime: numeric(block, 136, 12),
    typeflag: flag === 0 ? '0' : String.fromCharCode(flag),
    linkname: field(block, 157, 100),
    uname: field(block, 265, 32),
    gname: field(block, 297, 32),
    sparseContinues: flag === 0x53 /* S */ && block[482] !== 0,
  };
}

/** `<length> <key>=<value>\n` records of a pax extended header. */
export function parsePaxRecords(data: Buffer, offset: number): Map<string, string> {
  const records = new Map<string, string>();
  let pos = 0;
  while (pos < data.length && data[pos] !== 0) {
    const space = data.indexOf(0x20, pos);
    const length = space < 0 ? NaN : parseInt(data.toString('latin1', pos, space), 10);
    if (!(length > 0) || pos + length > data.length) throw new TarFormatError('malformed pax record', offset);
    const record = data.toString('latin1', space + 1, pos + length - 1);
    const eq = record.indexOf('=');
    if (eq < 0) throw new TarFormatError('malformed pax record', offset);
    records.set(record.slice(0, eq), record.slice(eq + 1));
    pos += length;
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

/** A latin1-decoded path as a person reads it (tar paths are UTF-8 in practice). */
export function displayPath(path: string): string {
  return `/${Buffer.from(path, 'latin1').toString('utf8')}`;
}
