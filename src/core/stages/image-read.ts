// Stage 1, whatever the source: the engine read (read.ts) for a local image, or a source opened as the image model
// (source.ts) for a layout, an archive, a registry and the tombstone, with no docker call at all. An engine image
// the engine cannot push as the user wants (a multi-platform index with attestations, or some of its platforms) is
// read once more, with docker save, and pushed as those sources are.
import type { OpenedImage } from '../../image/image-model.js';
import type { EngineFacts } from '../../engine/docker.js';
import type { Plan } from '../plan.js';
import { ActionFailure, type StageContext } from '../ports.js';
import { readStage } from './read.js';
import { openStage, sourceRead, type SourceRead } from './source.js';
import { openTombstone } from './tombstone-image.js';

export interface ImageRead {
  /** The engine's facts; null when no engine was asked. */
  readonly engine: EngineFacts | null;
  readonly plan: Plan;
  /** What the local names the push needs point to now (an engine push only). */
  readonly names: ReadonlyMap<string, string | null>;
  /** The opened source, when the action's uploader sends the image from it. */
  readonly source: SourceRead | null;
}

/** sourceRead, the source closed again when its plan cannot be made (the run never learns of it then). */
async function planOpened(ctx: StageContext, opened: OpenedImage): Promise<SourceRead> {
  try {
    return await sourceRead(ctx, opened);
  } catch (e) {
    await opened.close().catch(() => undefined);
    throw e;
  }
}

function fromSource(engine: EngineFacts | null, source: SourceRead): ImageRead {
  return { engine, plan: source.plan, names: new Map(), source };
}

export async function imageStage(ctx: StageContext): Promise<ImageRead> {
  const { config } = ctx;
  const source = config.source;
  if (!source) return fromSource(null, await planOpened(ctx, openTombstone()));
  // every transport but the engine's is daemonless (source-ref.ts DAEMONLESS)
  if (source.transport !== 'docker-daemon')
    return fromSource(null, await planOpened(ctx, await openStage(ctx, source)));
  const read = await readStage(ctx, source.image.raw);
  const { strategy } = read.plan;
  if (strategy.kind !== 'index') return { ...read, source: null };
  if (config.layerSplit === 'auto')
    throw new ActionFailure(
      'layer-split: auto cannot re-layer a multi-platform image',
      `Input 'layer-split': auto re-layers one image in the engine; ${read.plan.source} is an index of ` +
        `${strategy.platforms.length} platforms (${strategy.platforms.join(', ')}). Use layer-split: advise (the ` +
        'default) or off: the chunked uploader sends a big layer in resumable chunks either way.',
      { input: 'layer-split', attempts: 0 },
    );
  return fromSource(read.engine, await planOpened(ctx, await openStage(ctx, source)));
}
