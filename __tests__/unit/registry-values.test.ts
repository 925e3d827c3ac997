// The one place registry-supplied sizes, times and digests are parsed and clamped (src/registry/registry-values.ts): tables
// of what each header value becomes, out-of-range and malformed values included.
import {
  byteCount,
  chunkLimits,
  isRegistryDigest,
  MAX_RETRY_AFTER_MS,
  MIN_HONOURED_CHUNK_MAX,
  quoteValue,
  retryAfterMs,
} from '../../src/registry/registry-values.js';

describe('retryAfterMs', () => {
  const NOW = Date.parse('2026-12-01T12:00:00Z');
  test.each<[string | null | undefined, number | null]>([
    ['3', 3000],
    ['0', 0],
    ['1.5', 1500],
    [' 7 ', 7000],
    ['600', MAX_RETRY_AFTER_MS],
    ['601', MAX_RETRY_AFTER_MS],
    ['86400', MAX_RETRY_AFTER_MS],
    ['99999999999999999999999', MAX_RETRY_AFTER_MS],
    ['1e9', null],
    ['-5', null],
    ['soon', null],
    ['', null],
    [null, null],
    [undefined, null],
    ['0x10', null],
    ['Tue, 01 Dec 2026 12:00:30 GMT', 30_000],
    ['Tue, 01 Dec 2026 11:00:00 GMT', 0], // in the past: at once
    ['Wed, 02 Dec 2026 12:00:00 GMT', MAX_RETRY_AFTER_MS], // a day ahead: at most the clamp
    ['Fri, 31 Dec 9999 23:59:59 GMT', MAX_RETRY_AFTER_MS],
    ['Sun, 99 Foo 2026 99:99:99 GMT', null],
  ])('Retry-After %j -> %j', (header, expected) => {
    expect(retryAfterMs(header, NOW)).toBe(expected);
  });

  test('the clamp is 10 minutes', () => {
    expect(MAX_RETRY_AFTER_MS).toBe(600_000);
  });
});

describe('byteCount', () => {
  test.each<[string | null | undefined, number | null]>([
    ['0', 0],
    ['4096', 4096],
    [' 4096 ', 4096],
    ['9007199254740991', Number.MAX_SAFE_INTEGER],
    ['9007199254740992', null],
    ['99999999999999999999', null],
    ['1e6', null],
    ['-1', null],
    ['5.5', null],
    ['0x100', null],
    ['', null],
    [null, null],
    ['12 34', null],
  ])('%j -> %j', (header, expected) => {
    expect(byteCount(header)).toBe(expected);
  });
});

describe('chunkLimits (OCI-Chunk-Min-Length, OCI-Chunk-Max-Length)', () => {
  const M = MIN_HONOURED_CHUNK_MAX;
  test.each<[string | null, string | null, { min: number | null; max: number | null }]>([
    [null, null, { min: null, max: null }],
    ['6000', null, { min: 6000, max: null }],
    [null, '8000000', { min: null, max: 8_000_000 }],
    ['6000', '8000000', { min: 6000, max: 8_000_000 }],
    ['8000000', '8000000', { min: 8_000_000, max: 8_000_000 }],
    // contradictory: the max stands (a PATCH above it is refused for certain), the min is dropped
    ['9000000', '8000000', { min: null, max: 8_000_000 }],
    // absurd or malformed values are absent
    ['0', '0', { min: null, max: null }],
    ['-5', '-5', { min: null, max: null }],
    ['x', 'y', { min: null, max: null }],
    ['5.5', '1e9', { min: null, max: null }],
    ['99999999999999999999', '99999999999999999999', { min: null, max: null }],
    // a max too small to be worth a request each: not honoured (a registry that means it refuses the first PATCH)
    [null, '1', { min: null, max: null }],
    [null, String(M - 1), { min: null, max: null }],
    [null, String(M), { min: null, max: M }],
    ['2000000', String(M - 1), { min: 2_000_000, max: null }],
    // a huge min is kept: the chunk becomes the rest of the blob, its deadline follows the bytes sent
    ['9007199254740991', null, { min: Number.MAX_SAFE_INTEGER, max: null }],
  ])('min %j, max %j -> %j', (min, max, expected) => {
    expect(chunkLimits(min, max)).toEqual(expected);
  });
});

describe('isRegistryDigest', () => {
  const hex64 = 'a'.repeat(64);
  test.each<[string | null | undefined, boolean]>([
    [`sha256:${hex64}`, true],
    [`sha512:${'0'.repeat(128)}`, true],
    [`sha256:${'A'.repeat(64)}`, false], // the registered encoding is lower-case hex
    [`sha256:${'a'.repeat(63)}`, false],
    [`sha256:${'a'.repeat(65)}`, false],
    [`sha512:${hex64}`, false],
    [`md5:${'a'.repeat(32)}`, false],
    [`sha256:${hex64}\n::error::pwned`, false],
    [` sha256:${hex64}`, false],
    [`sha256:${hex64}, sha256:${hex64}`, false], // two headers joined
    ['sha256:', false],
    ['', false],
    [null, false],
    [undefined, false],
  ])('%j -> %s', (value, expected) => {
    expect(isRegistryDigest(value)).toBe(expected);
  });
});

describe('quoteValue', () => {
  test.each([
    ['abc', '"abc"'],
    ['a\nb', '"a\\nb"'],
    ['::error::x', '"\\::error::x"'],
    ['##[error]x', '"##\\[error]x"'],
    ['x'.repeat(100), `"${'x'.repeat(79)}…"`],
  ])('%j -> %s', (value, expected) => {
    expect(quoteValue(value)).toBe(expected);
  });
});
