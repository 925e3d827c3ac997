// Stage: push each ref, attempt after attempt. What follows a failure is decided by the pure push policy; a
// re-split replaces the plan being pushed, carried from attempt to attempt as data.
import { classifyFailure } from '../failure.js';
import { adviceContext, type Plan } from '../plan.js';
import { PushProgress } from '../progress.js';
import { parsePushLine, pushedDigest, type PushEvent } from '../push-output.js';
import { decideAfterPushFailure } from '../push-policy.js';
import { backoffDelay } from '../retry.js';
import { ActionFailure, Cancelled, type EngineFacts, type StageContext } from '../run-context.js';
import { formatDuration } from '../units.js';
import type { OwnImage } from './local-images.js';
import { retryPolicy } from './login.js';
import { splitStage, type SplitSummary } from './split.js';

/** What is being pushed: the plan (replaced by a re-split), the split so far, the images the splits made. */
export interface PushState {
  readonly plan: Plan;
  readonly split: SplitSummary | null;
  readonly images: readonly OwnImage[];
}

export type PushOutcome =
  | { readonly ok: true; readonly digest: string; readonly attempts: number; readonly state: PushState }
  | { readonly ok: false; readonly error: ActionFailure; readonly state: PushState };

/** Pushes every ref of the plan in turn; attempts is the most any one ref needed. Never throws. */
export async function pushStage(ctx: StageContext, engine: EngineFacts, initial: PushState): Promise<PushOutcome> {
  let state = initial;
  let attempts = 0;
  let digest: string | null = null;
  for (const ref of initial.plan.refs) {
    const pushed = await pushRef(ctx, engine, state, ref);
    state = pushed.state;
    if (!pushed.ok) return pushed;
    attempts = Math.max(attempts, pushed.attempts);
    digest ??= pushed.digest;
  }
  return { ok: true, digest: digest as string, attempts, state };
}

async function pushRef(ctx: StageContext, engine: EngineFacts, initial: PushState, ref: string): Promise<PushOutcome> {
  const { config, log } = ctx;
  let state = initial;
  for (let attempt = 1; ; attempt++) {
    const fail = (error: ActionFailure): PushOutcome => ({ ok: false, error: error.withAttempts(attempt), state });
    if (ctx.signal.aborted) return fail(new Cancelled());
    let once: Awaited<ReturnType<typeof pushOnce>>;
    try {
      once = await log.group(`Push ${ref}${attempt > 1 ? ` (attempt ${attempt})` : ''}`, () =>
        pushOnce(ctx, state.plan, ref),
      );
    } catch (e) {
      return fail(new ActionFailure('Push failed', `docker push ${ref} could not run: ${(e as Error).message}`));
    }
    if (ctx.signal.aborted) return fail(new Cancelled());
    if (once.code === 0) {
      const pushed = pushedDigest(once.events);
      if (pushed) return { ok: true, digest: pushed.digest, attempts: attempt, state };
      return fail(new ActionFailure('No digest', `docker push ${ref} succeeded but printed no digest.`));
    }
    const strategy = state.plan.strategy;
    const failure = classifyFailure(once.output, {
      pushedAttestations: strategy.kind === 'as-is' && strategy.withAttestations,
    });
    log.debug(`attempt ${attempt}: ${failure.kind} (${failure.retryable ? 'retryable' : 'final'}): ${failure.detail}`);
    const decision = decideAfterPushFailure({
      failure,
      layers: state.plan.layers,
      oversized: state.plan.oversized,
      containerdStore: engine.containerdStore,
      suspect: once.progress.suspect(),
      attempt,
      config,
      advice: adviceContext(config, state.plan),
    });
    if (decision.warning) log.warning(decision.warning);
    if (decision.note) log.info(decision.note);
    if (!decision.retry || attempt > config.retries) {
      const tail = attempt > 1 ? ` (after ${attempt} attempts)` : '';
      return fail(new ActionFailure(decision.error.title, `${decision.error.message}${tail}`));
    }
    if (decision.resplit) {
      try {
        const split = await splitStage(ctx, state.plan, decision.resplit, state.split, state.images.length + 1);
        if (split) state = { plan: split.plan, split: split.summary, images: [...state.images, split.image] };
      } catch (e) {
        if (e instanceof Cancelled) return fail(e);
        // The push itself may still get through on a retry (a transient 524): the policy's retry stands.
        log.warning({ title: 'Re-split failed', message: `${(e as Error).message}; retrying the image as it is.` });
      }
    }
    const asked = decision.honourRetryAfter ? await ctx.registry.retryAfterMs().catch(() => null) : null;
    const policy = retryPolicy(ctx);
    const delay = Math.max(backoffDelay(policy, attempt, ctx.clock.random), Math.min(asked ?? 0, policy.maxDelayMs));
    log.info(`push ${ref}: attempt ${attempt} failed (${decision.error.title}); retrying in ${formatDuration(delay)}`);
    try {
      await ctx.clock.sleep(delay, ctx.signal);
    } catch {
      return fail(new Cancelled());
    }
  }
}

async function pushOnce(
  ctx: StageContext,
  plan: Plan,
  ref: string,
): Promise<{ code: number; output: string; events: PushEvent[]; progress: PushProgress }> {
  const progress = new PushProgress(plan.layers, ctx.clock.now());
  const events: PushEvent[] = [];
  const timer = setInterval(() => {
    try {
      ctx.log.progress(progress.line(ctx.clock.now()));
    } catch {
      // progress is optional: it never turns a push into a failure
    }
  }, ctx.progressIntervalMs);
  try {
    const result = await ctx.docker.push(ref, {
      platform: plan.strategy.kind === 'platform' ? plan.strategy.platform : undefined,
      signal: ctx.signal,
      onLine: (line) => {
        const event = parsePushLine(line);
        if (!event) return;
        events.push(event);
        progress.observe(event);
        ctx.log.info(line);
      },
    });
    return { code: result.code, output: `${result.stdout}\n${result.stderr}`, events, progress };
  } finally {
    clearInterval(timer);
  }
}
