// The tar scanner's store for the bytes of the entries a split may move (RawStore: in memory up to a budget,
// then in one file), and the capture of one entry's bytes into it as they stream past (Capture).
import { closeSync, openSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** An entry's bytes as a RawStore keeps them: in memory, or at `offset` in the store's file. */
export type RawBytes =
  { readonly length: number; readonly data: Buffer } | { readonly length: number; readonly offset: number };

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
  release(entries: readonly { readonly raw?: RawBytes }[]): void {
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
export class Capture {
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
