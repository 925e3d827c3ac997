// Stage 1: what the engine holds about the image, read once (engine facts, inspect, history, index entries, what
// the local names point to), and the plan made from it. run.ts runs it beside the login stage.
import { choosePushStrategy } from '../policy/attestations.js';
import { classifyFailure } from '../policy/failure.js';
import { layerFacts } from '../../image/layers.js';
import { INDEX_MEDIA_TYPES, platformString } from '../../image/oci.js';
import { buildPlan, refsFor, type Plan } from '../plan.js';
import { ActionFailure, type StageContext } from '../ports.js';
import type { EngineFacts, EngineImage } from '../../engine/docker.js';
import { failureOutput } from './failure-output.js';

export interface ReadResult {
  readonly engine: EngineFacts;
  readonly plan: Plan;
  /** What the local names the push needs (the plan's refs) point to now. */
  readonly names: ReadonlyMap<string, string | null>;
}

/** The plan for an image the engine described: layers, push strategy, warnings. Used again after a split. */
export function planFor(ctx: Pick<StageContext, 'config'>, source: string, read: EngineImage): Plan {
  const { image } = read;
  return buildPlan(
    ctx.config,
    source,
    layerFacts(image.RootFS.Layers ?? [], read.history),
    choosePushStrategy(
      {
        containerdStore: read.engine.containerdStore,
        apiVersion: read.engine.apiVersion,
        descriptorMediaType: image.Descriptor?.mediaType ?? null,
        manifests: read.manifests,
        platform: platformString({ os: image.Os, architecture: image.Architecture, variant: image.Variant }),
      },
      ctx.config.attestations,
      { subset: ctx.config.platforms.length > 0 },
    ),
    { index: INDEX_MEDIA_TYPES.has(image.Descriptor?.mediaType ?? '') },
  );
}

export async function readStage(ctx: StageContext, source: string): Promise<ReadResult> {
  let read: EngineImage;
  try {
    read = await ctx.docker.readImage(source, { signal: ctx.signal, names: refsFor(ctx.config) });
  } catch (e) {
    throw imageFailure(ctx, source, e);
  }
  return { engine: read.engine, plan: planFor(ctx, source, read), names: read.names };
}

function imageFailure(ctx: StageContext, source: string, reason: unknown): Error {
  if (reason instanceof ActionFailure) return reason;
  const failure = classifyFailure(failureOutput(reason));
  if (failure.kind === 'engine-unreachable') {
    const host = ctx.childEnv.DOCKER_HOST ? ` at DOCKER_HOST=${ctx.childEnv.DOCKER_HOST}` : '';
    return new ActionFailure(
      'Docker engine unreachable',
      `Could not reach the Docker engine${host}: ${failure.detail}. ` +
        'Check that the engine is running and that DOCKER_HOST / the docker context point at it.',
      { attempts: 0, cause: reason },
    );
  }
  if (failure.kind === 'image-missing') {
    return new ActionFailure(
      'Image not found',
      `Input 'image': the engine has no image '${source}'. ` +
        'Build or load it in an earlier step (the name must match, including the tag; the default tag is latest).',
      { input: 'image', attempts: 0, cause: reason },
    );
  }
  return new ActionFailure('Could not read the image', failure.detail, { input: 'image', attempts: 0, cause: reason });
}
