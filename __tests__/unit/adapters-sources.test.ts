// The real parts behind the core's source ports (src/adapters/sources.ts): each transport reaches its opener and
// yields the image the fixture wrote, byte for byte; the engine's image is read with `docker save` (a fake docker
// on PATH that writes an archive, or fails as the real one does); what it opens, pushed (pushImage) to the scripted
// registry as a manifest or an index, the index's own refusal told apart from a platform manifest's.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSource } from '../../src/adapters/sources.js';
import type { OpenSourceRequest } from '../../src/core/ports.js';
import type { IndexImage, ManifestImage, SourceImage } from '../../src/image/image-model.js';
import { selectPlatforms } from '../../src/image/index-select.js';
import { parseSourceRef, type SourceRef } from '../../src/image/source-ref.js';
import { buildLayout, packFiles, writeFiles, type LayoutFixture } from '../../test/fixtures/sources/layouts.js';
import { startScriptedRegistry, type ScriptedRegistry } from '../../test/support/upload-registry.js';
import { INDEX_PHASE, pushImage } from '../../src/upload/push-image.js';

let work: string;
let fx: LayoutFixture;
let reg: ScriptedRegistry | undefined;
let server: Server | undefined;

beforeEach(async () => {
  work = mkdtempSync(join(tmpdir(), 'rp-adapter-sources-'));
  fx = await buildLayout({ seed: 'adapters' });
});
afterEach(async () => {
  await reg?.stop();
  reg = undefined;
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
  rmSync(work, { recursive: true, force: true });
});

const ref = (text: string) => parseSourceRef(text) as SourceRef;
const request = (env: NodeJS.ProcessEnv = {}): OpenSourceRequest => ({
  workDir: work,
  jobEnv: env,
  childEnv: env,
  username: '',
  token: '',
});

/** The image is the fixture's index, its platforms and their blobs readable as written. */
async function expectFixture(image: IndexImage | ManifestImage): Promise<void> {
  expect(image.kind).toBe('index');
  const index = image as IndexImage;
  expect(index.bytes.equals(fx.index)).toBe(true);
  expect(index.manifests.map((m) => [m.platform, m.digest])).toEqual(fx.platforms.map((p) => [p.platform, p.digest]));
  expect(index.attestations.map((a) => a.digest)).toEqual(fx.attestations.map((a) => a.digest));
  const layer = index.manifests[0].layers[0];
  const chunks: Buffer[] = [];
  for await (const c of layer.open(0)) chunks.push(c as Buffer);
  expect(Buffer.concat(chunks).equals(fx.platforms[0].layer)).toBe(true);
}

test('oci:, oci-archive: and docker-archive: reach their openers', async () => {
  writeFiles(join(work, 'layout'), fx.files);
  writeFileSync(join(work, 'layout.tar'), await packFiles(fx.files));
  for (const text of [`oci:${join(work, 'layout')}`, `oci-archive:${join(work, 'layout.tar')}`]) {
    const opened = await openSource(ref(text), request());
    await expectFixture(opened.image);
    await opened.close();
  }
  const archive = await openSource(ref(`docker-archive:${join(work, 'layout.tar')}`), request());
  await expectFixture(archive.image);
});

/** A read-only registry serving the fixture's files at /v2/app/src/, anonymous, as distribution answers. */
async function fixtureRegistry(): Promise<string> {
  const byDigest = new Map(
    [...fx.files].filter(([n]) => n.startsWith('blobs/')).map(([n, d]) => [`sha256:${n.split('/').pop()}`, d]),
  );
  server = createServer((req, res): void => {
    const m = /^\/v2\/app\/src\/(manifests|blobs)\/(.+)$/.exec(req.url ?? '');
    if (req.url === '/v2/') {
      res.end('{}');
      return;
    }
    const digest = m?.[2] === '1.0' ? fx.indexDigest : m?.[2];
    const data = digest ? byDigest.get(digest) : undefined;
    if (!m || !data) {
      res.writeHead(404).end();
      return;
    }
    const type = m[1] === 'manifests' ? JSON.parse(data.toString()).mediaType : 'application/octet-stream';
    res.writeHead(200, { 'Content-Type': type, 'Docker-Content-Digest': digest, 'Content-Length': data.length });
    res.end(req.method === 'HEAD' ? undefined : data);
  });
  await new Promise<void>((r) => (server as Server).listen(0, '127.0.0.1', () => r()));
  return `127.0.0.1:${(server.address() as { port: number }).port}`;
}

test('docker:// reaches the registry source, anonymous when the job has no docker config for it', async () => {
  const host = await fixtureRegistry();
  const env = { DOCKER_CONFIG: join(work, 'no-config'), HOME: work };
  const opened = await openSource(ref(`docker://${host}/app/src:1.0`), request(env));
  await expectFixture(opened.image);
});

/** A docker on PATH that answers `save` as the real one does: the archive on stdout, or its error and exit 1. */
function fakeDocker(archive: string | null): NodeJS.ProcessEnv {
  const bin = join(work, 'bin');
  mkdirSync(bin, { recursive: true });
  const body = archive
    ? `[ "$1" = save ] && exec cat '${archive}'; exit 2`
    : `echo 'Error response from daemon: reference does not exist' >&2; exit 1`;
  writeFileSync(join(bin, 'docker'), `#!/bin/sh\n${body}\n`);
  chmodSync(join(bin, 'docker'), 0o755);
  return { PATH: `${bin}:/usr/bin:/bin` };
}

test('the engine image: docker save into the work directory, read as an archive, removed on close', async () => {
  writeFileSync(join(work, 'saved.tar'), await packFiles(fx.files));
  const opened = await openSource(ref('app:1.0'), request(fakeDocker(join(work, 'saved.tar'))));
  expect(opened.name).toBe('docker-daemon:app:1.0');
  await expectFixture(opened.image);
  await opened.close();
  expect(readdirSync(work).filter((n) => n.startsWith('save-'))).toEqual([]);
});

test("docker save's own words when it fails", async () => {
  await expect(openSource(ref('app:1.0'), request(fakeDocker(null)))).rejects.toThrow(
    /docker save app:1\.0 failed \(exit 1\): Error response from daemon: reference does not exist/,
  );
});

async function openedIndex(): Promise<IndexImage> {
  writeFiles(join(work, 'layout'), fx.files);
  return (await openSource(ref(`oci:${join(work, 'layout')}`), request())).image as IndexImage;
}

const push = (registry: ScriptedRegistry, image: SourceImage) =>
  pushImage({
    image,
    repositoryPath: 'app/pushed',
    tags: ['1.0'],
    chunkSize: 1_000_000,
    signal: new AbortController().signal,
    transport: registry.transport(),
    onEvent: () => undefined,
    onProgress: () => undefined,
  });

test('pushImage: one manifest, then an index of its platforms under the tag', async () => {
  const index = await openedIndex();
  reg = await startScriptedRegistry();
  const one = await push(reg, index.manifests[1]);
  expect(one).toEqual({ ok: true, digest: index.manifests[1].digest });
  const selected = selectPlatforms(index, { platforms: null, attestations: 'strip' });
  const all = await push(reg, selected);
  expect(all).toEqual({ ok: true, digest: selected.digest });
  expect(reg.manifests.get('app/pushed:1.0')?.body.equals(selected.bytes)).toBe(true);
  for (const m of index.manifests) expect(reg.manifests.has(`app/pushed:${m.digest}`)).toBe(true);
});

test("pushImage: the index's own refusal is the index phase, a platform manifest's is not", async () => {
  const index = await openedIndex();
  const selected = selectPlatforms(index, { platforms: null, attestations: 'strip' });
  reg = await startScriptedRegistry({
    script: (r) => (r.method === 'PUT' && r.path.endsWith('/manifests/1.0') ? { status: 400 } : undefined),
  });
  const atIndex = await push(reg, selected);
  expect(atIndex.ok === false && atIndex.stop.phase).toBe(INDEX_PHASE);
  reg.setScript((r) =>
    r.method === 'PUT' && r.path.endsWith(`/manifests/${index.manifests[0].digest}`) ? { status: 400 } : undefined,
  );
  const atPlatform = await push(reg, selected);
  expect(atPlatform.ok === false && atPlatform.stop.phase).toBe('manifest');
});
