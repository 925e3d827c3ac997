// Timers for the whole action: one sleep (backoffs, the uploader's retries, the core's clock), and the clamp every
// setTimeout of a computed delay or deadline goes through (http-request, process, docker, engine-api, the uploader),
// whatever the delay came from: a registry header, an input, arithmetic.

/**
 * The longest delay a Node timer keeps: setTimeout with more (2^31 ms, ~24.8 days) warns and fires after 1 ms, so
 * an out-of-range deadline would end every request at once instead of never.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A delay or deadline made safe for setTimeout: within [0, MAX_TIMER_MS], whole ms; NaN is 0 (what Node makes of it). */
export function clampTimerMs(ms: number): number {
  if (Number.isNaN(ms) || ms <= 0) return 0;
  return Math.min(MAX_TIMER_MS, Math.ceil(ms));
}

/** Resolves after ms, or rejects at once (with the signal's reason) when the signal aborts: a cancel never waits out
 *  a backoff, and no timer outlives it. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 && !signal?.aborted) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason ?? new Error('aborted'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, clampTimerMs(ms));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
