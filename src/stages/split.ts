// layer-split: auto. Before the first upload every layer over max-layer-size is split; after a 524 the policy
// names layers to split again to a size. The new image gets a name of the run's own and then the user's refs:
// nothing is pushed under a name the user did not give.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Plan } from '../plan.js';
import type { Resplit } from '../push-policy.js';
import { throwIfCancelled, type StageContext } from '../run-context.js';
import { formatBytes } from '../units.js';
import { ownImageRef, type OwnImage } from './local-images.js';
import { planFor } from './read.js';

export interface SplitSummary {
  readonly layersBefore: number;
  readonly layersAfter: number;
  /** One line per split layer: which, how big, into what. */
  readonly lines: readonly string[];
}

export interface SplitOutcome {
  readonly plan: Plan;
  readonly summary: SplitSummary;
  /** The re-layered image, removed when the run ends. */
  readonly image: OwnImage;
}

/**
 * Re-layers `plan.source`; `resplit` null splits every layer over max-layer-size. `n` numbers the splits of this
 * run (names and work directories). Returns null when nothing could be split further.
 */
export async function splitStage(
  ctx: StageContext,
  plan: Plan,
  resplit: Resplit | null,
  previous: SplitSummary | null,
  n: number,
): Promise<SplitOutcome | null> {
  throwIfCancelled(ctx.signal);
  const { config, log } = ctx;
  const ref = ownImageRef(ctx.runId, 'split', n);
  const workDir = join(ctx.workDir, `split-${n}`);
  mkdirSync(workDir, { recursive: true });
  const title = resplit
    ? `Re-split layer ${resplit.layers.map((l) => l.index).join(', ')} to ${formatBytes(resplit.size)}`
    : 'Split layers over max-layer-size';
  let report;
  try {
    // Called between attempts, never inside another group: GitHub does not nest groups.
    report = await log.group(title, () =>
      ctx.relayer(plan.source, {
        maxLayerSize: config.maxLayerSize,
        split: resplit ? new Map(resplit.layers.map((l) => [l.diffId, resplit.size])) : undefined,
        tag: ref,
        workDir,
        log: (line) => log.info(line),
        env: ctx.childEnv,
      }),
    );
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
  if (!report.changed) {
    log.info('layer-split: nothing could be split further; pushing the image as it is');
    return null;
  }
  const image = { ref };
  for (const u of report.unsplittable) {
    const limit = resplit ? resplit.size : config.maxLayerSize;
    log.warning({
      title: 'File bigger than a layer may be',
      message: `${u.path} is ${formatBytes(u.size)}, more than the ${formatBytes(limit)} its layer should stay under: one file cannot be split, so its layer holds it alone.`,
    });
  }
  throwIfCancelled(ctx.signal);
  const next = planFor(ctx, ref, await ctx.docker.readImage(ref, { signal: ctx.signal }));
  for (const target of plan.refs) await ctx.docker.tag(ref, target, { signal: ctx.signal });
  const lines = report.layers
    .filter((l) => l.pieces.length > 1)
    .map((l) => {
      const fact = plan.layers.find((f) => f.diffId === l.diffId);
      return (
        `layer ${fact?.index ?? '?'} (${formatBytes(l.size)}${fact?.instruction ? `, ${fact.instruction}` : ''}) -> ` +
        `${l.pieces.length} layers: ${l.pieces.map((p) => formatBytes(p.size)).join(' + ')}`
      );
    });
  const summary: SplitSummary = {
    layersBefore: previous?.layersBefore ?? plan.layers.length,
    layersAfter: next.layers.length,
    lines: [...(previous?.lines ?? []), ...lines],
  };
  log.info(
    `layer-split: ${summary.layersBefore} layers became ${summary.layersAfter}; pushed under ${plan.refs.join(', ')}`,
  );
  for (const line of lines) log.info(`  ${line}`);
  return { plan: next, summary, image };
}
