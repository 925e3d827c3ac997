// A blob of a source registry as a BlobSource: `open(offset)` streams `GET /v2/REPO/blobs/DIGEST` from that byte
// (`Range: bytes=offset-`; a 206 must say the range asked, a 200 to a Range is skipped to the offset), following
// redirects by the Location rules (registry-origin.ts, applied by RegistryClient.stream: a storage origin gets no
// credentials). A reset or an idle stall mid-blob re-requests from the byte reached, a few times, so the reader
// (the uploader) never sees it and no byte reaches it twice. Nothing is buffered beyond the stream's own window.
import { Readable } from 'node:stream';
import type { BlobSource } from '../image/blob-source.js';
import { sleep } from '../util/timers.js';
import { HttpError } from './http-request.js';
import { RegistryError, type RegistryClient } from './registry-client.js';

export interface BlobReadOptions {
  /** A read that receives nothing for this long is cut and resumed; default 60 s. */
  readonly idleMs?: number;
  /** Re-requests in a row that get no further, after a reset or stall; default 5. */
  readonly maxResumes?: number;
  /** Deadline to the headers of each GET; default the client's. */
  readonly deadlineMs?: number;
  readonly signal?: AbortSignal;
  /** Wait before the n-th re-request (1-based); default 250 ms doubling, at most 4 s. */
  readonly resumeDelayMs?: (n: number) => number;
}

export interface BlobDescriptor {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
}

const MAX_REDIRECTS = 5;
const DEFAULT_IDLE_MS = 60_000;
const DEFAULT_MAX_RESUMES = 5;

/** `bytes START-END/TOTAL` naming exactly what a Range from `offset` of a `size`-byte blob asked for. */
export function contentRangeMatches(header: string | null, offset: number, size: number): boolean {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec((header ?? '').trim());
  if (!m) return false;
  return Number(m[1]) === offset && Number(m[2]) === size - 1 && (m[3] === '*' || Number(m[3]) === size);
}

/** The answer ended before the blob did (a proxy that closed it cleanly): resumed like a reset. */
class ShortBody extends Error {}

/** Whether a failed read is one a new request may get past: a reset, a stall, a 5xx or 429, a body cut short. */
function resumable(error: unknown): boolean {
  if (error instanceof HttpError) return error.kind === 'network' || error.kind === 'timeout';
  if (error instanceof RegistryError) return error.status !== null && (error.status >= 500 || error.status === 429);
  return error instanceof ShortBody;
}

interface Opened {
  readonly body: Readable;
  /** The blob offset of the body's first byte: the offset asked (206), or 0 (a 200 that ignored the Range). */
  readonly at: number;
}

export class RegistryBlobReader {
  constructor(
    private readonly client: RegistryClient,
    private readonly repository: string,
    private readonly opts: BlobReadOptions = {},
  ) {}

  /** One GET from `offset`, through its redirects. */
  async openAt(blob: BlobDescriptor, offset: number): Promise<Opened> {
    const what = `${this.client.host}: GET ${this.repository}@${blob.digest}`;
    let url = new URL(`/v2/${this.repository}/blobs/${blob.digest}`, this.client.base);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const res = await this.client.stream({
        url: url.href,
        repository: this.repository,
        headers: offset > 0 ? { Range: `bytes=${offset}-` } : {},
        maxBodyBytes: blob.size,
        deadlineMs: this.opts.deadlineMs,
        idleMs: this.opts.idleMs ?? DEFAULT_IDLE_MS,
        signal: this.opts.signal,
      });
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        res.body.destroy();
        url = new URL(location, url);
        continue;
      }
      if (res.status === 206 && offset > 0) {
        if (contentRangeMatches(res.headers.get('content-range'), offset, blob.size))
          return { body: res.body, at: offset };
        res.body.destroy();
        throw new RegistryError(`${what} from ${offset}: the 206 names another range`, 206, 'protocol');
      }
      if (res.status === 200) return { body: res.body, at: 0 };
      res.body.destroy();
      throw new RegistryError(`${what} answered ${res.status}`, res.status);
    }
    throw new RegistryError(`${what}: more than ${MAX_REDIRECTS} redirects`, null, 'protocol');
  }

  /** The blob's bytes from `offset` to its end, re-requested from the byte reached after a reset or a stall. */
  async *bytes(blob: BlobDescriptor, offset: number): AsyncGenerator<Buffer> {
    let pos = offset;
    let resumes = 0;
    // The bound is on re-requests that got nowhere: a long upload may pause the read often enough for a server to
    // drop the idle connection more than maxResumes times, each time after progress.
    let failedAt = -1;
    while (pos < blob.size) {
      try {
        const { body, at } = await this.openAt(blob, pos);
        let skip = pos - at;
        for await (const chunk of body as AsyncIterable<Buffer>) {
          const piece = skip > 0 ? chunk.subarray(Math.min(skip, chunk.length)) : chunk;
          skip -= chunk.length - piece.length;
          if (piece.length === 0) continue;
          if (pos + piece.length > blob.size)
            throw new RegistryError(
              `${this.client.host}: ${blob.digest} is longer than its ${blob.size} bytes`,
              null,
              'protocol',
            );
          pos += piece.length;
          yield piece;
        }
        if (pos < blob.size) throw new ShortBody(`the answer ended at byte ${pos} of ${blob.size}`);
      } catch (error) {
        resumes = pos > failedAt ? 1 : resumes + 1;
        failedAt = pos;
        if (this.opts.signal?.aborted || !resumable(error) || resumes > (this.opts.maxResumes ?? DEFAULT_MAX_RESUMES))
          throw error;
        await sleep((this.opts.resumeDelayMs ?? defaultDelay)(resumes), this.opts.signal);
      }
    }
  }

  source(blob: BlobDescriptor): BlobSource {
    return {
      ...blob,
      sourceRepository: { host: this.client.host, repository: this.repository },
      open: (offset) => Readable.from(this.bytes(blob, offset), { objectMode: false, highWaterMark: 1024 * 1024 }),
    };
  }
}

const defaultDelay = (n: number) => Math.min(4000, 250 * 2 ** (n - 1));
