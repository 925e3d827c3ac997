// Stage: ask the registry, not docker, what each tag now points to. A request that fails (5xx, reset, timeout)
// after a good push is asked again under the retry policy; only the registry's own answer can fail the run.
import { withRetries, type AttemptOutcome } from '../../util/retry.js';
import { ActionFailure, throwIfCancelled, type StageContext } from '../ports.js';
import type { ManifestHead } from '../../registry/registry-client.js';
import { retryHooks, retryPolicy } from './login.js';

export async function verifyStage(
  ctx: StageContext,
  repositoryPath: string,
  digest: string,
  attempts: number,
): Promise<void> {
  const { config, log } = ctx;
  await log.group('Verify', async () => {
    for (const tag of config.tags) {
      throwIfCancelled(ctx.signal, attempts);
      const asked = await withRetries(
        retryPolicy(ctx),
        retryHooks(ctx, `verify ${tag}`),
        async (): Promise<AttemptOutcome<ManifestHead | null>> => {
          try {
            return { ok: true, value: await ctx.registry.headManifest(repositoryPath, tag, ctx.signal) };
          } catch (e) {
            return { ok: false, retry: !ctx.signal.aborted, error: e as Error };
          }
        },
      );
      if (!asked.outcome.ok)
        throw new ActionFailure(
          'Could not verify the push',
          `${config.registry} did not say what ${repositoryPath}:${tag} points to after the push ` +
            `(${asked.outcome.error.message}); the push itself reported ${digest}.`,
          { attempts },
        );
      const head = asked.outcome.value;
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
  });
}
