// The outer archive handed to `docker load`: plain files, written as they are produced with the output's
// backpressure respected, so nothing bigger than a chunk is ever buffered here.
import { endStream, writeChunk } from '../util/stream-write.js';
import type { ChunkWriter } from './sink.js';
import { END_OF_ARCHIVE, encodeFileHeader, paddedSize } from '../image/tar-header.js';

export type { ChunkWriter };

const CLOSED_EARLY = 'the archive output closed before the archive was complete';

export class ArchiveWriter {
  private failure: Error | null = null;
  /** Bytes written so far. */
  written = 0;

  constructor(private readonly out: NodeJS.WritableStream) {
    // Remembered rather than thrown from an event: the next write reports it.
    out.on('error', (e: Error) => {
      this.failure ??= e;
    });
  }

  private async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    this.written += chunk.length;
    await writeChunk(this.out, chunk, () => this.failure ?? new Error(CLOSED_EARLY));
  }

  async file(name: string, data: Buffer): Promise<void> {
    await this.stream(name, data.length, (write) => write(data));
  }

  /** An entry whose `size` bytes `fill` writes; a different count is a bug and fails the archive. */
  async stream(name: string, size: number, fill: (write: ChunkWriter) => Promise<void>): Promise<void> {
    await this.write(encodeFileHeader(name, size));
    let count = 0;
    await fill(async (chunk) => {
      count += chunk.length;
      if (count > size) throw new Error(`archive entry ${name}: more than the ${size} bytes announced`);
      await this.write(chunk);
    });
    if (count !== size) throw new Error(`archive entry ${name}: ${count} bytes written, ${size} announced`);
    const pad = paddedSize(size) - size;
    if (pad) await this.write(Buffer.alloc(pad));
  }

  async finish(): Promise<void> {
    await this.write(END_OF_ARCHIVE);
    if (this.failure) throw this.failure;
    await endStream(this.out, () => this.failure ?? new Error(CLOSED_EARLY));
  }
}
