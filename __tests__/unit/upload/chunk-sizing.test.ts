// The chunk size after one PATCH (issues 19 and 21), as a table: grow while PATCHes finish well inside the target,
// shrink on a 413, a 524 or a deadline, never above the registry's OCI-Chunk-Max-Length nor above a size that
// followed a refusal in this run; and the run's memory that every blob shares.
import {
  ChunkSizing,
  DEFAULT_CHUNK_TARGET_MS,
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  nextChunkSize,
  type ChunkResult,
  type ChunkSizeDecision,
  type ChunkSizeInput,
} from '../../../src/upload/chunk-sizing.js';

const MB = 1_000_000;
const T = 15_000;
const ok = (length: number, elapsedMs: number): ChunkResult => ({ kind: 'accepted', length, elapsedMs });
const tooLarge = (length: number): ChunkResult => ({ kind: 'too-large', length });
const gaveUp = (length: number): ChunkResult => ({ kind: 'gave-up', length });
const input = (size: number, result: ChunkResult, over: Partial<ChunkSizeInput> = {}): ChunkSizeInput => ({
  size,
  result,
  targetMs: T,
  registryMax: null,
  learnedMax: null,
  ...over,
});
const is = (size: number, learnedMax: number | null = null, atFloor = false): ChunkSizeDecision => ({
  size,
  learnedMax,
  atFloor,
});

describe('nextChunkSize', () => {
  test.each<[string, ChunkSizeInput, ChunkSizeDecision]>([
    // growth: the doubled chunk should take at most half the target
    ['32 MB in 1 s: doubles', input(32 * MB, ok(32 * MB, 1_000)), is(64 * MB)],
    ['32 MB in exactly a quarter of the target: doubles', input(32 * MB, ok(32 * MB, T / 4)), is(64 * MB)],
    ['32 MB in just over a quarter: stays', input(32 * MB, ok(32 * MB, T / 4 + 1)), is(32 * MB)],
    ['32 MB in 15 s, the target itself: stays', input(32 * MB, ok(32 * MB, T)), is(32 * MB)],
    ['32 MB in 16 s, over the target: halves', input(32 * MB, ok(32 * MB, 16_000)), is(16 * MB)],
    ['1 MB over the target: the floor, stays', input(MB, ok(MB, 20_000)), is(MB)],
    ['1.5 MB over the target: halves to the floor, not below', input(1.5 * MB, ok(1.5 * MB, 20_000)), is(MB)],
    ['a part chunk (the tail) in no time: stays', input(32 * MB, ok(5 * MB, 10)), is(32 * MB)],
    ['a part chunk that took long: stays', input(32 * MB, ok(5 * MB, 60_000)), is(32 * MB)],
    ['target 0: never grows', input(32 * MB, ok(32 * MB, 1), { targetMs: 0 }), is(32 * MB)],
    ['target 0: never shrinks for time', input(32 * MB, ok(32 * MB, 99_000), { targetMs: 0 }), is(32 * MB)],
    // the ceilings
    ['growth stops at MAX_CHUNK_SIZE', input(600 * MB, ok(600 * MB, 10)), is(MAX_CHUNK_SIZE)],
    ['at MAX_CHUNK_SIZE: stays', input(MAX_CHUNK_SIZE, ok(MAX_CHUNK_SIZE, 10)), is(MAX_CHUNK_SIZE)],
    ['growth stops at OCI-Chunk-Max-Length', input(32 * MB, ok(32 * MB, 10), { registryMax: 50 * MB }), is(50 * MB)],
    [
      'growth stops at what the run learned',
      input(8 * MB, ok(8 * MB, 10), { learnedMax: 15 * MB }),
      is(15 * MB, 15 * MB),
    ],
    ['at what the run learned: stays', input(15 * MB, ok(15 * MB, 10), { learnedMax: 15 * MB }), is(15 * MB, 15 * MB)],
    [
      'a size above what another blob learned meanwhile comes down to it',
      input(32 * MB, ok(32 * MB, 10), { learnedMax: 8 * MB }),
      is(8 * MB, 8 * MB),
    ],
    // refusals: strictly below the refused length, halving, never below the floor; the run remembers
    ['413 at 32 MB: 16 MB, learned', input(32 * MB, tooLarge(32 * MB)), is(16 * MB, 16 * MB)],
    ['413 on a 30 MB tail of a 32 MB chunk size: 15 MB', input(32 * MB, tooLarge(30 * MB)), is(15 * MB, 15 * MB)],
    [
      '413 at 16 MB after 32 MB: 8 MB, learned lower',
      input(16 * MB, tooLarge(16 * MB), { learnedMax: 16 * MB }),
      is(8 * MB, 8 * MB),
    ],
    ['413 at 1.5 MB: the floor', input(1.5 * MB, tooLarge(1.5 * MB)), is(MB, MB)],
    [
      '413 on a whole blob of an odd size: half rounded up, so two chunks carry it',
      input(32 * MB, tooLarge(30_007_047)),
      is(15_003_524, 15_003_524),
    ],
    ['413 at 1 000 001 bytes: the floor', input(MB + 1, tooLarge(MB + 1)), is(MB, MB)],
    ['413 at the floor: nothing smaller to send', input(MB, tooLarge(MB)), is(MB, null, true)],
    ['413 on a chunk under the floor: nothing smaller', input(4_096, tooLarge(4_096)), is(4_096, null, true)],
    ['524 at 32 MB: 16 MB, learned', input(32 * MB, gaveUp(32 * MB)), is(16 * MB, 16 * MB)],
    ['a deadline at 2 MB: 1 MB', input(2 * MB, gaveUp(2 * MB)), is(MB, MB)],
    ['524 at the floor: stays (retried as it is)', input(MB, gaveUp(MB)), is(MB, null, true)],
    [
      'a refusal above what the run learned keeps the lower limit',
      input(32 * MB, tooLarge(32 * MB), { learnedMax: 4 * MB }),
      is(4 * MB, 4 * MB),
    ],
    [
      '413 under OCI-Chunk-Max-Length: halves the refused length',
      input(32 * MB, tooLarge(20 * MB), { registryMax: 20 * MB }),
      is(10 * MB, 10 * MB),
    ],
  ])('%s', (_name, i, expected) => {
    expect(nextChunkSize(i)).toEqual(expected);
  });

  test('every refusal above the floor gives a size strictly below the refused length, and never below the floor', () => {
    for (const length of [MB + 1, 1.5 * MB, 2 * MB - 1, 2 * MB, 7 * MB, 30 * MB, 999 * MB, MAX_CHUNK_SIZE])
      for (const result of [tooLarge(length), gaveUp(length)]) {
        const d = nextChunkSize(input(MAX_CHUNK_SIZE, result));
        expect(d.size).toBeLessThan(length);
        expect(d.size).toBeGreaterThanOrEqual(MIN_CHUNK_SIZE);
        expect(d.learnedMax).toBe(d.size);
      }
  });
});

describe('ChunkSizing: the run remembers what it learned', () => {
  test('the default target is 15 s, far below Cloudflare’s 100 s', () => {
    expect(DEFAULT_CHUNK_TARGET_MS).toBe(15_000);
    expect(new ChunkSizing().targetMs).toBe(15_000);
  });

  test('a 413 met by one blob caps every later size of the run, and is only ever lowered', () => {
    const run = new ChunkSizing();
    expect(run.learnedMax).toBeNull();
    expect(run.cap(32 * MB)).toBe(32 * MB);
    expect(run.after(32 * MB, tooLarge(30 * MB), null)).toEqual(is(15 * MB, 15 * MB));
    expect(run.after(15 * MB, tooLarge(15 * MB), null)).toEqual(is(7.5 * MB, 7.5 * MB));
    // a later blob starts at chunk-size, within what the run learned
    expect(run.cap(32 * MB)).toBe(7.5 * MB);
    // it grows no further than that however fast its chunks are
    expect(run.after(7.5 * MB, ok(7.5 * MB, 10), null)).toEqual(is(7.5 * MB, 7.5 * MB));
    // a refusal of a size above the limit (a blob that had chosen it before) does not raise it
    expect(run.after(32 * MB, gaveUp(32 * MB), null).learnedMax).toBe(7.5 * MB);
    expect(run.learnedMax).toBe(7.5 * MB);
  });

  test('without a refusal the run learns nothing, whatever it grew to', () => {
    const run = new ChunkSizing();
    expect(run.after(32 * MB, ok(32 * MB, 100), null)).toEqual(is(64 * MB));
    expect(run.learnedMax).toBeNull();
  });
});
