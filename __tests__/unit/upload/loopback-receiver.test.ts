// The action's receiver on 127.0.0.1, driven as the engines push to it: containerd's single PUT ?digest= with the
// size said (announced at its first byte, read while it arrives, the last byte only once verified), the classic
// store's PATCH then PUT (announced once whole); what it refuses (a wrong digest, a blob over the cap, another
// repository, another tag, a second manifest, a request without the run's credential, connections over the cap)
// and what it answers (HEAD of what it holds, within a deadline; the manifest).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  basicMatches,
  startLoopbackReceiver,
  type LoopbackReceiver,
  type ReceivedBlob,
} from '../../../src/upload/loopback-receiver.js';

const REPO = 'replicated-push-abc123/upload';
const TAG = 'abc123';
const CREDENTIAL = { username: 'rp-abc123', password: 'pw-0123456789' };
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
/** What the engine sends once challenged: the run's credential. */
const AUTH = basic(CREDENTIAL.username, CREDENTIAL.password);
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

/** One request with the run's credential (unless `headers` says another Authorization, or null for none);
 *  `body` as pieces written with `gapMs` between them (a slow engine). */
function call(
  method: string,
  path: string,
  opts: { headers?: Record<string, string | null>; body?: Buffer[]; gapMs?: number } = {},
): Promise<Answer> {
  const [host, port] = (rx as LoopbackReceiver).host.split(':');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries({ Authorization: AUTH, ...opts.headers })) if (v !== null) headers[k] = v;
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), method, path, headers }, (res) => {
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
  rx = await startLoopbackReceiver({
    dir,
    repository: REPO,
    tag: TAG,
    credential: CREDENTIAL,
    onBlob: (b) => announced.push(b),
    ...over,
  });
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

// The reader opens the blob's file as soon as it is announced: the file must already be there, or that open races
// the receiver's first write (an ENOENT that failed a chunked push in a clean-clone CI run under load).
test('containerd: an early-announced blob has its file when it is announced, so a reader can open it at once', async () => {
  const existed: boolean[] = [];
  await start({
    onBlob: (b) => {
      existed.push(existsSync(b.file));
      announced.push(b);
    },
  });
  const blob = randomBytes(50_000);
  const at = await newUpload();
  const put = call('PUT', `${at}?digest=${encodeURIComponent(sha(blob))}`, {
    headers: { 'Content-Length': String(blob.length) },
    body: [blob.subarray(0, 1), blob.subarray(1)],
    gapMs: 200,
  });
  while (announced.length === 0) await new Promise((r) => setTimeout(r, 5));
  const reading = readAll(announced[0]);
  expect((await put).status).toBe(201);
  expect((await reading).equals(blob)).toBe(true);
  expect(existed).toEqual([true]);
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

const MANIFEST_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';
const putManifest = (reference: string, doc: Buffer) =>
  call('PUT', `/v2/${REPO}/manifests/${reference}`, { headers: { 'Content-Type': MANIFEST_TYPE }, body: [doc] });

test('manifest: HEAD is 404 (the engine sends it), the PUT under the tag is kept with its digest; a document over the cap is refused', async () => {
  await start({ maxManifestBytes: 1000 });
  const doc = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [] }));
  expect((await call('HEAD', `/v2/${REPO}/manifests/${TAG}`)).status).toBe(404);
  const big = await putManifest(TAG, Buffer.alloc(2000, 32)).catch(() => ({ status: 413 }) as Answer);
  expect(big.status).toBe(413);
  expect(rx?.manifests.size).toBe(0);
  const put = await putManifest(TAG, doc);
  expect([put.status, put.headers['docker-content-digest']]).toEqual([201, sha(doc)]);
  expect(rx?.manifests.get(TAG)).toMatchObject({ mediaType: MANIFEST_TYPE, digest: sha(doc) });
});

test('a manifest PUT by its own digest is kept', async () => {
  await start();
  const doc = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [] }));
  expect((await putManifest(sha(doc), doc)).status).toBe(201);
  expect(rx?.manifests.get(sha(doc))?.bytes.equals(doc)).toBe(true);
});

const FIRST = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [] }));
const OTHER = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [{ digest: sha(Buffer.from('x')) }] }));

// Each row: what is PUT, after what (the engine's manifest under the tag, or nothing); it is refused and the
// receiver holds exactly what it held before.
test.each([
  { row: 'a second manifest under the tag', first: true, reference: TAG, doc: OTHER, code: 'MANIFEST_INVALID' },
  { row: 'a second manifest by its digest', first: true, reference: sha(OTHER), doc: OTHER, code: 'MANIFEST_INVALID' },
  { row: 'the same manifest again', first: true, reference: TAG, doc: FIRST, code: 'MANIFEST_INVALID' },
  { row: 'a manifest under another tag', first: false, reference: 'other', doc: FIRST, code: 'TAG_INVALID' },
  {
    row: 'a manifest by a digest its bytes do not hash to',
    first: false,
    reference: sha(OTHER),
    doc: FIRST,
    code: 'DIGEST_INVALID',
  },
])('refused: $row', async ({ first, reference, doc, code }) => {
  await start();
  if (first) expect((await putManifest(TAG, FIRST)).status).toBe(201);
  const held = [...(rx as LoopbackReceiver).manifests.entries()];
  const r = await putManifest(reference, doc);
  expect([r.status, r.body]).toEqual([400, expect.stringContaining(code)]);
  expect([...(rx as LoopbackReceiver).manifests.entries()]).toEqual(held);
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
  // the expectation is attached at once: the reader fails while close() still runs, and a rejection left without
  // a handler across that wait fails the test as unhandled (seen under load)
  const reading = expect(readAll(announced[0])).rejects.toThrow();
  await new Promise((r) => setTimeout(r, 100));
  await (rx as LoopbackReceiver).close();
  rx = null;
  await reading;
  await put;
  expect(readdirSync(dir).length).toBeLessThanOrEqual(1); // the partial file; the caller removes the directory
});

// Each row: a request without the run's credential. Refused with a Basic challenge before its body is read (nothing
// announced, no session made, no progress), and counted by kind.
test.each([
  {
    row: 'no credential, GET /v2/ (the engine before its challenge)',
    auth: null,
    kind: 'noCredential',
    method: 'GET',
    path: '/v2/',
  },
  {
    row: 'no credential, a blob upload',
    auth: null,
    kind: 'noCredential',
    method: 'POST',
    path: `/v2/${REPO}/blobs/uploads/`,
  },
  {
    row: 'a wrong password',
    auth: basic(CREDENTIAL.username, 'wrong'),
    kind: 'wrongCredential',
    method: 'POST',
    path: `/v2/${REPO}/blobs/uploads/`,
  },
  {
    row: 'a wrong username',
    auth: basic('admin', CREDENTIAL.password),
    kind: 'wrongCredential',
    method: 'GET',
    path: '/v2/',
  },
  {
    row: 'the password as a Bearer token',
    auth: `Bearer ${CREDENTIAL.password}`,
    kind: 'wrongCredential',
    method: 'GET',
    path: '/v2/',
  },
  {
    row: 'a longer password',
    auth: basic(CREDENTIAL.username, `${CREDENTIAL.password}x`),
    kind: 'wrongCredential',
    method: 'GET',
    path: '/v2/',
  },
  { row: 'a manifest PUT', auth: null, kind: 'noCredential', method: 'PUT', path: `/v2/${REPO}/manifests/${TAG}` },
])('refused (401): $row', async ({ auth, kind, method, path }) => {
  await start();
  const before = (rx as LoopbackReceiver).lastProgress;
  const r = await call(method, path, {
    headers: { Authorization: auth, 'Content-Type': 'application/vnd.docker.distribution.manifest.v2+json' },
    body: method === 'PUT' ? [FIRST] : [],
  }).catch(() => ({ status: 401, headers: { 'www-authenticate': 'cut' }, body: '' }) as Answer);
  expect([r.status, r.headers['www-authenticate']]).toEqual([401, 'Basic realm="replicated-push receiver"']);
  expect((rx as LoopbackReceiver).refused).toEqual({
    noCredential: kind === 'noCredential' ? 1 : 0,
    wrongCredential: kind === 'wrongCredential' ? 1 : 0,
  });
  expect(rx?.manifests.size).toBe(0);
  expect(rx?.lastProgress).toBe(before);
  // the engine's own request, with the credential, is answered as before
  expect((await call('GET', '/v2/')).status).toBe(200);
});

test('a blob PUT without the credential: refused before its bytes are read; nothing announced, nothing written', async () => {
  await start();
  const at = await newUpload();
  const blob = randomBytes(200_000);
  const r = await call('PUT', `${at}?digest=${encodeURIComponent(sha(blob))}`, {
    headers: { Authorization: null, 'Content-Length': String(blob.length) },
    body: [blob.subarray(0, 1000), blob.subarray(1000)],
    gapMs: 50,
  }).catch(() => ({ status: 401 }) as Answer);
  expect(r.status).toBe(401);
  expect(announced).toEqual([]);
  expect(readdirSync(dir)).toEqual([]);
  expect((await call('HEAD', `/v2/${REPO}/blobs/${sha(blob)}`)).status).toBe(404);
});

test('connections over the cap are closed at once; those within it are answered', async () => {
  await start({ maxConnections: 2 });
  const [host, port] = (rx as LoopbackReceiver).host.split(':');
  const opened: Socket[] = [];
  const closedAt = (s: Socket) => new Promise<number>((resolve) => s.once('close', () => resolve(Date.now())));
  for (let i = 0; i < 2; i++) {
    const s = connect(Number(port), host);
    await new Promise((r) => s.once('connect', r));
    opened.push(s);
  }
  await new Promise((r) => setTimeout(r, 50)); // the server has taken both
  const extra = connect(Number(port), host);
  const started = Date.now();
  extra.on('error', () => undefined);
  const closed = await Promise.race([
    closedAt(extra),
    new Promise<number>((r) => setTimeout(() => r(Infinity), 2000).unref()),
  ]);
  expect(closed - started).toBeLessThan(1000);
  // one of the two held connections is still served
  const answered = new Promise<string>((resolve) => opened[0].once('data', (d: Buffer) => resolve(d.toString())));
  opened[0].write(`GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: ${AUTH}\r\n\r\n`);
  expect(await answered).toMatch(/^HTTP\/1\.1 200/);
  expect(rx?.peakConnections).toBe(2);
  for (const s of opened) s.destroy();
});

test('storage: blobs over the total cap are refused (413) and not kept, each within the blob cap', async () => {
  await start({ maxBlobBytes: 60_000, maxTotalBytes: 100_000 });
  const first = randomBytes(60_000);
  const second = randomBytes(60_000);
  const put = async (blob: Buffer) =>
    call('PUT', `${await newUpload()}?digest=${encodeURIComponent(sha(blob))}`, {
      headers: { 'Content-Length': String(blob.length) },
      body: [blob],
    }).catch(() => ({ status: 413 }) as Answer);
  expect((await put(first)).status).toBe(201);
  expect((await put(second)).status).toBe(413);
  expect([...(rx as LoopbackReceiver).blobs.keys()]).toEqual([sha(first)]);
  expect(rx?.failure?.message).toMatch(/over 100000 bytes/);
});

test('progress: bytes trickled in do not move lastProgress; the blob stored does', async () => {
  await start();
  const blob = randomBytes(50);
  const at = await newUpload();
  const before = (rx as LoopbackReceiver).lastProgress;
  await new Promise((r) => setTimeout(r, 20));
  const put = call('PUT', `${at}?digest=${encodeURIComponent(sha(blob))}`, {
    headers: { 'Content-Length': String(blob.length) },
    body: [...blob].map((b) => Buffer.from([b])),
    gapMs: 10,
  });
  await new Promise((r) => setTimeout(r, 250));
  expect(announced).toHaveLength(1); // bytes are arriving
  expect(rx?.lastProgress).toBe(before);
  expect((await put).status).toBe(201);
  expect(rx?.lastProgress).toBeGreaterThan(before);
});

test('a HEAD of a blob still arriving waits for it only until its deadline, then answers 404', async () => {
  await start({ headWaitMs: 300 });
  const blob = randomBytes(20_000);
  const at = await newUpload();
  const put = call('PUT', `${at}?digest=${encodeURIComponent(sha(blob))}`, {
    headers: { 'Content-Length': String(blob.length) },
    body: [blob.subarray(0, 100)], // the rest never comes: the blob stays arriving
  }).catch((e: Error) => e);
  while (announced.length === 0) await new Promise((r) => setTimeout(r, 5));
  const started = Date.now();
  const head = await call('HEAD', `/v2/${REPO}/blobs/${sha(blob)}`);
  expect(head.status).toBe(404);
  expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  expect(Date.now() - started).toBeLessThan(2000);
  await (rx as LoopbackReceiver).close();
  rx = null;
  await put;
});

test('a throw inside the receiver (the caller’s onBlob) answers 500 and nothing else: it keeps serving, close() leaves no open file', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    await start({
      onBlob: () => {
        throw new Error('the caller broke');
      },
    });
    const blob = randomBytes(1000);
    const r = await call('PUT', `${await newUpload()}?digest=${encodeURIComponent(sha(blob))}`, {
      headers: { 'Content-Length': String(blob.length) },
      body: [blob],
    }).catch(() => ({ status: 500, body: 'cut' }) as Answer);
    expect(r.status).toBe(500);
    expect((await call('GET', '/v2/')).status).toBe(200);
    await (rx as LoopbackReceiver).close();
    rx = null;
    await new Promise((res) => setTimeout(res, 50));
    expect(unhandled).toEqual([]);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

const EXPECTED = Buffer.from(`${CREDENTIAL.username}:${CREDENTIAL.password}`);
test.each([
  { row: 'exactly the credential', header: AUTH, ok: true },
  { row: 'the scheme in lower case', header: AUTH.replace('Basic', 'basic'), ok: true },
  { row: 'no header', header: undefined, ok: false },
  { row: 'empty', header: '', ok: false },
  { row: 'the scheme alone', header: 'Basic ', ok: false },
  { row: 'a wrong password', header: basic(CREDENTIAL.username, 'pw-0123456788'), ok: false },
  { row: 'a prefix of the password', header: basic(CREDENTIAL.username, 'pw-01234'), ok: false },
  { row: 'the password with more', header: basic(CREDENTIAL.username, `${CREDENTIAL.password}0`), ok: false },
  { row: 'the credential and a trailing space', header: `${AUTH} `, ok: false },
  { row: 'Bearer with the same token', header: AUTH.replace('Basic', 'Bearer'), ok: false },
  { row: 'not base64', header: 'Basic rp-abc123:pw-0123456789', ok: false },
])('basicMatches: $row -> $ok', ({ header, ok }) => {
  expect(basicMatches(header, EXPECTED)).toBe(ok);
});
