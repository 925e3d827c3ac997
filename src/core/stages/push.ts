// Stage: push each ref, attempt after attempt, by docker push or the action's chunked uploader (a local image it
// reads itself, or an image of the model: an opened source's, or the split pieces it prepared itself). What follows
// a failure is decided by the pure push policy; a re-split or a change of method is carried from attempt to attempt
// as data (PushState).
import { classifyFailure, classifyUploadStop, type Failure } from '../policy/failure.js';
import type { LayerFact } from '../../image/layers.js';
import { adviceContext, type Plan } from '../plan.js';
import { PushProgress, UploadProgress } from '../report/progress.js';
import { parsePushLine, pushedDigest, type PushEvent } from '../../engine/push-output.js';
import { decideAfterPushFailure } from '../policy/push-policy.js';
import { backoffDelay } from '../../util/retry.js';
import { ActionFailure, Cancelled, type StageContext } from '../ports.js';
import type { EngineFacts } from '../../engine/docker.js';
import { formatBytes, formatDuration } from '../../util/units.js';
import type { BlobProgress, UploadEvent } from '../../upload/index.js';
import { retryPolicy } from './login.js';
import { methodOf, type PushState } from './push-state.js';
import { INDEX_PHASE, type ImagePushCommon } from '../../upload/push-image.js';
import { splitState } from './split.js';
import { eventLine } from './upload-log.js';
import { indexRefusal } from './index-refusal.js';
import { logText } from '../../util/untrusted.js';

export type PushOutcome =
  | { readonly ok: true; readonly digest: string; readonly attempts: number; readonly state: PushState }
  | { readonly ok: false; readonly error: ActionFailure; readonly state: PushState };

/** One attempt: the digest pushed (and whether every remaining tag got it), or what went wrong. */
type Attempt =
  | { readonly ok: true; readonly digest: string; readonly allTags: boolean }
  | { readonly ok: false; readonly failure: Failure; readonly suspect: LayerFact | null; readonly where: string }
  | { readonly ok: false; readonly final: ActionFailure };

/** Pushes every ref of the plan in turn; attempts is the most any one ref needed. Never throws. */
export async function pushStage(ctx: StageContext, engine: EngineFacts, initial: PushState): Promise<PushOutcome> {
  let state = initial;
  let attempts = 0;
  let digest: string | null = null;
  for (let i = 0; i < initial.plan.refs.length; i++) {
    const pushed = await pushRef(ctx, engine, state, i);
    state = pushed.state;
    if (!pushed.ok) return pushed;
    attempts = Math.max(attempts, pushed.attempts);
    digest ??= pushed.digest;
    if (pushed.allTags) break;
  }
  return { ok: true, digest: digest as string, attempts, state };
}

async function pushRef(
  ctx: StageContext,
  engine: EngineFacts,
  initial: PushState,
  index: number,
): Promise<PushOutcome & { allTags?: boolean }> {
  const ref = initial.plan.refs[index];
  let state = initial;
  for (let attempt = 1; ; attempt++) {
    const fail = (error: ActionFailure): PushOutcome => ({ ok: false, error: error.withAttempts(attempt), state });
    if (ctx.signal.aborted) return fail(new Cancelled());
    let once: Attempt;
    try {
      once = await attemptOnce(ctx, engine, state, index, attempt);
    } catch (e) {
      return fail(new ActionFailure('Push failed', `${ref} could not be pushed: ${(e as Error).message}`));
    }
    if (ctx.signal.aborted) return fail(new Cancelled());
    if (once.ok) return { ok: true, digest: once.digest, attempts: attempt, state, allTags: once.allTags };
    if ('final' in once) return fail(once.final);
    const next = await afterFailure(ctx, engine, state, once, attempt, ref);
    state = next.state;
    if (next.stop) return fail(next.stop);
    try {
      await ctx.clock.sleep(next.delayMs, ctx.signal);
    } catch {
      return fail(new Cancelled());
    }
  }
}

/** One attempt at ref `index` in its own log group, by the method the state says. */
function attemptOnce(
  ctx: StageContext,
  engine: EngineFacts,
  state: PushState,
  index: number,
  attempt: number,
): Promise<Attempt> {
  const ref = state.plan.refs[index];
  const title = `Push ${ref}${methodOf(state) === 'chunked' ? ' in chunks' : ''}${attempt > 1 ? ` (attempt ${attempt})` : ''}`;
  return ctx.log.group(title, () =>
    methodOf(state) === 'chunked'
      ? chunkedOnce(ctx, engine, state, ctx.config.tags.slice(index))
      : dockerOnce(ctx, state.plan, ref),
  );
}

/** After a failed attempt: `stop` ends the push; else the state for the next attempt and the wait before it. */
type NextAttempt = { readonly state: PushState; readonly stop?: ActionFailure; readonly delayMs: number };

/** What the push policy decides after a failure, carried out: its warning and note, a method change, a re-split. */
async function afterFailure(
  ctx: StageContext,
  engine: EngineFacts,
  initial: PushState,
  once: Extract<Attempt, { failure: Failure }>,
  attempt: number,
  ref: string,
): Promise<NextAttempt> {
  const { config, log } = ctx;
  let state = initial;
  const { failure } = once;
  log.debug(`attempt ${attempt}: ${failure.kind} (${failure.retryable ? 'retryable' : 'final'}): ${failure.detail}`);
  const decision = decideAfterPushFailure({
    failure,
    method: methodOf(state),
    chunkable: state.plan.chunkable,
    layers: state.plan.layers,
    oversized: state.plan.oversized,
    containerdStore: engine.containerdStore,
    suspect: once.suspect,
    attempt,
    config,
    advice: adviceContext(config, state.plan),
  });
  const where = once.where ? `${once.where} ` : '';
  if (decision.warning) log.warning({ title: decision.warning.title, message: `${where}${decision.warning.message}` });
  if (decision.note) log.info(decision.note);
  if (!decision.retry || attempt > config.retries) {
    const tail = attempt > 1 ? ` (after ${attempt} attempts)` : '';
    return {
      state,
      stop: new ActionFailure(decision.error.title, `${where}${decision.error.message}${tail}`),
      delayMs: 0,
    };
  }
  if (state.kind === 'local') state = { ...state, method: decision.method };
  if (decision.resplit) {
    try {
      state = await splitState(ctx, state, decision.resplit);
    } catch (e) {
      if (e instanceof Cancelled) return { state, stop: e, delayMs: 0 };
      // The push itself may still get through on a retry (a transient 524): the policy's retry stands.
      log.warning({ title: 'Re-split failed', message: `${(e as Error).message}; retrying the image as it is.` });
    }
  }
  const asked = decision.honourRetryAfter ? await ctx.registry.retryAfterMs().catch(() => null) : null;
  const policy = retryPolicy(ctx);
  const delayMs = Math.max(backoffDelay(policy, attempt, ctx.clock.random), Math.min(asked ?? 0, policy.maxDelayMs));
  log.info(`push ${ref}: attempt ${attempt} failed (${decision.error.title}); retrying in ${formatDuration(delayMs)}`);
  return { state, delayMs };
}

/** A periodic progress line; optional, so it never turns a push into a failure. */
function everyInterval(ctx: StageContext, line: () => string): () => void {
  const timer = setInterval(() => {
    try {
      ctx.log.progress(line());
    } catch {
      // progress is optional
    }
  }, ctx.progressIntervalMs);
  return () => clearInterval(timer);
}

async function dockerOnce(ctx: StageContext, plan: Plan, ref: string): Promise<Attempt> {
  const progress = new PushProgress(plan.layers, ctx.clock.now());
  const events: PushEvent[] = [];
  const stop = everyInterval(ctx, () => progress.line(ctx.clock.now()));
  try {
    const result = await ctx.docker.push(ref, {
      platform: plan.strategy.kind === 'platform' ? plan.strategy.platform : undefined,
      signal: ctx.signal,
      // uncompressed sizes: the safe bound for how long one layer's silent upload may take
      largestLayerBytes: Math.max(0, ...plan.layers.map((l) => l.size)),
      onLine: (line) => {
        const event = parsePushLine(line);
        if (!event) return;
        events.push(event);
        progress.observe(event);
        // docker's line (and the registry's words in it) is data: one line, never a command
        ctx.log.info(logText(line));
      },
    });
    if (result.code === 0) {
      const pushed = pushedDigest(events);
      if (pushed) return { ok: true, digest: pushed.digest, allTags: false };
      return {
        ok: false,
        final: new ActionFailure('No digest', `docker push ${ref} succeeded but printed no digest.`),
      };
    }
    const strategy = plan.strategy;
    const failure = classifyFailure(`${result.stdout}\n${result.stderr}`, {
      pushedAttestations: strategy.kind === 'as-is' && strategy.withAttestations,
      stalledMs: result.stalledMs,
    });
    if (failure.kind === 'stalled') ctx.log.info(`${failure.detail}; ended it`);
    return { ok: false, failure, suspect: progress.suspect(), where: '' };
  } finally {
    stop();
  }
}

/** The action's uploader, by what the state holds: an image of the model (a source's, the split's), or the engine's. */
function chunkedPush(ctx: StageContext, engine: EngineFacts, state: PushState, common: ImagePushCommon) {
  if (state.kind === 'source') return ctx.ports.pushImage({ ...common, image: state.image });
  const { plan } = state;
  return ctx.ports.chunkedPush({
    ...common,
    image: plan.source,
    platform: plan.strategy.kind === 'platform' ? plan.strategy.platform : null,
    containerdStore: engine.containerdStore,
    workDir: ctx.workDir,
    env: ctx.childEnv,
    // the receiver's name for the image (containerd store) is made and removed as every local name of the run
    names: ctx.docker,
  });
}

/**
 * The image sent by the action's uploader, the manifest put under every remaining tag at once: an opened source's
 * image, the split's blobs, else the local image read from the engine.
 */
async function chunkedOnce(
  ctx: StageContext,
  engine: EngineFacts,
  state: PushState,
  tags: readonly string[],
): Promise<Attempt> {
  const { plan } = state;
  const progress = new UploadProgress(ctx.clock.now());
  const stop = everyInterval(ctx, () => progress.line(ctx.clock.now()));
  const common: ImagePushCommon = {
    repositoryPath: plan.repositoryPath,
    tags,
    chunkSize: ctx.config.chunkSize,
    signal: ctx.signal,
    transport: ctx.registry,
    onEvent: (e: UploadEvent) => {
      const line = eventLine(e);
      if (line) ctx.log.info(line);
    },
    onProgress: (p: BlobProgress) => progress.observe(p),
  };
  try {
    const result = await chunkedPush(ctx, engine, state, common);
    if (result.ok) {
      ctx.log.info(`${tags.join(', ')}: digest: ${result.digest}`);
      return { ok: true, digest: result.digest, allTags: true };
    }
    const refused = state.kind === 'source' ? indexRefusal(ctx.config.registry, state.image, result.stop) : null;
    if (refused) return { ok: false, final: refused };
    const layer = result.layer ? plan.layers[result.layer - 1] : undefined;
    // The uploader knows which layer's blob failed: the policy then blames that layer exactly.
    const failure = { ...classifyUploadStop(result.stop), blobDigest: layer?.diffId ?? null };
    const what = layer ? `layer ${layer.index}` : 'the image';
    const where: Record<string, string> = {
      chunk: `The chunked upload of ${what} failed on a chunk (chunk-size ${formatBytes(ctx.config.chunkSize)}).`,
      commit: `The chunked upload of ${what} sent every chunk; the final PUT (the registry committing the blob) failed.`,
      manifest: 'Every blob was uploaded in chunks; the manifest PUT failed.',
      [INDEX_PHASE]: 'Every platform manifest and blob was uploaded; the PUT of the index failed.',
      source:
        state.kind === 'source' && !state.prepared
          ? `Reading the image from ${plan.source} failed.`
          : 'Reading the image from the engine for the chunked upload failed.',
    };
    ctx.log.info(`chunked upload stopped (${result.stop.phase}): ${result.stop.message}`);
    return {
      ok: false,
      failure,
      suspect: null,
      where: where[result.stop.phase] ?? `The chunked upload of ${what} failed.`,
    };
  } finally {
    stop();
  }
}
