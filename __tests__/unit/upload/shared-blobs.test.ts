// The run's ledger of blobs (issue 20): two images of one run that share a blob send its bytes once; the second
// waits for the first and mounts the blob from its repository. Run against the scripted loopback registry
// (test/support/upload-registry.ts), whose blob HEAD is made per repository here, as distribution's is.
import { randomBytes } from 'node:crypto';
import { uploadBlob, type UploadEvent } from '../../../src/upload/blob.js';
import { SharedBlobs } from '../../../src/upload/shared-blobs.js';
import { bufferBlobSource } from '../../../src/image/blob-source.js';
import type { RegistryTransport } from '../../../src/registry/registry-client.js';
import { startScriptedRegistry, type ScriptedRegistry } from '../../../test/support/upload-registry.js';

let reg: ScriptedRegistry;
afterEach(async () => reg?.stop());

function transportOf(r: ScriptedRegistry): RegistryTransport {
  const t = r.transport();
  return { host: new URL(r.url).host, send: (req) => t.send(req) };
}

/** Bytes of blob bodies the registry received (PATCH and PUT). */
const bodyBytes = (r: ScriptedRegistry) =>
  r.requests
    .filter((q) => q.method === 'PATCH' || q.method === 'PUT')
    .reduce((n, q) => n + Number(q.contentLength ?? 0), 0);

describe('SharedBlobs', () => {
  test('the first claim uploads, the others wait on it; a failed upload leaves the digest to the next', async () => {
    const ledger = new SharedBlobs();
    const first = ledger.claim('sha256:a', 'app/api');
    expect(first.kind).toBe('upload');
    const second = ledger.claim('sha256:a', 'app/web');
    expect(second).toMatchObject({ kind: 'wait', repository: 'app/api' });
    if (first.kind !== 'upload' || second.kind !== 'wait') throw new Error('unreachable');
    first.done(false);
    await expect(second.end).resolves.toBe(false);
    expect(ledger.claim('sha256:a', 'app/web').kind).toBe('upload');
    expect(ledger.claim('sha256:b', 'app/web').kind).toBe('upload');
  });
});

describe('uploadBlob with the run ledger', () => {
  test('two repositories at once: the bytes go once, the second mounts from the first', async () => {
    reg = await startScriptedRegistry({
      script: (req) => {
        if (req.method === 'HEAD' && req.path.startsWith('/v2/app/web/blobs/')) return { status: 404 };
        if (req.method === 'POST' && req.query.includes('mount='))
          return { status: 201, headers: { Location: '/v2/x' } };
        return undefined;
      },
    });
    const bytes = randomBytes(50_000);
    const source = bufferBlobSource(bytes, 'application/octet-stream');
    const shared = new SharedBlobs();
    const events: UploadEvent[] = [];
    const [api, web] = await Promise.all([
      uploadBlob(transportOf(reg), 'app/api', source, { shared, chunkSize: 16_384 }),
      uploadBlob(transportOf(reg), 'app/web', source, { shared, chunkSize: 16_384, onEvent: (e) => events.push(e) }),
    ]);
    expect(api.mode).toBe('chunked');
    expect(web).toMatchObject({ mode: 'mounted', bytesSent: 0 });
    expect(bodyBytes(reg)).toBe(bytes.length);
    expect(reg.blobs.get(source.digest)?.equals(bytes)).toBe(true);
    const mount = reg.requests.find((r) => r.query.includes('mount='));
    expect(new URLSearchParams(mount?.query).get('from')).toBe('app/api');
    expect(events).toEqual([{ type: 'mounted', digest: source.digest, size: source.size, from: 'app/api' }]);
  });

  test('without the ledger both send the bytes (what the ledger saves)', async () => {
    reg = await startScriptedRegistry();
    const source = bufferBlobSource(randomBytes(50_000), 'application/octet-stream');
    await Promise.all(
      ['app/api', 'app/web'].map((r) => uploadBlob(transportOf(reg), r, source, { chunkSize: 16_384 })),
    );
    expect(bodyBytes(reg)).toBe(2 * source.size);
  });

  test('the first upload fails: the waiting one uploads the blob itself', async () => {
    reg = await startScriptedRegistry({
      script: (req) => (req.method === 'POST' && req.path.startsWith('/v2/app/api/') ? { status: 403 } : undefined),
    });
    const source = bufferBlobSource(randomBytes(20_000), 'application/octet-stream');
    const shared = new SharedBlobs();
    const [api, web] = await Promise.allSettled([
      uploadBlob(transportOf(reg), 'app/api', source, { shared, maxTries: 1 }),
      uploadBlob(transportOf(reg), 'app/web', source, { shared }),
    ]);
    expect(api.status).toBe('rejected');
    expect(web).toMatchObject({ status: 'fulfilled', value: { mode: 'chunked' } });
    expect(reg.blobs.get(source.digest)?.length).toBe(source.size);
  });

  test('a cancel while waiting rejects at once, as an abort', async () => {
    const shared = new SharedBlobs();
    const claim = shared.claim('sha256:' + 'a'.repeat(64), 'app/api'); // never ends
    expect(claim.kind).toBe('upload');
    const ctl = new AbortController();
    const source = {
      ...bufferBlobSource(Buffer.from('x'), 'application/octet-stream'),
      digest: 'sha256:' + 'a'.repeat(64),
    };
    const never: RegistryTransport = { send: () => Promise.reject(new Error('no request expected')) };
    const p = uploadBlob(never, 'app/web', source, { shared, signal: ctl.signal });
    ctl.abort(new Error('stop'));
    await expect(p).rejects.toMatchObject({ aborted: true, message: expect.stringMatching(/upload cancelled: stop/) });
  });
});
