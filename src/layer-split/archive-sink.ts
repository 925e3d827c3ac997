// The relayer's output as the archive `docker load` reads (upload: docker): the legacy layout (manifest.json with
// Config, RepoTags, Layers), which Docker 20.10's loader and Docker 28's containerd-store loader both accept with
// entries in any order. That lets layers be written as they are produced, and the config (which needs every
// piece's digest) and manifest.json last.
import { createReadStream } from 'node:fs';
import type { ArchiveEntry } from '../image/docker-archive-stream.js';
import { ArchiveWriter } from './archive-writer.js';
import type { ChunkWriter, LayerSink } from './sink.js';
import { formatBytes } from '../util/units.js';

export class ArchiveSink implements LayerSink {
  private readonly writer: ArchiveWriter;

  constructor(
    output: NodeJS.WritableStream,
    /** repo:tag the loaded image carries. */
    private readonly tag: string,
  ) {
    this.writer = new ArchiveWriter(output);
  }

  layer(name: string, size: number, fill: (write: ChunkWriter) => Promise<void>): Promise<void> {
    return this.writer.stream(name, size, fill);
  }

  /** The saved bytes as they are (compressed or not): docker load takes either. */
  async kept(entry: ArchiveEntry): Promise<string> {
    await this.writer.stream(entry.name, entry.size, async (write) => {
      const source = entry.file ? createReadStream(entry.file, { highWaterMark: 1024 * 1024 }) : [entry.data as Buffer];
      for await (const chunk of source) await write(chunk as Buffer);
    });
    return entry.name;
  }

  async finish(config: Buffer, configDigest: string, layers: readonly string[]): Promise<string> {
    const configName = `${configDigest.replace(/^sha256:/, '')}.json`;
    await this.writer.file(configName, config);
    const manifest = [{ Config: configName, RepoTags: [this.tag], Layers: layers }];
    await this.writer.file('manifest.json', Buffer.from(JSON.stringify(manifest), 'utf8'));
    await this.writer.finish();
    return `image ${this.tag}, archive ${formatBytes(this.writer.written)}`;
  }
}
