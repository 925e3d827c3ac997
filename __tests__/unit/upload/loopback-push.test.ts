// The chunked push through the action's receiver, with a stand-in `docker` (a node script on PATH) that pushes to
// the receiver as an engine does, and a scripted registry behind: the blobs reach the registry while the push is
// still sending, every byte once; the run's tag is made and removed through the names it is given (the run's
// DockerApi); a push that dies mid-blob, a stall and a cancel end the attempt cleanly (the child gone, the tag
// removed, nothing left in the work directory); an engine that never reaches the receiver falls back to docker save.
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChunkedPushRequest } from '../../../src/upload/push-local.js';
import type { EngineNames } from '../../../src/upload/loopback-push.js';
import { liveChildren } from '../../../src/util/process.js';
import { pushThroughLoopback } from '../../../src/upload/loopback-push.js';
import { pushLocalImage } from '../../../src/upload/push-local.js';
import { ociArchive } from '../../../test/fixtures/relayer/archives.js';
import { buildTar, f, gzippedLayer } from '../../../test/fixtures/relayer/tars.js';
import { chunkedPushRequest } from '../../../test/fixtures/chunked-push-request.js';
import { startScriptedRegistry, type ScriptedRegistry } from '../../../test/support/upload-registry.js';

let dir: string;
let registry: ScriptedRegistry;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rp-loopback-push-'));
  registry = await startScriptedRegistry();
});
afterEach(async () => {
  await registry.stop();
  rmSync(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * A stand-in docker: push as an engine pushes (spec.mode), save from a file. Its push pings first, and when
 * challenged (401, Basic) sends the credential its docker config ($DOCKER_CONFIG/config.json) holds for the
 * receiver's host on every request after, as dockerd does with the CLI's X-Registry-Auth. (The image's names are
 * not its: the push is given them, fakeDocker's `names`.)
 */
const STAND_IN = String.raw`#!/usr/bin/env node
const fs = require('fs'); const http = require('http');
const spec = JSON.parse(fs.readFileSync(process.env.RP_FAKE_SPEC, 'utf8'));
const args = process.argv.slice(2);
fs.appendFileSync(spec.log, args.join(' ') + '\n');
const note = (s) => fs.appendFileSync(spec.log, '# ' + s + '\n');
if (args[0] === 'save') { fs.createReadStream(spec.saved).pipe(process.stdout); return; }
if (args[0] !== 'push') process.exit(1);
if (spec.mode === 'unreachable') { console.error('dial tcp 127.0.0.1: connect: connection refused'); process.exit(1); }
const ref = args[args.length - 1];
const slash = ref.indexOf('/'); const colon = ref.lastIndexOf(':');
const [host, port] = ref.slice(0, slash).split(':'); const repo = ref.slice(slash + 1, colon); const tag = ref.slice(colon + 1);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let auth = null;
function call(method, path, headers, pieces, cut) {
  return new Promise((resolve, reject) => {
    const all = auth ? { ...headers, Authorization: 'Basic ' + auth } : headers;
    const req = http.request({ host, port: Number(port), method, path, headers: all }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, location: res.headers.location, challenge: res.headers['www-authenticate'] }));
    });
    req.on('error', reject);
    (async () => {
      for (const p of pieces || []) { req.write(p); await sleep(spec.gapMs || 0); if (cut) { note('cut'); process.exit(1); } }
      req.end();
    })();
  });
}
// another local process that read the push's command line: it has no credential (or a guessed one)
function intrude(authorization) {
  const headers = { 'Content-Type': spec.manifestType };
  if (authorization) headers.Authorization = authorization;
  return call('PUT', '/v2/' + repo + '/manifests/' + tag, headers, [Buffer.from('{"schemaVersion":2,"layers":[]}')]);
}
(async () => {
  if (spec.mode === 'intruders') {
    note('intruder ' + (await intrude(null)).status);
    note('intruder ' + (await intrude('Basic ' + Buffer.from('rp-x:guess').toString('base64'))).status);
  }
  const ping = await call('GET', '/v2/', {});
  if (ping.status === 401 && /^Basic /.test(ping.challenge || '')) {
    const config = JSON.parse(fs.readFileSync(process.env.DOCKER_CONFIG + '/config.json', 'utf8'));
    auth = ((config.auths || {})[host + ':' + port] || {}).auth || null;
    if (spec.mode === 'wrongauth') auth = Buffer.from('rp-x:guess').toString('base64');
    const pass = auth ? Buffer.from(auth, 'base64').toString().split(':').slice(1).join(':') : '';
    const shown = pass && (args.some((a) => a.includes(pass)) || Object.values(process.env).some((v) => (v || '').includes(pass)));
    note('challenged; credential ' + (auth ? 'found' : 'missing') + '; in argv or env: ' + (shown ? 'yes' : 'no'));
    const again = await call('GET', '/v2/', {});
    if (again.status !== 200) { console.error('unauthorized: ' + again.status); process.exit(1); }
  }
  if (spec.mode === 'hang') { await sleep(60000); process.exit(1); }
  for (const b of spec.blobs) {
    const bytes = fs.readFileSync(b.file);
    const head = await call('HEAD', '/v2/' + repo + '/blobs/' + b.digest, {});
    if (head.status === 200) continue;
    const post = await call('POST', '/v2/' + repo + '/blobs/uploads/', { 'Content-Length': '0' });
    const pieces = []; for (let i = 0; i < bytes.length; i += spec.piece) pieces.push(bytes.subarray(i, i + spec.piece));
    const q = (post.location.includes('?') ? '&' : '?') + 'digest=' + encodeURIComponent(b.digest);
    let put;
    if (spec.mode === 'trickle') {
      // a byte at a time while the engine HEADs the blob it waits for, as a stalled sender keeps a socket busy
      const waiting = call('HEAD', '/v2/' + repo + '/blobs/' + b.digest, {}).then((h) => note('head ' + h.status));
      const bytesOf = [...bytes.subarray(0, spec.trickleBytes)].map((x) => Buffer.from([x]));
      put = await call('PUT', post.location + q, { 'Content-Length': String(bytes.length) }, bytesOf);
      await waiting;
    } else if (spec.mode === 'classic') {
      const patch = await call('PATCH', post.location, {}, pieces);
      put = await call('PUT', patch.location + q, { 'Content-Length': '0' });
    } else {
      put = await call('PUT', post.location + q, { 'Content-Length': String(bytes.length) }, pieces, spec.mode === 'die' && bytes.length > 1000);
    }
    note('sent ' + b.digest + ' ' + Date.now());
    if (put.status !== 201) { console.error('blob ' + b.digest + ': ' + put.status); process.exit(1); }
  }
  const m = await call('PUT', '/v2/' + repo + '/manifests/' + tag, { 'Content-Type': spec.manifestType }, [fs.readFileSync(spec.manifest)]);
  if (m.status !== 201) { console.error('manifest ' + m.status); process.exit(1); }
  console.log(tag + ': digest: ' + m.location);
})();
`;

interface Fake {
  env: NodeJS.ProcessEnv;
  /** The engine's names, logged beside the stand-in's commands as "tag SRC REF" and "image rm REF"; a tag fails
   *  when `tagFails` says so. */
  names: EngineNames;
  log: () => string[];
  layer: Buffer;
  config: Buffer;
  manifest: Buffer;
}

async function fakeDocker(
  mode: string,
  over: { gapMs?: number; saved?: Buffer; trickleBytes?: number; tagFails?: boolean } = {},
): Promise<Fake> {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'docker'), STAND_IN);
  chmodSync(join(bin, 'docker'), 0o755);
  const layer = randomBytes(600_000);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: sha(config) },
      layers: [
        { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: sha(layer) },
      ],
    }),
  );
  for (const [name, b] of [
    ['layer', layer],
    ['config', config],
    ['manifest', manifest],
  ] as const)
    writeFileSync(join(dir, name), b);
  if (over.saved) writeFileSync(join(dir, 'saved.tar'), over.saved);
  const spec = {
    mode,
    log: join(dir, 'docker.log'),
    saved: join(dir, 'saved.tar'),
    gapMs: over.gapMs ?? 30,
    piece: 100_000,
    trickleBytes: over.trickleBytes ?? 0,
    manifest: join(dir, 'manifest'),
    manifestType: 'application/vnd.docker.distribution.manifest.v2+json',
    blobs: [
      { file: join(dir, 'layer'), digest: sha(layer) },
      { file: join(dir, 'config'), digest: sha(config) },
    ],
  };
  writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec));
  writeFileSync(spec.log, '');
  const names: EngineNames = {
    tag: async (source, target) => {
      if (over.tagFails) throw new Error('Error response from daemon: No such image: app:1');
      appendFileSync(spec.log, `tag ${source} ${target}\n`);
    },
    removeImage: async (ref) => appendFileSync(spec.log, `image rm ${ref}\n`),
  };
  return {
    env: { PATH: `${bin}:${process.env.PATH}`, RP_FAKE_SPEC: join(dir, 'spec.json') },
    names,
    log: () => readFileSync(spec.log, 'utf8').trim().split('\n'),
    layer,
    config,
    manifest,
  };
}

/** The request with this file's defaults: the containerd store, one platform, 128 KiB chunks, FAKE's names. */
function request(fake: Fake, over: Partial<ChunkedPushRequest> = {}) {
  return chunkedPushRequest(dir, registry, fake.env, {
    names: fake.names,
    platform: 'linux/amd64',
    containerdStore: true,
    chunkSize: 128 * 1024,
    ...over,
  });
}

/** The run's tag for the receiver was made once and removed once, the same name: nothing left in the engine. */
function expectTagRemoved(fake: Fake): void {
  const names = fake.log().filter((l) => l.startsWith('tag ') || l.startsWith('image rm '));
  const ref = /^tag app:1 (127\.0\.0\.1:\d+\/replicated-push-[a-f0-9]+\/upload:[a-f0-9]+)$/.exec(names[0] ?? '')?.[1];
  expect(ref).toBeDefined();
  expect(names).toEqual([`tag app:1 ${ref}`, `image rm ${ref}`]);
}

/** Request-body bytes the registry got for blob uploads (PATCH and PUT), and whether any upload overlapped. */
function blobBytesSent(): number {
  return registry.requests
    .filter((r) => (r.method === 'PATCH' || r.method === 'PUT') && r.path.includes('/blobs/uploads/'))
    .reduce((n, r) => n + Number(r.contentLength ?? 0), 0);
}

test('containerd: the layer reaches the registry while the engine still sends it, every byte once; the manifest the engine pushed under every tag; the tag removed', async () => {
  const fake = await fakeDocker('containerd');
  const patchTimes: number[] = [];
  registry.setScript((q) => {
    if (q.method === 'PATCH') patchTimes.push(Date.now());
    return undefined;
  });
  const req = request(fake);
  const r = await pushLocalImage(req);
  expect(r).toEqual({ ok: true, digest: sha(fake.manifest) });
  expect(registry.blobs.get(sha(fake.layer))?.equals(fake.layer)).toBe(true);
  expect(registry.blobs.get(sha(fake.config))?.equals(fake.config)).toBe(true);
  expect(registry.manifests.get('my-app/api:1.0.0')?.body.equals(fake.manifest) ?? [...registry.manifests.keys()]).toBe(
    true,
  );
  expect([...registry.manifests.keys()].join(' ')).toContain('latest');
  expect(blobBytesSent()).toBe(fake.layer.length + fake.config.length);
  expect(registry.overlaps).toEqual([]);
  // the first chunk went before the engine had sent the layer's last byte
  const sentAt = Number(/^# sent \S+ (\d+)$/.exec(fake.log().find((l) => l.startsWith('# sent')) ?? '')?.[1]);
  expect(patchTimes[0]).toBeLessThan(sentAt);
  const log = fake.log().filter((l) => !l.startsWith('#'));
  const ref = /^tag app:1 (127\.0\.0\.1:\d+\/replicated-push-[a-f0-9]+\/upload:[a-f0-9]+)$/.exec(log[0])?.[1];
  expect(ref).toBeDefined();
  expect(log).toEqual([`tag app:1 ${ref}`, `push --platform linux/amd64 ${ref}`, `image rm ${ref}`]);
  // the engine was challenged and answered with the credential from the push's docker config, not its arguments
  expect(fake.log()).toContain('# challenged; credential found; in argv or env: no');
  expect(readdirSync(req.workDir)).toEqual([]);
});

test('another local process without the credential (or with a guessed one) is refused; the engine’s push goes on unchanged', async () => {
  const fake = await fakeDocker('intruders');
  const req = request(fake);
  const r = await pushLocalImage(req);
  expect(fake.log().filter((l) => l.startsWith('# intruder'))).toEqual(['# intruder 401', '# intruder 401']);
  expect(r).toEqual({ ok: true, digest: sha(fake.manifest) });
  expect(registry.manifests.get('my-app/api:1.0.0')?.body.equals(fake.manifest)).toBe(true);
});

test('an engine given a wrong credential: the push fails in the source phase, saying how many requests the receiver refused', async () => {
  const fake = await fakeDocker('wrongauth');
  const req = request(fake);
  const r = await pushLocalImage(req);
  expect(r).toMatchObject({ ok: false, stop: { phase: 'source' } });
  if (!r.ok)
    expect(r.stop.message).toMatch(/unauthorized: 401.*the receiver refused 1 request with a wrong credential/);
  expect(registry.requests.filter((q) => q.path.includes('/blobs/uploads/'))).toEqual([]);
  expect(readdirSync(req.workDir)).toEqual([]);
});

/**
 * The push of the two watchdog tests: 2 s of no progress ends it, long enough for the stand-in (a node process) to
 * reach the receiver on a loaded machine (at 400 ms it sometimes did not, and a push that never reached the receiver
 * is "unreachable", not stalled).
 */
function stallOptions(fake: Fake): Parameters<typeof pushThroughLoopback>[0] {
  return {
    image: 'app:1',
    names: fake.names,
    env: fake.env,
    dir: mkdtempSync(join(dir, 'w-')),
    transport: registry.transport(),
    repositoryPath: 'my-app/api',
    tags: ['1'],
    chunkSize: 128 * 1024,
    idleMs: 2_000,
  };
}

test('a sender trickling a byte at a time (the engine’s HEAD waiting on it) is ended by the progress watchdog in bounded time', async () => {
  // 60 bytes, one each 500 ms: 30 s of "activity" that is no progress
  const fake = await fakeDocker('trickle', { gapMs: 500, trickleBytes: 60 });
  const started = Date.now();
  await expect(pushThroughLoopback(stallOptions(fake))).rejects.toThrow(/stalled \(no progress for 2 s\)/);
  const took = Date.now() - started;
  process.stderr.write(`time to fail on a trickling sender: ${took} ms\n`);
  expect(took).toBeLessThan(8_000); // the watchdog's 2 s and one check interval, not the 30 s of trickle
  expectTagRemoved(fake);
  expect(liveChildren()).toBe(0);
  expect(registry.manifests.size).toBe(0);
});

test('a throw inside the receiver (the caller’s progress callback, called from it) fails the push and still cleans up', async () => {
  const fake = await fakeDocker('containerd');
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const req = request(fake, {
      onProgress: () => {
        throw new Error('the progress line broke');
      },
    });
    const r = await pushLocalImage(req);
    expect(r.ok).toBe(false);
    expect(registry.manifests.size).toBe(0);
    expectTagRemoved(fake);
    expect(readdirSync(req.workDir)).toEqual([]);
    expect(liveChildren()).toBe(0);
    await new Promise((res) => setTimeout(res, 50));
    expect(unhandled).toEqual([]);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('a blob upload the registry refuses after the engine pushed its manifest: the failure names the layer', async () => {
  const fake = await fakeDocker('containerd');
  let refused = false;
  registry.setScript((q) => {
    // the layer's first chunk (the config is one small request), answered once the engine is done
    if (q.method !== 'PATCH' || refused || Number(q.contentLength ?? 0) < 10_000) return undefined;
    refused = true;
    return { status: 403, body: 'denied', delayMs: 1_500 };
  });
  const req = request(fake);
  const r = await pushLocalImage(req);
  expect(fake.log().some((l) => l.startsWith('# sent'))).toBe(true); // the engine had sent the whole layer
  expect(r).toMatchObject({ ok: false, stop: { status: 403 }, layer: 1 });
  expect(registry.manifests.size).toBe(0);
  expect(readdirSync(req.workDir)).toEqual([]);
});

test('the manifest PUT refused once every blob is there: a stop in the manifest phase, no layer named, the tag removed', async () => {
  const fake = await fakeDocker('containerd');
  registry.setScript((q) =>
    q.method === 'PUT' && q.path.includes('/manifests/') ? { status: 400, body: 'MANIFEST_INVALID' } : undefined,
  );
  const req = request(fake);
  const r = await pushLocalImage(req);
  expect(r).toMatchObject({ ok: false, stop: { phase: 'manifest', status: 400 }, layer: null });
  expect(registry.blobs.get(sha(fake.layer))?.equals(fake.layer)).toBe(true);
  expect(registry.manifests.size).toBe(0);
  expectTagRemoved(fake);
  expect(readdirSync(req.workDir)).toEqual([]);
});

test('a tag the engine refuses: a stop in the source phase saying so; no push, nothing sent, nothing to untag', async () => {
  const fake = await fakeDocker('containerd', { tagFails: true });
  const req = request(fake);
  const r = await pushLocalImage(req);
  expect(r).toMatchObject({ ok: false, stop: { phase: 'source', status: null }, layer: null });
  if (!r.ok) expect(r.stop.message).toMatch(/^tagging app:1 as 127\.0\.0\.1:\d+\/\S+ failed: .*No such image: app:1/);
  expect(fake.log().filter(Boolean)).toEqual([]); // neither the push nor an untag
  expect(registry.requests).toEqual([]);
  expect(readdirSync(req.workDir)).toEqual([]);
});

test('classic store forced through the receiver: PATCH then PUT, the blob uploaded once whole, no --platform', async () => {
  const fake = await fakeDocker('classic');
  const req = request(fake, { containerdStore: false, platform: null });
  const r = await pushLocalImage(req, { reader: 'loopback' });
  expect(r).toEqual({ ok: true, digest: sha(fake.manifest) });
  expect(blobBytesSent()).toBe(fake.layer.length + fake.config.length);
  expect(fake.log().filter((l) => l.startsWith('push'))[0]).toMatch(/^push 127\.0\.0\.1:\d+\//);
});

test('a push that dies mid-layer: the attempt fails in the source phase, nothing is committed, the tag removed, nothing left', async () => {
  const fake = await fakeDocker('die');
  const req = request(fake);
  const r = await pushLocalImage(req);
  expect(r.ok).toBe(false);
  if (!r.ok) expect(r.stop.phase).toMatch(/source|chunk/);
  expect(registry.blobs.has(sha(fake.layer))).toBe(false);
  expect(registry.manifests.size).toBe(0);
  expectTagRemoved(fake);
  expect(readdirSync(req.workDir)).toEqual([]);
});

test('a cancel mid-push ends the push child, sends nothing more and still removes the tag', async () => {
  const fake = await fakeDocker('containerd', { gapMs: 300 });
  const ctl = new AbortController();
  const req = request(fake, { signal: ctl.signal });
  const pending = pushLocalImage(req);
  setTimeout(() => ctl.abort(new Error('SIGINT')), 500);
  const r = await pending;
  expect(r).toMatchObject({ ok: false, stop: { phase: 'source' } });
  const count = registry.requests.length;
  await new Promise((res) => setTimeout(res, 700));
  expect(registry.requests.length).toBe(count);
  expect(registry.manifests.size).toBe(0);
  expectTagRemoved(fake);
  expect(fake.log().some((l) => l.startsWith('# sent'))).toBe(false); // the push never finished its layer
  expect(readdirSync(req.workDir)).toEqual([]);
});

test('a push that stalls is ended by the idle watchdog', async () => {
  const fake = await fakeDocker('hang');
  const started = Date.now();
  await expect(pushThroughLoopback(stallOptions(fake))).rejects.toThrow(/stalled/);
  expect(Date.now() - started).toBeLessThan(10_000);
  expectTagRemoved(fake);
});

test('an engine that never reaches the receiver: docker save instead, said through onFallback', async () => {
  const layers = [await gzippedLayer([await buildTar([f('a', 'a\n')])])];
  const saved = await ociArchive({ layers });
  const fake = await fakeDocker('unreachable', { saved: saved.archive });
  const why: string[] = [];
  const req = request(fake, { platform: null });
  const r = await pushLocalImage(req, { onFallback: (w) => why.push(w) });
  expect(r.ok ? 'ok' : JSON.stringify(r)).toBe('ok');
  expect(why.join()).toContain('connection refused');
  const log = fake.log().filter((l) => !l.startsWith('#'));
  expect(log.map((l) => l.split(' ')[0])).toEqual(['tag', 'push', 'image', 'save']);
  expect(registry.blobs.has(sha(layers[0].gzip))).toBe(true);
  expect(existsSync(req.workDir) && readdirSync(req.workDir)).toEqual([]);
});
