// The local names a run gives images: the registry refs docker push needs and the re-layered image (the tombstone is
// made in memory now, tombstone-image.ts). Every name is the run's own (runId) or recorded with what it pointed to
// before, so two runs on one engine never take each other's names, and cleanUp puts the engine back as it was.
import { ActionFailure, type StageContext } from '../ports.js';

/** A name this run pointed at an image: the image it named before (null: the name was new). */
export interface LocalName {
  readonly ref: string;
  readonly previousId: string | null;
}

/** An image this run created; removed by removing its name (its layers stay while another image uses them). */
export interface OwnImage {
  readonly ref: string;
}

/** Docker tags are at most 128 characters; the run's own names stay well under it. */
export function ownImageRef(runId: string, purpose: 'split', n = 1): string {
  return `replicated-push-${purpose}-${runId}:${n}`;
}

/** Points every ref at `source`, remembering what each named before (`keepOn`: see cleanUp). */
export async function nameForPush(
  ctx: StageContext,
  source: string,
  before: ReadonlyMap<string, string | null>,
  keepOn: string | null,
): Promise<LocalName[]> {
  const refs = [...before.keys()];
  const names: LocalName[] = [];
  try {
    for (const ref of refs) {
      names.push({ ref, previousId: before.get(ref) ?? null });
      await ctx.docker.tag(source, ref, { signal: ctx.signal });
    }
  } catch (e) {
    await restoreNames(ctx, names, keepOn);
    throw new ActionFailure('Could not tag the image', (e as Error).message, { attempts: 0, cause: e });
  }
  return names;
}

/**
 * Best effort, in order: names back to what they were, then the run's own images. Never throws. `keepOn`: an image
 * given by ID may have no other name, and removing its last name would delete it, so new names go back to it.
 */
export async function cleanUp(
  ctx: Pick<StageContext, 'docker' | 'log'>,
  names: readonly LocalName[],
  own: readonly OwnImage[],
  keepOn: string | null = null,
): Promise<void> {
  await restoreNames(ctx, names, keepOn);
  for (const image of own) await ctx.docker.removeImage(image.ref).catch(() => undefined);
}

async function restoreNames(
  ctx: Pick<StageContext, 'docker' | 'log'>,
  names: readonly LocalName[],
  keepOn: string | null,
): Promise<void> {
  for (const { ref, previousId } of names) {
    try {
      const back = previousId ?? keepOn;
      if (back) await ctx.docker.tag(back, ref);
      else await ctx.docker.removeImage(ref);
    } catch (e) {
      ctx.log.debug(`could not restore the local name ${ref}: ${(e as Error).message}`);
    }
  }
}
