// One image of a run, in two halves (issue 20: several images in one step): `prepareImages` reads every image and
// checks it against the registry before anything is pushed (read all, one login, the refusals), and `pushPrepared`
// is what a run of one image did after that, as before: the dry run, the local names, the first split, the push
// with its retries, the verification, the result.
import type { EngineFacts } from '../engine/docker.js';
import { pinnedRef } from '../image/reference.js';
import { sourceName } from '../image/source-ref.js';
import { boundedPool } from '../util/bounded-pool.js';
import { TOMBSTONE_WARNING } from './plan.js';
import { ActionFailure, throwIfCancelled, type StageContext } from './ports.js';
import { tagsBeforeLines, tombstoneRefusal } from './policy/tag-policy.js';
import { planLines } from './report/plan-report.js';
import { imageFailureTitle, preflightFailureMessage } from './report/images-report.js';
import { imageStage, type ImageRead } from './stages/image-read.js';
import { cleanUp, nameForPush, type LocalName, type OwnImage } from './stages/local-images.js';
import { loginAll, type TagBefore } from './stages/login.js';
import { pushStage } from './stages/push.js';
import { initialState, preparedOf, sourceState, type PushState } from './stages/push-state.js';
import type { SourceRead } from './stages/source.js';
import { splitState } from './stages/split.js';
import { checkTombstone } from './stages/tombstone-check.js';
import { verifyStage } from './stages/verify.js';
import type { RunResult } from './result.js';

/** The facts pushStage's policy reads when no engine was asked (an image from a source). */
const NO_ENGINE: EngineFacts = { serverVersion: '', apiVersion: '', containerdStore: false };

/** Sources read side by side before the first push: each holds a file or a connection open while it is read. */
const READ_CONCURRENCY = 4;

/** An image read and checked, ready to push. */
export interface PreparedImage {
  readonly ctx: StageContext;
  readonly read: ImageRead;
  /** What each tag pointed to before the run. */
  readonly before: readonly TagBefore[];
}

/** The source as written, for messages and the `images` output ('' for a tombstone). */
export function sourceText(ctx: StageContext): string {
  return ctx.config.source ? sourceName(ctx.config.source) : '';
}

/** Any error as the failure the user reads; with several images, named and said to have stopped them all. */
function preflightFailure(ctx: StageContext, several: boolean, e: unknown): ActionFailure {
  const failure = asFailure(e);
  if (!several) return failure;
  const image = { target: ctx.config.target, source: sourceText(ctx) };
  return new ActionFailure(
    imageFailureTitle(ctx.config.target, failure.title),
    preflightFailureMessage(image, failure.message),
    { ...failure.opts, cause: failure.opts.cause ?? e },
  );
}

export function asFailure(e: unknown): ActionFailure {
  return e instanceof ActionFailure
    ? e
    : new ActionFailure('replicated-push failed', String((e as Error)?.message ?? e), { cause: e });
}

/**
 * Every image read (the engine, or a source opened without one) while the registry is asked what each image's tags
 * point to and docker logs in once (when an engine image needs it); then each image's plan is reported and its
 * refusals checked. An image that fails here fails the run with nothing pushed; the opened sources are closed.
 */
export async function prepareImages(ctxs: readonly StageContext[]): Promise<PreparedImage[]> {
  const several = ctxs.length > 1;
  const dockerLogin = ctxs.some((c) => !!c.config.image);
  const [reads, login] = await Promise.all([
    boundedPool(ctxs, READ_CONCURRENCY, (c) => imageStage(c)),
    loginAll(ctxs, { dockerLogin }).then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
  ]);
  const opened = reads.flatMap((r) => (r.status === 'fulfilled' && r.value.source ? [r.value.source.opened] : []));
  try {
    // the image is the user's first mistake to report; a login failure only matters for images that exist
    reads.forEach((r, i) => {
      if (r.status === 'rejected') throw preflightFailure(ctxs[i], several, r.reason);
    });
    if (!login.ok) throw login.error;
    return ctxs.map((ctx, i) => {
      const read = (reads[i] as { value: ImageRead }).value;
      const prepared = { ctx, read, before: login.value[i] };
      try {
        check(prepared);
      } catch (e) {
        throw preflightFailure(ctx, several, e);
      }
      return prepared;
    });
  } catch (e) {
    await Promise.all(opened.map((o) => o.close().catch(() => undefined)));
    throw e;
  }
}

/** The plan in the log, then what refuses the push (an attested index the engine cannot push, a tombstone's rule). */
function check({ ctx, read, before }: PreparedImage): void {
  const { config, log } = ctx;
  const { plan } = read;
  for (const n of plan.notices) log.notice(n);
  for (const w of plan.warnings) log.warning(w);
  for (const line of planLines(config, plan, read.engine, read.source)) log.info(line);
  for (const w of plan.preflight) log.warning(w);
  for (const line of tagsBeforeLines(config.repositoryPath, before)) log.info(line);
  if (config.mode === 'tombstone') log.warning(TOMBSTONE_WARNING);
  if (plan.strategy.kind === 'refuse')
    throw new ActionFailure(plan.strategy.title, plan.strategy.message, { input: 'attestations', attempts: 0 });
  const refusal = tombstoneRefusal(config, before);
  if (refusal) throw new ActionFailure(refusal.title, refusal.message, { input: refusal.input, attempts: 0 });
}

/** One image pushed, as a run of that image alone pushes it; its local names put back whatever happens. */
export async function pushPrepared(p: PreparedImage, started: number): Promise<RunResult> {
  const { ctx, read, before } = p;
  const { config, log } = ctx;
  const own: OwnImage[] = [];
  let names: LocalName[] = [];
  let last: PushState | null = null;
  try {
    throwIfCancelled(ctx.signal);
    const { engine, plan, names: namesBefore, source } = read;
    const result = (state: PushState, digest: string | null, attempts: number): RunResult =>
      resultOf(ctx, state, digest, attempts, before, started, source);
    const initial = source ? sourceState(plan, source.upload) : initialState(config, plan);
    if (config.dryRun) {
      if (config.layerSplit === 'auto' && plan.oversized.length)
        log.info(`dry-run: layer-split: auto would split ${plan.oversized.length} layer(s) over max-layer-size first.`);
      log.info(`dry-run: credentials accepted by ${config.registry}; nothing was tagged or pushed.`);
      return result(initial, null, 0);
    }
    const image = config.image?.raw ?? '';
    if (!source) names = await nameForPush(ctx, image, namesBefore, config.image?.isId ? image : null);
    // layer-split: auto splits every layer over max-layer-size before the first upload (an engine image only)
    const state =
      !source && config.layerSplit === 'auto' && plan.oversized.length ? await splitState(ctx, initial, null) : initial;
    own.push(...state.images);
    const pushed = await pushStage(ctx, engine ?? NO_ENGINE, state);
    last = pushed.state;
    own.push(...pushed.state.images.slice(state.images.length));
    if (!pushed.ok) throw pushed.error;
    const manifests = source?.platforms.map((p) => p.digest) ?? [];
    await verifyStage(ctx, pushed.state.plan.repositoryPath, pushed.digest, pushed.attempts, manifests);
    if (config.mode === 'tombstone') await checkTombstone(ctx, pushed.state.plan.repositoryPath, pushed.digest);
    return result(pushed.state, pushed.digest, pushed.attempts);
  } catch (e) {
    throw asFailure(e);
  } finally {
    // the split's blob files, no longer needed (an opened source is closed with the run's sources, run.ts)
    const made = last && preparedOf(last);
    if (made) await made.opened.close().catch(() => undefined);
    await cleanUp(ctx, names, own, config.image?.isId ? config.image.raw : null);
  }
}

/** Everything in the result follows from the plan that was pushed (a split replaces it). */
function resultOf(
  ctx: StageContext,
  state: PushState,
  digest: string | null,
  attempts: number,
  replaced: readonly TagBefore[],
  started: number,
  source: SourceRead | null,
): RunResult {
  const { plan } = state;
  return {
    source: sourceText(ctx),
    target: ctx.config.target,
    refs: plan.refs,
    digest,
    pinnedRef: digest ? pinnedRef(plan.repository, digest) : null,
    attempts,
    totalSize: plan.totalSize,
    layerCount: plan.layers.length,
    durationMs: ctx.clock.now() - started,
    dryRun: ctx.config.dryRun,
    platform: plan.strategy.kind === 'platform' ? plan.strategy.platform : null,
    platforms: Object.fromEntries((source?.platforms ?? []).map((p) => [p.platform, p.digest])),
    indexChanged: source?.changed ?? null,
    plan,
    replaced,
    split: state.split,
  };
}
