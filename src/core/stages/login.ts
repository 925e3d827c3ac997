// docker login (bounded retries for what a server or the network caused), and what each tag points to before
// the push: shown for every push, and required by a tombstone.
import { failureAdvice } from '../report/advisory.js';
import { classifyFailure } from '../policy/failure.js';
import { adviceContext } from '../plan.js';
import { loginRetryable } from '../policy/push-policy.js';
import { DEFAULT_MAX_DELAY_MS, withRetries, type AttemptOutcome } from '../../util/retry.js';
import { ActionFailure, throwIfCancelled, type StageContext } from '../ports.js';
import { formatDuration } from '../../util/units.js';
import { HttpError } from '../../registry/http-request.js';
import { RegistryError } from '../../registry/registry-client.js';
import type { PendingLogin } from '../../engine/docker.js';
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

/** `docker login` with bounded retries; the first attempt may be a CLI already started (`started`). */
export async function login(ctx: StageContext, started?: PendingLogin): Promise<void> {
  const { config } = ctx;
  let waiting = started;
  const result = await withRetries(
    retryPolicy(ctx),
    retryHooks(ctx, 'login'),
    async (): Promise<AttemptOutcome<void>> => {
      throwIfCancelled(ctx.signal);
      const first = waiting;
      waiting = undefined;
      try {
        if (first) await first.send(config.token);
        else await ctx.docker.login(config.registry, config.username, config.token, { signal: ctx.signal });
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

/**
 * The registry first, docker second: the action's own client asks what each tag points to, which checks the token
 * realm before any credential leaves and puts a deadline and a size cap on every answer. `docker login` would send
 * the credentials to whatever realm the challenge names and wait as long as a registry drips. Then docker logs in:
 * its CLI is started meanwhile and waits for the password, which it gets only once the registry has passed.
 * `dockerLogin` false (an image the action's uploader sends from a source, a tombstone): no docker at all, the
 * action's own client is the only one that authenticates.
 */
export async function loginStage(ctx: StageContext, opts: { readonly dockerLogin: boolean }): Promise<TagBefore[]> {
  return (await loginAll([ctx], opts))[0];
}

/**
 * loginStage for the images of one run (issue 20): they go to one registry with one set of credentials, so the
 * registry is asked what every image's tags point to (its own client, each answer checked), and docker logs in
 * once, when any image needs it. What each image's tags pointed to, in the order of `ctxs`.
 */
export async function loginAll(
  ctxs: readonly StageContext[],
  opts: { readonly dockerLogin: boolean },
): Promise<TagBefore[][]> {
  const [first] = ctxs;
  if (!opts.dockerLogin) return Promise.all(ctxs.map((c) => tagsBefore(c)));
  const started = first.docker.startLogin(first.config.registry, first.config.username, { signal: first.signal });
  let before: TagBefore[][];
  try {
    before = await Promise.all(ctxs.map((c) => tagsBefore(c)));
  } catch (e) {
    await started.abandon();
    throw e;
  }
  await login(first, started);
  return before;
}

/**
 * A registry that does not answer, answers what no client can use, or refuses the credentials stops the run before
 * docker logs in; any other HTTP status is only reported.
 */
function unusable(ctx: StageContext, e: unknown): ActionFailure | null {
  const host = ctx.config.registry;
  if (e instanceof RegistryError && e.status === 401 && e.kind === 'status') {
    const failure = {
      kind: 'unauthorized',
      retryable: false,
      status: 401,
      blobDigest: null,
      detail: e.message,
    } as const;
    const advice = failureAdvice(failure, adviceContext(ctx.config, null));
    return new ActionFailure(advice.title, advice.message, { cause: e });
  }
  if (e instanceof HttpError && e.kind === 'proxy-config')
    return new ActionFailure('Proxy setting unusable', `${e.message}; nothing was sent to ${host}.`, { cause: e });
  if (e instanceof HttpError)
    return new ActionFailure('Registry unreachable', `${host} did not answer in time or at all: ${e.message}`, {
      cause: e,
    });
  if (e instanceof RegistryError && e.kind === 'unsafe-realm')
    return new ActionFailure('Credentials withheld', `${e.message}. Nothing was sent to it, and nothing was pushed.`, {
      cause: e,
    });
  if (e instanceof RegistryError && e.kind === 'protocol')
    return new ActionFailure('Registry answer unusable', `${e.message}; nothing was pushed.`, { cause: e });
  return null;
}

export async function tagsBefore(ctx: StageContext): Promise<TagBefore[]> {
  const { config } = ctx;
  const result = await withRetries(
    retryPolicy(ctx),
    retryHooks(ctx, `ask ${config.registry}`),
    async (): Promise<AttemptOutcome<TagBefore[]>> => {
      throwIfCancelled(ctx.signal);
      try {
        const value = await Promise.all(
          config.tags.map(async (tag): Promise<TagBefore> => {
            try {
              const head = await ctx.registry.headManifest(config.repositoryPath, tag, ctx.signal);
              return { tag, digest: head?.digest ?? null };
            } catch (e) {
              if (unusable(ctx, e)) throw e;
              return { tag, digest: null, error: (e as Error).message };
            }
          }),
        );
        return { ok: true, value };
      } catch (e) {
        const failure = unusable(ctx, e) as ActionFailure;
        // A network failure or a timeout may pass; an answer no client can use will not.
        const retry = e instanceof HttpError && e.kind !== 'aborted' && e.kind !== 'proxy-config';
        return { ok: false, retry, error: failure };
      }
    },
  );
  if (!result.outcome.ok) throw (result.outcome.error as ActionFailure).withAttempts(0);
  return result.outcome.value;
}
