// The image read through the engine's own push: the action's receiver on 127.0.0.1 (loopback-receiver.ts), a tag of
// the run's own on the image (127.0.0.1:PORT/replicated-push-<id>/upload:<id>; the engine treats 127.0.0.0/8 as an
// insecure registry and talks plain http to it), `docker push` to that tag, the tag removed after. Each blob goes on
// to the real registry in resumable chunks as soon as its digest and size are known, following its bytes while they
// arrive (containerd store: one PUT per blob, digest first) or once it is whole (classic store: PATCH, then the
// digest); the manifest the engine pushed is put under every tag once all blobs are there. What the registry gets is
// exactly what `docker push [--platform]` would have given it. Why: on the containerd store `docker save` exports at
// ~30 MB/s, `docker push` reads the store directly (issue 12's measurements: 120 MB 3.6 s against 1.1 s).
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createReceiverDockerConfig } from '../engine/docker-config.js';
import { dockerArgv, startDocker } from '../engine/docker-cli.js';
import { howItEnded, type ProcessResult } from '../util/process.js';
import { outputTail } from '../util/untrusted.js';
import type { BlobProgress, ChunkSizing, UploadEvent } from './blob.js';
import type { SharedBlobs } from './shared-blobs.js';
import { abortError, UploadError, type ChunkedPushResult } from './errors.js';
import { pushImage } from './push-image.js';
import { EarlyUploads } from './source-early-upload.js';
import type { ManifestImage } from '../image/image-model.js';
import { startLoopbackReceiver, type LoopbackReceiver, type ReceivedBlob } from './loopback-receiver.js';
import type { RegistryTransport } from './transport.js';
import { mark } from './timeline.js';

/**
 * The engine's names, as the push makes and removes the run's tag for the receiver: the core's DockerApi in a run
 * (the one every local name of the run is made with, over the engine API: engine/docker.ts).
 */
export interface EngineNames {
  tag(source: string, target: string, opts?: { signal?: AbortSignal }): Promise<void>;
  /** Untags a name; best effort, never throws. */
  removeImage(ref: string): Promise<void>;
}

export interface LoopbackPushOptions {
  readonly image: string;
  /** Tags IMAGE for the receiver and untags it after. */
  readonly names: EngineNames;
  /** `docker push --platform` (containerd store): the platform manifest only. */
  readonly platform?: string;
  readonly env: NodeJS.ProcessEnv;
  /** Where received blobs go (exists); the caller removes it. */
  readonly dir: string;
  readonly transport: RegistryTransport;
  readonly repositoryPath: string;
  readonly tags: readonly string[];
  readonly chunkSize: number;
  /** The run's chunk sizing (what it learned holds for every blob); default: one for this push. */
  readonly sizing?: ChunkSizing;
  /** The run's ledger of blobs (shared-blobs.ts). */
  readonly shared?: SharedBlobs;
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: UploadEvent) => void;
  readonly onProgress?: (p: BlobProgress) => void;
  /** The push is ended when the receiver sees no progress this long (default 120 s): no PROGRESS_BYTES more of
   *  blob bytes, no blob or manifest stored. */
  readonly idleMs?: number;
  /** Names the tag apart from other runs' (default: random). */
  readonly runId?: string;
  /** Told the layer digests, in order, once the manifest the engine pushed is read: a blob upload that fails after
   *  that can be named by its layer. */
  readonly onManifest?: (layerDigests: readonly string[]) => void;
}

export type LoopbackPushResult =
  /** What the upload of the image the engine pushed came to (pushImage's result): sent, or where it stopped. */
  | ChunkedPushResult
  /** The engine never reached the receiver (it runs elsewhere, or cannot push): nothing was sent, try another way. */
  | { readonly ok: false; readonly unreachable: true; readonly why: string };

function sourceError(message: string, cause?: unknown): UploadError {
  return new UploadError(message, 'source', null, null, false, cause === undefined ? undefined : { cause });
}

function said(r: ProcessResult): string {
  return outputTail(r.stderr, 3, ' / ') || outputTail(r.stdout, 3, ' / ') || '(no output)';
}

/**
 * Ends the push when the receiver has seen no progress for `idleMs` (lastProgress: blob bytes by the hundred KiB, a
 * blob or the manifest stored; a byte now and then is none): a stalled or trickling push does not hold the run.
 */
function watchdog(receiver: LoopbackReceiver, idleMs: number): { signal: AbortSignal; stop(): void } {
  const ctl = new AbortController();
  const timer = setInterval(
    () => {
      if (Date.now() - receiver.lastProgress > idleMs) ctl.abort(new Error(`no progress for ${idleMs / 1000} s`));
    },
    Math.min(5000, idleMs),
  );
  return { signal: ctl.signal, stop: () => clearInterval(timer) };
}

/** Requests with a wrong credential are someone else's: said when the push failed, as they may be why. */
function refusedNote(receiver: LoopbackReceiver): string {
  const n = receiver.refused.wrongCredential;
  return n ? ` (the receiver refused ${n} request${n === 1 ? '' : 's'} with a wrong credential)` : '';
}

/** The blob uploads to the real registry, each started as the receiver announces its blob: as many at once as the
 *  engine sends, the first failure ending the push at once (INNER). */
function blobUploads(o: LoopbackPushOptions, inner: AbortController): EarlyUploads {
  const blobOptions = {
    chunkSize: o.chunkSize,
    sizing: o.sizing,
    shared: o.shared,
    signal: inner.signal,
    onEvent: o.onEvent,
    onProgress: o.onProgress,
  };
  return new EarlyUploads(o.transport, o.repositoryPath, blobOptions, {
    limit: Infinity,
    onFailure: (e) => inner.abort(e),
  });
}

/** Waits for every blob upload started; the first that failed is thrown. */
async function uploadsSettled(uploads: EarlyUploads): Promise<void> {
  await uploads.settle();
  if (uploads.failure) throw uploads.failure;
}

/** Tags IMAGE as the receiver's REF (as every local name of the run is made). */
async function tagForPush(o: LoopbackPushOptions, ref: string, signal: AbortSignal): Promise<void> {
  try {
    await o.names.tag(o.image, ref, { signal });
  } catch (e) {
    if (o.signal?.aborted) throw abortError(o.signal, null, 'source');
    throw sourceError(`tagging ${o.image} as ${ref} failed: ${(e as Error).message}`, e);
  }
}

/** The image the engine pushed under the run's tag, of the image model (its blobs the receiver's files, followed
 *  while they are written), and the blobs it names as received (config first). */
function pushedImage(
  receiver: LoopbackReceiver,
  id: string,
  platform: string | undefined,
): { image: ManifestImage; received: ReceivedBlob[] } {
  const manifest = receiver.manifests.get(id);
  if (!manifest) throw sourceError(`docker push to the action's receiver put no manifest under ${id}`);
  let doc: { config?: { digest?: string }; layers?: Array<{ digest?: string }> };
  try {
    doc = JSON.parse(manifest.bytes.toString('utf8')) as typeof doc;
  } catch (e) {
    throw sourceError('the manifest docker push sent is not JSON', e);
  }
  const blob = (digest: string | undefined) => {
    const b = digest ? receiver.blobs.get(digest) : undefined;
    if (!b) throw sourceError(`docker push did not send the blob ${digest} its manifest names`);
    return b;
  };
  const config = blob(doc.config?.digest);
  const layers = (doc.layers ?? []).map((l) => blob(l.digest));
  const image: ManifestImage = {
    kind: 'manifest',
    bytes: manifest.bytes,
    digest: manifest.digest,
    mediaType: manifest.mediaType,
    // the one asked of the engine (--platform); its config is not read for it, the upload needs none
    platform: platform ?? '',
    config: config.source,
    layers: layers.map((l) => l.source),
  };
  return { image, received: [config, ...layers] };
}

/** Once the engine's push ended well: every blob to the registry, then the manifest under each tag (pushImage). */
async function sendPushedImage(
  o: LoopbackPushOptions,
  receiver: LoopbackReceiver,
  id: string,
  uploads: EarlyUploads,
  signal: AbortSignal,
): Promise<ChunkedPushResult> {
  const { image, received } = pushedImage(receiver, id, o.platform);
  // An upload that fails from here on names its layer. (A real 524 comes ~100 s after its request, so the engine,
  // handing the image over at loopback speed, has pushed the manifest long before; an upload that fails while
  // the engine is still sending ends the push, and the failure names no layer.)
  o.onManifest?.(image.layers.map((l) => l.digest));
  await Promise.all(received.map((b) => b.done));
  for (const b of received) uploads.offer(b.source); // any not started yet (none, unless the engine skipped one)
  await uploadsSettled(uploads);
  // Every blob is there: the manifest under each tag (pushImage HEADs each blob first and finds it; what this push
  // sent is not reported again). Its failure names the layer as the onManifest digests would.
  mark('manifest-start');
  const result = await pushImage(
    {
      image,
      repositoryPath: o.repositoryPath,
      tags: o.tags,
      chunkSize: o.chunkSize,
      signal,
      transport: o.transport,
      onEvent: (e) => o.onEvent?.(e),
      onProgress: (p) => o.onProgress?.(p),
    },
    { sizing: o.sizing, shared: o.shared, sentBefore: uploads.done },
  );
  if (result.ok) mark('manifest-done');
  return result;
}

/** Runs `docker push REF` with the receiver's docker config, until it ends, is cancelled or stalls. */
async function dockerPush(
  o: LoopbackPushOptions,
  ref: string,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
): Promise<ProcessResult> {
  mark('engine-push-start');
  const r = await startDocker(dockerArgv.push(ref, o.platform), { env, signal }).result;
  mark('engine-push-end', { code: r.code ?? -1 });
  return r;
}

/**
 * Pushes IMAGE through the receiver to the real registry. Rejects with an UploadError: docker push's own words when
 * it failed after reaching the receiver, the blob upload that failed, `aborted` after a cancel. Resolves with what
 * pushImage made of the image the engine pushed (sent, or where it stopped), or with `unreachable` when the engine
 * never reached the receiver, so the caller may read the image another way.
 */
export async function pushThroughLoopback(o: LoopbackPushOptions): Promise<LoopbackPushResult> {
  if (o.signal?.aborted) throw abortError(o.signal, null, 'source');
  const id = o.runId ?? randomBytes(6).toString('hex');
  const repository = `replicated-push-${id}/upload`;
  const inner = new AbortController();
  const onOuterAbort = () => inner.abort(o.signal?.reason);
  o.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const uploads = blobUploads(o, inner);
  // The run's own credential for the receiver: random, in memory and in the push's docker config file only.
  const credential = { username: `rp-${id}`, password: randomBytes(24).toString('base64url') };
  const receiver = await startLoopbackReceiver({
    dir: o.dir,
    repository,
    tag: id,
    credential,
    onBlob: (b) => uploads.offer(b.source),
    idleMs: o.idleMs,
  });
  const ref = `${receiver.host}/${repository}:${id}`;
  const dog = watchdog(receiver, o.idleMs ?? 120_000);
  let tagged = false;
  try {
    const pushEnv = createReceiverDockerConfig(o.env, join(o.dir, 'docker-config'), receiver.host, credential).env;
    await tagForPush(o, ref, inner.signal);
    tagged = true;
    const push = await dockerPush(o, ref, pushEnv, AbortSignal.any([inner.signal, dog.signal]));
    if (o.signal?.aborted) throw abortError(o.signal, null, 'source');
    // a blob upload that failed explains the push's end better than the push does, unless the watchdog ended the
    // push (the blob it was sending then fails too, as "aborted")
    if (inner.signal.aborted && !dog.signal.aborted) await uploadsSettled(uploads);
    if (push.code !== 0) {
      if (receiver.requests === 0) return { ok: false, unreachable: true, why: said(push) };
      const how = dog.signal.aborted ? `stalled (${(dog.signal.reason as Error).message})` : howItEnded(push);
      throw sourceError(`docker push to the action's receiver ${how}: ${said(push)}${refusedNote(receiver)}`);
    }
    const sent = await sendPushedImage(o, receiver, id, uploads, inner.signal);
    // a cancel while the manifest went is said as every cancel of this push is
    if (!sent.ok && o.signal?.aborted) throw abortError(o.signal, null, 'source');
    return sent;
  } catch (e) {
    if (o.signal?.aborted) throw abortError(o.signal, null, 'source');
    throw e;
  } finally {
    dog.stop();
    inner.abort(new Error('the push through the receiver ended'));
    await uploads.settle();
    await receiver.close();
    // the run's own tag goes whatever happened (a cancel too): nothing is left in the engine
    if (tagged) await o.names.removeImage(ref);
    o.signal?.removeEventListener('abort', onOuterAbort);
  }
}
