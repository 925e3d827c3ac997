// Writes the planned pieces of one layer to the sink in a single sequential pass over the layer's
// (uncompressed) bytes: ranges come from the stream in increasing order, moved and repeated entries from the
// RawStore as their turn comes (from memory or its file, so their total never sits in memory). Each piece's
// digest is computed on the way: it is the piece's diff ID.
import { createHash } from 'node:crypto';
import type { ChunkWriter, LayerSink } from './sink.js';
import type { LayerPlan } from './split-plan.js';
import type { RawStore } from '../image/tar-scanner.js';
import { END_OF_ARCHIVE } from '../image/tar-header.js';

export interface WrittenPiece {
  readonly name: string;
  readonly diffId: string;
  readonly size: number;
}

/** Reads forward only: what is skipped is gone, which is all a plan in stream order needs. */
class ForwardReader {
  private chunk: Buffer = Buffer.alloc(0);
  /** Stream offset of chunk[0]. */
  private pos = 0;
  private readonly it: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  async copy(start: number, end: number, sink: ChunkWriter): Promise<void> {
    if (start < this.pos) throw new Error(`layer range ${start}..${end} is behind the stream (at ${this.pos})`);
    while (start < end) {
      if (this.chunk.length === 0) {
        const next = await this.it.next();
        if (next.done) throw new Error(`layer ended at byte ${this.pos}, before ${end}`);
        this.chunk = next.value;
        continue;
      }
      const chunkEnd = this.pos + this.chunk.length;
      if (chunkEnd <= start) {
        this.pos = chunkEnd;
        this.chunk = Buffer.alloc(0);
        continue;
      }
      const from = start - this.pos;
      const to = Math.min(end, chunkEnd) - this.pos;
      const part = this.chunk.subarray(from, to);
      this.chunk = this.chunk.subarray(to);
      this.pos += to;
      start += part.length;
      await sink(part);
    }
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
}

export async function writePieces(
  layer: AsyncIterable<Buffer>,
  plan: LayerPlan,
  raws: RawStore,
  out: LayerSink,
  nameOf: (index: number) => string,
): Promise<WrittenPiece[]> {
  const reader = new ForwardReader(layer);
  const written: WrittenPiece[] = [];
  try {
    for (const [i, piece] of plan.pieces.entries()) {
      const hash = createHash('sha256');
      const name = nameOf(i);
      await out.layer(name, piece.size, async (write) => {
        const sink: ChunkWriter = (chunk) => {
          hash.update(chunk);
          return write(chunk);
        };
        for (const item of piece.items) {
          if (item.kind === 'bytes') for await (const part of raws.read(item.raw)) await sink(part);
          else await reader.copy(item.start, item.end, sink);
        }
        await sink(END_OF_ARCHIVE);
      });
      written.push({ name, diffId: `sha256:${hash.digest('hex')}`, size: piece.size });
    }
  } finally {
    await reader.close();
  }
  return written;
}
