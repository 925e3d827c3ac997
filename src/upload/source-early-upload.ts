// Blobs uploaded while `docker save` is still writing the rest of the image: on the classic store each layer is
// gzipped here as it streams, and once one is whole (its gzip digest known) it can go to the registry while the next
// layer is saved and gzipped. Nothing names these blobs until the manifest is PUT, which happens only after the whole
// archive was read and checked (config, diff IDs); a read that fails after an early upload leaves an unreferenced
// blob in the registry, as any interrupted push does. At most `limit` at once (3, as docker pushes). A layer can
// also be offered when its gzip starts (offerGrowing): its chunks then go while it is compressed (blob-growing.ts).
// The push through the loopback receiver (loopback-push.ts) uses the same queue for the blobs the engine sends it:
// with no limit (the engine decides how many it sends at once) and told of the first failure, which ends its push.
import { uploadBlob, type BlobUploadResult, type UploadBlobOptions } from './blob.js';
import { uploadGrowingBlob } from './blob-growing.js';
import type { BlobSource } from '../image/blob-source.js';
import type { GrowingFile } from '../image/growing-file.js';
import type { RegistryTransport } from './transport.js';

export interface EarlyUploadsOptions {
  /** Uploads at once; default 3. */
  readonly limit?: number;
  /** Told of the first upload that failed, as it fails (the one `failure` keeps). */
  readonly onFailure?: (e: unknown) => void;
}

export class EarlyUploads {
  private readonly queue: Array<() => Promise<BlobUploadResult>> = [];
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
    private readonly queueing: EarlyUploadsOptions = {},
  ) {}

  /** Starts (or queues) the upload of a blob; a digest offered twice goes once. */
  offer(source: BlobSource): void {
    if (this.started.has(source.digest) || this.failure) return;
    this.started.add(source.digest);
    this.opts.onProgress?.({ digest: source.digest, size: source.size, confirmed: 0, chunks: 0 });
    this.queue.push(() => uploadBlob(this.transport, this.repository, source, this.opts));
    this.pump();
  }

  /** Starts (or queues) the upload of a blob still being written; `name` stands for its digest until whole. */
  offerGrowing(growing: GrowingFile, what: { readonly mediaType: string; readonly name: string }): void {
    if (this.failure) return;
    this.queue.push(() => uploadGrowingBlob(this.transport, this.repository, growing, what, this.opts));
    this.pump();
  }

  private pump(): void {
    while (this.running.size < (this.queueing.limit ?? 3) && this.queue.length && !this.failure) {
      const start = this.queue.shift() as () => Promise<BlobUploadResult>;
      const p: Promise<void> = start().then(
        (r: BlobUploadResult) => {
          this.done.add(r.digest);
        },
        (e: unknown) => {
          if (this.failure) return;
          this.failure = e;
          this.queueing.onFailure?.(e);
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
