// The real parts the core runs with, shared by the GitHub adapter and the CLI.
import { randomBytes } from 'node:crypto';
import { Docker, pushStallMs } from '../engine/docker.js';
import type { Logger } from '../core/logger.js';
import { RegistryClient } from '../registry/registry-client.js';
import { relayerBlobs, relayerImage } from '../layer-split/index.js';
import { pushLocalImage } from '../upload/push-local.js';
import { pushImage, pushPreparedBlob } from '../upload/push-image.js';
import { ChunkSizing } from '../upload/blob.js';
import { SharedBlobs } from '../upload/shared-blobs.js';
import type { CoreDeps, RunHooks, RunResult, RunResults } from '../core/run.js';
import { sleep } from '../util/timers.js';
import { openSource } from './sources.js';

export function realDeps(
  logger: Logger,
  opts: { progressIntervalMs: number; signal?: AbortSignal; onWorkDir?: (dir: string) => void },
): CoreDeps {
  // One per run: a limit a proxy showed one upload (a 413, a 524) holds for every later blob and attempt.
  const sizing = new ChunkSizing();
  // classic-store layers an attempt of this run sent while gzipping them: a retry does not send them again
  const sentWhileGzipped = new Set<string>();
  // One per run: a blob two images share is sent once, the other mounts it (shared-blobs.ts).
  const shared = new SharedBlobs();
  return {
    env: process.env,
    logger,
    // Lowercase hex: it becomes part of local image names, which must be lowercase.
    runId: randomBytes(6).toString('hex'),
    signal: opts.signal,
    docker: (env) => new Docker(env, { pushStallMs: pushStallMs(env) }),
    registry: (host, username, password) => new RegistryClient(host, { username, password }),
    now: () => Date.now(),
    sleep,
    random: Math.random,
    progressIntervalMs: opts.progressIntervalMs,
    onWorkDir: opts.onWorkDir,
    ports: {
      relayer: relayerImage,
      relayerBlobs,
      pushImage: (req) => pushImage(req, { sizing, shared }),
      pushPreparedBlob: (req) => pushPreparedBlob(req, { sizing, shared }),
      // The fallback changes how the image is read, not what is pushed: said in the log, on one line.
      chunkedPush: (req) =>
        pushLocalImage(req, {
          sizing,
          shared,
          sentWhileGzipped,
          onFallback: (why) =>
            logger.info(
              `chunked upload: the engine did not reach the action's endpoint on 127.0.0.1 (${why.replace(/\s+/g, ' ').slice(0, 300)}); reading the image with docker save instead`,
            ),
        }),
      openSource,
    },
  };
}

/** One image's entry of the `images` output. */
function imageEntry(r: RunResult): Record<string, unknown> {
  return {
    source: r.source,
    target: r.target,
    refs: r.refs,
    digest: r.digest ?? '',
    'pinned-ref': r.pinnedRef ?? '',
    'proxy-refs': r.plan.proxyRefs,
    attempts: r.attempts,
    platforms: r.platforms,
  };
}

/**
 * The action's outputs (action.yml) from a run; the CLI prints the same names. `refs` and `images` cover every
 * image; `ref`, `digest`, `pinned-ref`, `platforms`, `proxy-ref` and `replaced-digest` mean the first image, as with
 * one; `attempts` is the most any image needed (for one image, its own count).
 */
export function resultOutputs(results: RunResults): Record<string, string> {
  const { images } = results;
  const [first] = images;
  const pushed = pushedOutputs(images);
  return {
    ref: first.refs[0],
    refs: pushed.refs,
    digest: first.digest ?? '',
    platforms: JSON.stringify(first.platforms),
    'pinned-ref': first.pinnedRef ?? '',
    attempts: String(Math.max(...images.map((r) => r.attempts))),
    'proxy-ref': first.plan.proxyRefs[0] ?? '',
    'replaced-digest': first.replaced[0]?.digest ?? '',
    images: pushed.images,
  };
}

/**
 * `refs` and `images` of the images pushed and verified, in input order: all of them after a good run; after a
 * failure of several images, the ones the registry holds, so a later step (`if: failure()`) knows what is out.
 */
export function pushedOutputs(images: readonly RunResult[]): { refs: string; images: string } {
  return { refs: images.flatMap((r) => r.refs).join('\n'), images: JSON.stringify(images.map(imageEntry)) };
}

/** The outputs as the CLI prints them: NAME=VALUE lines, a list's lines joined by commas. */
export function outputLines(outputs: Readonly<Record<string, string>>): string {
  return Object.entries(outputs)
    .map(([name, value]) => `${name}=${value.replace(/\n/g, ',')}\n`)
    .join('');
}

/**
 * The images of a run pushed and verified so far, by their line (`hooks` for runImages): after another image failed,
 * `outputs()` gives their `refs` and `images`, null when none was pushed. main.ts sets them, the CLI prints them.
 */
export function pushedSoFar(): { readonly hooks: RunHooks; outputs(): { refs: string; images: string } | null } {
  const pushed: RunResult[] = [];
  return {
    hooks: { onPushed: (r, i) => (pushed[i] = r) },
    outputs: () => (pushed.some(Boolean) ? pushedOutputs(pushed.filter(Boolean)) : null),
  };
}
