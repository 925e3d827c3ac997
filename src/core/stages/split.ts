// layer-split: auto. Before the first upload every layer over max-layer-size is split; after a 524 the policy
// names layers to split again to a size. Two outputs:
// - upload: auto or chunked: the pieces become blob files in the run's work directory (relayerBlobs) and the push
//   stage uploads them itself under the user's tags. No `docker load`, nothing new in the engine; every retry
//   reuses the same files, and a re-split starts again from the user's image.
// - upload: docker: the new image is loaded under a name of the run's own, then the user's refs are tagged to it
//   for `docker push`: nothing is pushed under a name the user did not give.
import { shortDigest } from '../../image/oci.js';
import { mkdirSync, rmSync } from 'node:fs';
import { firstMethod, type Resplit } from '../policy/push-policy.js';
import { join } from 'node:path';
import type { LayerFact } from '../../image/layers.js';
import { buildPlan, type Plan } from '../plan.js';
import type { LayerReport, RelayerReport } from '../../layer-split/index.js';
import { throwIfCancelled, type StageContext } from '../ports.js';
import { formatBytes } from '../../util/units.js';
import type { OpenedImage } from '../../image/image-model.js';
import type { BlobSource } from '../../image/blob-source.js';
import { ownImageRef, type OwnImage } from './local-images.js';
import { preparedOf, type PreparedSplit, type PushState, type SplitSummary } from './push-state.js';
import { planFor } from './read.js';
import { eventLine } from './upload-log.js';

export interface SplitOutcome {
  readonly plan: Plan;
  readonly summary: SplitSummary;
  /** The re-layered image loaded into the engine (upload: docker), removed when the run ends. */
  readonly image: OwnImage | null;
  /** The re-layered image as blob files (upload: auto or chunked). */
  readonly prepared: PreparedSplit | null;
}

/**
 * The one entry to a split: before the first attempt (`how` null: every layer over max-layer-size) or after a 524
 * (the policy's Resplit). Returns the state to push next; the same state when nothing could be split further. A new
 * set of blobs replaces the old (removed: a retry never needs them).
 */
export async function splitState(ctx: StageContext, state: PushState, how: Resplit | null): Promise<PushState> {
  const prior = preparedOf(state);
  const n = Math.max(state.images.length, prior?.n ?? 0) + 1;
  const split = await splitStage(ctx, state.plan, how, state.split, n, prior);
  if (!split) return state;
  const images = split.image ? [...state.images, split.image] : state.images;
  const next = { plan: split.plan, split: split.summary, images };
  // the split's image is a source of its own, pushed as every source is (never split itself: a re-split reads the
  // user's image again)
  if (split.prepared) {
    await prior?.opened.close();
    return { ...next, kind: 'source', image: split.prepared.opened.image, prepared: split.prepared };
  }
  if (prior) return { ...next, kind: 'source', image: prior.opened.image, prepared: prior };
  // after a first split the policy picks the method for the new plan; after a re-split the attempt's method stands
  const method = how === null || state.kind !== 'local' ? firstMethod(ctx.config, split.plan) : state.method;
  return { ...next, kind: 'local', method };
}

/**
 * Re-layers `plan.source`; `resplit` null splits every layer over max-layer-size. `n` numbers the splits of this
 * run (names and work directories); `prior` is the split being replaced, when its pieces were blobs. Returns null
 * when nothing could be split further.
 */
async function splitStage(
  ctx: StageContext,
  plan: Plan,
  resplit: Resplit | null,
  previous: SplitSummary | null,
  n: number,
  prior: PreparedSplit | null,
): Promise<SplitOutcome | null> {
  throwIfCancelled(ctx.signal);
  const title = resplit
    ? `Re-split layer ${resplit.layers.map((l) => l.index).join(', ')} to ${formatBytes(resplit.size)}`
    : 'Split layers over max-layer-size';
  const workDir = join(ctx.workDir, `split-${n}`);
  mkdirSync(workDir, { recursive: true });
  try {
    // Called between attempts, never inside another group: GitHub does not nest groups.
    return await ctx.log.group(title, () =>
      ctx.config.upload === 'docker'
        ? splitAndLoad(ctx, plan, resplit, previous, n, workDir)
        : splitToBlobs(ctx, plan, resplit, n, workDir, prior),
    );
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

async function splitAndLoad(
  ctx: StageContext,
  plan: Plan,
  resplit: Resplit | null,
  previous: SplitSummary | null,
  n: number,
  workDir: string,
): Promise<SplitOutcome | null> {
  const { config, log } = ctx;
  const ref = ownImageRef(ctx.runId, 'split', n);
  const report = await ctx.ports.relayer(plan.source, {
    maxLayerSize: config.maxLayerSize,
    split: resplit ? new Map(resplit.layers.map((l) => [l.diffId, resplit.size])) : undefined,
    tag: ref,
    workDir,
    log: (line) => log.info(line),
    env: ctx.childEnv,
    signal: ctx.signal,
  });
  if (!splitWorked(ctx, report, resplit)) return null;
  throwIfCancelled(ctx.signal);
  const next = planFor(ctx, ref, await ctx.docker.readImage(ref, { signal: ctx.signal }));
  for (const target of plan.refs) await ctx.docker.tag(ref, target, { signal: ctx.signal });
  const summary = summarize(ctx, plan, report, previous, next.layers.length);
  return { plan: next, summary, image: { ref }, prepared: null };
}

/**
 * The size each layer of the user's image is cut to after a re-split: the earlier targets, and each named piece's
 * original layer lowered to the new size (a layer never grows back).
 */
function resplitTargets(prior: PreparedSplit | null, resplit: Resplit): Map<string, number> {
  const split = new Map(prior?.targets ?? []);
  for (const l of resplit.layers) {
    const original = prior?.origin.get(l.diffId) ?? l.diffId;
    split.set(original, Math.min(split.get(original) ?? Infinity, resplit.size));
  }
  return split;
}

/** The split image's layers, in order, each with the instruction of the layer it was cut from; and that layer. */
function pieceFacts(report: RelayerReport, source: Plan): { facts: LayerFact[]; origin: Map<string, string> } {
  const pieces = report.layers.flatMap((l) => l.pieces.map((p) => ({ ...p, from: l.diffId })));
  const instruction = new Map(source.layers.map((f) => [f.diffId, f.instruction]));
  const facts: LayerFact[] = pieces.map((p, i) => ({
    index: i + 1,
    diffId: p.diffId,
    shortId: shortDigest(p.diffId),
    size: p.size,
    instruction: instruction.get(p.from) ?? null,
  }));
  return { facts, origin: new Map(pieces.map((p) => [p.diffId, p.from])) };
}

async function splitToBlobs(
  ctx: StageContext,
  plan: Plan,
  resplit: Resplit | null,
  n: number,
  workDir: string,
  prior: PreparedSplit | null,
): Promise<SplitOutcome | null> {
  const { config, log } = ctx;
  // Always from the user's image: the pieces named by a re-split map back to the layers they were cut from, and
  // every layer split before keeps its size unless the re-split makes it smaller.
  const source = prior?.sourcePlan ?? plan;
  const split = resplit ? resplitTargets(prior, resplit) : undefined;
  const blobDir = join(ctx.workDir, `blobs-${n}`);
  mkdirSync(blobDir, { recursive: true });
  let made: OpenedImage | null = null;
  const early = earlyUploads(ctx, plan.repositoryPath);
  try {
    const { report, image } = await ctx.ports.relayerBlobs(source.source, {
      maxLayerSize: config.maxLayerSize,
      split,
      workDir,
      blobDir,
      log: (line) => log.info(line),
      env: ctx.childEnv,
      signal: ctx.signal,
      onBlob: early.add,
    });
    await early.settled();
    if (!image || !splitWorked(ctx, report, resplit)) return null;
    made = image;
    throwIfCancelled(ctx.signal);
    const { facts, origin } = pieceFacts(report, source);
    // Built without the engine: the new image exists only as blobs. Same source, strategy and refs.
    const next = buildPlan(config, source.source, facts, source.strategy);
    const targets =
      split ?? new Map(report.layers.filter((l) => l.pieces.length > 1).map((l) => [l.diffId, config.maxLayerSize]));
    // A re-split starts over from the user's image: its lines replace the earlier split's.
    const summary = summarize(ctx, source, report, null, facts.length);
    return { plan: next, summary, image: null, prepared: { opened: image, sourcePlan: source, targets, origin, n } };
  } finally {
    // a failed split leaves no upload reading its files
    await early.settled();
    if (!made) rmSync(blobDir, { recursive: true, force: true });
  }
}

/**
 * Pipelining: each piece is uploaded as soon as it is written, while the next is cut, one at a time (one chunk in
 * memory). Nothing here can fail the run: a blob that did not get through is sent by the push attempt that follows
 * (its HEAD skips the ones that did), under the push policy.
 */
function earlyUploads(
  ctx: StageContext,
  repositoryPath: string,
): { add: (blob: BlobSource) => void; settled: () => Promise<void> } {
  let queue: Promise<void> = Promise.resolve();
  return {
    add: (blob) => {
      queue = queue.then(async () => {
        if (ctx.signal.aborted) return;
        const failed = await ctx.ports.pushPreparedBlob({
          blob,
          repositoryPath,
          chunkSize: ctx.config.chunkSize,
          signal: ctx.signal,
          transport: ctx.registry,
          onEvent: (e) => {
            const line = eventLine(e);
            if (line) ctx.log.info(line);
          },
        });
        if (failed && !ctx.signal.aborted)
          ctx.log.info(`${shortDigest(blob.digest)}: not sent while splitting (${failed}); the push sends it`);
      });
    },
    settled: () => queue,
  };
}

/** False (and says so) when nothing changed; warns about every file too big to split. */
function splitWorked(ctx: StageContext, report: RelayerReport, resplit: Resplit | null): boolean {
  if (!report.changed) {
    ctx.log.info('layer-split: nothing could be split further; pushing the image as it is');
    return false;
  }
  for (const u of report.unsplittable) {
    const limit = resplit ? resplit.size : ctx.config.maxLayerSize;
    ctx.log.warning({
      title: 'File bigger than a layer may be',
      message: `${u.path} is ${formatBytes(u.size)}, more than the ${formatBytes(limit)} its layer should stay under: one file cannot be split, so its layer holds it alone.`,
    });
  }
  return true;
}

/** The split's lines ("layer 2 (…) -> 4 layers: …"), logged and added to the earlier splits'. */
function summarize(
  ctx: StageContext,
  plan: Plan,
  report: RelayerReport,
  previous: SplitSummary | null,
  layersAfter: number,
): SplitSummary {
  const lines = report.layers.filter((l) => l.pieces.length > 1).map((l) => splitLine(plan, l));
  const summary: SplitSummary = {
    layersBefore: previous?.layersBefore ?? plan.layers.length,
    layersAfter,
    lines: [...(previous?.lines ?? []), ...lines],
  };
  ctx.log.info(
    `layer-split: ${summary.layersBefore} layers became ${summary.layersAfter}; pushed under ${plan.refs.join(', ')}`,
  );
  for (const line of lines) ctx.log.info(`  ${line}`);
  return summary;
}

function splitLine(plan: Plan, l: LayerReport): string {
  const fact = plan.layers.find((f) => f.diffId === l.diffId);
  return (
    `layer ${fact?.index ?? '?'} (${formatBytes(l.size)}${fact?.instruction ? `, ${fact.instruction}` : ''}) -> ` +
    `${l.pieces.length} layers: ${l.pieces.map((p) => formatBytes(p.size)).join(' + ')}`
  );
}
