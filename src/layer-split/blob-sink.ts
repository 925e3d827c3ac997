// The relayer's output as blobs the action uploads itself (layer-split: auto with upload: auto or chunked): each
// piece is gzipped on its way to a file in the work directory (the deterministic parallel gzip the uploader uses for
// classic-store layers, so a re-run makes the same blob and the registry's HEAD finds it), its digest computed as it
// is written; the diff ID is the piece writer's. A layer kept whole is taken as the engine saved it when that is
// gzip (the containerd store: same bytes, same digest as the engine would push), else gzipped here (a classic
// store saves plain tars; zstd has no Docker schema 2 media type). The result is a ManifestImage: no docker load,
// nothing new in the engine. Memory: a few gzip blocks at a time, never a layer.
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { MEDIA_TYPES, platformString, type Platform } from '../image/oci.js';
import { writeChunk } from '../util/stream-write.js';
import { formatBytes } from '../util/units.js';
import { dockerManifestImage, type ManifestImage } from '../image/image-model.js';
import { fileBlobSource, type BlobSource } from '../image/blob-source.js';
import { gzipToFile, type ArchiveEntry } from '../image/docker-archive-stream.js';
import type { ChunkWriter, LayerSink } from './sink.js';

const LAYER = MEDIA_TYPES.dockerLayerGzip;
/**
 * Blocks deflated at once: all four threads of libuv's pool, even on two cores. Here the main thread also hashes
 * every byte twice (diff ID, blob digest) and cuts the pieces; with only two blocks in flight the deflate threads
 * wait on it (measured on the 2-core rig, 256 MB of random data: 53-62 MB/s with 2, 74-76 with 4, 79 with 8).
 * Memory: 4 x (1 MiB in + 1 MiB out). The output does not depend on it.
 */
const GZIP_PARALLEL = 4;

/** os/architecture[/variant] as the relayer's config says (the user's image's, copied); '' when it says none. */
function configPlatform(config: Buffer): string {
  try {
    const c = JSON.parse(config.toString('utf8')) as Platform | null;
    return c ? platformString({ os: c.os, architecture: c.architecture, variant: c.variant }) : '';
  } catch {
    return '';
  }
}

export class BlobSink implements LayerSink {
  private readonly blobs = new Map<string, BlobSource>();
  private count = 0;
  private compressed = 0;
  private taken = 0;
  /** Set by finish. */
  image: ManifestImage | null = null;

  constructor(
    /** Created by the caller, removed by the caller (or with the run's work directory). */
    private readonly dir: string,
    private readonly opts: {
      readonly signal?: AbortSignal;
      /** Told of each layer blob as soon as its file is complete (an upload can start while the next is cut). */
      readonly onBlob?: (blob: BlobSource) => void;
    } = {},
  ) {}

  private done(name: string, blob: BlobSource): void {
    this.blobs.set(name, blob);
    this.opts.onBlob?.(blob);
  }

  private nextFile(): string {
    return join(this.dir, `layer-${++this.count}.tar.gz`);
  }

  /** Gzips what `fill` writes into a new file (gzipToFile: the uploader's deterministic gzip): the blob. */
  private async gzipBlob(fill: (write: ChunkWriter) => Promise<void>): Promise<BlobSource> {
    const path = this.nextFile();
    // fill pushes, the gzip pulls: a small pipe between them keeps both bounded.
    const pipe = new PassThrough({ highWaterMark: 1024 * 1024 });
    // a failure reaches the caller through `feeding` and the gzip's read of the pipe; the pipe's own 'error' may come
    // before the gzip reads it (it opens its file first), and must not be an unhandled one
    pipe.on('error', () => undefined);
    const signal = this.opts.signal;
    const onAbort = () => pipe.destroy(new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    const feeding = (async () => {
      try {
        if (signal?.aborted) throw new Error('aborted');
        await fill((chunk) => writeChunk(pipe, chunk));
        pipe.end();
      } catch (e) {
        pipe.destroy(e as Error);
        throw e;
      }
    })();
    try {
      const [, gz] = await Promise.all([
        feeding,
        gzipToFile(pipe, path, { parallel: GZIP_PARALLEL }).catch((e: unknown) => {
          // the feeder waits on the pipe: end it so both settle
          pipe.destroy(e as Error);
          throw e;
        }),
      ]);
      this.compressed += gz.size;
      return await fileBlobSource(path, LAYER, gz.digest);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async layer(name: string, _size: number, fill: (write: ChunkWriter) => Promise<void>): Promise<void> {
    this.done(name, await this.gzipBlob(fill));
  }

  async kept(entry: ArchiveEntry, _diffId: string, open: () => AsyncIterable<Buffer>): Promise<string> {
    let blob: BlobSource;
    if (entry.layer?.compression === 'gzip') {
      // The engine's own blob: moved, not copied (the relayer is done with it once a layer is kept whole).
      const path = this.nextFile();
      if (entry.file) await rename(entry.file, path);
      else await writeFile(path, entry.data as Buffer);
      blob = await fileBlobSource(path, LAYER);
      this.taken += blob.size;
    } else {
      blob = await this.gzipBlob(async (write) => {
        for await (const chunk of open()) await write(chunk);
      });
    }
    this.done(entry.name, blob);
    return entry.name;
  }

  async finish(config: Buffer, _configDigest: string, layers: readonly string[]): Promise<string> {
    const blobs = layers.map((name) => {
      const b = this.blobs.get(name);
      if (!b) throw new Error(`no blob was written for layer ${name}`);
      return b;
    });
    this.image = dockerManifestImage(config, blobs, configPlatform(config));
    const kept = this.taken ? `, ${formatBytes(this.taken)} taken as the engine compressed it` : '';
    return `${blobs.length} blobs (${formatBytes(this.compressed)} gzipped here${kept}) in ${this.dir}`;
  }
}
