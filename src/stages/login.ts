// docker login (bounded retries for what a server or the network caused), and what each tag points to before
// the push: shown for every push, and required by a tombstone.
import { failureAdvice } from '../advisory.js';
import { classifyFailure } from '../failure.js';
import { adviceContext } from '../plan.js';
import { loginRetryable } from '../push-policy.js';
import { DEFAULT_MAX_DELAY_MS, withRetries, type AttemptOutcome } from '../retry.js';
import { ActionFailure, throwIfCancelled, type StageContext } from '../run-context.js';
import { formatDuration } from '../units.js';
import { failureOutput } from './failure-output.js';

export interface TagBefore {
  readonly tag: string;
  /** The digest the tag resolved to; null when the registry answered 404 (the tag is new). */
  readonly digest: string | null;
  /** Set when the registry could not say (not a 404): the tag's state is unknown. */
  readonly error?: string;
}

export function retryPolicy(ctx: Pick<StageContext, 'config'>) {
  return { retries: ctx.config.retries, firstDelayMs: ctx.config.retryDelayMs, maxDelayMs: DEFAULT_MAX_DELAY_MS };
}

/** Sleep, randomness and the "retrying in" line, for withRetries. */
export function retryHooks(ctx: StageContext, what: string) {
  return {
    sleep: (ms: number) => ctx.clock.sleep(ms, ctx.signal),
    random: ctx.clock.random,
    onRetry: (attempt: number, delay: number, error: Error) => {
      throwIfCancelled(ctx.signal, attempt);
      ctx.log.info(
        `${what}: attempt ${attempt} failed (${error instanceof ActionFailure ? error.title : error.message}); retrying in ${formatDuration(delay)}`,
      );
    },
  };
}

export async function login(ctx: StageContext): Promise<void> {
  const { config } = ctx;
  const result = await withRetries(
    retryPolicy(ctx),
    retryHooks(ctx, 'login'),
    async (): Promise<AttemptOutcome<void>> => {
      throwIfCancelled(ctx.signal);
      try {
        await ctx.docker.login(config.registry, config.username, config.token, { signal: ctx.signal });
        return { ok: true, value: undefined };
      } catch (e) {
        const failure = classifyFailure(failureOutput(e));
        const advice = failureAdvice(failure, adviceContext(config, null));
        return { ok: false, retry: loginRetryable(failure), error: new ActionFailure(advice.title, advice.message) };
      }
    },
  );
  if (!result.outcome.ok) throw result.outcome.error;
}

export async function tagsBefore(ctx: StageContext): Promise<TagBefore[]> {
  const { config } = ctx;
  return Promise.all(
    config.tags.map(async (tag): Promise<TagBefore> => {
      try {
        const head = await ctx.registry.headManifest(config.repositoryPath, tag, ctx.signal);
        return { tag, digest: head?.digest ?? null };
      } catch (e) {
        return { tag, digest: null, error: (e as Error).message };
      }
    }),
  );
}
