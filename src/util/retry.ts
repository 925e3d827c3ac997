// Bounded attempts with exponential backoff and jitter. The clock, sleep and randomness are injected so the
// schedule is tested without waiting.

export interface RetryPolicy {
  /** Extra attempts after the first. */
  readonly retries: number;
  readonly firstDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_MAX_DELAY_MS = 5 * 60_000;

/** The wait before attempt `attempt + 1` (attempt counts from 1): first * 2^(attempt-1), ±20 %, capped. */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number): number {
  const base = policy.firstDelayMs * 2 ** (attempt - 1);
  const jittered = base * (0.8 + 0.4 * random());
  return Math.round(Math.min(jittered, policy.maxDelayMs));
}

export type AttemptOutcome<T> =
  | { ok: true; value: T }
  | { ok: false; retry: boolean; error: Error; /** a wait the server asked for (Retry-After) */ minDelayMs?: number };

export interface RetryHooks {
  sleep(ms: number): Promise<void>;
  random(): number;
  /** Called before waiting for the next attempt. */
  onRetry?(attempt: number, delayMs: number, error: Error): void | Promise<void>;
}

export interface RetryResult<T> {
  readonly attempts: number;
  readonly outcome: AttemptOutcome<T>;
}

/** Runs `attempt` until it succeeds, says not to retry, or the policy's bound is reached. */
export async function withRetries<T>(
  policy: RetryPolicy,
  hooks: RetryHooks,
  attempt: (n: number) => Promise<AttemptOutcome<T>>,
): Promise<RetryResult<T>> {
  let n = 0;
  for (;;) {
    n++;
    const outcome = await attempt(n);
    if (outcome.ok || !outcome.retry || n > policy.retries) return { attempts: n, outcome };
    const delay = Math.max(backoffDelay(policy, n, hooks.random), Math.min(outcome.minDelayMs ?? 0, policy.maxDelayMs));
    await hooks.onRetry?.(n, delay, outcome.error);
    await hooks.sleep(delay);
  }
}
