// Reads a blob source forward, one request body at a time: take(n) is a stream of the next n bytes, straight from
// the source (no copy, nothing held but the source's own read buffer). A body that was not read to its end leaves
// the cursor unusable: the uploader then opens the source again at the offset the registry reports.
import { Readable } from 'node:stream';
import type { BlobSource } from '../image/blob-source.js';

export class SourceCursor {
  private readonly stream: Readable;
  private readonly it: AsyncIterator<Buffer>;
  private rest: Buffer | null = null;
  /** False while a body is being read, and for good once one was left unfinished. */
  private ready = true;
  /** Set when the source ended before its size or failed. */
  sourceError: Error | null = null;

  constructor(
    private readonly source: BlobSource,
    /** The source offset of the next byte take() gives. */
    public offset: number,
  ) {
    this.stream = source.open(offset);
    this.it = this.stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** Whether the next take() continues where the last one ended, at `offset`. */
  usableAt(offset: number): boolean {
    return this.ready && this.offset === offset && !this.sourceError;
  }

  take(length: number): Readable {
    this.ready = false;
    return Readable.from(this.body(length), { objectMode: false, highWaterMark: 1 });
  }

  private async *body(length: number): AsyncGenerator<Buffer> {
    let left = length;
    while (left > 0) {
      let piece = this.rest;
      this.rest = null;
      if (!piece) {
        let next: IteratorResult<Buffer>;
        try {
          next = await this.it.next();
        } catch (e) {
          throw (this.sourceError = e instanceof Error ? e : new Error(String(e)));
        }
        if (next.done) {
          this.sourceError = new Error(`the source ended at ${this.offset} of ${this.source.size} bytes`);
          throw this.sourceError;
        }
        piece = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      }
      const part = piece.length > left ? piece.subarray(0, left) : piece;
      if (part.length < piece.length) this.rest = piece.subarray(part.length);
      left -= part.length;
      this.offset += part.length;
      yield part;
    }
    this.ready = true;
  }

  close(): void {
    this.stream.destroy();
  }
}
