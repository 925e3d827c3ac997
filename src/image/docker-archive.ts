// Reads the archive `docker save` writes, in one pass. Both layouts put the documents that say which blob is
// what (manifest.json, index.json) after the blobs, so every blob is kept until the end: small ones in
// memory, the rest in files under the work directory. Whatever looks like a layer (a tar, plain or
// compressed) is probed on the way past: its diff ID, its uncompressed size and, for the layers the caller
// will split, the index of its entries. A layer is therefore read from the input exactly once.
// The index's movable entries keep their bytes in one RawStore for the whole archive (memory up to a limit,
// then a file in the work directory: see raw-store.ts).
import { createHash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join, posix } from 'node:path';
import type { Duplex } from 'node:stream';
import tar from 'tar-stream';
import { writeChunk } from '../util/stream-write.js';
import {
  canDecompress,
  decompressor,
  detectCompression,
  HOST_ZSTD,
  type Compression,
  type ZstdDecoders,
} from './compression.js';
import { BLOCK, isHeaderBlock, isZeroBlock, normalizePath, TarFormatError } from './tar-header.js';
import { RawStore, TarScanner, type LayerEntry } from './tar-scanner.js';

export interface LayerProbe {
  readonly compression: Compression;
  /** sha256 of the uncompressed tar; absent when it could not be decompressed here (see `unreadable`). */
  readonly diffId?: string;
  readonly uncompressedSize?: number;
  /** The layer's index, for the layers `keepIndex` asked for. */
  readonly entries?: LayerEntry[];
  readonly unreadable?: string;
  /** The bytes begin as a tar but are not a valid one (what is wrong, and at which byte of the tar). */
  readonly invalid?: string;
}

export interface ArchiveEntry {
  readonly name: string;
  readonly size: number;
  /** Small entries (the JSON documents, tiny blobs) stay in memory. */
  readonly data?: Buffer;
  readonly file?: string;
  /** Present when the bytes are a tar, plain or compressed. */
  readonly layer?: LayerProbe;
}

export interface SavedArchive {
  /** By normalized name; symlinked names (older `docker save` links repeated layers) resolve to their target. */
  get(name: string): ArchiveEntry | undefined;
  readonly entries: ReadonlyMap<string, ArchiveEntry>;
  /** Bytes written to the work directory. */
  readonly spilledBytes: number;
  /** The bytes of the kept indexes' movable entries; the caller closes it. */
  readonly raws: RawStore;
}

/** Decides, once a layer's diff ID and size are known, whether its index is worth keeping. */
export type KeepIndex = (diffId: string, uncompressedSize: number) => boolean;

const IN_MEMORY_MAX = 64 * 1024;
const JSON_IN_MEMORY_MAX = 4 * 1024 * 1024;

function looksLikeJson(head: Buffer): boolean {
  for (const b of head) {
    if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
    return b === 0x7b || b === 0x5b; // { [
  }
  return false;
}

function looksLikeTar(head: Buffer, compression: Compression): boolean {
  if (compression !== 'none') return true; // the scanner decides once decompressed
  const block = head.subarray(0, BLOCK);
  return block.length === BLOCK && (isHeaderBlock(block) || isZeroBlock(block));
}

/**
 * Hashes and indexes a layer's uncompressed bytes as they go past. Gives up on anything that turns out not to
 * be a tar, saying why: for a blob that only looks like a layer that is nothing, for a layer it is an error.
 */
class Prober {
  private readonly hash = createHash('sha256');
  private readonly scanner: TarScanner;
  private size = 0;
  private failed = false;
  private invalid: string | null = null;
  /** A failure of the work directory (the RawStore's file), not of the data: the run fails with it. */
  private failure: unknown = null;
  private readonly inflate: Duplex | null;
  private inflateError: Error | null = null;

  constructor(
    readonly compression: Compression,
    private readonly keepIndex: KeepIndex,
    private readonly raws: RawStore,
    zstd: ZstdDecoders,
    /** The tar's size, when the blob is the tar itself (not compressed). */
    tarLength?: number,
  ) {
    this.scanner = new TarScanner(raws, tarLength);
    this.inflate = decompressor(compression, zstd);
    if (this.inflate) {
      this.inflate.on('data', (chunk: Buffer) => this.feed(chunk));
      this.inflate.on('error', (e: Error) => {
        this.inflateError = e;
        this.failed = true;
      });
    }
  }

  private feed(chunk: Buffer): void {
    if (this.failed) return;
    this.hash.update(chunk);
    this.size += chunk.length;
    try {
      this.scanner.push(chunk);
    } catch (e) {
      this.giveUp(e);
    }
  }

  /** Not a layer after all: stop decompressing (a zstd child process would otherwise wait for input). */
  private giveUp(e: unknown): void {
    this.failed = true;
    if (e instanceof TarFormatError) this.invalid = e.message;
    else this.failure = e;
    this.raws.release(this.scanner.entries);
    this.inflate?.destroy();
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.inflate) return this.feed(chunk);
    if (this.failed) return;
    try {
      await writeChunk(this.inflate, chunk);
    } catch (e) {
      // a decompression error (end() reports it) or given up on (destroyed): the read goes on without probing
      if (!this.failed) throw e;
    }
  }

  async end(): Promise<LayerProbe | undefined> {
    if (this.inflate && !this.failed) {
      await new Promise<void>((resolve) => {
        this.inflate?.on('end', resolve);
        this.inflate?.on('error', () => resolve());
        this.inflate?.on('close', () => resolve());
        this.inflate?.end();
        this.inflate?.resume();
      });
    }
    if (this.inflateError)
      return {
        compression: this.compression,
        unreadable: `${this.compression} decompression failed: ${this.inflateError.message}`,
      };
    if (!this.failed) {
      try {
        this.scanner.end();
      } catch (e) {
        this.giveUp(e);
      }
    }
    if (this.failure) throw this.failure;
    if (this.failed) {
      this.inflate?.destroy();
      return { compression: this.compression, invalid: this.invalid ?? 'not a tar archive' };
    }
    const diffId = `sha256:${this.hash.digest('hex')}`;
    const keep = this.keepIndex(diffId, this.size);
    if (!keep) this.raws.release(this.scanner.entries);
    return {
      compression: this.compression,
      diffId,
      uncompressedSize: this.size,
      entries: keep ? this.scanner.entries : undefined,
    };
  }
}

class FileSpill {
  private readonly out: WriteStream;
  private failure: Error | null = null;

  constructor(readonly path: string) {
    this.out = createWriteStream(path);
    this.out.on('error', (e) => {
      this.failure = e;
    });
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    await writeChunk(this.out, chunk);
  }

  async close(): Promise<void> {
    if (this.failure) throw this.failure;
    await new Promise<void>((resolve, reject) => {
      this.out.once('error', reject);
      this.out.end(() => resolve());
    });
  }
}

/** One file entry of the archive: looks at its first block, then keeps and probes it accordingly. */
class EntryReceiver {
  private readonly pending: Buffer[] = [];
  private pendingBytes = 0;
  private decided = false;
  private memory: Buffer[] | null = null;
  private spill: FileSpill | null = null;
  private prober: Prober | null = null;
  private compression: Compression = 'none';
  private tarLike = false;

  constructor(
    private readonly name: string,
    private readonly size: number,
    private readonly spillPath: () => string,
    private readonly keepIndex: KeepIndex,
    private readonly raws: RawStore,
    private readonly zstd: ZstdDecoders,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    if (this.decided) return this.sink(chunk);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= BLOCK) await this.decide();
  }

  private async decide(): Promise<void> {
    this.decided = true;
    const head = Buffer.concat(this.pending);
    this.compression = detectCompression(head);
    this.tarLike = looksLikeTar(head, this.compression);
    if (this.tarLike && canDecompress(this.compression, this.zstd))
      this.prober = new Prober(
        this.compression,
        this.keepIndex,
        this.raws,
        this.zstd,
        this.compression === 'none' ? this.size : undefined,
      );
    if (this.size <= IN_MEMORY_MAX || (this.size <= JSON_IN_MEMORY_MAX && looksLikeJson(head))) this.memory = [];
    else this.spill = new FileSpill(this.spillPath());
    for (const chunk of this.pending.splice(0)) await this.sink(chunk);
  }

  private async sink(chunk: Buffer): Promise<void> {
    if (this.prober) await this.prober.write(chunk);
    if (this.memory) this.memory.push(chunk);
    else await this.spill?.write(chunk);
  }

  async end(): Promise<ArchiveEntry> {
    if (!this.decided) await this.decide();
    let layer: LayerProbe | undefined;
    if (this.prober) layer = await this.prober.end();
    else if (this.tarLike && this.compression !== 'none') {
      layer = {
        compression: this.compression,
        unreadable: `${this.compression} needs Node >= 22.15 or the zstd command, neither is here`,
      };
    }
    const { name, size } = this;
    if (this.memory) return { name, size, data: Buffer.concat(this.memory), layer };
    const spill = this.spill as FileSpill;
    await spill.close();
    return { name, size, file: spill.path, layer };
  }
}

export async function readArchive(
  input: NodeJS.ReadableStream,
  workDir: string,
  keepIndex: KeepIndex,
  zstd: ZstdDecoders = HOST_ZSTD,
): Promise<SavedArchive> {
  const entries = new Map<string, ArchiveEntry>();
  const links = new Map<string, string>();
  let spilledBytes = 0;
  let spillCount = 0;
  const raws = new RawStore(join(workDir, 'raw-entries'));
  const extract = tar.extract();
  input.on('error', (e: Error) => extract.destroy(e));
  input.pipe(extract);

  try {
    for await (const entry of extract) {
      const header = entry.header;
      const name = normalizePath(header.name);
      if (header.type === 'symlink' && header.linkname) {
        links.set(name, normalizePath(posix.join(posix.dirname(name), header.linkname)));
      }
      if (header.type !== 'file' && header.type !== 'contiguous-file') {
        entry.resume();
        continue;
      }
      const spillPath = () => join(workDir, `blob-${++spillCount}`);
      const receiver = new EntryReceiver(name, header.size ?? 0, spillPath, keepIndex, raws, zstd);
      for await (const chunk of entry as AsyncIterable<Buffer>) await receiver.write(chunk);
      const received = await receiver.end();
      if (received.file) spilledBytes += received.size;
      entries.set(name, received);
    }
  } catch (e) {
    await raws.close();
    throw e;
  }

  return {
    entries,
    spilledBytes,
    raws,
    get(name: string) {
      let n = normalizePath(name);
      for (let hops = 0; hops < 8 && !entries.has(n) && links.has(n); hops++) n = links.get(n) as string;
      return entries.get(n);
    },
  };
}
