import {
  backoffDelay,
  DEFAULT_MAX_DELAY_MS,
  withRetries,
  type AttemptOutcome,
  type RetryPolicy,
} from '../../src/util/retry.js';

const POLICY: RetryPolicy = { retries: 3, firstDelayMs: 10_000, maxDelayMs: DEFAULT_MAX_DELAY_MS };

describe('backoffDelay', () => {
  test('DEFAULT_MAX_DELAY_MS is 5 minutes', () => {
    expect(DEFAULT_MAX_DELAY_MS).toBe(300_000);
  });

  test.each([
    // [first, max, attempt, random, expected]
    [10_000, 300_000, 1, 0.5, 10_000],
    [10_000, 300_000, 2, 0.5, 20_000],
    [10_000, 300_000, 3, 0.5, 40_000],
    [10_000, 300_000, 4, 0.5, 80_000],
    [10_000, 300_000, 5, 0.5, 160_000],
    [10_000, 300_000, 6, 0.5, 300_000],
    [10_000, 300_000, 20, 0.5, 300_000],
    [10_000, 300_000, 1, 0, 8_000],
    [10_000, 300_000, 1, 0.999999, 12_000],
    [10_000, 300_000, 2, 0, 16_000],
    [10_000, 300_000, 2, 0.25, 18_000],
    [10_000, 300_000, 2, 0.75, 22_000],
    [10_000, 300_000, 5, 0.999999, 192_000],
    [10_000, 300_000, 6, 0, 256_000],
    [500, 300_000, 1, 0.5, 500],
    [500, 300_000, 3, 0.1, 1_680],
    [333, 300_000, 1, 0.5, 333],
    [1_000, 1_500, 2, 0.5, 1_500],
    [1_000, 1_500, 2, 0, 1_500],
    [1_000, 1_500, 1, 0.999999, 1_200],
    [0, 300_000, 3, 0.5, 0],
  ])('first %d, max %d, attempt %d, random %d -> %d ms', (firstDelayMs, maxDelayMs, attempt, r, expected) => {
    expect(backoffDelay({ retries: 5, firstDelayMs, maxDelayMs }, attempt, () => r)).toBe(expected);
  });
});

interface Recorder {
  sleeps: number[];
  retries: Array<[number, number, string]>;
  hooks: {
    sleep(ms: number): Promise<void>;
    random(): number;
    onRetry(attempt: number, delayMs: number, error: Error): void;
  };
}

function recorder(random = 0.5): Recorder {
  const r: Recorder = {
    sleeps: [],
    retries: [],
    hooks: {
      sleep: async (ms) => {
        r.sleeps.push(ms);
      },
      random: () => random,
      onRetry: (attempt, delayMs, error) => {
        r.retries.push([attempt, delayMs, error.message]);
      },
    },
  };
  return r;
}

const ok = (value: string): AttemptOutcome<string> => ({ ok: true, value });
const fail = (message: string, retry = true, minDelayMs?: number): AttemptOutcome<string> => ({
  ok: false,
  retry,
  error: new Error(message),
  ...(minDelayMs === undefined ? {} : { minDelayMs }),
});

/** Runs withRetries over a script of outcomes, one per attempt. */
async function run(policy: RetryPolicy, script: AttemptOutcome<string>[], rec = recorder()) {
  const seen: number[] = [];
  const result = await withRetries(policy, rec.hooks, async (n) => {
    seen.push(n);
    const outcome = script[n - 1];
    if (!outcome) throw new Error(`attempt ${n} was not scripted`);
    return outcome;
  });
  return { result, seen, rec };
}

describe('withRetries', () => {
  test.each<[string, RetryPolicy, AttemptOutcome<string>[], number, boolean, number[]]>([
    // [name, policy, script, attempts, ok, sleeps]
    ['succeeds first time', POLICY, [ok('d1')], 1, true, []],
    ['succeeds on the second attempt', POLICY, [fail('e1'), ok('d2')], 2, true, [10_000]],
    [
      'succeeds on the last allowed attempt',
      POLICY,
      [fail('e1'), fail('e2'), fail('e3'), ok('d4')],
      4,
      true,
      [10_000, 20_000, 40_000],
    ],
    [
      'stops at the bound',
      POLICY,
      [fail('e1'), fail('e2'), fail('e3'), fail('e4'), ok('never')],
      4,
      false,
      [10_000, 20_000, 40_000],
    ],
    ['stops on a non-retryable outcome', POLICY, [fail('e1'), fail('final', false), ok('never')], 2, false, [10_000]],
    ['non-retryable at once', POLICY, [fail('final', false), ok('never')], 1, false, []],
    ['retries 0: one attempt only', { ...POLICY, retries: 0 }, [fail('e1'), ok('never')], 1, false, []],
    ['retries 1: two attempts', { ...POLICY, retries: 1 }, [fail('e1'), fail('e2'), ok('never')], 2, false, [10_000]],
    [
      'delays capped by maxDelayMs',
      { retries: 3, firstDelayMs: 10_000, maxDelayMs: 25_000 },
      [fail('e1'), fail('e2'), fail('e3'), fail('e4')],
      4,
      false,
      [10_000, 20_000, 25_000],
    ],
  ])('%s', async (_name, policy, script, attempts, isOk, sleeps) => {
    const { result, seen, rec } = await run(policy, script);
    expect(result.attempts).toBe(attempts);
    expect(result.outcome.ok).toBe(isOk);
    expect(seen).toEqual(Array.from({ length: attempts }, (_, i) => i + 1));
    expect(rec.sleeps).toEqual(sleeps);
    expect(rec.retries.map(([a, d]) => [a, d])).toEqual(sleeps.map((d, i) => [i + 1, d]));
  });

  test('returns the last outcome itself', async () => {
    const last = fail('e3');
    const { result } = await run({ ...POLICY, retries: 2 }, [fail('e1'), fail('e2'), last]);
    expect(result.outcome).toBe(last);
    const { result: good } = await run(POLICY, [fail('e1'), ok('sha256:abc')]);
    expect(good.outcome).toEqual({ ok: true, value: 'sha256:abc' });
  });

  test('onRetry gets the attempt number, the delay and the error', async () => {
    const { rec } = await run(POLICY, [fail('first'), fail('second'), ok('d')], recorder(0));
    expect(rec.retries).toEqual([
      [1, 8_000, 'first'],
      [2, 16_000, 'second'],
    ]);
    expect(rec.sleeps).toEqual([8_000, 16_000]);
  });

  test('onRetry runs before the sleep', async () => {
    const order: string[] = [];
    await withRetries(
      { ...POLICY, retries: 1 },
      {
        sleep: async (ms) => {
          order.push(`sleep ${ms}`);
        },
        random: () => 0.5,
        onRetry: async (n, ms) => {
          order.push(`retry ${n} ${ms}`);
        },
      },
      async (n) => (n === 1 ? fail('x') : ok('y')),
    );
    expect(order).toEqual(['retry 1 10000', 'sleep 10000']);
  });

  test('works without onRetry', async () => {
    const sleeps: number[] = [];
    const result = await withRetries(
      POLICY,
      {
        sleep: async (ms) => {
          sleeps.push(ms);
        },
        random: () => 0.5,
      },
      async (n) => (n < 3 ? fail('x') : ok('y')),
    );
    expect(result.attempts).toBe(3);
    expect(sleeps).toEqual([10_000, 20_000]);
  });

  test.each<[string, number | undefined, number, number]>([
    // [name, minDelayMs (Retry-After), maxDelayMs, expected first sleep]
    ['Retry-After longer than the backoff wins', 45_000, 300_000, 45_000],
    ['Retry-After shorter than the backoff is ignored', 2_000, 300_000, 10_000],
    ['Retry-After equal to the backoff', 10_000, 300_000, 10_000],
    ['Retry-After is capped at maxDelayMs', 3_600_000, 300_000, 300_000],
    ['Retry-After 0', 0, 300_000, 10_000],
    ['no Retry-After', undefined, 300_000, 10_000],
  ])('minDelayMs: %s', async (_name, minDelayMs, maxDelayMs, expected) => {
    const { rec } = await run({ retries: 1, firstDelayMs: 10_000, maxDelayMs }, [
      fail('429', true, minDelayMs),
      ok('d'),
    ]);
    expect(rec.sleeps).toEqual([expected]);
    expect(rec.retries).toEqual([[1, expected, '429']]);
  });

  test('a thrown attempt propagates without retrying', async () => {
    const rec = recorder();
    let calls = 0;
    await expect(
      withRetries(POLICY, rec.hooks, async () => {
        calls++;
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(calls).toBe(1);
    expect(rec.sleeps).toEqual([]);
  });
});
