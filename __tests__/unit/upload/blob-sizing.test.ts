// How big the uploader's requests are (issues 19 and 21), against the scripted registry of blob.test.ts: a 413 (a
// proxy's limit on request bodies) answered with smaller chunks within the same call, resumed where the registry
// says, the limit kept for the run's later blobs and final at the floor; chunks that grow while they are fast, up to
// the registry's OCI-Chunk-Max-Length, and shrink when they are slow.
import { randomBytes } from 'node:crypto';
import { ChunkSizing, uploadBlob, type UploadBlobOptions, type UploadEvent } from '../../../src/upload/blob.js';
import { UploadError } from '../../../src/upload/errors.js';
import { uploadImage } from '../../../src/upload/image.js';
import { MEDIA_TYPES } from '../../../src/image/oci.js';
import { bufferBlobSource, type BlobSource } from '../../../src/image/blob-source.js';
import { NGINX_413_BODY } from '../../../test/support/fault-proxy.js';
import { rejection } from '../../../test/support/rejection.js';
import {
  startScriptedRegistry,
  type RecordedRequest,
  type ScriptedRegistry,
  type ScriptedRegistryOptions,
} from '../../../test/support/upload-registry.js';

const REPO = 'app/blob';
const TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';
const MB = 1_000_000;

let reg: ScriptedRegistry;
afterEach(async () => reg?.stop());

/** A registry behind a proxy that answers 413, as nginx does, to any request carrying more than `max` bytes. */
async function behindLimit(max: number, opts: ScriptedRegistryOptions = {}): Promise<ScriptedRegistry> {
  reg = await startScriptedRegistry({
    ...opts,
    script: (r) =>
      Number(r.contentLength ?? 0) > max
        ? { status: 413, body: NGINX_413_BODY, headers: { 'Content-Type': 'text/html' } }
        : undefined,
  });
  return reg;
}

function blob(size: number): { bytes: Buffer; source: BlobSource } {
  const bytes = randomBytes(size);
  return { bytes, source: bufferBlobSource(bytes, TYPE) };
}

const fixed = () => new ChunkSizing({ targetMs: 0 });
/** Every accepted full chunk counts as fast: growth at each step, whatever the machine's load. */
const alwaysFast = () => new ChunkSizing({ targetMs: 1e12 });

async function upload(source: BlobSource, opts: UploadBlobOptions) {
  const events: UploadEvent[] = [];
  const result = await uploadBlob(reg.transport(), REPO, source, {
    retryDelayMs: () => 0,
    onEvent: (e) => events.push(e),
    ...opts,
  });
  return { result, events, types: events.map((e) => e.type) };
}

const patches = (since = 0): RecordedRequest[] => reg.requests.slice(since).filter((r) => r.method === 'PATCH');
const stored = (source: BlobSource, bytes: Buffer) => reg.blobs.get(source.digest)?.equals(bytes) ?? false;

describe('uploadBlob: a 413 to a chunk', () => {
  test('on the first chunk: halved until it passes, the blob in one call, no try spent, nothing twice', async () => {
    await behindLimit(1_200_000);
    const { bytes, source } = blob(3 * MB);
    // two tries allowed: the two 413s must not count, or the upload would give up
    const { result, types, events } = await upload(source, { chunkSize: 4 * MB, sizing: fixed(), maxTries: 2 });
    expect(reg.sequence()).toEqual([
      'HEAD blob -> 404',
      'POST uploads -> 202',
      'PATCH upload 0-2999999 -> 413',
      // the registry holds nothing (its Range 0-0 cannot tell 0 bytes from 1): a new upload, which costs nothing
      'GET upload -> 204',
      'POST uploads -> 202',
      'PATCH upload 0-1499999 -> 413',
      'GET upload -> 204',
      'POST uploads -> 202',
      'PATCH upload 0-999999 -> 202',
      'PATCH upload 1000000-1999999 -> 202',
      'PATCH upload 2000000-2999999 -> 202',
      'PUT upload -> 201',
    ]);
    expect(stored(source, bytes)).toBe(true);
    expect(reg.overlaps).toEqual([]);
    expect(types).toEqual(['chunk-failed', 'restarted', 'chunk-failed', 'restarted', 'uploaded']);
    expect(events[0]).toMatchObject({
      reason: 'HTTP 413: a limit on request bodies; the next chunks carry 1.5 MB',
    });
    expect(result).toMatchObject({ mode: 'chunked', restarts: 2 });
  });

  test('on a later chunk after growth: resumed where the registry stands, at half the refused size, which the blob keeps', async () => {
    await behindLimit(2_500_000);
    const { bytes, source } = blob(9 * MB);
    const { result, types } = await upload(source, { chunkSize: 2 * MB, sizing: alwaysFast() });
    expect(reg.sequence()).toEqual([
      'HEAD blob -> 404',
      'POST uploads -> 202',
      'PATCH upload 0-1999999 -> 202',
      'PATCH upload 2000000-5999999 -> 413',
      'GET upload -> 204',
      'PATCH upload 2000000-3999999 -> 202',
      'PATCH upload 4000000-5999999 -> 202',
      'PATCH upload 6000000-7999999 -> 202',
      'PATCH upload 8000000-8999999 -> 202',
      'PUT upload -> 201',
    ]);
    // one upload session: the 413 was resumed in it, at the offset the GET reported
    expect(new Set(reg.requests.filter((r) => r.uuid).map((r) => r.uuid)).size).toBe(1);
    expect(reg.overlaps).toEqual([]);
    expect(stored(source, bytes)).toBe(true);
    expect(types).toEqual(['chunk-failed', 'resumed', 'uploaded']);
    expect(result).toMatchObject({ resumes: 1, restarts: 0 });
  });

  test('the limit learned on one blob holds for the next blob of the run: no 413 there', async () => {
    await behindLimit(2_500_000);
    const run = alwaysFast();
    const first = blob(5 * MB);
    const second = blob(7 * MB);
    await upload(first.source, { chunkSize: 8 * MB, sizing: run });
    // the whole 5 MB blob in one PATCH met the 413; half of it passes
    expect(run.learnedMax).toBe(2.5 * MB);
    const since = reg.requests.length;
    await upload(second.source, { chunkSize: 8 * MB, sizing: run });
    expect(patches(since).map((r) => [r.contentLength, r.status])).toEqual([
      ['2500000', 202],
      ['2500000', 202],
      ['2000000', 202],
    ]);
    expect(stored(first.source, first.bytes) && stored(second.source, second.bytes)).toBe(true);
  });

  test('at the floor (1 MB): final at once, the error names the body refused and the floor', async () => {
    await behindLimit(500_000);
    const { source } = blob(3 * MB);
    const err = await rejection(upload(source, { chunkSize: MB, sizing: fixed() }), UploadError);
    expect(err).toMatchObject({ phase: 'chunk', status: 413, aborted: false });
    expect(err.message).toBe(
      `${source.digest}: the registry or a proxy in front of it refused a request body of 1000000 bytes (the chunk ` +
        'at 0): it limits request bodies to less than that, and chunks do not shrink below 1.0 MB (HTTP 413)',
    );
    expect(patches()).toHaveLength(1);
    expect(reg.blobs.size).toBe(0);
  });

  test("an OCI-Chunk-Min-Length that keeps chunks over the limit: final once a smaller chunk can't follow", async () => {
    await behindLimit(2 * MB, { chunkMinLength: 3 * MB });
    const { source } = blob(9 * MB);
    const err = await rejection(upload(source, { chunkSize: 4 * MB, sizing: fixed() }), UploadError);
    expect(err).toMatchObject({ phase: 'chunk', status: 413 });
    expect(err.message).toContain("the registry's OCI-Chunk-Min-Length (3000000 bytes) keeps chunks that big");
    expect(patches().map((r) => [r.contentLength, r.status])).toEqual([
      ['4000000', 413],
      ['3000000', 413],
    ]);
  });
});

describe('uploadImage: the blobs of an image share what one of them learned', () => {
  test('the first layer meets the 413; the second (one at a time) starts under the limit', async () => {
    await behindLimit(2_500_000);
    const layers = [blob(4 * MB).source, blob(4 * MB).source];
    const config = bufferBlobSource(Buffer.from('{"architecture":"amd64","os":"linux"}'), MEDIA_TYPES.ociConfig);
    const desc = (b: BlobSource) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociManifest,
        config: desc(config),
        layers: layers.map(desc),
      }),
    );
    await uploadImage(reg.transport(), REPO, { bytes: manifest, config, layers }, ['1'], {
      chunkSize: 8 * MB,
      concurrency: 1,
      retryDelayMs: () => 0,
    });
    // one blob at a time, so the PATCHes are the first layer's, the second's, then the config's
    expect(patches().map((r) => `${r.contentLength} ${r.status}`)).toEqual([
      '4000000 413',
      '2000000 202',
      '2000000 202',
      '2000000 202',
      '2000000 202',
      `${config.size} 202`,
    ]);
    for (const l of layers) expect(reg.blobs.has(l.digest)).toBe(true);
  });
});

describe('uploadBlob: a 413 to a PUT that carried the blob', () => {
  test("mode 'single' over the limit: the blob goes in chunks under it, in the same call", async () => {
    await behindLimit(3 * MB);
    const { bytes, source } = blob(5 * MB);
    const { result } = await upload(source, { mode: 'single', chunkSize: 8 * MB, sizing: fixed() });
    expect(reg.sequence()).toEqual([
      'HEAD blob -> 404',
      'POST uploads -> 202',
      'PUT upload -> 413',
      'POST uploads -> 202',
      'PATCH upload 0-2499999 -> 202',
      'PATCH upload 2500000-4999999 -> 202',
      'PUT upload -> 201',
    ]);
    expect(stored(source, bytes)).toBe(true);
    expect(result.mode).toBe('chunked');
  });

  test('a registry that refuses chunks, behind a limit the blob is over: final, saying both', async () => {
    await behindLimit(3 * MB, { refuseChunksWith: 400 });
    const { source } = blob(5 * MB);
    const err = await rejection(upload(source, { chunkSize: 2 * MB, sizing: fixed() }), UploadError);
    expect(err).toMatchObject({ phase: 'single', status: 413 });
    expect(err.message).toContain(
      'the registry or a proxy in front of it refused the whole blob (5000000 bytes) in one request, and the ' +
        'registry refused it in chunks',
    );
    expect(reg.blobs.size).toBe(0);
  });
});

describe('uploadBlob: chunks that adapt to the link', () => {
  test('fast chunks double, up to the registry’s OCI-Chunk-Max-Length', async () => {
    reg = await startScriptedRegistry({ chunkMaxLength: 3 * MB });
    const { bytes, source } = blob(10 * MB);
    await upload(source, { chunkSize: MB, sizing: alwaysFast() });
    expect(patches().map((r) => r.contentLength)).toEqual(['1000000', '2000000', '3000000', '3000000', '1000000']);
    expect(stored(source, bytes)).toBe(true);
  });

  test('with no ceiling they keep doubling (the tail is what is left)', async () => {
    reg = await startScriptedRegistry();
    const { bytes, source } = blob(10 * MB);
    await upload(source, { chunkSize: MB, sizing: alwaysFast() });
    expect(patches().map((r) => r.contentLength)).toEqual(['1000000', '2000000', '4000000', '3000000']);
    expect(stored(source, bytes)).toBe(true);
  });

  test('a chunk slower than the target halves the next one', async () => {
    let seen = 0;
    reg = await startScriptedRegistry({
      script: (r) => (r.method === 'PATCH' && ++seen === 1 ? { delayMs: 400 } : undefined),
    });
    const { bytes, source } = blob(5 * MB);
    await upload(source, { chunkSize: 2 * MB, sizing: new ChunkSizing({ targetMs: 300 }) });
    // the first took over 400 ms of a 300 ms target; what follows depends on the machine's speed
    expect(patches()[1].contentLength).toBe('1000000');
    expect(stored(source, bytes)).toBe(true);
  });

  test('the default sizing grows too: a fast loopback registry gets fewer, bigger chunks than chunk-size', async () => {
    reg = await startScriptedRegistry();
    const { bytes, source } = blob(7 * MB);
    await upload(source, { chunkSize: MB });
    expect(patches().length).toBeLessThan(7);
    expect(stored(source, bytes)).toBe(true);
  });
});
