// The uploader against a scripted loopback registry that behaves as distribution 2.8.2 does (see
// test/support/upload-registry.ts): the exact requests, the Content-Range values, resume and restart after faults,
// never a byte twice to one upload, the fallback when chunks are refused, the abort.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkSizing, uploadBlob, type UploadBlobOptions, type UploadEvent } from '../../../src/upload/blob.js';
import { UploadError, uploadFailure } from '../../../src/upload/errors.js';
import { classifyUploadStop } from '../../../src/core/policy/failure.js';
import { eventLine } from '../../../src/core/stages/upload-log.js';
import { failureSummaryMarkdown } from '../../../src/core/report/summary.js';
import { bufferBlobSource, fileBlobSource, type BlobSource } from '../../../src/image/blob-source.js';
import type { HttpRequest } from '../../../src/registry/http-request.js';
import { RegistryClient } from '../../../src/registry/registry-client.js';
import type { Readable } from 'node:stream';
import { rejection } from '../../../test/support/rejection.js';
import {
  startScriptedRegistry,
  type RecordedRequest,
  type ScriptedRegistry,
  type ScriptedRegistryOptions,
} from '../../../test/support/upload-registry.js';
import { runnerCommands } from '../../../test/support/runner-commands.js';

const REPO = 'app/blob';
const TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';
const SIZE = 10_240;
const CHUNK = 4_096;

let reg: ScriptedRegistry;
afterEach(async () => reg?.stop());

async function registry(opts: ScriptedRegistryOptions = {}): Promise<ScriptedRegistry> {
  reg = await startScriptedRegistry(opts);
  return reg;
}

function blob(size = SIZE): { bytes: Buffer; source: BlobSource } {
  const bytes = randomBytes(size);
  return { bytes, source: bufferBlobSource(bytes, TYPE) };
}

/** The n-th PATCH (1-based) of the whole run. */
const nthPatch = (n: number) => {
  let seen = 0;
  return (r: RecordedRequest) => r.method === 'PATCH' && ++seen === n;
};

/** Chunks that keep their size unless a refusal shrinks them: the exact requests of a protocol test. */
const fixedSize = () => new ChunkSizing({ targetMs: 0 });

async function upload(source: BlobSource, opts: UploadBlobOptions = {}) {
  const events: UploadEvent[] = [];
  const result = await uploadBlob(reg.transport(), REPO, source, {
    chunkSize: CHUNK,
    sizing: fixedSize(),
    retryDelayMs: () => 0,
    onEvent: (e) => events.push(e),
    ...opts,
  });
  return { result, events, types: events.map((e) => e.type) };
}

describe('uploadBlob: the protocol', () => {
  test('HEAD, POST, PATCH chunks in order to the newest Location, PUT ?digest=', async () => {
    await registry();
    const { bytes, source } = blob();
    const progress: number[] = [];
    const { result, types } = await upload(source, { onProgress: (p) => progress.push(p.confirmed) });
    expect(reg.sequence()).toEqual([
      'HEAD blob -> 404',
      'POST uploads -> 202',
      'PATCH upload 0-4095 -> 202',
      'PATCH upload 4096-8191 -> 202',
      'PATCH upload 8192-10239 -> 202',
      'PUT upload -> 201',
    ]);
    const patches = reg.requests.filter((r) => r.method === 'PATCH');
    expect(patches.map((r) => [r.contentLength, r.contentType])).toEqual([
      ['4096', 'application/octet-stream'],
      ['4096', 'application/octet-stream'],
      ['2048', 'application/octet-stream'],
    ]);
    // each PATCH went to the Location the previous answer gave (its _state is the offset)
    expect(patches.map((r) => r.query)).toEqual(['?_state=0', '?_state=4096', '?_state=8192']);
    const put = reg.requests[reg.requests.length - 1];
    expect(put.query).toBe(`?_state=10240&digest=${encodeURIComponent(source.digest)}`);
    expect(put.contentLength).toBe('0');
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
    expect(reg.requests[1].contentLength).toBe('0');
    expect(progress).toEqual([4096, 8192, 10240]);
    expect(types).toEqual(['uploaded']);
    expect(result).toMatchObject({ mode: 'chunked', requests: 6, bytesSent: SIZE, resumes: 0, restarts: 0 });
  });

  test('a blob the registry holds is skipped after one HEAD', async () => {
    await registry();
    const { bytes, source } = blob();
    reg.blobs.set(source.digest, bytes);
    const { result, types } = await upload(source);
    expect(reg.sequence()).toEqual(['HEAD blob -> 200']);
    expect(result.mode).toBe('exists');
    expect(types).toEqual(['exists']);
  });

  test('an empty blob: POST and PUT, no PATCH', async () => {
    await registry();
    const { source } = blob(0);
    await upload(source);
    expect(reg.sequence()).toEqual(['HEAD blob -> 404', 'POST uploads -> 202', 'PUT upload -> 201']);
    expect(reg.blobs.get(source.digest)).toEqual(Buffer.alloc(0));
  });

  test('OCI-Chunk-Min-Length raises the chunk size', async () => {
    await registry({ chunkMinLength: 6_000 });
    const { bytes, source } = blob();
    await upload(source);
    expect(reg.requests.filter((r) => r.method === 'PATCH').map((r) => r.contentRange)).toEqual([
      '0-5999',
      '6000-10239',
    ]);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
  });

  test('relative Locations are resolved against the upload URL', async () => {
    await registry({ relativeLocations: true });
    const { bytes, source } = blob();
    await upload(source);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
    expect(reg.requests.filter((r) => r.method === 'PATCH').map((r) => r.path)).toEqual(
      Array(3).fill(reg.requests[2].path),
    );
  });

  test('a file source, read again from an offset when resuming', async () => {
    await registry({ ignoreState: true, strict: true });
    const dir = mkdtempSync(join(tmpdir(), 'rp-upload-'));
    try {
      const bytes = randomBytes(SIZE);
      writeFileSync(join(dir, 'blob'), bytes);
      const source = await fileBlobSource(join(dir, 'blob'), TYPE);
      reg.setScript((r) => (nthPatch(2)(r) ? { resetAfterBytes: 1_000 } : undefined));
      await upload(source);
      expect(reg.blobs.get(source.digest)).toEqual(bytes);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a source whose bytes are not its digest's: the registry's DIGEST_INVALID is final, no new upload", async () => {
    await registry();
    const { source } = blob();
    const lying = { ...source, digest: `sha256:${'0'.repeat(64)}` };
    const err = await upload(lying).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'UploadError', phase: 'source', status: 400 });
    expect((err as Error).message).toContain('DIGEST_INVALID');
    expect(reg.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
  });

  test('a source shorter than its size fails with phase source', async () => {
    await registry();
    const { source } = blob();
    const short = { ...source, size: SIZE + 5_000 };
    await expect(upload(short)).rejects.toMatchObject({ name: 'UploadError', phase: 'source' });
    expect(reg.requests.some((r) => r.method === 'PUT')).toBe(false);
  });
});

describe('uploadBlob: values the registry sends (issue 18)', () => {
  // The old code took the chunk's deadline from the minimum: 60 s + 10^15 bytes at 512 KiB/s is past what a timer
  // holds, Node fired it after 1 ms, and every PATCH timed out at once.
  test.each(['1000000000000000', '9007199254740991'])(
    'an OCI-Chunk-Min-Length of %s: one PATCH of the whole blob, within a deadline that holds',
    async (min) => {
      await registry({ chunkMinLength: min });
      // big enough that its PATCH takes longer than the 1 ms a broken timer gives it
      const { bytes, source } = blob(4_000_000);
      const { result, types } = await upload(source);
      expect(reg.sequence()).toEqual([
        'HEAD blob -> 404',
        'POST uploads -> 202',
        'PATCH upload 0-3999999 -> 202',
        'PUT upload -> 201',
      ]);
      expect(types).toEqual(['uploaded']);
      expect(result.resumes + result.restarts).toBe(0);
      expect(reg.blobs.get(source.digest)).toEqual(bytes);
    },
  );

  test.each(['x', '-5', '0', '1e9'])('an OCI-Chunk-Min-Length of %j is ignored', async (min) => {
    await registry({ chunkMinLength: min });
    const { source } = blob();
    await upload(source);
    expect(reg.requests.filter((r) => r.method === 'PATCH').map((r) => r.contentRange)).toEqual([
      '0-4095',
      '4096-8191',
      '8192-10239',
    ]);
  });

  test('OCI-Chunk-Max-Length: no PATCH above it, though a bigger chunk size is asked for', async () => {
    await registry({ chunkMaxLength: 1_000_000 });
    const { bytes, source } = blob(2_500_000);
    await upload(source, { chunkSize: 2_000_000 });
    expect(reg.requests.filter((r) => r.method === 'PATCH').map((r) => [r.contentRange, r.status])).toEqual([
      ['0-999999', 202],
      ['1000000-1999999', 202],
      ['2000000-2499999', 202],
    ]);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
  });

  // Removing the check of the digest the registry echoes after the final PUT failed no test before.
  test.each<[string, UploadBlobOptions['mode'], string, string]>([
    ['chunked', 'chunked', `sha256:${'1'.repeat(64)}`, `stored the blob as sha256:${'1'.repeat(64)}`],
    ['single', 'single', `sha256:${'1'.repeat(64)}`, `stored the blob as sha256:${'1'.repeat(64)}`],
    ['chunked, not a digest', 'chunked', '::error::x', 'stored the blob as "\\::error::x", not a digest'],
  ])(
    '%s: a Docker-Content-Digest after the final PUT that is not the blob’s fails the blob at once',
    async (_name, mode, echoed, message) => {
      await registry({
        script: (r) => (r.method === 'PUT' ? { status: 201, headers: { 'Docker-Content-Digest': echoed } } : undefined),
      });
      const { source } = blob();
      const err = await rejection(upload(source, { mode }), UploadError);
      expect(err.phase).toBe(mode === 'single' ? 'single' : 'commit');
      expect(err.message).toContain(`${source.digest}: the registry ${message}`);
      expect(reg.requests.filter((r) => r.method === 'PUT')).toHaveLength(1);
    },
  );

  test('the echoed digest, when it is the blob’s, passes', async () => {
    await registry();
    const { source } = blob();
    await upload(source);
    expect(reg.requests[reg.requests.length - 1]).toMatchObject({ method: 'PUT', status: 201 });
  });
});

describe('uploadBlob: a Location the client refuses (issue 18)', () => {
  /** An https registry on a fake network that answers the POST with `location`; every request recorded. */
  const BASIC = `Basic ${Buffer.from('u:p').toString('base64')}`;
  function remoteRegistry(location: string) {
    const asked: Array<[string, string | undefined]> = [];
    const request: HttpRequest = async (url, init = {}) => {
      const u = new URL(url);
      asked.push([`${init.method ?? 'GET'} ${u.origin}${u.pathname}`, init.headers?.Authorization]);
      // the body read to its end, as a server does before it answers
      if (init.body && !Buffer.isBuffer(init.body)) for await (const _ of init.body as Readable) void _;
      const headers = (h: Record<string, string>) => ({ get: (n: string) => h[n.toLowerCase()] ?? null });
      // the registry wants Basic; the client then holds credentials a storage host must never see
      if (u.host === 'registry.example.com' && !init.headers?.Authorization)
        return {
          status: 401,
          ok: false,
          headers: headers({ 'www-authenticate': 'Basic realm="r"' }),
          body: Buffer.alloc(0),
        };
      if (init.method === 'POST')
        return { status: 202, ok: true, headers: headers({ location }), body: Buffer.alloc(0) };
      if (init.method === 'HEAD') return { status: 404, ok: false, headers: headers({}), body: Buffer.alloc(0) };
      const status = init.method === 'PUT' ? 201 : 202;
      return { status, ok: true, headers: headers({}), body: Buffer.alloc(0) };
    };
    const client = new RegistryClient('registry.example.com', { username: 'u', password: 'p' }, { request });
    return { asked, client };
  }

  test('a plain-http Location from an https registry: the blob fails at once, no byte sent', async () => {
    const { asked, client } = remoteRegistry('http://registry.example.com/v2/app/blob/blobs/uploads/1?_state=x');
    const { source } = blob();
    const err = await rejection(
      uploadBlob(client, REPO, source, { chunkSize: CHUNK, retryDelayMs: () => 0 }),
      UploadError,
    );
    expect(err.phase).toBe('chunk');
    expect(err.message).toBe(
      `${source.digest}: registry.example.com: refusing to send PATCH to registry.example.com: ` +
        'it is plain http, the registry https',
    );
    expect(asked.map(([what]) => what)).toEqual([
      `HEAD https://registry.example.com/v2/${REPO}/blobs/${source.digest}`,
      `HEAD https://registry.example.com/v2/${REPO}/blobs/${source.digest}`,
      `POST https://registry.example.com/v2/${REPO}/blobs/uploads/`,
    ]);
    // and the run does not retry it: the stop says the action refused, which the push policy takes as final
    const { stop } = uploadFailure(err, [source.digest]);
    expect(stop).toMatchObject({ refused: true, phase: 'chunk' });
    expect(classifyUploadStop(stop)).toMatchObject({ kind: 'unsafe-request', retryable: false });
  });

  test('an https Location on a storage host: the chunks go there without the Authorization', async () => {
    const { asked, client } = remoteRegistry('https://storage.example.net/up/1?sig=x');
    const { source } = blob();
    await uploadBlob(client, REPO, source, { chunkSize: CHUNK, sizing: fixedSize(), retryDelayMs: () => 0 });
    const atStorage = asked.filter(([what]) => what.includes('storage.example.net'));
    expect(atStorage.map(([what]) => what.split(' ')[0])).toEqual(['PATCH', 'PATCH', 'PATCH', 'PUT']);
    expect(atStorage.every(([, authorization]) => authorization === undefined)).toBe(true);
    expect(asked.filter(([what]) => what.startsWith('POST')).map(([, a]) => a)).toEqual([BASIC]);
  });
});

describe('uploadBlob: faults of one chunk', () => {
  test('a proxy that refuses requests over a size (524): the chunk is halved until it passes, and stays so', async () => {
    await registry();
    const { bytes, source } = blob(3_000_000);
    reg.setScript((r) =>
      r.method === 'PATCH' && Number(r.contentLength) > 1_200_000
        ? { status: 524, body: 'error code: 524' }
        : undefined,
    );
    const { result, types } = await upload(source, { chunkSize: 2_000_000 });
    expect(reg.sequence()).toEqual([
      'HEAD blob -> 404',
      'POST uploads -> 202',
      'PATCH upload 0-1999999 -> 524',
      'GET upload -> 204',
      'POST uploads -> 202',
      'PATCH upload 0-999999 -> 202',
      'PATCH upload 1000000-1999999 -> 202',
      'PATCH upload 2000000-2999999 -> 202',
      'PUT upload -> 201',
    ]);
    // Buffer.equals: jest's deep equality walks 3 MB byte by byte (seconds)
    expect(reg.blobs.get(source.digest)?.equals(bytes)).toBe(true);
    expect(types).toEqual(['chunk-failed', 'restarted', 'uploaded']);
    expect(result.restarts).toBe(1);
  });

  test('a 524 that never reached the upload: GET says where it stands, the chunk is sent again, once', async () => {
    await registry();
    const { bytes, source } = blob();
    const second = nthPatch(2);
    reg.setScript((r) => (second(r) ? { status: 524, body: 'error code: 524' } : undefined));
    const { result, types } = await upload(source);
    expect(reg.sequence()).toEqual([
      'HEAD blob -> 404',
      'POST uploads -> 202',
      'PATCH upload 0-4095 -> 202',
      'PATCH upload 4096-8191 -> 524',
      'GET upload -> 204',
      'PATCH upload 4096-8191 -> 202',
      'PATCH upload 8192-10239 -> 202',
      'PUT upload -> 201',
    ]);
    expect(reg.overlaps).toEqual([]);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
    expect(types).toEqual(['chunk-failed', 'resumed', 'uploaded']);
    expect(result).toMatchObject({ resumes: 1, restarts: 0, bytesSent: SIZE + CHUNK });
  });

  test.each([
    ['a 502', { status: 502 }],
    ['a 503', { status: 503 }],
    ['a reset before any byte', { reset: true as const }],
    // the deadline is far above what a loaded machine takes for a 4 kB PATCH on loopback, the delay far above it
    ['a slow answer past the deadline', { delayMs: 2500 }],
  ])('%s: resumed in the same session', async (_name, fault) => {
    await registry();
    const { bytes, source } = blob();
    const second = nthPatch(2);
    reg.setScript((r) => (second(r) ? fault : undefined));
    const { result } = await upload(source, { deadlinePerChunkMs: 1000 });
    expect(reg.overlaps).toEqual([]);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
    expect(result.restarts).toBe(0);
    expect(new Set(reg.requests.filter((r) => r.uuid).map((r) => r.uuid)).size).toBe(1);
  });

  test('a reset mid-chunk on distribution 2.8: the Location is no longer valid, the blob starts again', async () => {
    await registry();
    const { bytes, source } = blob();
    const second = nthPatch(2);
    reg.setScript((r) => (second(r) ? { resetAfterBytes: 1_000 } : undefined));
    const { result, types } = await upload(source);
    expect(reg.sequence()).toEqual([
      'HEAD blob -> 404',
      'POST uploads -> 202',
      'PATCH upload 0-4095 -> 202',
      'PATCH upload 4096-8191 -> none',
      'GET upload -> 404',
      'POST uploads -> 202',
      'PATCH upload 0-4095 -> 202',
      'PATCH upload 4096-8191 -> 202',
      'PATCH upload 8192-10239 -> 202',
      'PUT upload -> 201',
    ]);
    expect(reg.requests[3].bodyBytes).toBe(1_000);
    // the second session is a new upload: no byte went twice to one
    expect(reg.requests[2].uuid).not.toBe(reg.requests[6].uuid);
    expect(reg.overlaps).toEqual([]);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
    expect(types).toEqual(['chunk-failed', 'restarted', 'uploaded']);
    expect(result).toMatchObject({ resumes: 0, restarts: 1 });
  });

  test('a reset mid-chunk on a registry that reports it: resumed from the byte after the last one it holds', async () => {
    await registry({ ignoreState: true, strict: true });
    const { bytes, source } = blob();
    const second = nthPatch(2);
    reg.setScript((r) => (second(r) ? { resetAfterBytes: 1_000 } : undefined));
    const { result } = await upload(source);
    expect(reg.sequence()).toEqual([
      'HEAD blob -> 404',
      'POST uploads -> 202',
      'PATCH upload 0-4095 -> 202',
      'PATCH upload 4096-8191 -> none',
      'GET upload -> 204',
      'PATCH upload 5096-8191 -> 202',
      'PATCH upload 8192-10239 -> 202',
      'PUT upload -> 201',
    ]);
    expect(reg.overlaps).toEqual([]);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
    // the registry received each byte of the blob once: the cut request's 1,000 bytes were kept, not re-sent
    expect(reg.requests.reduce((n, r) => n + r.bodyBytes, 0)).toBe(SIZE);
    // handed to the transport: the whole failed chunk, then its remaining 3,096 bytes
    expect(result).toMatchObject({ resumes: 1, restarts: 0, bytesSent: SIZE + CHUNK - 1_000 });
  });

  test('a chunk written but its answer lost (2.8): GET answers 404, the blob starts again', async () => {
    await registry();
    const { bytes, source } = blob();
    const second = nthPatch(2);
    reg.setScript((r) => (second(r) ? { loseAnswer: true } : undefined));
    await upload(source);
    expect(reg.sequence().slice(3, 6)).toEqual([
      'PATCH upload 4096-8191 -> none',
      'GET upload -> 404',
      'POST uploads -> 202',
    ]);
    expect(reg.overlaps).toEqual([]);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
  });

  test('a chunk written but its answer lost, on a registry that reports it: continues after it, nothing re-sent', async () => {
    await registry({ ignoreState: true, strict: true });
    const { bytes, source } = blob();
    const second = nthPatch(2);
    reg.setScript((r) => (second(r) ? { loseAnswer: true } : undefined));
    await upload(source);
    expect(reg.sequence().slice(3)).toEqual([
      'PATCH upload 4096-8191 -> none',
      'GET upload -> 204',
      'PATCH upload 8192-10239 -> 202',
      'PUT upload -> 201',
    ]);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
  });

  test('the GET itself fails once: asked again, then resumed', async () => {
    await registry();
    const { bytes, source } = blob();
    const second = nthPatch(2);
    let gets = 0;
    reg.setScript((r) => {
      if (second(r)) return { status: 524 };
      if (r.method === 'GET' && ++gets === 1) return { status: 503 };
      return undefined;
    });
    await upload(source);
    expect(reg.sequence().slice(3, 7)).toEqual([
      'PATCH upload 4096-8191 -> 524',
      'GET upload -> 503',
      'GET upload -> 204',
      'PATCH upload 4096-8191 -> 202',
    ]);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
  });

  test('the final PUT answer lost: HEAD finds the blob, done', async () => {
    await registry();
    const { bytes, source } = blob();
    reg.setScript((r) => (r.method === 'PUT' ? { loseAnswer: true } : undefined));
    await upload(source);
    expect(reg.sequence().slice(-2)).toEqual(['PUT upload -> none', 'HEAD blob -> 200']);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
  });

  test('the final PUT 524 before the registry saw it: HEAD, GET (all there), PUT again', async () => {
    await registry();
    const { bytes, source } = blob();
    let puts = 0;
    reg.setScript((r) => (r.method === 'PUT' && ++puts === 1 ? { status: 524 } : undefined));
    await upload(source);
    expect(reg.sequence().slice(-4)).toEqual([
      'PUT upload -> 524',
      'HEAD blob -> 404',
      'GET upload -> 204',
      'PUT upload -> 201',
    ]);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
  });

  test('a 202 whose Range shows bytes the client did not send: the session is not trusted, the blob starts again', async () => {
    await registry();
    const { bytes, source } = blob();
    const second = nthPatch(2);
    reg.setScript((r) => (second(r) ? { status: 202, headers: { Range: '0-9999', Location: '/x' } } : undefined));
    const { types } = await upload(source);
    expect(types).toEqual(['chunk-failed', 'restarted', 'uploaded']);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
  });

  test('tries are bounded: a chunk that always fails gives up with phase chunk', async () => {
    await registry();
    const { source } = blob();
    reg.setScript((r) => (r.method === 'PATCH' && r.contentRange === '4096-8191' ? { status: 524 } : undefined));
    const err = await upload(source, { maxTries: 4 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UploadError);
    expect(err).toMatchObject({ phase: 'chunk', status: 524, aborted: false });
    expect((err as Error).message).toContain('after 4 tries');
    expect(reg.requests.filter((r) => r.method === 'PATCH' && r.contentRange === '4096-8191')).toHaveLength(4);
    expect(reg.overlaps).toEqual([]);
  });

  test('401 on a chunk (token expired mid-upload): GET, then the same chunk again', async () => {
    await registry();
    const { bytes, source } = blob();
    const second = nthPatch(2);
    reg.setScript((r) => (second(r) ? { status: 401 } : undefined));
    await upload(source);
    expect(reg.sequence().slice(3, 6)).toEqual([
      'PATCH upload 4096-8191 -> 401',
      'GET upload -> 204',
      'PATCH upload 4096-8191 -> 202',
    ]);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
  });

  test('403 on a chunk is final at once', async () => {
    await registry();
    const { source } = blob();
    reg.setScript((r) => (r.method === 'PATCH' ? { status: 403 } : undefined));
    await expect(upload(source)).rejects.toMatchObject({ phase: 'chunk', status: 403 });
    expect(reg.requests.filter((r) => r.method === 'PATCH')).toHaveLength(1);
  });
});

describe('uploadBlob: a registry that refuses chunks', () => {
  test.each([416, 405, 400])('%d on the first PATCH: one request for the whole blob, reported', async (status) => {
    await registry({ refuseChunksWith: status });
    const { bytes, source } = blob();
    const { result, events } = await upload(source);
    expect(reg.sequence()).toEqual([
      'HEAD blob -> 404',
      'POST uploads -> 202',
      `PATCH upload 0-4095 -> ${status}`,
      'POST uploads -> 202',
      'PUT upload -> 201',
    ]);
    expect(reg.requests[4].contentLength).toBe(String(SIZE));
    expect(reg.requests[4].bodyBytes).toBe(SIZE);
    expect(events[0]).toMatchObject({ type: 'fallback', status });
    expect(result.mode).toBe('single');
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
  });

  test("mode 'single' skips chunks", async () => {
    await registry();
    const { bytes, source } = blob();
    await upload(source, { mode: 'single' });
    expect(reg.sequence()).toEqual(['HEAD blob -> 404', 'POST uploads -> 202', 'PUT upload -> 201']);
    expect(reg.blobs.get(source.digest)).toEqual(bytes);
  });
});

describe('uploadBlob: cancel', () => {
  test('an abort during a chunk stops at once and sends nothing more', async () => {
    await registry();
    const { source } = blob();
    const second = nthPatch(2);
    reg.setScript((r) => (second(r) ? { delayMs: 5_000 } : undefined));
    const ac = new AbortController();
    const started = Date.now();
    const run = upload(source, {
      signal: ac.signal,
      onProgress: (p) => {
        if (p.confirmed === CHUNK) setTimeout(() => ac.abort(new Error('job cancelled')), 50);
      },
    });
    const err = await run.catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(err).toMatchObject({ name: 'UploadError', aborted: true });
    expect((err as Error).message).toContain('job cancelled');
    const count = reg.requests.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(reg.requests.length).toBe(count);
    expect(reg.requests.some((r) => r.method === 'PUT' || r.method === 'DELETE')).toBe(false);
  });

  test('an abort during the wait before a retry', async () => {
    await registry();
    const { source } = blob();
    reg.setScript((r) => (r.method === 'PATCH' ? { status: 524 } : undefined));
    const ac = new AbortController();
    const run = upload(source, { signal: ac.signal, retryDelayMs: () => 10_000 });
    setTimeout(() => ac.abort(), 100);
    await expect(run).rejects.toMatchObject({ aborted: true });
    expect(reg.sequence()).toEqual(['HEAD blob -> 404', 'POST uploads -> 202', 'PATCH upload 0-4095 -> 524']);
  });

  test('an already aborted signal sends nothing', async () => {
    await registry();
    const { source } = blob();
    const ac = new AbortController();
    ac.abort();
    await expect(upload(source, { signal: ac.signal })).rejects.toMatchObject({ aborted: true });
    expect(reg.requests).toHaveLength(0);
  });
});

// Issue 18: a registry's error codes are its words. From the answer to the log line (upload-log.ts) and to the job
// summary (summary.ts) they are data: shown, one line, no workflow command, no Markdown.
describe('uploadBlob: a registry error code is data, up to the log and the summary', () => {
  const HOSTILE = 'X\n::error title=pwned::o\r##[error]l <img> **b**';
  const body = JSON.stringify({ errors: [{ code: HOSTILE, message: HOSTILE }, { code: 'DENIED' }] });
  const shown = 'X\\n::error title=pwned::o\\r##\\[error]l <img> **b**, DENIED';

  test('a code longer than a code can be is cut', async () => {
    await registry();
    const { source } = blob();
    const long = JSON.stringify({ errors: [{ code: `LONG${'A'.repeat(10_000)}` }] });
    reg.setScript((r) => (r.method === 'POST' ? { status: 400, body: long } : undefined));
    const err = (await upload(source).catch((e: unknown) => e)) as UploadError;
    expect(err.message).toContain(`(HTTP 400 LONG${'A'.repeat(59)}…)`);
  });

  test('a chunk refused with it: the event line quotes the code as data', async () => {
    await registry();
    const { source } = blob();
    const second = nthPatch(2);
    reg.setScript((r) => (second(r) ? { status: 500, body } : undefined));
    const { events } = await upload(source);
    const lines = events.map(eventLine).filter((l): l is string => l !== null);
    expect(lines.find((l) => l.includes('failed'))).toContain(`(HTTP 500 ${shown})`);
    for (const line of lines) {
      expect(line.split(/\r\n|\r|\n/)).toEqual([line]);
      expect(runnerCommands(line)).toEqual([]);
    }
  });

  test('an upload refused with it: the error quotes the code as data, and the summary escapes it', async () => {
    await registry();
    const { source } = blob();
    reg.setScript((r) => (r.method === 'POST' ? { status: 400, body } : undefined));
    const err = (await upload(source).catch((e: unknown) => e)) as UploadError;
    expect(err).toBeInstanceOf(UploadError);
    expect(err.message).toContain(`HTTP 400 ${shown}`);
    expect(runnerCommands(err.message)).toEqual([]);
    const md = failureSummaryMarkdown('Push failed', err.message, 1);
    // unescaped, any of it would be Markdown (or a command, at a line's start)
    const paragraph = md.split('\n\n')[2];
    expect(paragraph).not.toMatch(/^\s*::|(?<!\\)(<img|\*|#)/m);
    expect(md).toContain('X\\\\n::error title=pwned::o\\\\r\\#\\#\\\\\\[error\\]l \\<img> \\*\\*b\\*\\*, DENIED');
  });
});
