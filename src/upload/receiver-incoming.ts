// A blob the loopback receiver is writing, as its readers see it: how far its file is written, whether its digest
// is checked, and a reader that follows the file while it grows. The last byte is held back until the digest is
// verified, so an upload following the bytes can never commit a blob that turns out wrong.
import { open, type FileHandle } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { BlobSource } from '../image/blob-source.js';
import { mark } from './timeline.js';

export interface ReceivedBlob {
  readonly digest: string;
  readonly size: number;
  readonly file: string;
  /** Reads the blob from `offset`, following the file while it is written; fails if the blob does. */
  readonly source: BlobSource;
  /** Resolves once every byte is written and the digest checked; rejects when the blob failed. */
  readonly done: Promise<void>;
}

const READ_SIZE = 1024 * 1024;

/** A blob being written: its bytes so far, and who waits for more. */
export class Incoming {
  written = 0;
  verified = false;
  error: Error | null = null;
  private waiters: Array<() => void> = [];
  readonly done: Promise<void>;
  private settle!: { resolve: () => void; reject: (e: Error) => void };

  constructor(
    readonly file: string,
    readonly digest: string,
    readonly size: number,
  ) {
    this.done = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.done.catch(() => undefined); // the caller may never ask; a failure is also in `error`
  }

  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  grew(n: number): void {
    this.written += n;
    this.wake();
  }

  finish(): void {
    this.verified = true;
    this.settle.resolve();
    this.wake();
  }

  fail(e: Error): void {
    if (this.verified || this.error) return;
    this.error = e;
    this.settle.reject(e);
    this.wake();
  }

  /** Up to where a reader may go now: the last byte only once the digest is checked. */
  readable(): number {
    return this.verified ? this.size : Math.min(this.written, this.size - 1);
  }

  blob(): ReceivedBlob {
    return {
      digest: this.digest,
      size: this.size,
      file: this.file,
      done: this.done,
      source: {
        digest: this.digest,
        size: this.size,
        mediaType: 'application/octet-stream',
        open: (offset) => Readable.from(tail(this, offset), { objectMode: false }),
      },
    };
  }
}

/** A received blob from `offset`, following its file while it is written; the last byte once it is verified. */
async function* tail(inc: Incoming, offset: number): AsyncGenerator<Buffer> {
  let fh: FileHandle | null = null;
  let pos = offset;
  // what the timeline says of this reader: how often and how long it waited for the writer
  let waits = 0;
  let waitedMs = 0;
  try {
    fh = await open(inc.file, 'r');
    while (pos < inc.size) {
      if (inc.error) throw inc.error;
      const upTo = inc.readable();
      if (pos >= upTo) {
        const began = performance.now();
        await inc.wait();
        waits++;
        waitedMs += performance.now() - began;
        continue;
      }
      const buf = Buffer.allocUnsafe(Math.min(READ_SIZE, upTo - pos));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) throw new Error(`${inc.file} ended at ${pos} of ${upTo} bytes written`);
      pos += bytesRead;
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    mark('tail-end', { digest: inc.digest, from: offset, at: pos, waits, waitedMs: Math.round(waitedMs) });
    await fh?.close();
  }
}
