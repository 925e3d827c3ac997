// An index of a layer tar, built incrementally from chunks as they stream past: where each entry starts and
// ends (its pax / GNU long-name blocks included) and what it is. Splitting then copies byte ranges, so every
// header field, pax record (xattrs included) and data block reaches the pieces exactly as it was.
import {
  BLOCK,
  decodeHeader,
  isZeroBlock,
  normalizePath,
  paddedSize,
  parsePaxRecords,
  TarFormatError,
  type TarHeader,
} from './tar-header.js';

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
   * The entry's bytes, for the kinds the planner may move or repeat (directories, whiteouts, hardlinks):
   * those are the ones a piece may need out of stream order.
   */
  readonly raw?: Buffer;
}

/** Raw bytes of movable entries are kept in memory; an entry this big (a dir with huge xattrs?) is not. */
export const MAX_RAW_CAPTURE = 1024 * 1024;

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

type State =
  | { readonly t: 'header' }
  | { readonly t: 'sparse-ext' }
  | {
      readonly t: 'ext-data';
      readonly typeflag: string;
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
  private capture: Buffer[] | null = null;
  private zeroBlocks = 0;

  constructor(private readonly keepEntries = true) {}

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
        this.capture?.push(Buffer.from(chunk.subarray(pos, pos + take)));
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
        if (state.remaining === 0) this.finishExtension(state.typeflag, Buffer.concat(state.chunks), state.size);
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
    throw new TarFormatError('truncated tar archive', this.offset);
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
      if (header.size === 0) return;
      this.state = {
        t: 'ext-data',
        typeflag: header.typeflag,
        remaining: paddedSize(header.size),
        chunks: [],
        size: header.size,
      };
      return;
    }
    this.pendingHeader = header;
    const paxSize = this.pax.get('size');
    const size = paxSize !== undefined ? Number(paxSize) : header.size;
    this.pendingDataSize = HEADER_ONLY.has(header.typeflag) ? 0 : size;
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
    const path = normalizePath(this.longName ?? this.pax.get('path') ?? header.name);
    const kind = classify(path, header.typeflag);
    this.pendingPath = path;
    this.pendingKind = kind;
    // Only movable kinds need their bytes; the rest are copied from the stream where they stand.
    const movable = kind === 'directory' || kind === 'whiteout' || kind === 'opaque' || kind === 'hardlink';
    if (!movable || !this.keepEntries || remaining + (this.offset - this.entryStart) > MAX_RAW_CAPTURE)
      this.capture = null;
    this.state = { t: 'data', remaining };
    if (remaining === 0) this.finishEntry();
  }

  private finishExtension(typeflag: string, padded: Buffer, size: number): void {
    this.capture?.push(padded);
    const data = padded.subarray(0, size);
    if (typeflag === 'x') for (const [k, v] of parsePaxRecords(data, this.offset)) this.pax.set(k, v);
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
    if (this.keepEntries) {
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
        raw: this.capture ? Buffer.concat(this.capture) : undefined,
      });
    }
    this.entryStart = -1;
    this.pax = new Map();
    this.longName = null;
    this.longLink = null;
    this.pendingHeader = null;
    this.capture = null;
    this.state = { t: 'header' };
  }
}
