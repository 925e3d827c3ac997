// Stage: ask the registry, not docker, what each tag now points to. A request that fails (5xx, reset, timeout)
// after a good push is asked again under the retry policy; only the registry's own answer can fail the run.
import { withRetries, type AttemptOutcome } from '../../util/retry.js';
import { ActionFailure, throwIfCancelled, type StageContext } from '../ports.js';
import type { ManifestHead } from '../../registry/registry-client.js';
import { retryHooks, retryPolicy } from './login.js';

/** HEAD of one reference, asked again under the retry policy when the request (not the answer) fails. */
async function askHead(
  ctx: StageContext,
  repositoryPath: string,
  reference: string,
  digest: string,
  attempts: number,
): Promise<ManifestHead | null> {
  const asked = await withRetries(
    retryPolicy(ctx),
    retryHooks(ctx, `verify ${reference}`),
    async (): Promise<AttemptOutcome<ManifestHead | null>> => {
      try {
        return { ok: true, value: await ctx.registry.headManifest(repositoryPath, reference, ctx.signal) };
      } catch (e) {
        return { ok: false, retry: !ctx.signal.aborted, error: e as Error };
      }
    },
  );
  if (asked.outcome.ok) return asked.outcome.value;
  throw new ActionFailure(
    'Could not verify the push',
    `${ctx.config.registry} did not say what ${repositoryPath}:${reference} points to after the push ` +
      `(${asked.outcome.error.message}); the push itself reported ${digest}.`,
    { attempts },
  );
}

/**
 * Every tag must resolve to `digest`; every platform manifest an index names (`manifests`) must be there by its
 * digest (a registry that took the index without them would serve a pull nothing).
 */
export async function verifyStage(
  ctx: StageContext,
  repositoryPath: string,
  digest: string,
  attempts: number,
  manifests: readonly string[] = [],
): Promise<void> {
  const { config, log } = ctx;
  await log.group('Verify', async () => {
    for (const tag of config.tags) {
      throwIfCancelled(ctx.signal, attempts);
      const head = await askHead(ctx, repositoryPath, tag, digest, attempts);
      if (!head)
        throw new ActionFailure(
          'Tag missing after push',
          `${config.registry} does not list ${repositoryPath}:${tag} after the push.`,
          { attempts },
        );
      if (head.digest !== digest)
        throw new ActionFailure(
          'Digest mismatch',
          `${repositoryPath}:${tag} resolves to ${head.digest} on the registry, but the push reported ${digest}.`,
          { attempts },
        );
      log.info(`verified: ${repositoryPath}:${tag} -> ${head.digest} (${head.mediaType})`);
    }
    for (const m of manifests) {
      throwIfCancelled(ctx.signal, attempts);
      const head = await askHead(ctx, repositoryPath, m, digest, attempts);
      if (head?.digest !== m)
        throw new ActionFailure(
          'Platform manifest missing after push',
          `${config.registry} does not hold ${repositoryPath}@${m}, which the pushed index ${digest} names.`,
          { attempts },
        );
      log.info(`verified: ${repositoryPath}@${m} (${head.mediaType})`);
    }
  });
}
