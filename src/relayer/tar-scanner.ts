// An index of a layer tar, built incrementally from chunks as they stream past: where each entry starts and
// ends (its pax / GNU long-name blocks included) and what it is. Splitting then copies byte ranges, so every
// header field, pax record (xattrs included) and data block reaches the pieces exactly as it was.
//
// The layer is untrusted: a size that is not a number, negative or beyond the data makes the scan fail with a
// TarFormatError naming the entry and the byte, at once (see tar-header.ts for what is checked and why).
import { closeSync, openSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import {
  BLOCK,
  decodeHeader,
  isZeroBlock,
  MAX_EXTENSION_SIZE,
  normalizePath,
  paddedSize,
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

type State =
  | { readonly t: 'header' }
  | { readonly t: 'sparse-ext' }
  | {
      readonly t: 'ext-data';
      readonly typeflag: string;
      /** Offset of the extension's header block. */
      readonly at: number;
      remaining: number;
      readonly chunks: Buffer[];
      readonly size: number;
    }
  | { readonly t: 'data'; remaining: number }
  | { readonly t: 'done' };

export class TarScanner {
  readonly entries: LayerEntry[] = [];
  /** Bytes consumed so far. */
  offset = 0;
  private state: State = { t: 'header' };
  private readonly block = Buffer.alloc(BLOCK);
  private blockFill = 0;
  // Extension headers seen for the entry being read.
  private entryStart = -1;
  private pax = new Map<string, string>();
  private longName: string | null = null;
  private longLink: string | null = null;
  private pendingHeader: TarHeader | null = null;
  private pendingDataSize = 0;
  private pendingPath = '';
  private pendingKind: EntryKind = 'other';
  /** Every block of the entry being read, until it is known not to be movable. */
  private capture: Buffer[] | null = null;
  private movable: Capture | null = null;
  private zeroBlocks = 0;

  constructor(private readonly store: RawStore = new RawStore()) {}

  /** True once the end-of-archive blocks have been read; bytes after them are ignored. */
  get ended(): boolean {
    return this.state.t === 'done';
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length && this.state.t !== 'done') {
      const state = this.state;
      if (state.t === 'data') {
        const take = Math.min(state.remaining, chunk.length - pos);
        this.movable?.add(chunk.subarray(pos, pos + take));
        state.remaining -= take;
        pos += take;
        this.offset += take;
        if (state.remaining === 0) this.finishEntry();
        continue;
      }
      if (state.t === 'ext-data') {
        const take = Math.min(state.remaining, chunk.length - pos);
        state.chunks.push(Buffer.from(chunk.subarray(pos, pos + take)));
        state.remaining -= take;
        pos += take;
        this.offset += take;
        if (state.remaining === 0) this.finishExtension(state, Buffer.concat(state.chunks));
        continue;
      }
      const take = Math.min(BLOCK - this.blockFill, chunk.length - pos);
      chunk.copy(this.block, this.blockFill, pos, pos + take);
      this.blockFill += take;
      pos += take;
      if (this.blockFill < BLOCK) break;
      this.blockFill = 0;
      const blockOffset = this.offset;
      this.offset += BLOCK;
      if (state.t === 'sparse-ext') this.onSparseExtension();
      else this.onHeader(blockOffset);
    }
    if (this.state.t === 'done') this.offset += chunk.length - pos;
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

  private onHeader(blockOffset: number): void {
    if (isZeroBlock(this.block)) {
      if (this.entryStart >= 0) throw new TarFormatError('end of archive inside an entry', blockOffset);
      this.zeroBlocks++;
      if (this.zeroBlocks === 2) this.state = { t: 'done' };
      return;
    }
    if (this.zeroBlocks > 0) throw new TarFormatError('single zero block inside the archive', blockOffset);
    const header = decodeHeader(this.block, blockOffset);
    if (this.entryStart < 0) {
      this.entryStart = blockOffset;
      this.capture = [];
    }
    this.capture?.push(Buffer.from(this.block));
    if (header.typeflag === 'x' || header.typeflag === 'L' || header.typeflag === 'K') {
      const what = header.typeflag === 'x' ? 'pax header' : 'GNU long name';
      if (header.size < 0) throw new TarFormatError(`${what} with a negative size ${header.size}`, blockOffset);
      if (header.size > MAX_EXTENSION_SIZE) {
        throw new TarFormatError(
          `${what} of ${header.size} bytes, over the ${MAX_EXTENSION_SIZE} that Docker and containerd read`,
          blockOffset,
        );
      }
      if (header.size === 0) return;
      this.state = {
        t: 'ext-data',
        typeflag: header.typeflag,
        at: blockOffset,
        remaining: paddedSize(header.size),
        chunks: [],
        size: header.size,
      };
      return;
    }
    this.pendingHeader = header;
    this.pendingPath = normalizePath(this.longName ?? this.pax.get('path') ?? header.name);
    const paxSize = this.pax.get('size');
    const size = paxSize === undefined ? header.size : paxNumber(paxSize);
    if (Number.isNaN(size))
      throw new TarFormatError(
        `invalid pax size ${quoted(paxSize as string)} for ${quoted(this.pendingPath)}`,
        blockOffset,
      );
    // A header-only type's size is never used, negative or not (as in Go).
    if (HEADER_ONLY.has(header.typeflag)) this.pendingDataSize = 0;
    else if (size < 0) throw new TarFormatError(`negative size ${size} for ${quoted(this.pendingPath)}`, blockOffset);
    else this.pendingDataSize = size;
    if (header.sparseContinues) {
      this.state = { t: 'sparse-ext' };
      return;
    }
    this.startData();
  }

  private onSparseExtension(): void {
    this.capture?.push(Buffer.from(this.block));
    if (this.block[504] === 0) this.startData();
  }

  private startData(): void {
    const remaining = paddedSize(this.pendingDataSize);
    const header = this.pendingHeader as TarHeader;
    const kind = classify(this.pendingPath, header.typeflag);
    this.pendingKind = kind;
    // Only movable kinds need their bytes; the rest are copied from the stream where they stand.
    const movable = kind === 'directory' || kind === 'whiteout' || kind === 'opaque' || kind === 'hardlink';
    if (movable) {
      this.movable = new Capture(this.store);
      for (const part of this.capture ?? []) this.movable.add(part, true);
    }
    this.capture = null;
    this.state = { t: 'data', remaining };
    if (remaining === 0) this.finishEntry();
  }

  private finishExtension(ext: { typeflag: string; at: number; size: number }, padded: Buffer): void {
    const { typeflag } = ext;
    this.capture?.push(padded);
    const data = padded.subarray(0, ext.size);
    if (typeflag === 'x') for (const [k, v] of parsePaxRecords(data, ext.at, PAX_KEYS)) this.pax.set(k, v);
    else {
      // GNU long names are NUL terminated within their data.
      const nul = data.indexOf(0);
      const text = data.toString('latin1', 0, nul < 0 ? data.length : nul);
      if (typeflag === 'L') this.longName = text;
      else this.longLink = text;
    }
    this.state = { t: 'header' };
  }

  private finishEntry(): void {
    const header = this.pendingHeader as TarHeader;
    const path = this.pendingPath;
    const kind = this.pendingKind;
    const link = this.longLink ?? this.pax.get('linkpath') ?? header.linkname;
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
    this.longName = null;
    this.longLink = null;
    this.pendingHeader = null;
    this.pendingPath = '';
    this.capture = null;
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
