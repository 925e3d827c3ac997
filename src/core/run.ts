// The core, top to bottom: read the engine and the registry -> plan -> name locally -> split -> push with
// retries -> verify -> result. Each stage takes what it needs and returns what it found (src/stages/); what
// to do after a failure is the pure push policy (src/core/policy/push-policy.ts). No @actions/core here: the GitHub
// adapter (main.ts) and the CLI pass a Logger in.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRunDockerConfig } from '../engine/docker-config.js';
import type { Config } from './inputs.js';
import { TOMBSTONE_WARNING, type Plan } from './plan.js';
import { planLines } from './report/plan-report.js';
import { childEnv } from '../util/process.js';
import { pinnedRef } from '../image/reference.js';
import { ActionFailure, throwIfCancelled, type CoreDeps, type StageContext } from './ports.js';
import type { EngineFacts } from '../engine/docker.js';
import { cleanUp, nameForPush, type LocalName, type OwnImage } from './stages/local-images.js';
import { loginStage, type TagBefore } from './stages/login.js';
import { pushStage } from './stages/push.js';
import { initialState, sourceState, type PushState, type SplitSummary } from './stages/push-state.js';
import { imageStage, type ImageRead } from './stages/image-read.js';
import type { IndexChange, SourceRead } from './stages/source.js';
import type { OpenedImage } from '../image/image-model.js';
import { splitState } from './stages/split.js';
import { checkTombstone } from './stages/tombstone-check.js';
import { verifyStage } from './stages/verify.js';
import { tagsBeforeLines, tombstoneRefusal } from './policy/tag-policy.js';

/** The facts pushStage's policy reads when no engine was asked (an image from a source). */
const NO_ENGINE: EngineFacts = { serverVersion: '', apiVersion: '', containerdStore: false };

export { ActionFailure, Cancelled } from './ports.js';
export type { CoreDeps } from './ports.js';
export type { SplitSummary } from './stages/push-state.js';

export interface RunResult {
  readonly refs: readonly string[];
  readonly digest: string | null;
  readonly pinnedRef: string | null;
  readonly attempts: number;
  readonly totalSize: number;
  readonly layerCount: number;
  readonly durationMs: number;
  readonly dryRun: boolean;
  /** The platform pushed alone when attestations were stripped. */
  readonly platform: string | null;
  /** The platform manifests of the pushed index, platform -> digest; empty when one image manifest was pushed. */
  readonly platforms: Readonly<Record<string, string>>;
  /** The source's index and the one pushed, when they differ (attestations stripped, platforms left out). */
  readonly indexChanged: IndexChange | null;
  readonly plan: Plan;
  /** What each tag pointed to before this run (digest null: the tag was new, or error set: unknown). */
  readonly replaced: readonly TagBefore[];
  /** Set when layer-split: auto re-layered the image. */
  readonly split: SplitSummary | null;
}

export async function runAction(config: Config, deps: CoreDeps): Promise<RunResult> {
  const started = deps.now();
  // One directory for everything the run writes (credentials, relayer scratch space), so a post step that
  // follows a killed run has one path to remove.
  const workDir = mkdtempSync(join(deps.env.RUNNER_TEMP || tmpdir(), 'replicated-push-'));
  chmodSync(workDir, 0o700);
  deps.onWorkDir?.(workDir);
  try {
    const dockerConfig = createRunDockerConfig(deps.env, join(workDir, 'docker'));
    const env = childEnv(dockerConfig.env, [config.token, config.sourceToken].filter(Boolean));
    const ctx: StageContext = {
      config,
      log: deps.logger,
      docker: deps.docker(env),
      registry: deps.registry(config.registry, config.username, config.token),
      clock: deps,
      signal: deps.signal ?? new AbortController().signal,
      runId: deps.runId,
      workDir,
      childEnv: env,
      jobEnv: deps.env,
      progressIntervalMs: deps.progressIntervalMs,
      ports: deps.ports,
    };
    return await pushImage(ctx, started);
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

async function pushImage(ctx: StageContext, started: number): Promise<RunResult> {
  const { config, log } = ctx;
  const own: OwnImage[] = [];
  let names: LocalName[] = [];
  let opened: OpenedImage | null = null;
  try {
    throwIfCancelled(ctx.signal);
    // The image is read (the engine, or a source opened without one) while the registry is asked what the tags
    // point to and docker login runs (an engine push only). The image is the user's first mistake to report; a
    // login failure only matters for an image that exists.
    const [read, login] = await Promise.allSettled([imageStage(ctx), loginStage(ctx, { dockerLogin: !!config.image })]);
    if (read.status === 'fulfilled') opened = read.value.source?.opened ?? null;
    if (read.status === 'rejected') throw read.reason;
    if (login.status === 'rejected') throw login.reason;
    const { engine, plan, names: namesBefore, source } = read.value;
    const before = login.value;
    report(ctx, read.value, before);
    if (plan.strategy.kind === 'refuse')
      throw new ActionFailure(plan.strategy.title, plan.strategy.message, { input: 'attestations', attempts: 0 });
    const refusal = tombstoneRefusal(config, before);
    if (refusal) throw new ActionFailure(refusal.title, refusal.message, { input: refusal.input, attempts: 0 });
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
    own.push(...pushed.state.images.slice(state.images.length));
    if (!pushed.ok) throw pushed.error;
    const manifests = source?.platforms.map((p) => p.digest) ?? [];
    await verifyStage(ctx, pushed.state.plan.repositoryPath, pushed.digest, pushed.attempts, manifests);
    if (config.mode === 'tombstone') await checkTombstone(ctx, pushed.state.plan.repositoryPath, pushed.digest);
    return result(pushed.state, pushed.digest, pushed.attempts);
  } catch (e) {
    throw e instanceof ActionFailure
      ? e
      : new ActionFailure('replicated-push failed', String((e as Error)?.message ?? e), { cause: e });
  } finally {
    await cleanUp(ctx, names, own, config.image?.isId ? config.image.raw : null);
    await opened?.close().catch((e: unknown) => log.debug(`closing the source: ${(e as Error).message}`));
  }
}

function report(ctx: StageContext, read: ImageRead, before: readonly TagBefore[]): void {
  const { config, log } = ctx;
  const { plan } = read;
  for (const n of plan.notices) log.notice(n);
  for (const w of plan.warnings) log.warning(w);
  for (const line of planLines(config, plan, read.engine, read.source)) log.info(line);
  for (const w of plan.preflight) log.warning(w);
  for (const line of tagsBeforeLines(config.repositoryPath, before)) log.info(line);
  if (config.mode === 'tombstone') log.warning(TOMBSTONE_WARNING);
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
