// What is being pushed and how, carried from stage to stage and from attempt to attempt as a value: the plan (a split
// replaces it), the splits so far, the images the splits loaded into the engine, and either the local image with
// the method the policy chose for it, or an image of the model (an opened source's, or the split's blob files),
// which only the action's own uploader can send.
import type { Plan } from '../plan.js';
import { firstMethod, type PushMethod } from '../policy/push-policy.js';
import type { Config } from '../inputs.js';
import type { OpenedImage, SourceImage } from '../../image/image-model.js';
import type { OwnImage } from './local-images.js';

export interface SplitSummary {
  readonly layersBefore: number;
  readonly layersAfter: number;
  /** One line per split layer: which, how big, into what. */
  readonly lines: readonly string[];
}

/** The pieces written as blobs, ready for the uploader, and what a later re-split needs to start over. */
export interface PreparedSplit {
  /** The split's image: its blob files, removed when it is closed (replaced by a re-split, or the image pushed). */
  readonly opened: OpenedImage;
  /** The plan of the user's image: a re-split starts from it again (plan.source). */
  readonly sourcePlan: Plan;
  /** Original layer diff ID -> the piece size it was split to. */
  readonly targets: ReadonlyMap<string, number>;
  /** Piece diff ID -> the original layer it came from. */
  readonly origin: ReadonlyMap<string, string>;
  /** Which split of the run made it (names its directory). */
  readonly n: number;
}

interface Pushing {
  readonly plan: Plan;
  readonly split: SplitSummary | null;
  /** Images the splits loaded (upload: docker), removed when the run ends. */
  readonly images: readonly OwnImage[];
}

export type PushState =
  /** The image is in the engine: docker push, or the action's uploader reading it, as the policy chose. */
  | (Pushing & { readonly kind: 'local'; readonly method: PushMethod })
  /**
   * An image of the model: opened from a source (a layout, an archive, a registry, the engine's multi-platform image
   * saved, the tombstone made in memory; `prepared` null, never split), or the split's blob files (`prepared`: a
   * re-split starts again from the user's image). Only the action's uploader sends it, every attempt the same blobs.
   */
  | (Pushing & { readonly kind: 'source'; readonly image: SourceImage; readonly prepared: PreparedSplit | null });

/** The state before any split or attempt. */
export function initialState(config: Pick<Config, 'upload'>, plan: Plan): PushState {
  return { kind: 'local', plan, split: null, images: [], method: firstMethod(config, plan) };
}

/** The state of an opened source's image: nothing to split, nothing in the engine. */
export function sourceState(plan: Plan, image: SourceImage): PushState {
  return { kind: 'source', plan, split: null, images: [], image, prepared: null };
}

/** The split that made the state's image (its blob files), or null. */
export function preparedOf(state: PushState): PreparedSplit | null {
  return state.kind === 'source' ? state.prepared : null;
}

/** How the next attempt sends the image. */
export function methodOf(state: PushState): PushMethod {
  return state.kind === 'local' ? state.method : 'chunked';
}
