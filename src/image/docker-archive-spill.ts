// `docker save`'s archive, read once as it streams, every blob kept for the upload: the documents (manifest.json,
// index.json, configs, manifests) in memory, the rest in files under the work directory, each hashed on the way.
// Both layouts put the documents that say which blob is what after the blobs, so what to do with an entry is
// decided from its first block, as the relayer's archive reader does: an uncompressed tar (a classic-store layer)
// is gzipped on the way to its file (its own bytes are hashed too: the diff ID), anything else is kept as it is.
// Only the compressed copy of a tar is written, so the work directory holds about the image's compressed size.
// A blob named by its digest (blobs/sha256/<hex>) whose bytes hash otherwise fails the read at once.
import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { detectCompression } from './compression.js';
import { BLOCK, isHeaderBlock, isZeroBlock, normalizePath } from './tar-header.js';
import { endStream, writeChunk } from '../util/stream-write.js';
import { gzipDeterministic, type GzipOptions } from './gzip.js';

export interface SpilledEntry {
  readonly name: string;
  /** Bytes as the archive holds them. */
  readonly size: number;
  /** sha256 of the archive's bytes (for a layer tar: its diff ID). */
  readonly digest: string;
  /** Small entries (documents, tiny blobs). */
  readonly data?: Buffer;
  /** The archive's bytes in a file. */
  readonly file?: string;
  /** An uncompressed tar, kept only gzipped (source-gzip.ts): the file, its size and digest. */
  readonly gzip?: { readonly file: string; readonly size: number; readonly digest: string };
}

export interface SpilledArchive {
  /** By normalized name; symlinked names (older `docker save` links repeated layers) resolve to their target. */
  get(name: string): SpilledEntry | undefined;
  readonly entries: ReadonlyMap<string, SpilledEntry>;
  /** Bytes written to the work directory. */
  readonly spilledBytes: number;
}

export interface SpillOptions {
  readonly gzip?: GzipOptions;
  readonly signal?: AbortSignal;
  /** Told of each entry once it is whole and hashed (and a digest-named one checked), while later ones stream. */
  readonly onEntry?: (entry: SpilledEntry) => void;
}

/** Entries up to this size stay in memory whatever they are; JSON documents up to JSON_IN_MEMORY_MAX. */
export const IN_MEMORY_MAX = 64 * 1024;
const JSON_IN_MEMORY_MAX = 4 * 1024 * 1024;
const FILE_HIGH_WATER = 1024 * 1024;

export class BlobDigestError extends Error {
  constructor(
    readonly entry: string,
    readonly actual: string,
  ) {
    super(`the archive's ${entry} is not what its name says: its bytes hash to ${actual}`);
    this.name = 'BlobDigestError';
  }
}

/** The digest an entry's name claims (blobs/<alg>/<hex>), or null. */
export function digestFromName(name: string): string | null {
  const m = /^blobs\/(sha256)\/([a-f0-9]{64})$/.exec(name);
  return m ? `${m[1]}:${m[2]}` : null;
}

function looksLikeJson(head: Buffer): boolean {
  for (const b of head) {
    if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
    return b === 0x7b || b === 0x5b; // { [
  }
  return false;
}

/** An uncompressed tar: its first block is a header or the end-of-archive (an empty layer). */
export function isPlainTar(head: Buffer): boolean {
  if (head.length < BLOCK || detectCompression(head) !== 'none') return false;
  const block = head.subarray(0, BLOCK);
  return isHeaderBlock(block) || isZeroBlock(block);
}

async function toFile(path: string, chunks: AsyncIterable<Buffer>, hash?: ReturnType<typeof createHash>) {
  const out = createWriteStream(path, { highWaterMark: FILE_HIGH_WATER });
  let failure: Error | null = null;
  out.on('error', (e) => {
    failure ??= e;
  });
  let size = 0;
  try {
    for await (const chunk of chunks) {
      hash?.update(chunk);
      size += chunk.length;
      await writeChunk(out, chunk);
    }
    await endStream(out);
  } catch (e) {
    out.destroy();
    throw failure ?? e;
  }
  return size;
}

/** The entry's first bytes (at least one tar block, unless it is shorter), then the rest. */
async function head(it: AsyncIterator<Buffer>): Promise<{ head: Buffer; done: boolean }> {
  const parts: Buffer[] = [];
  let length = 0;
  while (length < BLOCK) {
    const next = await it.next();
    if (next.done) return { head: Buffer.concat(parts), done: true };
    parts.push(next.value);
    length += next.value.length;
  }
  return { head: Buffer.concat(parts), done: false };
}

async function* rest(first: Buffer, it: AsyncIterator<Buffer>, done: boolean): AsyncIterable<Buffer> {
  if (first.length) yield first;
  if (done) return;
  for (;;) {
    const next = await it.next();
    if (next.done) return;
    yield next.value;
  }
}

/** Gzips an uncompressed tar into `file`, hashing its own bytes into `hash` (its diff ID) on the way. */
async function gzipToFile(
  file: string,
  chunks: AsyncIterable<Buffer>,
  hash: ReturnType<typeof createHash>,
  gzip: GzipOptions | undefined,
): Promise<{ readonly size: number; readonly digest: string }> {
  const gzHash = createHash('sha256');
  const out = createWriteStream(file, { highWaterMark: FILE_HIGH_WATER });
  let failure: Error | null = null;
  out.on('error', (e) => {
    failure ??= e;
  });
  const hashed = async function* () {
    for await (const chunk of chunks) {
      hash.update(chunk);
      yield chunk;
    }
  };
  let gz;
  try {
    gz = await gzipDeterministic(
      hashed(),
      (chunk) => {
        gzHash.update(chunk);
        return writeChunk(out, chunk);
      },
      gzip,
    );
    await endStream(out);
  } catch (e) {
    out.destroy();
    throw failure ?? e;
  }
  return { size: gz.outputSize, digest: `sha256:${gzHash.digest('hex')}` };
}

/** Where one file entry of the archive went: `spilled` is what it added to the work directory. */
interface Kept {
  readonly entry: SpilledEntry;
  readonly spilled: number;
}

/**
 * Keeps one file entry as its first block says (see the top of this file), hashed on the way; a digest-named
 * one whose bytes hash otherwise fails with a BlobDigestError. `nextFile`: a fresh name in the work directory.
 */
async function keepEntry(
  name: string,
  size: number,
  entry: AsyncIterable<Buffer>,
  nextFile: (prefix: string, suffix?: string) => string,
  gzip: GzipOptions | undefined,
): Promise<Kept> {
  const it = entry[Symbol.asyncIterator]();
  const first = await head(it);
  const hash = createHash('sha256');
  let kept: Omit<SpilledEntry, 'digest'>;
  let spilled = 0;
  if (!first.done && isPlainTar(first.head)) {
    const file = nextFile('layer-', '.tar.gz');
    const gz = await gzipToFile(file, rest(first.head, it, false), hash, gzip);
    spilled = gz.size;
    kept = { name, size, gzip: { file, ...gz } };
  } else if (size <= IN_MEMORY_MAX || (size <= JSON_IN_MEMORY_MAX && looksLikeJson(first.head))) {
    const parts: Buffer[] = [];
    for await (const chunk of rest(first.head, it, first.done)) parts.push(chunk);
    const data = Buffer.concat(parts);
    hash.update(data);
    kept = { name, size, data };
  } else {
    const file = nextFile('blob-');
    spilled = await toFile(file, rest(first.head, it, first.done), hash);
    kept = { name, size, file };
  }
  const digest = `sha256:${hash.digest('hex')}`;
  const claimed = digestFromName(name);
  if (claimed && claimed !== digest) throw new BlobDigestError(name, digest);
  return { entry: { ...kept, digest }, spilled };
}

/** Where a link entry points, normalized (a symlink's target is relative to its own directory); null if none. */
function linkTargetOf(name: string, header: tar.Header): string | null {
  if ((header.type !== 'symlink' && header.type !== 'link') || !header.linkname) return null;
  const target = header.type === 'symlink' ? posix.join(posix.dirname(name), header.linkname) : header.linkname;
  return normalizePath(target);
}

/**
 * Makes aborting `signal` destroy the input and the extractor with the signal's reason (at once if it already
 * is aborted); returns what stops listening.
 */
function cancelOnAbort(input: Readable, extract: tar.Extract, signal: AbortSignal | undefined): () => void {
  const onAbort = () => {
    const reason = signal?.reason instanceof Error ? signal.reason : new Error('cancelled');
    input.destroy(reason);
    extract.destroy(reason);
  };
  input.on('error', (e: Error) => extract.destroy(e));
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  return () => signal?.removeEventListener('abort', onAbort);
}

/**
 * Reads a `docker save` archive from `input` into `workDir` (created if missing; the caller removes it). Aborting
 * `signal` destroys the input and rejects with the signal's reason.
 */
export async function spillArchive(input: Readable, workDir: string, opts: SpillOptions = {}): Promise<SpilledArchive> {
  const entries = new Map<string, SpilledEntry>();
  const links = new Map<string, string>();
  let spilledBytes = 0;
  let count = 0;
  const nextFile = (prefix: string, suffix = '') => join(workDir, `${prefix}${++count}${suffix}`);
  const extract = tar.extract();
  const stopCancelling = cancelOnAbort(input, extract, opts.signal);
  // No await between here and the loop: Node drains (and drops) the stdout of a child that exits while nobody
  // reads it, so a small `docker save` could end before a later pipe saw a byte; and entries tar-stream extracts
  // before the loop listens would be lost.
  mkdirSync(workDir, { recursive: true });
  input.pipe(extract);

  try {
    for await (const entry of extract) {
      const header = entry.header;
      const name = normalizePath(header.name);
      const link = linkTargetOf(name, header);
      if (link !== null) links.set(name, link);
      if (header.type !== 'file' && header.type !== 'contiguous-file') {
        entry.resume();
        continue;
      }
      const kept = await keepEntry(name, header.size ?? 0, entry as AsyncIterable<Buffer>, nextFile, opts.gzip);
      spilledBytes += kept.spilled;
      entries.set(name, kept.entry);
      opts.onEntry?.(kept.entry);
    }
  } catch (e) {
    input.unpipe(extract);
    input.destroy();
    throw e;
  } finally {
    stopCancelling();
  }
  if (opts.signal?.aborted) throw opts.signal.reason instanceof Error ? opts.signal.reason : new Error('cancelled');

  return {
    entries,
    spilledBytes,
    get(name: string) {
      let n = normalizePath(name);
      for (let hops = 0; hops < 8 && !entries.has(n) && links.has(n); hops++) n = links.get(n) as string;
      return entries.get(n);
    },
  };
}
