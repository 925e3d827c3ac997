// An index of a layer tar, built incrementally from chunks as they stream past: where each entry starts and
// ends (its pax / GNU long-name blocks included) and what it is. Splitting then copies byte ranges, so every
// header field, pax record (xattrs included) and data block reaches the pieces exactly as it was (an entry the
// split moves carries the extension headers Go reads, the last of each kind: see MAX_RETAINED_EXTENSIONS).
//
// The layer is untrusted: a size that is not a number, negative or beyond the data makes the scan fail with a
// TarFormatError naming the entry and the byte, at once (see tar-header.ts for what is checked and why), and
// what the scan holds does not grow with the layer (the store below bounds what it keeps in memory).
import { closeSync, openSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import {
  BLOCK,
  checkedSize,
  decodeHeader,
  isZeroBlock,
  MAX_EXTENSION_SIZE,
  normalizePath,
  parsePaxRecords,
  quoted,
  TarFormatError,
  type TarHeader,
} from './tar-header.js';

/**
 * What the split rules care about. `meta`: a pax global header, which names no file (Docker and containerd
 * skip it when applying a layer).
 */
export type EntryKind = 'directory' | 'whiteout' | 'opaque' | 'hardlink' | 'meta' | 'other';

/** An entry's bytes as a RawStore keeps them: in memory, or at `offset` in the store's file. */
export type RawBytes =
  { readonly length: number; readonly data: Buffer } | { readonly length: number; readonly offset: number };

export interface LayerEntry {
  readonly index: number;
  /** Offset of the entry's first block: an extension header when there is one. */
  readonly start: number;
  /** Offset just past the entry's padded data. */
  readonly end: number;
  /** Normalized (see normalizePath), latin1. */
  readonly path: string;
  readonly kind: EntryKind;
  readonly typeflag: string;
  /** Hardlinks: the normalized path linked to. Other entries: ''. */
  readonly linkTarget: string;
  /** Bytes of file content. */
  readonly size: number;
  /**
   * The entry's bytes, for the kinds the planner may move or repeat (directories, whiteouts, opaque markers,
   * hardlinks): those are the ones a piece may need out of stream order. Absent for the other kinds.
   */
  readonly raw?: RawBytes;
}

/**
 * Where the scanner keeps the bytes of movable entries until the pieces are written.
 *
 * Why a store, and why on disk past a budget: those bytes are the layer's own metadata, and nothing bounds it
 * but the layer (1,500 directories with a 512 KiB xattr each make 770 MB of it, in a 5 MB gzip'd layer), while
 * every byte of it may be needed again (a parent re-created at the top of every piece, whiteouts moved to the
 * first). Refusing big metadata would refuse images Docker loads (Go reads pax records up to 1 MiB each and
 * any number of them), and re-emitting anything but the original bytes would change the image. So the first
 * `memoryLimit` bytes stay in memory (an ordinary layer never spills: 32 MiB is 64,000 plain directory
 * entries), the rest is appended to one file in the relayer's work directory, which is read back in order when
 * the pieces are written. One store serves every layer of an archive, so the limit is the relayer's, not a
 * layer's. Without a file (tests) everything stays in memory.
 */
export class RawStore {
  /** In-memory bytes kept so far. */
  private inMemory = 0;
  private fd: number | null = null;
  /** Bytes appended to the file, buffered ones included. */
  private fileSize = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private reader: Promise<FileHandle> | null = null;

  constructor(
    private readonly file: string | null = null,
    private readonly memoryLimit = RAW_MEMORY_LIMIT,
  ) {}

  /** Bytes written to (or waiting for) the file. */
  get spilled(): number {
    return this.fileSize;
  }

  /** True when `length` more bytes may be held in memory. */
  fitsInMemory(length: number): boolean {
    return this.file === null || this.inMemory + length <= this.memoryLimit;
  }

  keepInMemory(parts: Buffer[], length: number): RawBytes {
    this.inMemory += length;
    return { length, data: parts.length === 1 ? parts[0] : Buffer.concat(parts, length) };
  }

  /** Appends to the file; returns the offset of the chunk's first byte. */
  append(chunk: Buffer): number {
    if (this.file === null) throw new Error('this store keeps everything in memory');
    const at = this.fileSize;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.fileSize += chunk.length;
    if (this.pendingBytes >= WRITE_BATCH) this.flush();
    return at;
  }

  /** The index of a layer nobody will split is dropped: its in-memory bytes no longer count. */
  release(entries: readonly LayerEntry[]): void {
    for (const e of entries) if (e.raw && 'data' in e.raw) this.inMemory -= e.raw.length;
  }

  /** Writes what is buffered. Synchronous: the scanner that appends is fed from a synchronous 'data' event. */
  private flush(): void {
    if (this.pendingBytes === 0) return;
    this.fd ??= openSync(this.file as string, 'w');
    const data = Buffer.concat(this.pending, this.pendingBytes);
    for (let done = 0; done < data.length;) done += writeSync(this.fd, data, done);
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** The bytes of `raw`, in chunks of at most 1 MiB. */
  async *read(raw: RawBytes): AsyncIterable<Buffer> {
    if ('data' in raw) {
      yield raw.data;
      return;
    }
    this.flush();
    this.reader ??= open(this.file as string, 'r');
    const handle = await this.reader;
    for (let done = 0; done < raw.length;) {
      const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, raw.length - done));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, raw.offset + done);
      if (bytesRead === 0) throw new Error(`${this.file} ended before byte ${raw.offset + raw.length}`);
      done += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  }

  /** Closes the file (idempotent); removing it is the work directory's owner's job. */
  async close(): Promise<void> {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    const reader = this.reader;
    this.reader = null;
    if (reader) await (await reader).close();
  }
}

/** Movable-entry bytes held in memory, across the layers of an archive, before the rest goes to disk. */
export const RAW_MEMORY_LIMIT = 32 * 1024 * 1024;
/** An entry's bytes go to the file as they arrive once its capture passes this (a whiteout's data can be big). */
const CAPTURE_IN_MEMORY_MAX = 1024 * 1024;
const WRITE_BATCH = 1024 * 1024;
const READ_CHUNK = 1024 * 1024;

/** Collects one movable entry's bytes while it streams past: in memory, or straight into the store's file. */
class Capture {
  private parts: Buffer[] = [];
  private length = 0;
  /** Offset in the store's file once the capture went there. */
  private offset = -1;

  constructor(private readonly store: RawStore) {}

  /** `owned`: the chunk is the capture's to keep (else it is copied: a stream's chunk is not to be retained). */
  add(chunk: Buffer, owned = false): void {
    const part = owned ? chunk : Buffer.from(chunk);
    this.length += part.length;
    if (this.offset >= 0) {
      this.store.append(part);
      return;
    }
    this.parts.push(part);
    if (this.length > CAPTURE_IN_MEMORY_MAX && !this.store.fitsInMemory(this.length)) this.toFile();
  }

  private toFile(): void {
    const parts = this.parts;
    this.parts = [];
    this.offset = this.store.append(parts[0]);
    for (const p of parts.slice(1)) this.store.append(p);
  }

  finish(): RawBytes {
    if (this.offset < 0 && this.store.fitsInMemory(this.length))
      return this.store.keepInMemory(this.parts, this.length);
    if (this.offset < 0) this.toFile();
    return { length: this.length, offset: this.offset };
  }
}

// Go's archive/tar (what Docker and containerd read layers with) skips no data for these types whatever
// their size field says, so neither may this.
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);
/** The pax records the scanner reads; the others (xattrs...) are checked, not decoded. */
const PAX_KEYS: ReadonlySet<string> = new Set(['path', 'linkpath', 'size']);
const NO_KEYS: ReadonlySet<string> = new Set();
/** Headers that describe the next one: pax ('x'), GNU long name ('L') and long link ('K'). */
const EXTENSIONS: ReadonlySet<string> = new Set(['x', 'L', 'K']);

/**
 * The most bytes of extension headers the scanner holds for the entry being read (before its own header says
 * whether it is movable): one of each kind, its header block and padded data. Go reads an entry's extensions
 * by kind, each replacing the one before (reader.go next(): `paxHdrs, err = parsePAX(tr)`, `gnuLongName =`),
 * so of a chain of any length only the last of each kind says anything, and only that one is kept. A layer
 * that chains 300 pax headers of 1 MiB before one file (300 MiB, a few hundred KB gzip'd) therefore holds
 * this much, not 300 MiB (tar-scanner.test.ts, "a chain of extension headers").
 */
export const MAX_RETAINED_EXTENSIONS = EXTENSIONS.size * (BLOCK + MAX_EXTENSION_SIZE + BLOCK);

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

function classify(path: string, typeflag: string): EntryKind {
  if (typeflag === 'g') return 'meta';
  const base = path.slice(path.lastIndexOf('/') + 1);
  if (base === OPAQUE_MARKER) return 'opaque';
  if (base.startsWith(WHITEOUT_PREFIX)) return 'whiteout';
  if (typeflag === '5') return 'directory';
  if (typeflag === '1') return 'hardlink';
  return 'other';
}

const isMovable = (kind: EntryKind) =>
  kind === 'directory' || kind === 'whiteout' || kind === 'opaque' || kind === 'hardlink';

type State =
  | { readonly t: 'header' }
  | { readonly t: 'sparse-ext' }
  | {
      /** The data of an extension header, or of a pax global header ('g'). */
      readonly t: 'ext-data';
      readonly header: TarHeader;
      /** The header block, and its offset. */
      readonly block: Buffer;
      readonly at: number;
      /** The padded data, filled as it arrives. */
      readonly data: Buffer;
      filled: number;
    }
  | { readonly t: 'data'; remaining: number }
  | { readonly t: 'done' };
type ExtensionData = Extract<State, { t: 'ext-data' }>;

/** An extension header kept for the entry being read: its block and padded data, as they were. */
interface Extension {
  readonly typeflag: string;
  /** Its data, unpadded. */
  readonly data: Buffer;
  /** Its padded data (a chain's next header of the kind reuses it). */
  readonly buffer: Buffer;
  readonly bytes: Buffer[];
}

export class TarScanner {
  readonly entries: LayerEntry[] = [];
  /** Bytes consumed so far. */
  offset = 0;
  private state: State = { t: 'header' };
  private readonly block = Buffer.alloc(BLOCK);
  private blockFill = 0;
  // What the extension headers of the entry being read said (the last of each kind: see MAX_RETAINED_EXTENSIONS).
  private entryStart = -1;
  private pax = new Map<string, string>();
  private longName = '';
  private longLink = '';
  private extensions: Extension[] = [];
  /** The last global header's data buffer, for the next one. */
  private globalData: Buffer | null = null;
  private pendingHeader: TarHeader | null = null;
  /** Offset of the entry's own header block (after its extensions). */
  private pendingAt = -1;
  private pendingDataSize = 0;
  private pendingPath = '';
  private pendingKind: EntryKind = 'other';
  /** The bytes of the entry being read, when it is movable: from its header on, spilled past the store's limit. */
  private movable: Capture | null = null;
  private zeroBlocks = 0;

  /**
   * `length`: the tar's size in bytes when known (an uncompressed layer): a size that runs past it fails at its
   * header instead of at the end of the stream.
   */
  constructor(
    private readonly store: RawStore = new RawStore(),
    private readonly length?: number,
  ) {}

  /** True once the end-of-archive blocks have been read; bytes after them are ignored. */
  get ended(): boolean {
    return this.state.t === 'done';
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length && this.state.t !== 'done') {
      const used = this.step(chunk, pos);
      // Every step consumes input (each state's sizes are checked whole numbers), so the loop ends; this makes a
      // future mistake fail the scan, naming the layer as any bad tar does, instead of spinning on it for ever.
      if (!(used > 0 && pos + used <= chunk.length))
        throw new TarFormatError(`the scan stalled reading ${this.state.t} (a bug in the scanner)`, this.offset);
      pos += used;
    }
    if (this.state.t === 'done') this.offset += chunk.length - pos;
  }

  /** Consumes bytes of `chunk` from `pos` for the current state; returns how many (at least one). */
  private step(chunk: Buffer, pos: number): number {
    const state = this.state;
    if (state.t === 'data') {
      const take = Math.min(state.remaining, chunk.length - pos);
      this.movable?.add(chunk.subarray(pos, pos + take));
      state.remaining -= take;
      this.offset += take;
      if (state.remaining === 0) this.finishEntry();
      return take;
    }
    if (state.t === 'ext-data') {
      const take = chunk.copy(state.data, state.filled, pos, pos + state.data.length - state.filled);
      state.filled += take;
      this.offset += take;
      if (state.filled === state.data.length) this.finishExtension(state);
      return take;
    }
    const take = chunk.copy(this.block, this.blockFill, pos, pos + BLOCK - this.blockFill);
    this.blockFill += take;
    if (this.blockFill < BLOCK) return take;
    this.blockFill = 0;
    const blockOffset = this.offset;
    this.offset += BLOCK;
    if (state.t === 'sparse-ext') this.onSparseExtension();
    else this.onHeader(blockOffset);
    return take;
  }

  /** Call after the last chunk: the stream must have held a whole archive. */
  end(): void {
    if (this.state.t === 'done') return;
    // Go's reader accepts an archive that ends without its zero blocks, after a complete entry.
    if (this.state.t === 'header' && this.blockFill === 0 && this.entryStart < 0) {
      this.state = { t: 'done' };
      return;
    }
    const inside = this.pendingHeader ? ` inside ${quoted(this.pendingPath)}` : '';
    throw new TarFormatError(`truncated tar archive${inside}`, this.offset);
  }

  /**
   * The padded size of data `size` long that starts here (the header at `at` describes it), checked (see
   * checkedSize) and within the tar when its length is known.
   */
  private dataSpan(size: number, what: string, at: number): number {
    const padded = checkedSize(size, what, at, this.offset);
    if (this.length !== undefined && this.offset + size > this.length) {
      const left = Math.max(0, this.length - this.offset);
      throw new TarFormatError(`size ${size} for ${what} runs past the end of the tar (${left} bytes left)`, at);
    }
    return padded;
  }

  private onHeader(blockOffset: number): void {
    if (isZeroBlock(this.block)) {
      if (this.entryStart >= 0) throw new TarFormatError('end of archive inside an entry', blockOffset);
      this.zeroBlocks++;
      if (this.zeroBlocks === 2) this.state = { t: 'done' };
      return;
    }
    if (this.zeroBlocks > 0) throw new TarFormatError('single zero block inside the archive', blockOffset);
    const header = decodeHeader(this.block, blockOffset);
    if (this.entryStart < 0) this.entryStart = blockOffset;
    if (EXTENSIONS.has(header.typeflag) || header.typeflag === 'g') this.onExtensionHeader(header, blockOffset);
    else this.onEntryHeader(header, blockOffset);
  }

  /** Extension data (and a global header's) is read whole: Go refuses more than MAX_EXTENSION_SIZE of it. */
  private onExtensionHeader(header: TarHeader, at: number): void {
    const what = { x: 'pax header', g: 'pax global header', L: 'GNU long name', K: 'GNU long link' }[
      header.typeflag
    ] as string;
    if (header.size < 0) throw new TarFormatError(`${what} with a negative size ${header.size}`, at);
    if (header.size > MAX_EXTENSION_SIZE) {
      throw new TarFormatError(
        `${what} of ${header.size} bytes, over the ${MAX_EXTENSION_SIZE} that Docker and containerd read`,
        at,
      );
    }
    const padded = this.dataSpan(header.size, what, at);
    // The data goes where the header it supersedes kept its own (that one says nothing once this one is read,
    // and the scan fails if this one is bad), and a global header's into the last one's: garbage that grew
    // with the chain until the next collection is what a chain would otherwise cost. Only into a buffer of the
    // same size: a movable entry's capture keeps the data by reference, and the store counts its length.
    let reuse: Buffer | null;
    if (header.typeflag === 'g') reuse = this.globalData;
    else {
      const previous = this.extensions.find((e) => e.typeflag === header.typeflag);
      this.extensions = this.extensions.filter((e) => e !== previous);
      reuse = previous?.buffer ?? null;
    }
    const buffer = reuse?.length === padded ? reuse : Buffer.alloc(padded);
    if (header.typeflag === 'g') this.globalData = buffer;
    const block = Buffer.from(this.block);
    const state: ExtensionData = { t: 'ext-data', header, block, at, data: buffer, filled: 0 };
    this.state = state;
    if (padded === 0) this.finishExtension(state);
  }

  private finishExtension(ext: ExtensionData): void {
    const { typeflag, size } = ext.header;
    const data = ext.data.subarray(0, size);
    this.state = { t: 'header' };
    if (typeflag === 'g') {
      // An entry of its own (Go returns it as one); its records are checked as Go checks them, none is read.
      parsePaxRecords(data, ext.at, NO_KEYS);
      this.pendingHeader = ext.header;
      this.pendingPath = normalizePath(ext.header.name);
      this.pendingKind = 'meta';
      this.pendingDataSize = 0;
      this.finishEntry();
      return;
    }
    // A long name is decoded once its entry's header comes, from the last one only (longText).
    if (typeflag === 'x') this.pax = parsePaxRecords(data, ext.at, PAX_KEYS);
    // (the one before of the same kind, which says nothing any more, was let go at this one's header)
    const bytes = ext.data.length ? [ext.block, ext.data] : [ext.block];
    this.extensions.push({ typeflag, data, buffer: ext.data, bytes });
  }

  /** A GNU long name's or link's text: NUL terminated within its data; '' when there is none (as in Go). */
  private longText(typeflag: 'L' | 'K'): string {
    const data = this.extensions.find((e) => e.typeflag === typeflag)?.data;
    if (!data) return '';
    const nul = data.indexOf(0);
    return data.toString('latin1', 0, nul < 0 ? data.length : nul);
  }

  private onEntryHeader(header: TarHeader, at: number): void {
    this.pendingHeader = header;
    this.pendingAt = at;
    this.longName = this.longText('L');
    this.longLink = this.longText('K');
    // As Go: a GNU long name wins over a pax path, and an empty one counts as none.
    this.pendingPath = normalizePath(this.longName || (this.pax.get('path') ?? header.name));
    const paxSize = this.pax.get('size');
    const size = paxSize === undefined ? header.size : paxNumber(paxSize);
    if (Number.isNaN(size))
      throw new TarFormatError(`invalid pax size ${quoted(paxSize as string)} for ${quoted(this.pendingPath)}`, at);
    // A header-only type's size is never used, negative or not (as in Go).
    this.pendingDataSize = HEADER_ONLY.has(header.typeflag) ? 0 : size;
    this.pendingKind = classify(this.pendingPath, header.typeflag);
    // Only movable kinds need their bytes; the rest are copied from the stream where they stand. Known here,
    // so neither a GNU sparse map nor the data of any other entry is ever held.
    if (isMovable(this.pendingKind)) {
      this.movable = new Capture(this.store);
      for (const e of this.extensions) for (const part of e.bytes) this.movable.add(part, true);
      this.movable.add(this.block);
    }
    this.extensions = [];
    if (header.sparseContinues) {
      // the data size is checked once the sparse map's blocks are read, where the data begins
      this.state = { t: 'sparse-ext' };
      return;
    }
    this.startData();
  }

  private onSparseExtension(): void {
    this.movable?.add(this.block);
    if (this.block[504] === 0) this.startData();
  }

  private startData(): void {
    const remaining = this.dataSpan(this.pendingDataSize, quoted(this.pendingPath), this.pendingAt);
    this.state = { t: 'data', remaining };
    if (remaining === 0) this.finishEntry();
  }

  private finishEntry(): void {
    const header = this.pendingHeader as TarHeader;
    const path = this.pendingPath;
    const kind = this.pendingKind;
    const link = this.longLink || (this.pax.get('linkpath') ?? header.linkname);
    this.entries.push({
      index: this.entries.length,
      start: this.entryStart,
      end: this.offset,
      path,
      kind,
      typeflag: header.typeflag,
      linkTarget: kind === 'hardlink' ? normalizePath(link) : '',
      size: this.pendingDataSize,
      raw: this.movable?.finish(),
    });
    this.entryStart = -1;
    this.pax = new Map();
    this.longName = '';
    this.longLink = '';
    this.extensions = [];
    this.pendingHeader = null;
    this.pendingAt = -1;
    this.pendingPath = '';
    this.movable = null;
    this.state = { t: 'header' };
  }
}

/** A pax decimal number as Go's strconv.ParseInt reads it (an optional sign, digits); NaN otherwise. */
function paxNumber(text: string): number {
  if (!/^[+-]?[0-9]+$/.test(text)) return NaN;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : NaN;
}
