// The image content the uploader pushes, read from the engine without `docker push`: `docker save IMAGE` streamed
// into the work directory (image/docker-archive-stream.ts), then the blobs and the manifest chosen as the engine would push them.
// - containerd store: the image's own compressed blobs and its platform manifest, bytes unchanged, so the registry
//   gets the manifest (and digest) `docker push --platform` gives it; attestation manifests are left out.
// - classic store: each layer tar gzipped here, deterministically (image/gzip.ts); the config exactly as saved
//   (its digest is the image ID); a Docker v2 schema 2 manifest made as for a docker-archive: file
//   (image/sources/docker-archive-classic.ts).
// Every blob is checked while it is read: a blob named by a digest must hash to it, a classic layer to the diff ID
// its config names. The work directory ends up holding about the image's compressed size; the caller removes it.
import { createReadStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { dockerArgv, dockerFailure, startDocker } from '../engine/docker-cli.js';
import { exitedOnItsOwn, type ProcessResult } from '../util/process.js';
import { blobName, MEDIA_TYPES, type Platform } from '../image/oci.js';
import { classicImage } from '../image/saved-image.js';
import { abortError, UploadError } from './errors.js';
import { bufferBlobSource, fileBlobSource, type BlobSource } from '../image/blob-source.js';
import {
  readArchive,
  type ArchiveEntry,
  type ReadArchiveOptions,
  type SavedArchive,
} from '../image/docker-archive-stream.js';
import type { GzipOptions } from '../image/gzip.js';
import { dockerManifestImage, type ManifestImage } from '../image/image-model.js';
import { hasCompressedLayers, selectManifest, type Descriptor } from '../image/oci-layout.js';
import { diffIdMismatch } from '../image/sources/docker-archive-classic.js';

/** The engine's image as the uploader takes it (one image manifest and its blobs), and how it was read. */
export interface SavedImage extends ManifestImage {
  /** Which way the content was taken: the engine's own blobs (containerd) or gzipped here (classic). */
  readonly store: 'classic' | 'containerd';
  /** Bytes written to the work directory. */
  readonly spilledBytes: number;
}

export interface ReadImageOptions {
  /** The environment of `docker save` (DOCKER_HOST...), given by the caller without secrets. */
  readonly env: NodeJS.ProcessEnv;
  /** Where the blobs go (created if missing); the caller removes it. */
  readonly workDir: string;
  readonly signal?: AbortSignal;
  /** Which platform manifest to take from a multi-platform index (containerd store): "linux/amd64". */
  readonly platform?: string | Platform;
  /** The engine's image store (EngineFacts.containerdStore); when absent, told by the archive (see storeOf). */
  readonly containerdStore?: boolean;
  readonly gzip?: GzipOptions;
  /** Each archive entry once it is whole (readArchive's onEntry): an uploader may start on it before the rest. */
  readonly onEntry?: (entry: ArchiveEntry) => void;
  /** A classic-store layer as its gzip starts (readArchive's onGzipStart): an uploader may follow the gzip. */
  readonly onGzipStart?: ReadArchiveOptions['onGzipStart'];
}

function sourceError(message: string, cause?: unknown): UploadError {
  return new UploadError(message, 'source', null, null, false, cause === undefined ? undefined : { cause });
}

const docs = (archive: SavedArchive) => (name: string) => archive.get(name)?.data;

/**
 * Which store wrote the archive, when the caller does not say: an OCI index whose image has compressed layers is a
 * content store's (containerd); a classic store writes its layers as plain tars in either layout (manifest.json
 * with <id>/layer.tar, or Docker 25+'s blobs/sha256 beside index.json).
 */
export function storeOf(archive: SavedArchive, platform?: string | Platform): 'classic' | 'containerd' {
  if (!archive.get('index.json')) return 'classic';
  return hasCompressedLayers(selectManifest(docs(archive), platform).doc) ? 'containerd' : 'classic';
}

/** A layer the archive held as a plain tar but the content store names as such: served by gunzipping our copy. */
function gunzippedBlob(entry: ArchiveEntry, mediaType: string): BlobSource {
  const file = (entry.gzip as NonNullable<ArchiveEntry['gzip']>).file;
  return {
    digest: entry.digest,
    size: entry.size,
    mediaType,
    open(offset: number): Readable {
      let skip = offset;
      const skipper = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          if (skip >= chunk.length) {
            skip -= chunk.length;
            return cb();
          }
          const out = chunk.subarray(skip);
          skip = 0;
          cb(null, out);
        },
      });
      const src = createReadStream(file, { highWaterMark: 1024 * 1024 });
      const gunzip = createGunzip();
      const fail = (e: Error) => skipper.destroy(e);
      src.on('error', fail);
      gunzip.on('error', fail);
      skipper.on('close', () => {
        src.destroy();
        gunzip.destroy();
      });
      return src.pipe(gunzip).pipe(skipper);
    },
  };
}

async function entryBlob(entry: ArchiveEntry, mediaType: string): Promise<BlobSource> {
  if (entry.gzip) return gunzippedBlob(entry, mediaType);
  if (entry.data) return bufferBlobSource(entry.data, mediaType);
  return fileBlobSource(entry.file as string, mediaType, entry.digest);
}

async function fromContentStore(archive: SavedArchive, platform?: string | Platform): Promise<SavedImage> {
  const choice = selectManifest(docs(archive), platform);
  const blob = async (d: Descriptor, what: string) => {
    const entry = archive.get(blobName(d.digest));
    if (!entry) throw sourceError(`the archive lacks the ${what} ${d.digest} that manifest ${choice.digest} names`);
    if (entry.size !== d.size)
      throw sourceError(`the archive's ${what} ${d.digest} has ${entry.size} bytes, the manifest says ${d.size}`);
    return entryBlob(entry, d.mediaType ?? MEDIA_TYPES.ociLayerGzip);
  };
  return {
    kind: 'manifest',
    bytes: choice.bytes,
    digest: choice.digest,
    mediaType: choice.mediaType,
    platform: choice.platform,
    config: await blob(choice.doc.config, 'config'),
    layers: await Promise.all(choice.doc.layers.map((l) => blob(l, 'layer'))),
    store: 'containerd',
    spilledBytes: archive.spilledBytes,
  };
}

async function fromClassicStore(archive: SavedArchive): Promise<SavedImage> {
  const image = classicImage(docs(archive), null);
  const layers = await Promise.all(
    image.layers.map(async (layer, i) => {
      const entry = archive.get(layer.name);
      if (!entry) throw sourceError(`the archive lacks the layer ${layer.name}`);
      if (!entry.gzip)
        throw sourceError(`the layer ${layer.name} is not an uncompressed tar, as a classic store saves them`);
      const mismatch = diffIdMismatch(layer, i, entry.digest);
      if (mismatch) throw sourceError(mismatch);
      return fileBlobSource(entry.gzip.file, MEDIA_TYPES.dockerLayerGzip, entry.gzip.digest);
    }),
  );
  const manifest = dockerManifestImage(image.configBytes, layers, image.platform);
  return { ...manifest, store: 'classic', spilledBytes: archive.spilledBytes };
}

/** The blobs and manifest to upload from an archive read already. Throws an UploadError (phase 'source'). */
export async function imageFromArchive(
  archive: SavedArchive,
  opts: { readonly containerdStore?: boolean; readonly platform?: string | Platform } = {},
): Promise<SavedImage> {
  try {
    const store =
      opts.containerdStore === undefined
        ? storeOf(archive, opts.platform)
        : opts.containerdStore
          ? 'containerd'
          : 'classic';
    return store === 'containerd' ? await fromContentStore(archive, opts.platform) : await fromClassicStore(archive);
  } catch (e) {
    throw e instanceof UploadError ? e : sourceError((e as Error).message, e);
  }
}

/** imageFromArchive over an archive stream (a saved file, a test's archive). */
export async function readArchiveForUpload(input: Readable, opts: Omit<ReadImageOptions, 'env'>): Promise<SavedImage> {
  let archive: SavedArchive;
  try {
    archive = await readArchive(input, opts.workDir, { signal: opts.signal, gzipTars: opts.gzip ?? {} });
  } catch (e) {
    if (opts.signal?.aborted) throw abortError(opts.signal, null, 'source');
    throw e instanceof UploadError ? e : sourceError(`reading the saved image: ${(e as Error).message}`, e);
  }
  return imageFromArchive(archive, opts);
}

/** docker save's failure in the one wording of a docker child that failed (engine/docker-cli.ts), or null. */
function saveFailed(image: string, exit: ProcessResult): UploadError | null {
  const failed = dockerFailure(dockerArgv.save(image), exit);
  return failed && sourceError(failed.message);
}

/**
 * Reads IMAGE from the engine for the uploader: `docker save` streamed into `workDir`, no layer held in memory.
 * Rejects with an UploadError (phase 'source'): docker save's own complaint when it failed, the blob whose bytes
 * do not match its name, `aborted` after a cancel (docker save ended, reading stopped).
 */
export async function readImageForUpload(image: string, opts: ReadImageOptions): Promise<SavedImage> {
  if (opts.signal?.aborted) throw abortError(opts.signal, null, 'source');
  const save = startDocker(dockerArgv.save(image), { env: opts.env, signal: opts.signal, stdout: 'pipe' });
  let archive: SavedArchive;
  try {
    archive = await readArchive(save.stdout as Readable, opts.workDir, {
      signal: opts.signal,
      gzipTars: opts.gzip ?? {},
      onEntry: opts.onEntry,
      onGzipStart: opts.onGzipStart,
    });
  } catch (e) {
    if (opts.signal?.aborted) {
      await save.kill();
      throw abortError(opts.signal, null, 'source');
    }
    // docker's own words explain an archive that ended early; a save stopped here after the fact says nothing.
    const exit = await exitedOnItsOwn(save);
    throw (exit && saveFailed(image, exit)) ?? sourceError(`reading docker save ${image}: ${(e as Error).message}`, e);
  }
  const exit = await save.result;
  if (opts.signal?.aborted) throw abortError(opts.signal, null, 'source');
  const failed = saveFailed(image, exit);
  if (failed) throw failed;
  return imageFromArchive(archive, opts);
}
