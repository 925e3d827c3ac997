// What a `docker save` entry that looks like a layer is, found as its bytes stream past (docker-archive-stream.ts):
// whether it is a tar (plain, or compressed and readable here), its diff ID, its uncompressed size and, for the
// layers the caller will split, the index of its entries (tar-scanner.ts).
import { createHash, type Hash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { writeChunk } from '../util/stream-write.js';
import {
  canDecompress,
  decompressor,
  detectCompression,
  HOST_ZSTD,
  type Compression,
  type ZstdDecoders,
} from './compression.js';
import { BLOCK, isHeaderBlock, isZeroBlock, TarFormatError } from './tar-header.js';
import { TarScanner, type LayerEntry, type RawStore } from './tar-scanner.js';

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

/** Decides, once a layer's diff ID and size are known, whether its index is worth keeping. */
export type KeepIndex = (diffId: string, uncompressedSize: number) => boolean;

export interface ProbeOptions {
  readonly keepIndex: KeepIndex;
  /** Where the kept indexes' movable entries keep their bytes; the caller closes it. */
  readonly raws: RawStore;
  readonly zstd?: ZstdDecoders;
}

/** An uncompressed tar: its first block is a header or the end-of-archive (an empty layer). */
export function isPlainTar(head: Buffer): boolean {
  if (head.length < BLOCK || detectCompression(head) !== 'none') return false;
  const block = head.subarray(0, BLOCK);
  return isHeaderBlock(block) || isZeroBlock(block);
}

/**
 * Hashes (when decompressed here) and indexes a layer's uncompressed bytes as they go past. Gives up on anything
 * that turns out not to be a tar, saying why: for a blob that only looks like a layer that is nothing, for a layer
 * it is an error.
 */
export class Prober {
  /** Of the uncompressed bytes; null for a plain tar, whose diff ID is the entry's digest. */
  private readonly hash: Hash | null;
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
    private readonly opts: ProbeOptions,
    /** The tar's size, when the blob is the tar itself (not compressed). */
    tarLength?: number,
  ) {
    this.scanner = new TarScanner(opts.raws, tarLength);
    this.inflate = decompressor(compression, opts.zstd ?? HOST_ZSTD);
    this.hash = this.inflate ? createHash('sha256') : null;
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
    this.hash?.update(chunk);
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
    this.opts.raws.release(this.scanner.entries);
    this.inflate?.destroy();
  }

  /** The read failed: nothing is left decompressing. */
  stop(): void {
    this.failed = true;
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

  /** The probe, once every byte was written; `digest` is the entry's (a plain tar's diff ID). */
  async end(digest: string): Promise<LayerProbe> {
    if (this.inflate && !this.failed) {
      await new Promise<void>((resolve) => {
        this.inflate?.on('end', resolve);
        this.inflate?.on('error', () => resolve());
        this.inflate?.on('close', () => resolve());
        this.inflate?.end();
        this.inflate?.resume();
      });
    }
    const compression = this.compression;
    if (this.inflateError)
      return { compression, unreadable: `${compression} decompression failed: ${this.inflateError.message}` };
    if (!this.failed) {
      try {
        this.scanner.end();
      } catch (e) {
        this.giveUp(e);
      }
    }
    if (this.failure) throw this.failure;
    if (this.failed) return { compression, invalid: this.invalid ?? 'not a tar archive' };
    const diffId = this.hash ? `sha256:${this.hash.digest('hex')}` : digest;
    const keep = this.opts.keepIndex(diffId, this.size);
    if (!keep) this.opts.raws.release(this.scanner.entries);
    return { compression, diffId, uncompressedSize: this.size, entries: keep ? this.scanner.entries : undefined };
  }
}

/** How an entry is probed: a Prober for a tar (plain or compressed) this runtime reads, or why it cannot be. */
export function probeFor(head: Buffer, size: number, probe: ProbeOptions | undefined): Prober | LayerProbe | undefined {
  if (!probe) return undefined;
  const compression = detectCompression(head);
  // a compressed blob may hold anything: the scanner decides once decompressed
  if (compression === 'none' && !isPlainTar(head)) return undefined;
  if (!canDecompress(compression, probe.zstd ?? HOST_ZSTD))
    return { compression, unreadable: `${compression} needs Node >= 22.15 or the zstd command, neither is here` };
  return new Prober(compression, probe, compression === 'none' ? size : undefined);
}
