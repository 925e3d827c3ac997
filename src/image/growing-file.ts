// A file that is still being written, as its readers see it: how far it is written, whether the writer finished
// (then its size and sha256), and a reader that follows it from any offset while it grows. Two writers feed one:
// the classic-store gzip of a layer (docker-archive-stream.ts), whose size and digest are known only at the end, so
// an upload can send the first chunks while the rest is compressed; and the loopback receiver's blobs
// (upload/receiver-incoming.ts), whose size and digest are announced first and whose last byte is held back until
// the digest is checked. The writer calls grew() only once the bytes are in the file, so a reader never reads
// past what the file holds.
import { open, type FileHandle } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';

export interface WrittenFile {
  readonly size: number;
  /** sha256 of the file's bytes, `sha256:<hex>`. */
  readonly digest: string;
}

/** What one reader did: where it started and stopped, how often and how long it waited for the writer. */
export interface FollowStats {
  readonly from: number;
  readonly at: number;
  readonly waits: number;
  readonly waitedMs: number;
}

const READ_SIZE = 1024 * 1024;

export class GrowingFile {
  /** Bytes in the file now. */
  written = 0;
  error: Error | null = null;
  /** Set once the writer finished. */
  result: WrittenFile | null = null;
  /** Resolves when the writer finished; rejects when it failed. */
  readonly whole: Promise<WrittenFile>;
  private waiters: Array<() => void> = [];
  private settle!: { resolve: (r: WrittenFile) => void; reject: (e: Error) => void };

  constructor(readonly file: string) {
    this.whole = new Promise<WrittenFile>((resolve, reject) => (this.settle = { resolve, reject }));
    this.whole.catch(() => undefined); // the caller may never ask; a failure is also in `error`
  }

  /** Resolves at the next change (bytes written, the end, a failure). */
  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The writer put `n` more bytes into the file. */
  grew(n: number): void {
    this.written += n;
    this.wake();
  }

  /** The writer finished: every byte is in the file. */
  end(result: WrittenFile): void {
    if (this.result || this.error) return;
    this.result = result;
    this.settle.resolve(result);
    this.wake();
  }

  fail(e: Error): void {
    if (this.result || this.error) return;
    this.error = e;
    this.settle.reject(e);
    this.wake();
  }

  /** Up to where a reader may go now. */
  readable(): number {
    return this.written;
  }

  /** Where a reader stops: the final size, null while it is not known. */
  total(): number | null {
    return this.result?.size ?? null;
  }

  /** The file from `offset` to its end, following it while it is written; fails if the writer does. */
  follow(offset: number, onEnd?: (stats: FollowStats) => void): Readable {
    return Readable.from(followFile(this, offset, onEnd), { objectMode: false });
  }
}

async function* followFile(g: GrowingFile, offset: number, onEnd?: (s: FollowStats) => void): AsyncGenerator<Buffer> {
  let fh: FileHandle | null = null;
  let pos = offset;
  let waits = 0;
  let waitedMs = 0;
  try {
    fh = await open(g.file, 'r');
    for (;;) {
      if (g.error) throw g.error;
      const total = g.total();
      if (total !== null && pos >= total) return;
      const upTo = g.readable();
      if (pos >= upTo) {
        const began = performance.now();
        await g.wait();
        waits++;
        waitedMs += performance.now() - began;
        continue;
      }
      const buf = Buffer.allocUnsafe(Math.min(READ_SIZE, upTo - pos));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) throw new Error(`${g.file} ended at ${pos} of ${upTo} bytes written`);
      pos += bytesRead;
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    onEnd?.({ from: offset, at: pos, waits, waitedMs: Math.round(waitedMs) });
    await fh?.close();
  }
}
