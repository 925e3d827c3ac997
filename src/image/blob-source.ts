// What the uploader reads: a blob it can read again from any offset (a resumed upload continues mid-blob, a
// restarted one from 0). Files on disk here; the action feeds it from `docker save` spilled to the work directory
// or from the relayer's pieces.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';

export interface BlobSource {
  /** `sha256:<hex>` of the exact bytes. */
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
  /** Where a blob read from another registry lives: a target on the same registry can mount it from there. */
  readonly sourceRepository?: { readonly host: string; readonly repository: string };
  /** The blob's bytes from `offset` to its end. Called again after a failure; every stream is read or destroyed. */
  open(offset: number): Readable;
}

/** A blob from a file, its digest given (as a manifest names it) or computed by reading the file once. */
export async function fileBlobSource(path: string, mediaType: string, digest?: string): Promise<BlobSource> {
  const { size } = await stat(path);
  const d = digest ?? (await sha256OfStream(createReadStream(path)));
  return {
    digest: d,
    size,
    mediaType,
    open: (offset) => createReadStream(path, { start: offset, highWaterMark: 1024 * 1024 }),
  };
}

/** A blob held in memory (a config, a manifest's small parts, tests). */
export function bufferBlobSource(bytes: Buffer, mediaType: string): BlobSource {
  return {
    digest: sha256Digest(bytes),
    size: bytes.length,
    mediaType,
    open: (offset) => Readable.from([bytes.subarray(offset)]),
  };
}

export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export async function sha256OfStream(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
