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
import { Docker } from '../engine/docker.js';
import { dockerArgv, startDocker } from '../engine/docker-cli.js';
import { howItEnded, type ProcessResult } from '../util/process.js';
import { outputTail } from '../util/untrusted.js';
import { uploadBlob, type BlobProgress, type BlobUploadResult, type ChunkSizing, type UploadEvent } from './blob.js';
import type { SharedBlobs } from './shared-blobs.js';
import { abortError, UploadError } from './errors.js';
import { uploadImage } from './image.js';
import {
  startLoopbackReceiver,
  type LoopbackReceiver,
  type ReceivedBlob,
  type ReceivedManifest,
} from './loopback-receiver.js';
import type { RegistryTransport } from './transport.js';
import { mark } from './timeline.js';

export interface LoopbackPushOptions {
  readonly image: string;
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
  | { readonly ok: true; readonly digest: string }
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

/** The blob uploads to the real registry, one per digest, each started as the receiver announces its blob. */
interface Uploads {
  readonly all: Map<string, Promise<BlobUploadResult>>;
  /** Digests this push sent (uploadImage need not HEAD them again). */
  readonly ours: Set<string>;
  readonly start: (b: ReceivedBlob) => void;
}

function blobUploads(o: LoopbackPushOptions, inner: AbortController): Uploads {
  const all = new Map<string, Promise<BlobUploadResult>>();
  const ours = new Set<string>();
  const start = (b: ReceivedBlob) => {
    if (all.has(b.digest)) return;
    ours.add(b.digest);
    o.onProgress?.({ digest: b.digest, size: b.size, confirmed: 0, chunks: 0 });
    const p = uploadBlob(o.transport, o.repositoryPath, b.source, {
      chunkSize: o.chunkSize,
      sizing: o.sizing,
      shared: o.shared,
      signal: inner.signal,
      onEvent: o.onEvent,
      onProgress: o.onProgress,
    });
    // the first failure stops the others and the push; it is thrown by whoever awaits the uploads
    p.catch((e: unknown) => inner.abort(e));
    all.set(b.digest, p);
  };
  return { all, ours, start };
}

/** Tags IMAGE as the receiver's REF (over the engine API, as every local name of the run is made: docker.ts). */
async function tagForPush(o: LoopbackPushOptions, docker: Docker, ref: string, signal: AbortSignal): Promise<void> {
  try {
    await docker.tag(o.image, ref, { signal });
  } catch (e) {
    if (o.signal?.aborted) throw abortError(o.signal, null, 'source');
    throw sourceError(`tagging ${o.image} as ${ref} failed: ${(e as Error).message}`, e);
  }
}

/** The manifest the engine pushed under the run's tag, and the blobs it names, each received. */
function pushedImage(
  receiver: LoopbackReceiver,
  id: string,
): { manifest: ReceivedManifest; config: ReceivedBlob; layers: ReceivedBlob[] } {
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
  return { manifest, config: blob(doc.config?.digest), layers: (doc.layers ?? []).map((l) => blob(l.digest)) };
}

/** Once the engine's push ended well: every blob to the registry, then the manifest under each tag. */
async function sendPushedImage(
  o: LoopbackPushOptions,
  receiver: LoopbackReceiver,
  id: string,
  uploads: Uploads,
  signal: AbortSignal,
): Promise<LoopbackPushResult> {
  const { manifest, config, layers } = pushedImage(receiver, id);
  // An upload that fails from here on names its layer. (A real 524 comes ~100 s after its request, so the engine,
  // handing the image over at loopback speed, has pushed the manifest long before; an upload that fails while
  // the engine is still sending ends the push, and the failure names no layer.)
  o.onManifest?.(layers.map((l) => l.digest));
  await Promise.all([config, ...layers].map((b) => b.done));
  for (const b of [config, ...layers]) uploads.start(b); // any not started yet (none, unless the engine skipped one)
  await Promise.all(uploads.all.values());
  // Every blob is there: the manifest under each tag (uploadImage HEADs each blob first and finds it).
  mark('manifest-start');
  const result = await uploadImage(
    o.transport,
    o.repositoryPath,
    { bytes: manifest.bytes, config: config.source, layers: layers.map((l) => l.source) },
    o.tags,
    {
      chunkSize: o.chunkSize,
      sizing: o.sizing,
      shared: o.shared,
      signal,
      onEvent: o.onEvent,
      onProgress: o.onProgress,
      sentBefore: uploads.ours,
    },
  );
  mark('manifest-done');
  return { ok: true, digest: result.digest };
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
 * it failed after reaching the receiver, the blob upload that failed, `aborted` after a cancel. Resolves with
 * `unreachable` when the engine never reached the receiver, so the caller may read the image another way.
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
    onBlob: uploads.start,
    idleMs: o.idleMs,
  });
  const ref = `${receiver.host}/${repository}:${id}`;
  const dog = watchdog(receiver, o.idleMs ?? 120_000);
  const docker = new Docker(o.env);
  let tagged = false;
  try {
    const pushEnv = createReceiverDockerConfig(o.env, join(o.dir, 'docker-config'), receiver.host, credential).env;
    await tagForPush(o, docker, ref, inner.signal);
    tagged = true;
    const push = await dockerPush(o, ref, pushEnv, AbortSignal.any([inner.signal, dog.signal]));
    if (o.signal?.aborted) throw abortError(o.signal, null, 'source');
    // a blob upload that failed explains the push's end better than the push does, unless the watchdog ended the
    // push (the blob it was sending then fails too, as "aborted")
    if (inner.signal.aborted && !dog.signal.aborted) await Promise.all(uploads.all.values());
    if (push.code !== 0) {
      if (receiver.requests === 0) return { ok: false, unreachable: true, why: said(push) };
      const how = dog.signal.aborted ? `stalled (${(dog.signal.reason as Error).message})` : howItEnded(push);
      throw sourceError(`docker push to the action's receiver ${how}: ${said(push)}${refusedNote(receiver)}`);
    }
    return await sendPushedImage(o, receiver, id, uploads, inner.signal);
  } catch (e) {
    if (o.signal?.aborted) throw abortError(o.signal, null, 'source');
    throw e;
  } finally {
    dog.stop();
    inner.abort(new Error('the push through the receiver ended'));
    await Promise.allSettled(uploads.all.values());
    await receiver.close();
    // the run's own tag goes whatever happened (a cancel too): nothing is left in the engine
    if (tagged) await docker.removeImage(ref);
    o.signal?.removeEventListener('abort', onOuterAbort);
  }
}
