// The core, top to bottom: prepare every image (read it, one login, the plan and its refusals) -> push each, a
// bounded number at once (name locally -> split -> push with retries -> verify, run-image.ts) -> the result. Each
// stage takes what it needs and returns what it found (src/core/stages/); what to do after a failure is the pure push
// policy (src/core/policy/push-policy.ts). No @actions/core here: the GitHub adapter (main.ts) and the CLI pass a
// Logger in.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRunDockerConfig } from '../engine/docker-config.js';
import type { Config } from './inputs.js';
import { childEnv } from '../util/process.js';
import { boundedPool } from '../util/bounded-pool.js';
import { imageLogger } from './logger.js';
import { ActionFailure, Cancelled, throwIfCancelled, type CoreDeps, type StageContext } from './ports.js';
import type { RunResult, RunResults } from './result.js';
import { prepareImages, pushPrepared, sourceText, type PreparedImage } from './run-image.js';
import { imageFailureTitle, pushFailureMessage, type ImageOutcome } from './report/images-report.js';

export { ActionFailure, Cancelled } from './ports.js';
export type { CoreDeps } from './ports.js';
export type { SplitSummary } from './stages/push-state.js';
export type { RunResult, RunResults } from './result.js';

/**
 * Images pushed at once: three, as many as one image's own layers (upload/image.ts sends 3 at a time, as docker
 * does). A registry behind a CDN limits each connection more than the link, so three at once overlap what one image
 * waits on (its requests' round trips, a manifest PUT, docker save reading the next layer); measured with three 50 MB
 * layouts through a link of 50 MB/s and 20 ms per connection: one step 0.28x three steps in a row at three at once,
 * 0.62x at two. The engine bounds its own pushes anyway (dockerd's max-concurrent-uploads, 5 by default).
 */
export const MAX_PARALLEL_IMAGES = 3;

/** One image: what a single-image `image` gives. */
export async function runAction(config: Config, deps: CoreDeps): Promise<RunResult> {
  return (await runImages([config], deps)).images[0];
}

/** What a caller may learn while the run goes on. */
export interface RunHooks {
  /** An image is pushed and verified (index: its line in `image`); told before a later failure of another image, so
   *  the caller can still say what the registry holds when the step fails. */
  onPushed?(result: RunResult, index: number): void;
}

/** Every image of the step: prepared (all read and checked, one login), then pushed, MAX_PARALLEL_IMAGES at once. */
export async function runImages(configs: readonly Config[], deps: CoreDeps, hooks: RunHooks = {}): Promise<RunResults> {
  const started = deps.now();
  // One directory for everything the run writes (credentials, relayer scratch space), so a post step that
  // follows a killed run has one path to remove.
  const workDir = mkdtempSync(join(deps.env.RUNNER_TEMP || tmpdir(), 'replicated-push-'));
  chmodSync(workDir, 0o700);
  deps.onWorkDir?.(workDir);
  // a failure of one image stops the others; the runner's cancel stops them all
  const stop = new AbortController();
  const onCancel = () => stop.abort(deps.signal?.reason);
  if (deps.signal?.aborted) onCancel();
  deps.signal?.addEventListener('abort', onCancel, { once: true });
  let prepared: PreparedImage[] = [];
  try {
    const ctxs = contexts(configs, deps, workDir, stop.signal);
    throwIfCancelled(stop.signal);
    prepared = await prepareImages(ctxs);
    const images = await pushEach(prepared, { started, stop, cancel: deps.signal, hooks });
    return { images, durationMs: deps.now() - started };
  } finally {
    deps.signal?.removeEventListener('abort', onCancel);
    await Promise.all(prepared.map((p) => p.read.source?.opened.close().catch((e: unknown) => logClose(p, e))));
    rmSync(workDir, { recursive: true, force: true });
  }
}

function logClose(p: PreparedImage, e: unknown): void {
  p.ctx.log.debug(`closing the source: ${(e as Error).message}`);
}

/** One context per image over the run's one docker config, docker, registry client and work directory. */
function contexts(configs: readonly Config[], deps: CoreDeps, workDir: string, signal: AbortSignal): StageContext[] {
  const [first] = configs;
  const dockerConfig = createRunDockerConfig(deps.env, join(workDir, 'docker'));
  const env = childEnv(dockerConfig.env, [first.token, first.sourceToken].filter(Boolean));
  const docker = deps.docker(env);
  // the registry, its credentials and the source credentials are inputs of the step, the same for every image
  const registry = deps.registry(first.registry, first.username, first.token);
  return configs.map((config) => ({
    config,
    log: configs.length > 1 ? imageLogger(deps.logger, config.target) : deps.logger,
    docker,
    registry,
    clock: deps,
    signal,
    runId: deps.runId,
    workDir,
    childEnv: env,
    jobEnv: deps.env,
    progressIntervalMs: deps.progressIntervalMs,
    ports: deps.ports,
  }));
}

/**
 * Pushes the prepared images, MAX_PARALLEL_IMAGES at once. The trust rule: after a failure or a cancel nothing more
 * is pushed: images not started are not started, the ones in flight are stopped (their signal aborts). A failure of
 * several images says which were pushed, stopped or never started.
 */
async function pushEach(
  prepared: readonly PreparedImage[],
  run: { started: number; stop: AbortController; cancel: AbortSignal | undefined; hooks: RunHooks },
): Promise<RunResult[]> {
  const { stop, cancel } = run;
  // the image whose failure stopped the others; none when the runner's cancel did
  let failed: number | null = null;
  const slots = await boundedPool(
    prepared,
    MAX_PARALLEL_IMAGES,
    (p, i) =>
      pushPrepared(p, run.started).then(
        (r) => {
          run.hooks.onPushed?.(r, i);
          return r;
        },
        (e: unknown) => {
          if (!stop.signal.aborted && !cancel?.aborted) failed = i;
          stop.abort(e);
          throw e;
        },
      ),
    () => stop.signal.aborted,
  );
  if (slots.every((s) => s.status === 'fulfilled')) return slots.map((s) => (s as { value: RunResult }).value);
  const first = failed === null ? null : { i: failed, e: (slots[failed] as { reason: ActionFailure }).reason };
  if (prepared.length === 1) throw (slots[0] as { reason: unknown }).reason;
  const outcomes: ImageOutcome[] = slots.map((s, i) => ({
    target: prepared[i].ctx.config.target,
    source: sourceText(prepared[i].ctx),
    state:
      s.status === 'fulfilled'
        ? 'pushed'
        : s.status === 'not-started'
          ? 'not-started'
          : i === failed
            ? 'failed'
            : 'stopped',
    refs: s.status === 'fulfilled' ? s.value.refs : [],
  }));
  const failure = first?.e ?? new Cancelled();
  const attempts = failure.opts.attempts ?? 0;
  const message = pushFailureMessage(first ? outcomes[first.i] : null, failure.message, outcomes);
  if (!first) throw new Cancelled(attempts, message);
  throw new ActionFailure(imageFailureTitle(outcomes[first.i].target, failure.title), message, {
    ...failure.opts,
    cause: failure,
  });
}
