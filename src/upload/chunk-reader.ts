// Reads a stream in pieces of an exact size, one piece in memory at a time: each chunk is read into one Buffer so
// that a PATCH can be retried or resumed from any byte inside it without reading the source again.
import type { Readable } from 'node:stream';

export class ChunkReader {
  private readonly it: AsyncIterator<Buffer>;
  private rest: Buffer | null = null;
  private ended = false;

  constructor(private readonly stream: Readable) {
    this.it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** The next `size` bytes; fewer only at the end of the stream. */
  async read(size: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(size);
    let filled = 0;
    while (filled < size) {
      let piece = this.rest;
      this.rest = null;
      if (!piece) {
        if (this.ended) break;
        const next = await this.it.next();
        if (next.done) {
          this.ended = true;
          break;
        }
        piece = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      }
      const take = Math.min(piece.length, size - filled);
      piece.copy(out, filled, 0, take);
      filled += take;
      if (take < piece.length) this.rest = piece.subarray(take);
    }
    return filled === size ? out : out.subarray(0, filled);
  }

  close(): void {
    this.stream.destroy();
  }
}
