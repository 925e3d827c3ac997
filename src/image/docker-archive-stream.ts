// The archive `docker save` writes (either layout), read once as it streams: for the relayer (layer-split/) and for
// the uploader's engine read (upload/image-source.ts). Both layouts put the documents that say which blob is what
// (manifest.json, index.json) after the blobs, so every entry is kept until the end, and what to do with one is
// decided from its first block:
// - an uncompressed tar (a classic-store layer), when the caller asks (`gzipTars`), is gzipped on the way to its
//   file, deterministically (gzip.ts): only that copy is written, so the work directory holds about the image's
//   compressed size; the caller is told when it starts (onGzipStart, a growing file it can follow while it is
//   written: growing-file.ts);
// - else small entries (the JSON documents, tiny blobs) stay in memory, the rest go to files in the work directory.
// Every entry is hashed on the way, and a blob named by its digest (blobs/sha256/<hex>) whose bytes hash otherwise
// fails the read at once. When the caller asks (`probe`), whatever looks like a layer (a tar, plain or compressed)
// is probed as it goes past: its diff ID, its uncompressed size and, for the layers the caller will split, the
// index of its entries (layer-probe.ts; the movable entries' bytes in the caller's RawStore: see raw-store.ts). So a layer is read
// from the input exactly once.
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { endStream, writeChunk } from '../util/stream-write.js';
import { gzipDeterministic, type GzipOptions } from './gzip.js';
import { GrowingFile, type WrittenFile } from './growing-file.js';
import { isPlainTar, Prober, probeFor, type LayerProbe, type ProbeOptions } from './layer-probe.js';
import { BlobDigestError } from './saved-image.js';
import { addLink, BLOCK, followLinks, normalizePath } from './tar-header.js';

export interface ArchiveEntry {
  readonly name: string;
  /** Bytes as the archive holds them. */
  readonly size: number;
  /** sha256 of the archive's bytes (for a plain layer tar: its diff ID). */
  readonly digest: string;
  /** Small entries (documents, tiny blobs). */
  readonly data?: Buffer;
  /** The archive's bytes in a file. */
  readonly file?: string;
  /** An uncompressed tar, kept only gzipped (`gzipTars`): the file, its size and digest. */
  readonly gzip?: { readonly file: string; readonly size: number; readonly digest: string };
  /** With `probe`: present when the bytes are a tar, plain or compressed. */
  readonly layer?: LayerProbe;
}

export interface SavedArchive {
  /** By normalized name; symlinked names (older `docker save` links repeated layers) resolve to their target. */
  get(name: string): ArchiveEntry | undefined;
  readonly entries: ReadonlyMap<string, ArchiveEntry>;
  /** Bytes written to the work directory. */
  readonly spilledBytes: number;
}

export interface ReadArchiveOptions {
  /** Probe layers on the way (the relayer). */
  readonly probe?: ProbeOptions;
  /** Keep uncompressed tars only gzipped, with these options (the uploader: a registry takes them compressed). */
  readonly gzipTars?: GzipOptions;
  /** Aborting it destroys the input; the read rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** With `gzipTars`: told when a plain tar starts being gzipped, with its growing gzip file (growing-file.ts), so
   *  its upload can follow the compression; the entry itself comes to onEntry once whole and hashed. */
  readonly onGzipStart?: (growing: GrowingFile) => void;
  /** Told of each entry once it is whole and hashed (and a digest-named one checked), while later ones stream. */
  readonly onEntry?: (entry: ArchiveEntry) => void;
}

const IN_MEMORY_MAX = 64 * 1024;
const JSON_IN_MEMORY_MAX = 4 * 1024 * 1024;
const FILE_HIGH_WATER = 1024 * 1024;

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

/** Writes what `fill` writes into a new file at `path`, with back-pressure; a failure of the file wins. */
async function intoFile<T>(path: string, fill: (write: (chunk: Buffer) => Promise<void>) => Promise<T>): Promise<T> {
  const out = createWriteStream(path, { highWaterMark: FILE_HIGH_WATER });
  let failure: Error | null = null;
  out.on('error', (e) => {
    failure ??= e;
  });
  try {
    const result = await fill((chunk) => writeChunk(out, chunk));
    await endStream(out);
    return result;
  } catch (e) {
    out.destroy();
    throw failure ?? e;
  }
}

/**
 * Gzips `input` deterministically (gzip.ts) into a new file at `path`: the file's size and sha256. `started` is told
 * of the file once it exists, as a growing file (growing-file.ts) that each deflate piece extends once it is in the
 * file, in order: a reader may follow the gzip while it is written.
 */
export async function gzipToFile(
  input: AsyncIterable<Buffer>,
  path: string,
  opts: GzipOptions = {},
  started?: (growing: GrowingFile) => void,
): Promise<WrittenFile> {
  const hash = createHash('sha256');
  const growing = new GrowingFile(path);
  const fh = await open(path, 'w');
  started?.(growing);
  try {
    const gz = await gzipDeterministic(
      input,
      async (chunk) => {
        hash.update(chunk);
        await writeAll(fh, chunk);
        growing.grew(chunk.length);
      },
      opts,
    );
    await fh.close();
    const result = { size: gz.outputSize, digest: `sha256:${hash.digest('hex')}` };
    growing.end(result);
    return result;
  } catch (e) {
    await fh.close().catch(() => undefined);
    growing.fail(e instanceof Error ? e : new Error(String(e)));
    throw e;
  }
}

/** Appends all of `chunk` to the file (a write may take less than it was given). */
async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  for (let done = 0; done < chunk.length;) {
    const { bytesWritten } = await fh.write(chunk, done, chunk.length - done);
    done += bytesWritten;
  }
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

/** The entry's bytes from its first ones on, each hashed and given to the prober on the way. */
async function* rest(first: { head: Buffer; done: boolean }, it: AsyncIterator<Buffer>, hash: Hash, prober?: Prober) {
  const pass = async (chunk: Buffer) => {
    hash.update(chunk);
    await prober?.write(chunk);
    return chunk;
  };
  if (first.head.length) yield await pass(first.head);
  if (first.done) return;
  for (;;) {
    const next = await it.next();
    if (next.done) return;
    yield await pass(next.value);
  }
}

type Where = Pick<ArchiveEntry, 'data' | 'file' | 'gzip'>;

/** Keeps one entry's bytes as its first block says (see the top of this file); `spilled`: bytes written. */
async function store(
  size: number,
  head: Buffer,
  chunks: AsyncIterable<Buffer>,
  nextFile: (prefix: string, suffix?: string) => string,
  opts: Pick<ReadArchiveOptions, 'gzipTars' | 'onGzipStart'>,
): Promise<{ readonly where: Where; readonly spilled: number }> {
  const { gzipTars } = opts;
  if (gzipTars && isPlainTar(head)) {
    const file = nextFile('layer-', '.tar.gz');
    const gz = await gzipToFile(chunks, file, gzipTars, opts.onGzipStart);
    return { where: { gzip: { file, ...gz } }, spilled: gz.size };
  }
  if (size <= IN_MEMORY_MAX || (size <= JSON_IN_MEMORY_MAX && looksLikeJson(head))) {
    const parts: Buffer[] = [];
    for await (const chunk of chunks) parts.push(chunk);
    return { where: { data: Buffer.concat(parts) }, spilled: 0 };
  }
  const file = nextFile('blob-');
  const spilled = await intoFile(file, async (write) => {
    let n = 0;
    for await (const chunk of chunks) {
      n += chunk.length;
      await write(chunk);
    }
    return n;
  });
  return { where: { file }, spilled };
}

/**
 * Keeps one file entry of the archive, hashed (and probed) on the way; a digest-named one whose bytes hash
 * otherwise fails with a BlobDigestError. `nextFile`: a fresh name in the work directory.
 */
async function keepEntry(
  name: string,
  size: number,
  entry: AsyncIterable<Buffer>,
  nextFile: (prefix: string, suffix?: string) => string,
  opts: ReadArchiveOptions,
): Promise<{ readonly entry: ArchiveEntry; readonly spilled: number }> {
  const it = entry[Symbol.asyncIterator]();
  const first = await head(it);
  const hash = createHash('sha256');
  const probe = probeFor(first.head, size, opts.probe);
  const prober = probe instanceof Prober ? probe : undefined;
  let kept;
  try {
    kept = await store(size, first.head, rest(first, it, hash, prober), nextFile, opts);
  } catch (e) {
    prober?.stop();
    throw e;
  }
  const digest = `sha256:${hash.digest('hex')}`;
  const layer = prober ? await prober.end(digest) : (probe as LayerProbe | undefined);
  const claimed = digestFromName(name);
  if (claimed && claimed !== digest) throw new BlobDigestError(name, digest);
  return { entry: { name, size, digest, ...kept.where, layer }, spilled: kept.spilled };
}

/**
 * Makes aborting `signal` destroy the input and the extractor with the signal's reason (at once if it already
 * is aborted), and an input's error the extractor's; returns what stops listening.
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
 * Reads a `docker save` archive from `input` into `workDir` (created if missing; the caller removes it). A failure
 * destroys the input; aborting `opts.signal` too, and rejects with the signal's reason.
 */
export async function readArchive(
  input: Readable,
  workDir: string,
  opts: ReadArchiveOptions = {},
): Promise<SavedArchive> {
  const entries = new Map<string, ArchiveEntry>();
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
      if (header.type === 'symlink' || header.type === 'link')
        addLink(links, name, header.type === 'symlink', header.linkname ?? '');
      if (header.type !== 'file' && header.type !== 'contiguous-file') {
        entry.resume();
        continue;
      }
      const kept = await keepEntry(name, header.size ?? 0, entry as AsyncIterable<Buffer>, nextFile, opts);
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

  return { entries, spilledBytes, get: (name: string) => followLinks(name, entries, links) };
}
