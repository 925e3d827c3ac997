// Blobs uploaded while `docker save` is still writing the rest of the image: on the classic store each layer is
// gzipped here as it streams, and once one is whole (its gzip digest known) it can go to the registry while the next
// layer is saved and gzipped. Nothing names these blobs until the manifest is PUT, which happens only after the whole
// archive was read and checked (config, diff IDs); a read that fails after an early upload leaves an unreferenced
// blob in the registry, as any interrupted push does. At most `limit` at once (3, as docker pushes).
import { uploadBlob, type BlobUploadResult, type UploadBlobOptions } from './blob.js';
import type { BlobSource } from '../image/blob-source.js';
import type { RegistryTransport } from './transport.js';

export class EarlyUploads {
  private readonly queue: BlobSource[] = [];
  private readonly running = new Set<Promise<void>>();
  private readonly started = new Set<string>();
  /** Digests uploaded (or found there) by this. */
  readonly done = new Set<string>();
  /** The first upload that failed; the caller reports it once it knows which layer it was. */
  failure: unknown = null;

  constructor(
    private readonly transport: RegistryTransport,
    private readonly repository: string,
    private readonly opts: UploadBlobOptions,
    private readonly limit = 3,
  ) {}

  /** Starts (or queues) the upload of a blob; a digest offered twice goes once. */
  offer(source: BlobSource): void {
    if (this.started.has(source.digest) || this.failure) return;
    this.started.add(source.digest);
    this.opts.onProgress?.({ digest: source.digest, size: source.size, confirmed: 0, chunks: 0 });
    this.queue.push(source);
    this.pump();
  }

  private pump(): void {
    while (this.running.size < this.limit && this.queue.length && !this.failure) {
      const source = this.queue.shift() as BlobSource;
      const p: Promise<void> = uploadBlob(this.transport, this.repository, source, this.opts).then(
        (r: BlobUploadResult) => {
          this.done.add(r.digest);
        },
        (e: unknown) => {
          this.failure ??= e;
        },
      );
      const tracked = p.finally(() => {
        this.running.delete(tracked);
        this.pump();
      });
      this.running.add(tracked);
    }
  }

  /** Waits for every upload started; queued ones start as others end. Never rejects: see `failure`. */
  async settle(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running]);
  }
}
