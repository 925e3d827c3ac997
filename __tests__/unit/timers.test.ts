// src/util/timers.ts: every computed delay reaches setTimeout through clampTimerMs; the one sleep honours it.
import { clampTimerMs, MAX_TIMER_MS, sleep } from '../../src/util/timers.js';

describe('clampTimerMs', () => {
  test.each([
    [0, 0],
    [1, 1],
    [1.2, 2],
    [60_000, 60_000],
    [MAX_TIMER_MS, MAX_TIMER_MS],
    [MAX_TIMER_MS + 1, MAX_TIMER_MS],
    [2 ** 53, MAX_TIMER_MS],
    [Infinity, MAX_TIMER_MS],
    [-5, 0],
    [-Infinity, 0],
    [NaN, 0],
  ])('%d -> %d', (ms, expected) => {
    expect(clampTimerMs(ms)).toBe(expected);
  });

  test('MAX_TIMER_MS is the largest delay Node keeps (2^31 - 1)', () => {
    expect(MAX_TIMER_MS).toBe(2147483647);
  });

  test('a sleep beyond the timer range does not end after 1 ms (it would without the clamp)', async () => {
    const ctl = new AbortController();
    let settled = false;
    const slept = sleep(2 ** 40, ctl.signal).then(
      () => (settled = true),
      () => undefined,
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);
    ctl.abort();
    await slept;
  });
});
