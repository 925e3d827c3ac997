import {
  chunkOutcome,
  contentRange,
  describeFailure,
  effectiveChunkSize,
  errorCodes,
  parseUploadRange,
  requestDeadlineMs,
  resolveLocation,
  statusOutcome,
  withDigest,
  type ChunkOutcome,
  type RangeState,
  type StatusOutcome,
} from '../../../src/upload/protocol.js';

const D = 'sha256:abc';

describe('contentRange', () => {
  test.each([
    [0, 1, '0-0'],
    [0, 4096, '0-4095'],
    [4096, 4096, '4096-8191'],
    [41_943_040, 1, '41943040-41943040'],
    [2 ** 31, 2 ** 25, '2147483648-2181038079'],
  ])('start %d, %d bytes -> %s (no `bytes ` prefix)', (start, length, expected) => {
    expect(contentRange(start, length)).toBe(expected);
  });
});

describe('parseUploadRange', () => {
  test.each<[string | null, RangeState]>([
    ['0-99', { kind: 'bytes', next: 100 }],
    ['0-1', { kind: 'bytes', next: 2 }],
    ['0-4194303', { kind: 'bytes', next: 4194304 }],
    ['bytes=0-99', { kind: 'bytes', next: 100 }],
    ['bytes 0-99', { kind: 'bytes', next: 100 }],
    ['  0-99 ', { kind: 'bytes', next: 100 }],
    ['0-0', { kind: 'ambiguous' }],
    ['bytes=0-0', { kind: 'ambiguous' }],
    ['5-99', { kind: 'missing' }],
    ['0-', { kind: 'missing' }],
    ['-99', { kind: 'missing' }],
    ['0-99/200', { kind: 'missing' }],
    ['', { kind: 'missing' }],
    [null, { kind: 'missing' }],
    ['0-99999999999999999999', { kind: 'missing' }],
  ])('%j -> %j', (header, expected) => {
    expect(parseUploadRange(header)).toEqual(expected);
  });
});

describe('resolveLocation', () => {
  test.each([
    [
      '/v2/a/blobs/uploads/',
      'http://r:5000/v2/a/blobs/uploads/u?_state=x',
      'http://r:5000/v2/a/blobs/uploads/u?_state=x',
    ],
    ['/v2/a/blobs/uploads/', '/v2/a/blobs/uploads/u?_state=x', '/v2/a/blobs/uploads/u?_state=x'],
    ['/v2/a/blobs/uploads/', 'u?_state=x', '/v2/a/blobs/uploads/u?_state=x'],
    ['/v2/a/blobs/uploads/u?_state=1', 'u?_state=2', '/v2/a/blobs/uploads/u?_state=2'],
    ['http://r/v2/a/blobs/uploads/u?_state=1', 'u?_state=2', 'http://r/v2/a/blobs/uploads/u?_state=2'],
    ['http://r/v2/a/blobs/uploads/u?_state=1', '', 'http://r/v2/a/blobs/uploads/u?_state=1'],
    ['http://r/v2/a/blobs/uploads/u?_state=1', null, 'http://r/v2/a/blobs/uploads/u?_state=1'],
    ['/v2/a/blobs/uploads/u', 'HTTPS://other/x', 'HTTPS://other/x'],
  ])('%s + %j -> %s', (current, location, expected) => {
    expect(resolveLocation(current, location)).toBe(expected);
  });
});

describe('withDigest', () => {
  test.each([
    ['/v2/a/blobs/uploads/u', '/v2/a/blobs/uploads/u?digest=sha256%3Aabc'],
    ['/v2/a/blobs/uploads/u?_state=x', '/v2/a/blobs/uploads/u?_state=x&digest=sha256%3Aabc'],
    ['/v2/a/blobs/uploads/u?', '/v2/a/blobs/uploads/u?digest=sha256%3Aabc'],
    ['/v2/a/blobs/uploads/u?_state=x&', '/v2/a/blobs/uploads/u?_state=x&digest=sha256%3Aabc'],
    ['http://r/v2/a/blobs/uploads/u?_state=a%3D#frag', 'http://r/v2/a/blobs/uploads/u?_state=a%3D&digest=sha256%3Aabc'],
  ])('%s -> %s', (url, expected) => {
    expect(withDigest(url, D)).toBe(expected);
  });
});

describe('effectiveChunkSize', () => {
  const none = { min: null, max: null };
  test.each([
    [4096, none, 4096],
    [4096, { min: 1000, max: null }, 4096],
    [4096, { min: 6000, max: null }, 6000],
    [0, none, 1],
    [1.7, none, 1],
    // a max the registry names is never exceeded: neither by the size asked for nor by its minimum
    [32 * 1024 * 1024, { min: null, max: 8_000_000 }, 8_000_000],
    [4096, { min: null, max: 8_000_000 }, 4096],
    [4096, { min: 6000, max: 1_000_000 }, 6000],
    [4096, { min: 2_000_000, max: 1_000_000 }, 1_000_000],
    // a huge minimum: the chunk is the rest of the blob (the uploader sends no more than the blob holds)
    [4096, { min: Number.MAX_SAFE_INTEGER, max: null }, Number.MAX_SAFE_INTEGER],
  ])('asked %d, limits %j -> %d', (asked, limits, expected) => {
    expect(effectiveChunkSize(asked, limits)).toBe(expected);
  });
});

describe('requestDeadlineMs', () => {
  test.each([
    [0, 60_000],
    [1, 61_000],
    [512 * 1024, 61_000],
    [32 * 1024 * 1024, 124_000],
    [4 * 1024 * 1024, 68_000],
    // a timer cannot hold more: Node would fire it after 1 ms and end every request at once
    [2 ** 50, 2 ** 31 - 1],
    [Number.MAX_SAFE_INTEGER, 2 ** 31 - 1],
  ])('%d bytes -> %d ms', (bytes, expected) => {
    expect(requestDeadlineMs(bytes)).toBe(expected);
  });
});

const ans = (status: number, range: string | null = null) => ({ status, range });

describe('chunkOutcome', () => {
  const first = { start: 0, length: 100 };
  const later = { start: 100, length: 100 };
  test.each<
    [string, { start: number; length: number }, { status: number; range: string | null } | undefined, ChunkOutcome]
  >([
    ['202 with the Range sent', later, ans(202, '0-199'), { action: 'next', next: 200 }],
    ['202 without Range: trust it', later, ans(202), { action: 'next', next: 200 }],
    ['201 (early accept, as ECR)', later, ans(201, '0-199'), { action: 'next', next: 200 }],
    ['202 whose Range shows bytes twice', later, ans(202, '0-299'), { action: 'restart' }],
    ['202 whose Range shows bytes missing', later, ans(202, '0-149'), { action: 'restart' }],
    ['202 0-0 after one byte', { start: 0, length: 1 }, ans(202, '0-0'), { action: 'next', next: 1 }],
    ['202 0-0 after 100 bytes', first, ans(202, '0-0'), { action: 'restart' }],
    ['no answer (reset, deadline)', later, undefined, { action: 'check' }],
    ['524', later, ans(524), { action: 'check' }],
    ['502', later, ans(502), { action: 'check' }],
    ['500', first, ans(500), { action: 'check' }],
    ['503', later, ans(503), { action: 'check' }],
    ['429', later, ans(429), { action: 'check' }],
    ['408', later, ans(408), { action: 'check' }],
    ['416 on a later chunk: ask', later, ans(416, '0-49'), { action: 'check' }],
    ['416 on the first chunk: no chunks here', first, ans(416), { action: 'fallback' }],
    ['405 on the first chunk', first, ans(405), { action: 'fallback' }],
    ['400 on the first chunk', first, ans(400), { action: 'fallback' }],
    ['415 on the first chunk', first, ans(415), { action: 'fallback' }],
    ['501 on the first chunk', first, ans(501), { action: 'fallback' }],
    ['400 later: final', later, ans(400), { action: 'fail' }],
    ['404 (upload gone)', later, ans(404), { action: 'restart' }],
    ['404 on the first chunk', first, ans(404), { action: 'restart' }],
    ['401 (token expired; nothing was read)', later, ans(401), { action: 'check' }],
    ['403', first, ans(403), { action: 'fail' }],
    // a limit on request bodies (a proxy's): a smaller chunk, on the first chunk too (not a registry without chunks)
    ['413 on the first chunk: a smaller one', first, ans(413), { action: 'too-large' }],
    ['413 later: a smaller one', later, ans(413), { action: 'too-large' }],
  ])('%s', (_name, chunk, answer, expected) => {
    expect(chunkOutcome(chunk, answer)).toEqual(expected);
  });
});

describe('statusOutcome', () => {
  const chunk = { start: 4096, length: 4096 };
  test.each<
    [string, { start: number; length: number }, { status: number; range: string | null } | undefined, StatusOutcome]
  >([
    ['nothing of the chunk arrived', chunk, ans(204, '0-4095'), { action: 'resume', offset: 4096 }],
    ['part of it arrived', chunk, ans(204, '0-5095'), { action: 'resume', offset: 5096 }],
    ['all of it arrived (answer lost)', chunk, ans(204, '0-8191'), { action: 'resume', offset: 8192 }],
    ['200 also counts', chunk, ans(200, '0-5095'), { action: 'resume', offset: 5096 }],
    ['more than was sent', chunk, ans(204, '0-9000'), { action: 'restart' }],
    ['less than was confirmed', chunk, ans(204, '0-100'), { action: 'restart' }],
    ['no Range', chunk, ans(204), { action: 'restart' }],
    ['0-0 after the first chunk failed', { start: 0, length: 4096 }, ans(204, '0-0'), { action: 'restart' }],
    ['404 BLOB_UPLOAD_INVALID (stale Location)', chunk, ans(404), { action: 'restart' }],
    ['400', chunk, ans(400), { action: 'restart' }],
    ['no answer', chunk, undefined, { action: 'check' }],
    ['524', chunk, ans(524), { action: 'check' }],
    ['503', chunk, ans(503), { action: 'check' }],
    ['401', chunk, ans(401), { action: 'fail' }],
    ['403', chunk, ans(403), { action: 'fail' }],
    ['commit check: all there', { start: 100, length: 0 }, ans(204, '0-99'), { action: 'resume', offset: 100 }],
    ['commit check: short', { start: 100, length: 0 }, ans(204, '0-49'), { action: 'restart' }],
  ])('%s', (_name, c, answer, expected) => {
    expect(statusOutcome(c, answer)).toEqual(expected);
  });
});

describe('errorCodes / describeFailure', () => {
  test.each([
    ['{"errors":[{"code":"BLOB_UPLOAD_INVALID"}]}', ['BLOB_UPLOAD_INVALID']],
    ['{"errors":[{"code":"A"},{"code":"B"}]}', ['A', 'B']],
    ['error code: 524', []],
    ['', []],
    ['{"errors":[{}]}', []],
  ])('%s -> %j', (body, expected) => {
    expect(errorCodes(body)).toEqual(expected);
  });

  test.each([
    [{ status: 524, body: Buffer.from('error code: 524') }, undefined, 'HTTP 524'],
    [
      { status: 404, body: Buffer.from('{"errors":[{"code":"BLOB_UPLOAD_INVALID"}]}') },
      undefined,
      'HTTP 404 BLOB_UPLOAD_INVALID',
    ],
    [undefined, new Error('PATCH r/v2/a: socket hang up'), 'PATCH r/v2/a: socket hang up'],
    [undefined, 'x', 'x'],
    // the registry's codes are data: shown, never a line or a command of their own; at most 4, each cut at 64
    [
      { status: 400, body: Buffer.from('{"errors":[{"code":"A\\n::error title=x::y"},{"code":"##[error]z"}]}') },
      undefined,
      'HTTP 400 A\\n::error title=x::y, ##\\[error]z',
    ],
    [
      { status: 400, body: Buffer.from(JSON.stringify({ errors: 'abcdef'.split('').map((code) => ({ code })) })) },
      undefined,
      'HTTP 400 a, b, c, d',
    ],
    [undefined, new Error('reset\n::error::x'), 'reset\\n::error::x'],
  ])('case %#', (answer, error, expected) => {
    expect(describeFailure(answer, error)).toBe(expected);
  });
});
