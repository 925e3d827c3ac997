// An index of a layer tar, built incrementally from chunks as they stream past: where each entry starts and
// ends (its pax / GNU long-name blocks included) and what it is. Splitting then copies byte ranges, so every
// header field, pax record (xattrs included) and data block reaches the pieces exactly as it was (an entry the
// split moves carries the extension headers Go reads, the last of each kind: see MAX_RETAINED_EXTENSIONS).
//
// The layer is untrusted: a size that is not a number, negative or beyond the data makes the scan fail with a
// TarFormatError naming the entry and the byte, at once (see tar-header.ts for what is checked and why), and
// what the scan holds does not grow with the layer (the store, raw-store.ts, bounds what it keeps in memory).
// The extension headers before an entry are handled in tar-extensions.ts; this module holds the block loop.
import { Capture, RawStore, type RawBytes } from './raw-store.js';
import {
  checkExtensionSize,
  checkGlobalRecords,
  ExtensionChain,
  hasExtensionData,
  paxNumber,
} from './tar-extensions.js';
import {
  BLOCK,
  checkedSize,
  decodeHeader,
  isZeroBlock,
  normalizePath,
  quoted,
  TarFormatError,
  type TarHeader,
} from './tar-header.js';

// The scanner's store and extension limit, exported from here too: the relayer and the tests know them as the
// scanner's.
export { RAW_MEMORY_LIMIT, RawStore, type RawBytes } from './raw-store.js';
export { MAX_RETAINED_EXTENSIONS } from './tar-extensions.js';

/**
 * What the split rules care about. `meta`: a pax global header, which names no file (Docker and containerd
 * skip it when applying a layer).
 */
export type EntryKind = 'directory' | 'whiteout' | 'opaque' | 'hardlink' | 'meta' | 'other';

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

// Go's archive/tar (what Docker and containerd read layers with) skips no data for these types whatever
// their size field says, so neither may this.
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

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

export class TarScanner {
  readonly entries: LayerEntry[] = [];
  /** Bytes consumed so far. */
  offset = 0;
  private state: State = { t: 'header' };
  private readonly block = Buffer.alloc(BLOCK);
  private blockFill = 0;
  private entryStart = -1;
  /** What the extension headers of the entry being read said. */
  private readonly extensions = new ExtensionChain();
  private longLink = '';
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
    if (hasExtensionData(header.typeflag)) this.onExtensionHeader(header, blockOffset);
    else this.onEntryHeader(header, blockOffset);
  }

  private onExtensionHeader(header: TarHeader, at: number): void {
    const what = checkExtensionSize(header, at);
    const padded = this.dataSpan(header.size, what, at);
    const buffer = this.extensions.bufferFor(header.typeflag, padded);
    const block = Buffer.from(this.block);
    const state: ExtensionData = { t: 'ext-data', header, block, at, data: buffer, filled: 0 };
    this.state = state;
    if (padded === 0) this.finishExtension(state);
  }

  private finishExtension(ext: ExtensionData): void {
    const { typeflag, size } = ext.header;
    const data = ext.data.subarray(0, size);
    this.state = { t: 'header' };
    if (typeflag !== 'g') {
      this.extensions.keep(typeflag, ext.block, ext.data, data, ext.at);
      return;
    }
    // A global header is an entry of its own (Go returns it as one), which names no file.
    checkGlobalRecords(data, ext.at);
    this.pendingHeader = ext.header;
    this.pendingPath = normalizePath(ext.header.name);
    this.pendingKind = 'meta';
    this.pendingDataSize = 0;
    this.finishEntry();
  }

  private onEntryHeader(header: TarHeader, at: number): void {
    this.pendingHeader = header;
    this.pendingAt = at;
    const longName = this.extensions.longText('L');
    this.longLink = this.extensions.longText('K');
    // As Go: a GNU long name wins over a pax path, and an empty one counts as none.
    this.pendingPath = normalizePath(longName || (this.extensions.pax.get('path') ?? header.name));
    const paxSize = this.extensions.pax.get('size');
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
      for (const part of this.extensions.bytes()) this.movable.add(part, true);
      this.movable.add(this.block);
    }
    this.extensions.dropBytes();
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
    const link = this.longLink || (this.extensions.pax.get('linkpath') ?? header.linkname);
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
    this.extensions.reset();
    this.longLink = '';
    this.pendingHeader = null;
    this.pendingAt = -1;
    this.pendingPath = '';
    this.movable = null;
    this.state = { t: 'header' };
  }
}
