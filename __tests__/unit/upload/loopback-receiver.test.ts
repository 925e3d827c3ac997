// The action's receiver on 127.0.0.1, driven as the engines push to it: containerd's single PUT ?digest= with the
// size said (announced at its first byte, read while it arrives, the last byte only once verified), the classic
// store's PATCH then PUT (announced once whole); what it refuses (a wrong digest, a blob over the cap, another
// repository) and what it answers (HEAD of what it holds, the manifest).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startLoopbackReceiver,
  type LoopbackReceiver,
  type ReceivedBlob,
} from '../../../src/upload/loopback-receiver.js';

const REPO = 'replicated-push-abc123/upload';
let dir: string;
let rx: LoopbackReceiver | null = null;
let announced: ReceivedBlob[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rp-loopback-rx-'));
  announced = [];
});
afterEach(async () => {
  await rx?.close();
  rx = null;
  rmSync(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request; `body` as pieces written with `gapMs` between them (a slow engine). */
function call(
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: Buffer[]; gapMs?: number } = {},
): Promise<Answer> {
  const [host, port] = (rx as LoopbackReceiver).host.split(':');
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), method, path, headers: opts.headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString() }),
      );
    });
    req.on('error', reject);
    void (async () => {
      for (const piece of opts.body ?? []) {
        req.write(piece);
        if (opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
      }
      req.end();
    })();
  });
}

async function start(over: Partial<Parameters<typeof startLoopbackReceiver>[0]> = {}): Promise<void> {
  rx = await startLoopbackReceiver({ dir, repository: REPO, onBlob: (b) => announced.push(b), ...over });
}

async function newUpload(): Promise<string> {
  const r = await call('POST', `/v2/${REPO}/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
  expect(r.status).toBe(202);
  return String(r.headers.location);
}

async function readAll(b: ReceivedBlob, offset = 0): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of b.source.open(offset)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

test('containerd: one PUT with digest and size: announced at its first byte, readable as it arrives, the last byte after the check', async () => {
  await start();
  const blob = randomBytes(300_000);
  const pieces = [blob.subarray(0, 100_000), blob.subarray(100_000, 200_000), blob.subarray(200_000)];
  const at = await newUpload();
  const put = call('PUT', `${at}?digest=${encodeURIComponent(sha(blob))}`, {
    headers: { 'Content-Length': String(blob.length), 'Content-Type': 'application/octet-stream' },
    body: pieces,
    gapMs: 150,
  });
  while (announced.length === 0) await new Promise((r) => setTimeout(r, 10));
  const b = announced[0];
  expect({ digest: b.digest, size: b.size }).toEqual({ digest: sha(blob), size: blob.length });
  // reading starts while the engine is still sending
  const reading = readAll(b);
  const answer = await put;
  expect(answer.status).toBe(201);
  expect(answer.headers['docker-content-digest']).toBe(sha(blob));
  expect((await reading).equals(blob)).toBe(true);
  expect((await readAll(b, 250_000)).equals(blob.subarray(250_000))).toBe(true);
  await expect(b.done).resolves.toBeUndefined();
  const head = await call('HEAD', `/v2/${REPO}/blobs/${sha(blob)}`);
  expect([head.status, head.headers['content-length']]).toEqual([200, String(blob.length)]);
});

test('containerd: bytes that do not hash to the digest fail the blob, its reader and the request; the last byte was never readable', async () => {
  await start();
  const blob = randomBytes(50_000);
  const at = await newUpload();
  const reads: number[] = [];
  const put = call('PUT', `${at}?digest=${encodeURIComponent(sha(Buffer.from('other')))}`, {
    headers: { 'Content-Length': String(blob.length) },
    body: [blob],
  });
  while (announced.length === 0) await new Promise((r) => setTimeout(r, 5));
  const reading = (async () => {
    for await (const c of announced[0].source.open(0)) reads.push((c as Buffer).length);
  })();
  const answer = await put;
  expect(answer.status).toBe(400);
  expect(answer.body).toContain('DIGEST_INVALID');
  await expect(reading).rejects.toThrow(/hashed to/);
  expect(reads.reduce((a, n) => a + n, 0)).toBeLessThan(blob.length);
  await expect(announced[0].done).rejects.toThrow(/hashed to/);
  expect(rx?.failure?.message).toMatch(/hashed to/);
  expect((await call('HEAD', `/v2/${REPO}/blobs/${sha(blob)}`)).status).toBe(404);
});

test('classic: PATCH in pieces then PUT ?digest= with no body: announced once whole', async () => {
  await start();
  const blob = randomBytes(70_000);
  const at = await newUpload();
  const p1 = await call('PATCH', at, { body: [blob.subarray(0, 40_000)] });
  expect([p1.status, p1.headers.range]).toEqual([202, '0-39999']);
  expect(announced).toHaveLength(0);
  const p2 = await call('PATCH', String(p1.headers.location), {
    headers: { 'Content-Range': '40000-69999' },
    body: [blob.subarray(40_000)],
  });
  expect(p2.headers.range).toBe('0-69999');
  const put = await call('PUT', `${String(p2.headers.location)}?digest=${encodeURIComponent(sha(blob))}`, {
    headers: { 'Content-Length': '0' },
  });
  expect(put.status).toBe(201);
  expect(announced.map((b) => [b.digest, b.size])).toEqual([[sha(blob), blob.length]]);
  expect((await readAll(announced[0])).equals(blob)).toBe(true);
});

test('a PATCH out of order is refused (416), not appended', async () => {
  await start();
  const at = await newUpload();
  await call('PATCH', at, { body: [Buffer.alloc(10)] });
  const again = await call('PATCH', at, { headers: { 'Content-Range': '0-9' }, body: [Buffer.alloc(10)] });
  expect(again.status).toBe(416);
});

test('a blob over the cap is refused (413) and fails; another repository and unknown routes are 404', async () => {
  await start({ maxBlobBytes: 1000 });
  const blob = randomBytes(5000);
  const at = await newUpload();
  const put = await call('PUT', `${at}?digest=${encodeURIComponent(sha(blob))}`, {
    headers: { 'Content-Length': String(blob.length) },
    body: [blob],
  }).catch(() => ({ status: 413 }) as Answer); // the receiver may cut the connection while the body is sent
  expect(put.status).toBe(413);
  expect(announced).toHaveLength(0);
  expect((await call('POST', '/v2/someone/else/blobs/uploads/')).status).toBe(404);
  expect((await call('DELETE', `/v2/${REPO}/blobs/${sha(blob)}`)).status).toBe(404);
});

test('manifest: HEAD is 404 (the engine sends it), PUT is kept by reference with its digest; a document over the cap is refused', async () => {
  await start({ maxManifestBytes: 1000 });
  const doc = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [] }));
  expect((await call('HEAD', `/v2/${REPO}/manifests/t1`)).status).toBe(404);
  const type = 'application/vnd.docker.distribution.manifest.v2+json';
  const put = await call('PUT', `/v2/${REPO}/manifests/t1`, { headers: { 'Content-Type': type }, body: [doc] });
  expect([put.status, put.headers['docker-content-digest']]).toEqual([201, sha(doc)]);
  expect(rx?.manifests.get('t1')).toMatchObject({ mediaType: type, digest: sha(doc) });
  // a second manifest under the same reference never replaces the first
  const other = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [{ digest: sha(Buffer.from('x')) }] }));
  const again = await call('PUT', `/v2/${REPO}/manifests/t1`, { headers: { 'Content-Type': type }, body: [other] });
  expect(again.status).toBe(400);
  expect(rx?.manifests.get('t1')?.digest).toBe(sha(doc));
  const big = await call('PUT', `/v2/${REPO}/manifests/t2`, {
    headers: { 'Content-Type': type },
    body: [Buffer.alloc(2000, 32)],
  }).catch(() => ({ status: 413 }) as Answer);
  expect(big.status).toBe(413);
  expect(rx?.manifests.has('t2')).toBe(false);
});

test('close() fails a blob still arriving (its reader stops) and leaves no open file', async () => {
  await start();
  const blob = randomBytes(100_000);
  const at = await newUpload();
  const put = call('PUT', `${at}?digest=${encodeURIComponent(sha(blob))}`, {
    headers: { 'Content-Length': String(blob.length) },
    body: [blob.subarray(0, 10_000), blob.subarray(10_000)],
    gapMs: 400,
  }).catch((e: Error) => e);
  while (announced.length === 0) await new Promise((r) => setTimeout(r, 5));
  const reading = readAll(announced[0]);
  await new Promise((r) => setTimeout(r, 100));
  await (rx as LoopbackReceiver).close();
  rx = null;
  await expect(reading).rejects.toThrow();
  await put;
  expect(readdirSync(dir).length).toBeLessThanOrEqual(1); // the partial file; the caller removes the directory
});
