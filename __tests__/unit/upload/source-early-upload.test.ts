// Classic store through docker save: a layer is uploaded as soon as it is saved and gzipped, while docker save is
// still writing the next one (a stand-in docker that pauses mid-archive); still every byte once, the manifest only
// after the whole archive was read and checked, and a read that fails after an early upload puts no manifest.
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pushLocalImage } from '../../../src/upload/push-local.js';
import { EarlyUploads } from '../../../src/upload/source-early-upload.js';
import { bufferBlobSource } from '../../../src/image/blob-source.js';
import { legacyArchive } from '../../../test/fixtures/relayer/archives.js';
import { buildTar, f } from '../../../test/fixtures/relayer/tars.js';
import { chunkedPushRequest } from '../../../test/fixtures/chunked-push-request.js';
import { startScriptedRegistry, type ScriptedRegistry } from '../../../test/support/upload-registry.js';

let dir: string;
let registry: ScriptedRegistry;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rp-early-'));
  registry = await startScriptedRegistry();
});
afterEach(async () => {
  await registry.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Where the archive's first layer.tar entry ends (tar headers walked). */
function endOfFirstLayer(archive: Buffer): number {
  for (let at = 0; at + 512 <= archive.length;) {
    const name = archive
      .subarray(at, at + 100)
      .toString('latin1')
      .replace(/\0.*$/s, '');
    const size = parseInt(
      archive
        .subarray(at + 124, at + 136)
        .toString('latin1')
        .replace(/\0.*$/s, '')
        .trim() || '0',
      8,
    );
    const next = at + 512 + Math.ceil(size / 512) * 512;
    if (name.endsWith('layer.tar')) return next;
    if (!name) break;
    at = next;
  }
  throw new Error('no layer.tar in the archive');
}

/** A docker whose save writes the archive up to `split`, pauses, then writes the rest (logging when). */
function slowSave(archive: Buffer, split: number, opts: { failAfterSplit?: boolean } = {}): NodeJS.ProcessEnv {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(dir, 'saved.tar'), archive);
  writeFileSync(
    join(bin, 'docker'),
    `#!/usr/bin/env node
const fs = require('fs');
if (process.argv[2] !== 'save') process.exit(1);
const a = fs.readFileSync(${JSON.stringify(join(dir, 'saved.tar'))});
process.stdout.write(a.subarray(0, ${split}), () => setTimeout(() => {
  fs.writeFileSync(${JSON.stringify(join(dir, 'rest-at'))}, String(Date.now()));
  if (${opts.failAfterSplit ? 'true' : 'false'}) { process.stderr.write('Error response from daemon: write failed\\n'); process.exit(1); }
  process.stdout.write(a.subarray(${split}));
}, 800));
`,
  );
  chmodSync(join(bin, 'docker'), 0o755);
  return { PATH: `${bin}:${process.env.PATH}` };
}

/** The request with this file's defaults (a classic-store image, one tag). */
function request(env: NodeJS.ProcessEnv) {
  return chunkedPushRequest(dir, registry, env, { tags: ['1.0.0'] });
}

const pseudo = (seed: string, n: number) => {
  const out = Buffer.alloc(n);
  let h = createHash('sha256').update(seed).digest();
  for (let i = 0; i < n; i += h.length) {
    h.copy(out, i);
    h = createHash('sha256').update(h).digest();
  }
  return out;
};

async function twoLayerArchive() {
  const layers = [
    await buildTar([f('one', pseudo('one', 300_000))]),
    await buildTar([f('two', pseudo('two', 300_000))]),
  ];
  return (await legacyArchive({ layers })).archive;
}

test('the first layer goes up while docker save still writes the second; every byte once; one manifest', async () => {
  const archive = await twoLayerArchive();
  const patches: number[] = [];
  registry.setScript((q) => {
    if (q.method === 'PATCH') patches.push(Date.now());
    return undefined;
  });
  const req = request(slowSave(archive, endOfFirstLayer(archive)));
  const r = await pushLocalImage(req);
  expect(r.ok ? 'ok' : JSON.stringify(r)).toBe('ok');
  const restAt = Number(readFileSync(join(dir, 'rest-at'), 'utf8'));
  expect(patches[0]).toBeLessThan(restAt);
  expect(registry.blobs.size).toBe(3);
  const sent = registry.requests
    .filter((q) => q.method === 'PATCH' || (q.method === 'PUT' && q.path.includes('/blobs/uploads/')))
    .reduce((n, q) => n + Number(q.contentLength ?? 0), 0);
  expect(sent).toBe([...registry.blobs.values()].reduce((n, b) => n + b.length, 0));
  expect(req.events.filter((e) => e === 'uploaded')).toHaveLength(3);
  expect(req.events).not.toContain('exists'); // the early ones are not said twice
  expect([...registry.manifests.keys()].join(' ')).toContain('1.0.0');
  expect(new Set([...registry.manifests.values()].map((m) => m.body.toString())).size).toBe(1);
  expect(readdirSync(req.workDir)).toEqual([]);
});

test('a layer goes up while it is still gzipped: chunks before docker save wrote the rest of the layer', async () => {
  const layers = [await buildTar([f('big', pseudo('big', 3 * 1024 * 1024))])];
  const archive = (await legacyArchive({ layers })).archive;
  const patches: number[] = [];
  registry.setScript((q) => {
    if (q.method === 'PATCH') patches.push(Date.now());
    return undefined;
  });
  // paused inside the layer's tar, 2.5 MiB in: two gzip blocks are written, the layer is not whole
  const split = endOfFirstLayer(archive) - 700 * 1024;
  const req = request(slowSave(archive, split));
  const r = await pushLocalImage(req);
  expect(r.ok ? 'ok' : JSON.stringify(r)).toBe('ok');
  const restAt = Number(readFileSync(join(dir, 'rest-at'), 'utf8'));
  expect(patches.filter((t) => t < restAt).length).toBeGreaterThan(0);
  // no HEAD first (its digest was not known): the layer's session is the first request
  expect(registry.sequence()[0]).toBe('POST uploads -> 202');
  expect(registry.blobs.size).toBe(2);
  expect(req.events.filter((e) => e === 'uploaded')).toHaveLength(2);
  expect([...registry.manifests.keys()].join(' ')).toContain('1.0.0');
});

test('docker save failing after a layer went up early: the attempt fails with docker’s words, no manifest', async () => {
  const archive = await twoLayerArchive();
  const req = request(slowSave(archive, endOfFirstLayer(archive), { failAfterSplit: true }));
  const r = await pushLocalImage(req);
  expect(r).toMatchObject({ ok: false, stop: { phase: 'source' } });
  if (!r.ok) expect(r.stop.message).toContain('write failed');
  expect(registry.manifests.size).toBe(0);
  expect(readdirSync(req.workDir)).toEqual([]);
});

test('EarlyUploads: at most `limit` at once, a digest offered twice goes once, a failure is kept not thrown', async () => {
  let open = 0;
  let most = 0;
  registry.setScript((q) => {
    if (q.method === 'POST') {
      open++;
      most = Math.max(most, open);
    }
    if (q.method === 'PUT') open--;
    return q.method === 'PUT' && q.query.includes(bad.digest.slice(7)) ? { status: 400 } : undefined;
  });
  const bad = bufferBlobSource(Buffer.from('bad'), 'application/octet-stream');
  const early = new EarlyUploads(
    registry.transport(),
    'my-app/api',
    { chunkSize: 64 * 1024, maxTries: 1 },
    { limit: 2 },
  );
  const blobs = ['a', 'b', 'c', 'd'].map((s) => bufferBlobSource(pseudo(s, 100_000), 'application/octet-stream'));
  for (const b of [...blobs, blobs[0]]) early.offer(b);
  await early.settle();
  expect(most).toBeLessThanOrEqual(2);
  expect(early.done.size).toBe(4);
  expect(registry.requests.filter((q) => q.method === 'POST')).toHaveLength(4);
  early.offer(bad);
  await early.settle();
  expect(early.failure).toBeTruthy();
  early.offer(bufferBlobSource(Buffer.from('after'), 'application/octet-stream'));
  await early.settle();
  expect(early.done.size).toBe(4); // nothing starts after a failure
});

test('EarlyUploads as the receiver’s queue: no limit (every blob offered goes at once), the first failure told as it fails', async () => {
  let open = 0;
  let most = 0;
  const bad = ['bad-1', 'bad-2'].map((s) => bufferBlobSource(Buffer.from(s), 'application/octet-stream'));
  registry.setScript((q) => {
    if (q.method === 'POST') {
      open++;
      most = Math.max(most, open);
      return { delayMs: 300 }; // every session opens slowly: a queue with a limit would hold the rest back
    }
    if (q.method === 'PUT') open--;
    return q.method === 'PUT' && bad.some((b) => q.query.includes(b.digest.slice(7))) ? { status: 400 } : undefined;
  });
  const told: unknown[] = [];
  const early = new EarlyUploads(
    registry.transport(),
    'my-app/api',
    { chunkSize: 64 * 1024, maxTries: 1 },
    { limit: Infinity, onFailure: (e) => told.push(e) },
  );
  const blobs = ['a', 'b', 'c', 'd', 'e'].map((s) => bufferBlobSource(pseudo(s, 100_000), 'application/octet-stream'));
  for (const b of blobs) early.offer(b);
  await early.settle();
  expect(most).toBe(5);
  expect(early.done.size).toBe(5);
  for (const b of bad) early.offer(b);
  await early.settle();
  expect(told).toHaveLength(1); // the first failure only, the one `failure` keeps
  expect(told[0]).toBe(early.failure);
  expect(early.done.size).toBe(5);
});
