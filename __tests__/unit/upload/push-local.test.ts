// The chunked push as the run calls it: `docker save` (a stand-in docker on PATH that writes a saved archive) into
// the work directory, the blobs in chunks to a scripted loopback registry, the manifest under every tag; and what
// comes back when it fails (where, and which layer).
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChunkedPushRequest } from '../../../src/upload/push-local.js';
import { pushLocalImage } from '../../../src/upload/push-local.js';
import { legacyArchive } from '../../../test/fixtures/relayer/archives.js';
import { buildTar, d, f, pattern } from '../../../test/fixtures/relayer/tars.js';
import { chunkedPushRequest } from '../../../test/fixtures/chunked-push-request.js';
import { startScriptedRegistry, type ScriptedRegistry } from '../../../test/support/upload-registry.js';

let dir: string;
let registry: ScriptedRegistry;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rp-push-local-'));
  registry = await startScriptedRegistry();
});
afterEach(async () => {
  await registry.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A `docker` that answers `docker save` with this archive (or fails as docker does). */
async function fakeSave(archive: Buffer | null): Promise<NodeJS.ProcessEnv> {
  const bin = join(dir, 'bin');
  const saved = join(dir, 'saved.tar');
  if (archive) writeFileSync(saved, archive);
  const script = archive
    ? `#!/bin/sh\n[ "$1" = save ] && exec cat "${saved}"\nexit 1\n`
    : `#!/bin/sh\necho "Error response from daemon: reference does not exist" >&2\nexit 1\n`;
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'docker'), script);
  chmodSync(join(bin, 'docker'), 0o755);
  return { PATH: `${bin}:${process.env.PATH}` };
}

/** The request with this file's defaults (a classic-store image, two tags). */
function request(env: NodeJS.ProcessEnv, over: Partial<ChunkedPushRequest> = {}) {
  return chunkedPushRequest(dir, registry, env, over);
}

test('a saved image goes up in chunks and its manifest under every tag; the work directory is left clean', async () => {
  const layers = [await buildTar([d('data'), f('data/big', pattern('big', 200_000))]), await buildTar([f('a', 'a\n')])];
  const env = await fakeSave((await legacyArchive({ layers })).archive);
  const req = request(env);
  const r = await pushLocalImage(req);
  expect(r.ok ? 'ok' : JSON.stringify(r)).toBe('ok');
  const digest = r.ok ? r.digest : '';
  const keys = [...registry.manifests.keys()].join(' ');
  expect(keys).toContain('1.0.0');
  expect(keys).toContain('latest');
  expect(digest).toMatch(/^sha256:[a-f0-9]{64}$/);
  expect(registry.blobs.size).toBe(3); // two layers and the config
  expect(req.events.filter((e) => e === 'uploaded')).toHaveLength(3);
  expect(registry.sequence().filter((l) => l.startsWith('PATCH')).length).toBeGreaterThan(2); // the big layer in chunks
  expect(readdirSync(req.workDir)).toEqual([]);
});

test('docker save failing: a stop in the source phase, no layer named, nothing sent', async () => {
  const env = await fakeSave(null);
  const r = await pushLocalImage(request(env));
  expect(r).toMatchObject({ ok: false, stop: { phase: 'source', status: null }, layer: null });
  expect(registry.requests).toEqual([]);
});

test('a blob the registry keeps refusing names its layer', async () => {
  const layers = [await buildTar([f('a', 'a\n')]), await buildTar([f('big', pattern('big', 150_000))])];
  const env = await fakeSave((await legacyArchive({ layers })).archive);
  registry.setScript((q) => (q.method === 'PATCH' ? { status: 403 } : undefined));
  const r = await pushLocalImage(request(env));
  expect(r.ok).toBe(false);
  if (!r.ok) {
    expect(r.stop.status).toBe(403);
    expect([1, 2]).toContain(r.layer);
  }
});

test('a retry of the run: layers an attempt sent while gzipping them are found by HEAD, not sent again', async () => {
  const layers = [await buildTar([d('data'), f('data/big', pattern('big', 200_000))]), await buildTar([f('a', 'a\n')])];
  const env = await fakeSave((await legacyArchive({ layers })).archive);
  const sentWhileGzipped = new Set<string>();
  const first = await pushLocalImage(request(env), { sentWhileGzipped });
  expect(first.ok).toBe(true);
  expect(sentWhileGzipped.size).toBe(2);
  const before = registry.requests.length;
  const again = await pushLocalImage(request(env), { sentWhileGzipped });
  expect(again).toEqual(first);
  const retry = registry.sequence().slice(before);
  expect(retry.filter((l) => l.startsWith('PATCH') || l.startsWith('POST'))).toEqual([]);
  expect(retry.filter((l) => l.startsWith('HEAD blob'))).toHaveLength(3); // two layers and the config, all there
  // a run that knows of none sends the layers again while gzipping them
  const fresh = registry.requests.length;
  await pushLocalImage(request(env));
  expect(
    registry
      .sequence()
      .slice(fresh)
      .filter((l) => l.startsWith('POST')),
  ).toHaveLength(2);
});
