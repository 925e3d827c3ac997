// A blob the loopback receiver is writing, as its readers see it: a growing file (image/growing-file.ts) whose size
// and digest were announced first. The last byte is held back until the digest is verified, so an upload following
// the bytes can never commit a blob that turns out wrong.
import type { BlobSource } from '../image/blob-source.js';
import { GrowingFile } from '../image/growing-file.js';
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

/** A blob being written: its bytes so far, and who waits for more. */
export class Incoming extends GrowingFile {
  readonly done: Promise<void>;

  constructor(
    file: string,
    readonly digest: string,
    readonly size: number,
  ) {
    super(file);
    this.done = this.whole.then(() => undefined);
    this.done.catch(() => undefined); // the caller may never ask; a failure is also in `error`
  }

  get verified(): boolean {
    return this.result !== null;
  }

  /** Every byte is written and the digest checked. */
  finish(): void {
    this.end({ size: this.size, digest: this.digest });
  }

  /** Up to where a reader may go now: the last byte only once the digest is checked. */
  override readable(): number {
    return this.verified ? this.size : Math.min(this.written, this.size - 1);
  }

  override total(): number {
    return this.size;
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
        // what the timeline says of this reader: how often and how long it waited for the writer
        open: (offset) => this.follow(offset, (s) => mark('tail-end', { digest: this.digest, ...s })),
      },
    };
  }
}
