// One image to the registry: its layers and then its config a few at a time (3, as docker does), then the manifest
// under each tag. The manifest's digest is the sha256 of the exact bytes PUT, and the registry must agree.
import { uploadBlob, ChunkSizing, DEFAULT_MAX_TRIES, type BlobUploadResult, type UploadBlobOptions } from './blob.js';
import { sleep } from '../util/timers.js';
import { abortError, UploadError } from './errors.js';
import { describeFailure, isTransientStatus } from './protocol.js';
import { sha256Digest } from '../image/blob-source.js';
import type { ManifestImage } from '../image/image-model.js';
import type { RegistryTransport, TransportResponse } from './transport.js';
import { MEDIA_TYPES } from '../image/oci.js';
import { isRegistryDigest, quoteValue } from '../registry/registry-values.js';

export const DEFAULT_CONCURRENCY = 3;

/**
 * What the uploader reads of a ManifestImage: the bytes exactly as they will be PUT, and the blobs they name (the
 * layers in any order). Its digest and media type are taken from the bytes themselves, and checked against the blobs.
 */
export type ManifestBlobs = Pick<ManifestImage, 'bytes' | 'config' | 'layers'>;

export interface UploadImageOptions extends UploadBlobOptions {
  /** Blobs uploaded at once; default 3. */
  readonly concurrency?: number;
  readonly onManifest?: (m: { reference: string; digest: string }) => void;
  /** Blobs the run already uploaded while it was still reading the image: their HEAD finds them, and nothing is
   *  reported about them again (no `exists` event, no progress). */
  readonly sentBefore?: ReadonlySet<string>;
}

export interface ImageUploadResult {
  /** sha256 of the manifest bytes, as the registry confirmed it. */
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  /** Layers first (in the order given), the config last (uploaded beside them, not after them). */
  readonly blobs: readonly BlobUploadResult[];
  readonly references: readonly string[];
}

interface ManifestDoc {
  mediaType?: string;
  config?: { digest?: string; size?: number; mediaType?: string };
  layers?: Array<{ digest?: string; size?: number }>;
}

const MANIFEST_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.dockerManifest, MEDIA_TYPES.ociManifest]);

/**
 * The Content-Type to PUT the manifest with: its own mediaType; an OCI manifest may leave it out, then the config's
 * media type tells. Throws unless it is one image manifest whose blobs are exactly the ones given.
 */
export function manifestMediaType(image: ManifestBlobs): string {
  let doc: ManifestDoc;
  try {
    doc = JSON.parse(image.bytes.toString('utf8')) as ManifestDoc;
  } catch (e) {
    throw new UploadError('the manifest is not JSON', 'manifest', null, null, false, { cause: e });
  }
  const bad = (why: string) => new UploadError(`the manifest ${why}`, 'manifest', null, null);
  const mediaType =
    doc.mediaType ??
    (doc.config?.mediaType === MEDIA_TYPES.dockerConfig ? MEDIA_TYPES.dockerManifest : MEDIA_TYPES.ociManifest);
  if (!MANIFEST_TYPES.has(mediaType)) throw bad(`has media type ${mediaType}, not an image manifest`);
  if (doc.config?.digest !== image.config.digest || doc.config?.size !== image.config.size)
    throw bad(`names config ${doc.config?.digest}, not the given ${image.config.digest}`);
  const given = new Map(image.layers.map((l) => [l.digest, l.size]));
  const named = doc.layers ?? [];
  for (const l of named)
    if (!l.digest || given.get(l.digest) !== l.size) throw bad(`names layer ${l.digest} (${l.size} bytes), not given`);
  const namedSet = new Set(named.map((l) => l.digest));
  for (const l of image.layers) if (!namedSet.has(l.digest)) throw bad(`does not name the given layer ${l.digest}`);
  return mediaType;
}

/** Runs `work` over items, `limit` at a time; the first failure aborts the rest (through `abort`) and is thrown. */
async function pool<T, R>(
  items: readonly T[],
  limit: number,
  abort: AbortController,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let first: { error: unknown } | null = null;
  const worker = async () => {
    while (next < items.length && !first && !abort.signal.aborted) {
      const i = next++;
      try {
        results[i] = await work(items[i]);
      } catch (error) {
        first ??= { error };
        abort.abort(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (first) throw (first as { error: unknown }).error;
  return results;
}

/** PUTs a manifest or index under `reference`, retrying transient failures; the registry's echoed digest must be `digest`. */
export async function putManifest(
  transport: RegistryTransport,
  repository: string,
  reference: string,
  manifest: Buffer,
  mediaType: string,
  digest: string,
  opts: UploadImageOptions,
): Promise<void> {
  const maxTries = opts.maxTries ?? DEFAULT_MAX_TRIES;
  for (let attempt = 1; ; attempt++) {
    if (opts.signal?.aborted) throw abortError(opts.signal, digest, 'manifest');
    let res: TransportResponse | undefined;
    let error: unknown;
    try {
      res = await transport.send({
        method: 'PUT',
        url: `/v2/${repository}/manifests/${reference}`,
        repository,
        push: true,
        headers: { 'Content-Type': mediaType },
        body: manifest,
        deadlineMs: 60_000,
        signal: opts.signal,
      });
    } catch (e) {
      if (opts.signal?.aborted) throw abortError(opts.signal, digest, 'manifest');
      error = e;
    }
    if (res && (res.status === 201 || res.status === 200 || res.status === 202)) {
      const echoed = res.headers.get('docker-content-digest');
      if (echoed && echoed !== digest)
        throw new UploadError(
          `${repository}:${reference}: the registry stored the manifest as ` +
            `${isRegistryDigest(echoed) ? echoed : `${quoteValue(echoed)} (not a digest)`}, not ${digest}`,
          'manifest',
          digest,
          res.status,
        );
      return;
    }
    const reason = describeFailure(res, error);
    if ((res && !isTransientStatus(res.status)) || attempt >= maxTries)
      throw new UploadError(
        `${repository}:${reference}: manifest PUT failed (${reason})`,
        'manifest',
        digest,
        res?.status ?? null,
        false,
        error === undefined ? undefined : { cause: error },
      );
    try {
      await sleep((opts.retryDelayMs ?? ((n) => 1000 * 2 ** (n - 1)))(attempt), opts.signal);
    } catch {
      throw abortError(opts.signal, digest, 'manifest');
    }
  }
}

/**
 * Uploads an image: layers (3 at a time, each skipped when the registry holds it), the config, then the manifest
 * under each tag (by digest when there are none). Resolves with the manifest digest the registry confirmed.
 */
export async function uploadImage(
  transport: RegistryTransport,
  repository: string,
  image: ManifestBlobs,
  /** The manifest is PUT under each; none: by digest only. */
  tags: readonly string[],
  opts: UploadImageOptions = {},
): Promise<ImageUploadResult> {
  const mediaType = manifestMediaType(image);
  const digest = sha256Digest(image.bytes);
  const inner = new AbortController();
  const onOuterAbort = () => inner.abort(opts.signal?.reason);
  if (opts.signal?.aborted) throw abortError(opts.signal, digest, 'exists');
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  try {
    const before = (d: string) => opts.sentBefore?.has(d) ?? false;
    const blobOpts: UploadBlobOptions = {
      ...opts,
      // the image's blobs share one: a limit one of them met holds for the others
      sizing: opts.sizing ?? new ChunkSizing(),
      signal: inner.signal,
      onEvent: (e) => {
        if (!(e.type === 'exists' && before(e.digest))) opts.onEvent?.(e);
      },
      onProgress: (p) => {
        if (!before(p.digest)) opts.onProgress?.(p);
      },
    };
    const unique = [...new Map(image.layers.map((l) => [l.digest, l])).values()];
    // Every blob is known before the first byte goes: a progress line can count them from the start.
    for (const b of [...unique, image.config])
      blobOpts.onProgress?.({ digest: b.digest, size: b.size, confirmed: 0, chunks: 0 });
    // The config goes in the same pool, behind the layers: it waits for no layer (only the manifest waits for all),
    // so its round trips overlap a layer's instead of following the last one (30-50 ms of a 1 s copy on loopback).
    const blobs = unique.some((l) => l.digest === image.config.digest) ? unique : [...unique, image.config];
    const uploaded = await pool(blobs, opts.concurrency ?? DEFAULT_CONCURRENCY, inner, (b) =>
      uploadBlob(transport, repository, b, blobOpts),
    );
    const references = tags.length ? [...tags] : [digest];
    for (const reference of references) {
      await putManifest(transport, repository, reference, image.bytes, mediaType, digest, opts);
      opts.onManifest?.({ reference, digest });
    }
    return { digest, mediaType, size: image.bytes.length, blobs: uploaded, references };
  } finally {
    opts.signal?.removeEventListener('abort', onOuterAbort);
  }
}
