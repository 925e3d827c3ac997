// A source registry's blob read as the uploader reads it, against a loopback server of our own (node:http) that
// serves one blob with Range, and breaks as registries and their storage do: a reset mid-blob, a stall, a 200 that
// ignores the Range, a 206 for another range, a redirect to storage. The reader gets every byte once, in order.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { RegistryBlobReader, contentRangeMatches } from '../../src/registry/registry-blob.js';
import { RegistryClient, RegistryError } from '../../src/registry/registry-client.js';
import { HttpError } from '../../src/registry/http-request.js';
import { rejection } from '../../test/support/rejection.js';

const BLOB = randomBytes(3 * 1024 * 1024 + 17);
const DIGEST = `sha256:${createHash('sha256').update(BLOB).digest('hex')}`;
const blob = { digest: DIGEST, size: BLOB.length, mediaType: 'application/octet-stream' };

describe('contentRangeMatches', () => {
  test.each<[string | null, number, boolean]>([
    ['bytes 100-999/1000', 100, true],
    ['bytes 100-999/*', 100, true],
    ['bytes 0-999/1000', 100, false],
    ['bytes 100-998/1000', 100, false],
    ['bytes 100-999/1001', 100, false],
    ['bytes=100-999/1000', 100, false],
    [null, 100, false],
  ])('%s from %d: %s', (header, offset, want) => {
    expect(contentRangeMatches(header, offset, 1000)).toBe(want);
  });
});

type Fault = 'reset' | 'cut' | 'stall' | 'ignore-range' | 'wrong-range' | 'redirect' | 'none' | '500';
const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** Serves BLOB at /v2/app/blobs/DIGEST; `faults` are used up one per request, in order. */
async function registry(faults: Fault[]): Promise<{ host: string; ranges: (string | undefined)[] }> {
  const ranges: (string | undefined)[] = [];
  let storage = '';
  const server = http.createServer((req, res) => {
    const fault = faults.shift() ?? 'none';
    if (req.url?.startsWith('/v2/') && fault === 'redirect') {
      res.writeHead(307, { Location: `${storage}/store?sig=x` });
      return void res.end();
    }
    ranges.push(req.headers.range);
    if (fault === '500') return void res.writeHead(500).end();
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const from = m && fault !== 'ignore-range' ? Number(m[1]) : 0;
    const body = BLOB.subarray(from);
    const head: Record<string, string> = { 'Content-Length': String(body.length) };
    if (from > 0)
      head['Content-Range'] = `bytes ${fault === 'wrong-range' ? from + 1 : from}-${BLOB.length - 1}/${BLOB.length}`;
    res.writeHead(from > 0 ? 206 : 200, head);
    if (fault === 'cut') return void res.socket?.destroy();
    if (fault === 'reset' || fault === 'stall') {
      res.write(body.subarray(0, 1024 * 1024 + 5), () => {
        if (fault === 'reset') res.socket?.destroy();
      });
      return;
    }
    res.end(body);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  storage = `http://${host}`;
  return { host, ranges };
}

async function readAll(body: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function reader(host: string, maxResumes = 3): RegistryBlobReader {
  return new RegistryBlobReader(new RegistryClient(host, null), 'app', {
    idleMs: 300,
    maxResumes,
    resumeDelayMs: () => 1,
  });
}

test.each<[string, Fault[], number, (string | undefined)[]]>([
  ['no fault', [], 0, [undefined]],
  ['from an offset', [], 1000, ['bytes=1000-']],
  ['a reset mid-blob: re-requested from the byte reached', ['reset'], 0, [undefined, `bytes=${1024 * 1024 + 5}-`]],
  [
    'a stall mid-blob: cut at the idle deadline, re-requested',
    ['stall'],
    10,
    ['bytes=10-', `bytes=${1024 * 1024 + 15}-`],
  ],
  ['a 200 to a Range: skipped to the offset', ['ignore-range'], 5000, ['bytes=5000-']],
  ['a reset, then a 200 to the Range', ['reset', 'ignore-range'], 0, [undefined, `bytes=${1024 * 1024 + 5}-`]],
  ['a 500: asked again', ['500'], 0, [undefined, undefined]],
  ['a redirect to storage', ['redirect'], 7, ['bytes=7-']],
])('%s', async (_name, faults, offset, wantRanges) => {
  const reg = await registry(faults);
  const source = reader(reg.host).source(blob);
  expect(source.sourceRepository).toEqual({ host: reg.host, repository: 'app' });
  const got = await readAll(source.open(offset));
  expect(got.equals(BLOB.subarray(offset))).toBe(true);
  expect(reg.ranges).toEqual(wantRanges);
});

test('a 206 naming another range fails at once (a protocol error, not resumed)', async () => {
  const reg = await registry(['wrong-range']);
  const error = await rejection(readAll(reader(reg.host).source(blob).open(9)), RegistryError);
  expect(error.message).toMatch(/the 206 names another range/);
  expect(reg.ranges).toEqual(['bytes=9-']);
});

test('resets that get no further, past the bound: the last failure, after 1 + maxResumes requests', async () => {
  const reg = await registry(['cut', 'cut', 'cut']);
  const error = await rejection(readAll(reader(reg.host, 2).source(blob).open(0)), HttpError);
  expect(error.kind).toBe('network');
  expect(reg.ranges).toHaveLength(3);
});

test('resets after progress each time: more of them than the bound, and still every byte once', async () => {
  const reg = await registry(['reset', 'reset']);
  const got = await readAll(reader(reg.host, 1).source(blob).open(0));
  expect(got.equals(BLOB)).toBe(true);
  expect(reg.ranges).toEqual([undefined, `bytes=${1024 * 1024 + 5}-`, `bytes=${2 * (1024 * 1024 + 5)}-`]);
});
