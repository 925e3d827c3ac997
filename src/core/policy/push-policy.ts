// What to do after a failed attempt: retry or stop, what to tell the user, whether to re-split a layer first.
// Pure: a function of the failure, the plan being pushed, the engine's store, the config and the attempt, so
// every rule is proven by a table (__tests__/unit/push-policy.test.ts) without an engine or a registry.
import { bodyLimitAdvice, failureAdvice, timeoutAdvice, type Advice, type AdviceContext } from '../report/advisory.js';
import type { Failure } from './failure.js';
import type { Config } from '../inputs.js';
import type { LayerFact } from '../../image/layers.js';
import { formatBytes } from '../../util/units.js';

/** The smallest piece the relayer cuts: halving below it cannot help (and layers of unknown size are 0 B). */
export const MIN_SPLIT_SIZE = 4096;

/** How an attempt sends the image: `docker push`, or the action's own chunked, resumable uploader (src/upload). */
export type PushMethod = 'docker' | 'chunked';

/**
 * The first attempt's method for a local image. upload: auto sends an image with a layer over max-layer-size in
 * chunks from the start (docker push sends each blob in one request, which outlives the registry proxy's origin
 * timeout). A split's pieces (layer-split: auto) exist only as blobs unless upload is docker: the push stage sends
 * those in chunks whatever this says (a PushState of kind prepared).
 */
export function firstMethod(
  config: Pick<Config, 'upload'>,
  plan: { readonly oversized: readonly LayerFact[]; readonly chunkable: boolean },
): PushMethod {
  if (!plan.chunkable) return 'docker';
  if (config.upload === 'auto') return plan.oversized.length > 0 ? 'chunked' : 'docker';
  return config.upload;
}

export interface PushFailureFacts {
  readonly failure: Failure;
  /** How the failed attempt sent the image. */
  readonly method: PushMethod;
  /** The uploader can send this image (Plan.chunkable). */
  readonly chunkable: boolean;
  /** The layers of the image being pushed now, and those over max-layer-size. */
  readonly layers: readonly LayerFact[];
  readonly oversized: readonly LayerFact[];
  /** The containerd store names compressed blobs, which map to no layer without the manifest. */
  readonly containerdStore: boolean;
  /** The layer the engine's own status lines left unfinished (classic store), if any. */
  readonly suspect: LayerFact | null;
  /** 1-based attempt that just failed. */
  readonly attempt: number;
  readonly config: Pick<Config, 'retries' | 'layerSplit' | 'maxLayerSize' | 'upload'>;
  readonly advice: AdviceContext;
}

export interface Resplit {
  readonly layers: readonly LayerFact[];
  /** Target piece size, bytes. */
  readonly size: number;
}

export interface PushDecision {
  readonly retry: boolean;
  /** Logged as a warning now (the 524 advisory); null when the final error says it all. */
  readonly warning: Advice | null;
  /** The error reported if this attempt is the last. */
  readonly error: Advice;
  /** layer-split: auto: re-layer these layers to this size before the next attempt. */
  readonly resplit: Resplit | null;
  /** A 429: the next attempt waits at least as long as the registry's Retry-After. */
  readonly honourRetryAfter: boolean;
  /** One line for the log explaining a stop, a skipped re-split or a change of method. */
  readonly note: string | null;
  /** How the next attempt sends the image. */
  readonly method: PushMethod;
}

/**
 * Which layer a 524 blames. The blob the engine names is the layer itself when it is uncompressed (a relayered
 * piece); the classic store's status lines name layers by diff ID; a compressed blob on the containerd store maps
 * to no layer without its manifest, and then the one layer over the limit, if there is exactly one, is named.
 */
export function blamedLayer(
  f: Pick<PushFailureFacts, 'failure' | 'layers' | 'oversized' | 'containerdStore' | 'suspect'>,
): { layer: LayerFact | null; exact: boolean } {
  const exact =
    f.layers.find((l) => l.diffId === f.failure.blobDigest) ?? (f.containerdStore ? null : f.suspect) ?? null;
  if (exact) return { layer: exact, exact: true };
  return { layer: f.oversized.length === 1 ? f.oversized[0] : null, exact: false };
}

/**
 * Which layer a 413 blames: the one the engine or the uploader names, as for a 524; else the biggest, which is the
 * request most likely over a limit on request bodies.
 */
export function blamedFor413(
  f: Pick<PushFailureFacts, 'failure' | 'layers' | 'oversized' | 'containerdStore' | 'suspect'>,
): { layer: LayerFact | null; exact: boolean } {
  const named = blamedLayer(f);
  if (named.exact || f.layers.length === 0) return named;
  return { layer: f.layers.reduce((a, b) => (b.size > a.size ? b : a)), exact: false };
}

/** Halve the blamed layer (or the biggest), and every layer as big, since those would time out next. */
export function resplitAfter524(layers: readonly LayerFact[], blamed: LayerFact | null): Resplit | null {
  if (layers.length === 0) return null;
  const failed = blamed ?? layers.reduce((a, b) => (b.size > a.size ? b : a));
  const size = Math.ceil(failed.size / 2);
  if (size < MIN_SPLIT_SIZE) return null;
  return { layers: layers.filter((l) => l.size >= failed.size), size };
}

export function decideAfterPushFailure(f: PushFailureFacts): PushDecision {
  const d = decide(f);
  return { ...d, method: d.method ?? f.method };
}

/** A decision that keeps the method unless it names one. */
type Decision = Omit<PushDecision, 'method'> & { readonly method?: PushMethod };

function decide(f: PushFailureFacts): Decision {
  const { failure, config } = f;
  const lastAllowed = f.attempt > config.retries;
  if (failure.kind === 'timeout-524') {
    const { layer, exact } = blamedLayer(f);
    const advice = timeoutAdvice(layer, f.oversized, f.advice, false, exact ? null : failure.blobDigest);
    const error: Advice = { title: 'Push timed out (HTTP 524)', message: advice.message };
    // docker push sent a blob in one request; the chunked uploader keeps every request short, with the image as it is.
    if (f.method === 'docker' && config.upload !== 'docker' && f.chunkable)
      return {
        retry: true,
        warning: advice,
        error,
        resplit: null,
        honourRetryAfter: false,
        note: 'upload: the next attempt sends the blobs in resumable chunks (the image is unchanged).',
        method: 'chunked',
      };
    if (config.layerSplit === 'auto') {
      const resplit = resplitAfter524(f.layers, layer);
      if (resplit)
        return {
          retry: true,
          warning: advice,
          error,
          resplit: lastAllowed ? null : resplit,
          honourRetryAfter: false,
          note: null,
        };
      // Sizes unknown (history that does not match the layers) or already tiny: splitting cannot help, so the
      // attempt is retried as it is, under the same rules as without layer-split.
      const note = 'layer-split: the layer sizes are unknown or too small to halve; retrying without a re-split.';
      return { ...adviseOn524(layer, advice, error, config), note };
    }
    return adviseOn524(layer, advice, error, config);
  }
  if (failure.kind === 'body-too-large') return afterBodyLimit(f);
  // The engine may keep a stalled push's hung upload after its CLI is ended (engine A's 20.10 does, and a new docker
  // push of that layer waits on the same hung transfer): the retry goes by the action's uploader, whose every request
  // has a deadline, when it may. With upload: docker it is docker push again, which ends by the same watchdog.
  if (failure.kind === 'stalled' && f.method === 'docker' && config.upload !== 'docker' && f.chunkable)
    return {
      retry: true,
      warning: null,
      error: failureAdvice(failure, f.advice),
      resplit: null,
      honourRetryAfter: false,
      note: 'upload: docker push stalled; the next attempt sends the blobs in resumable chunks (the image is unchanged).',
      method: 'chunked',
    };
  return {
    retry: failure.retryable,
    warning: null,
    error: failureAdvice(failure, f.advice),
    resplit: null,
    honourRetryAfter: failure.kind === 'rate-limited',
    note: null,
  };
}

/**
 * A 413: the registry or a proxy in front of it limits request bodies. docker push sends each blob in one request,
 * so another docker push meets the same limit; the action's uploader sends chunks under it (it halves them itself
 * after a 413, within the attempt), so the next attempt goes in chunks when it may. Otherwise the push stops: a
 * retry of the same requests cannot pass.
 */
function afterBodyLimit(f: PushFailureFacts): Decision {
  const { config } = f;
  const { layer, exact } = blamedFor413(f);
  const blobDigest = exact ? null : f.failure.blobDigest;
  const docker = f.method === 'docker';
  const say = (final: boolean, next: string) => bodyLimitAdvice(layer, f.advice, { final, exact, blobDigest, next });
  if (docker && config.upload !== 'docker' && f.chunkable) {
    const next =
      'docker push sends each layer in one request; the next attempt sends it in resumable chunks under the limit (the image is unchanged).';
    const last =
      'docker push sends each layer in one request; with a retry left (`retries`), or with `upload: chunked`, the action sends it in resumable chunks under the limit.';
    return {
      retry: true,
      warning: say(false, next),
      error: say(true, last),
      resplit: null,
      honourRetryAfter: false,
      note: 'upload: the next attempt sends the blobs in resumable chunks, under the limit on request bodies (the image is unchanged).',
      method: 'chunked',
    };
  }
  const next = !docker
    ? `The action's chunked uploader could not get under it either: ${f.failure.detail}.`
    : config.upload === 'docker'
      ? 'docker push sends each layer in one request, so no retry can pass: set `upload: auto` (the default) or `upload: chunked` and the action sends the layers in resumable chunks under the limit, or raise the limit.'
      : "docker push sends each layer in one request, and this image (an index pushed as it is) cannot go through the action's chunked uploader: raise the limit.";
  return { retry: false, warning: null, error: say(true, next), resplit: null, honourRetryAfter: false, note: null };
}

/** Without a re-split, a 524 on a layer over max-layer-size will time out again: stop at once. */
function adviseOn524(
  layer: LayerFact | null,
  warning: Advice,
  error: Advice,
  config: PushFailureFacts['config'],
): Decision {
  if (layer !== null && layer.size > config.maxLayerSize) {
    const why = `Not retrying: layer ${layer.index} is over max-layer-size (${formatBytes(config.maxLayerSize)}), so another upload would time out the same way.`;
    return {
      retry: false,
      warning,
      error: { title: error.title, message: `${error.message} ${why}` },
      resplit: null,
      honourRetryAfter: false,
      note: why,
    };
  }
  return { retry: true, warning, error, resplit: null, honourRetryAfter: false, note: null };
}

/** docker login: retry what a server or the network caused; an unclassified failure is final (bad input). */
export function loginRetryable(failure: Failure): boolean {
  return failure.retryable && failure.kind !== 'unknown';
}
