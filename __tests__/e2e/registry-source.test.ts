// Registry to registry at the library level: a two-platform buildx image with provenance (engine B) is put on a
// real source registry by `skopeo copy --all`, opened with openRegistrySource using credentials found as docker
// finds them (a config's auths; a docker-credential-* helper on PATH) and uploaded to a real target registry, which
// is then asked what it holds: the index and every manifest byte-identical to the source's, every blob there with
// its digest. A connection reset mid-download is invisible to the uploader (one try, every byte sent once, counted
// by a proxy in front of the target); a copy within one registry mounts every blob; wrong credentials fail naming
// the source registry before any blob is read.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { IndexImage, ManifestImage } from '../../src/image/image-model.js';
import { sourceCredentials } from '../../src/registry/docker-credentials.js';
import { RegistryClient, RegistryError, type Credentials } from '../../src/registry/registry-client.js';
import { openRegistrySource } from '../../src/registry/registry-source.js';
import type { UploadEvent } from '../../src/upload/blob.js';
import { uploadIndex, type IndexUploadResult } from '../../src/upload/index-upload.js';
import { docker, engine } from '../../test/support/images.js';
import { startFaultProxy, type FaultProxy } from '../../test/support/fault-proxy.js';
import { rawBytes, startRegistry, type Registry } from '../../test/support/registry.js';
import { rejection } from '../../test/support/rejection.js';

const execFileP = promisify(execFile);
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const MiB = 1024 * 1024;
const PLATFORMS = ['linux/amd64', 'linux/arm64'];
const SOURCE_REPO = 'ci/app';

let source: Registry;
let target: Registry;
let dir: string;
const proxies: FaultProxy[] = [];
const creds = (r: Registry): Credentials => {
  const [username, password] = Object.entries(r.users)[0];
  return { username, password };
};

beforeAll(async () => {
  [source, target] = await Promise.all([startRegistry(), startRegistry()]);
  dir = mkdtempSync(join(tmpdir(), 'rp-regsrc-e2e-'));
  const ctx = join(dir, 'ctx');
  mkdirSync(ctx);
  // random bytes do not compress: a layer of ~4 MiB, so a reset can come mid-blob
  writeFileSync(join(ctx, 'f'), randomBytes(4 * MiB));
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY f /f\n');
  const layout = join(dir, 'layout');
  await docker(engine('B').host, [
    'buildx',
    'build',
    '-q',
    '--platform',
    PLATFORMS.join(','),
    '--provenance=mode=min',
    '--output',
    `type=oci,dest=${layout},tar=false`,
    ctx,
  ]);
  const { username, password } = creds(source);
  // skopeo reads the password from its argv here: a test registry's throwaway password, not a secret of the action
  await execFileP('skopeo', [
    'copy',
    '--all',
    '--dest-tls-verify=false',
    '--dest-creds',
    `${username}:${password}`,
    `oci:${layout}`,
    `docker://${source.host}/${SOURCE_REPO}:1.0`,
  ]);
}, 180_000);

afterAll(async () => {
  for (const p of proxies.splice(0)) await p.stop();
  await Promise.all([source?.stop(), target?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function proxy(upstream: Registry): Promise<FaultProxy> {
  const p = await startFaultProxy({ upstream });
  proxies.push(p);
  return p;
}

/** A docker config directory holding `config` (and a bin directory for helpers), as the job's env names it. */
function dockerEnv(name: string, config: unknown): NodeJS.ProcessEnv {
  const base = join(dir, name);
  mkdirSync(join(base, 'bin'), { recursive: true });
  writeFileSync(join(base, 'config.json'), JSON.stringify(config));
  return { DOCKER_CONFIG: base, HOME: base, PATH: `${join(base, 'bin')}:${process.env.PATH}` };
}

/** Every manifest of the index, attestations too: the index is pushed as the source holds it, bytes unchanged. */
async function copy(
  index: IndexImage,
  to: { host: string; creds: Credentials; repo: string },
  onEvent?: (e: UploadEvent) => void,
  maxTries = 1,
): Promise<IndexUploadResult> {
  const client = new RegistryClient(to.host, to.creds);
  return uploadIndex(client, to.repo, index, ['1.0'], { chunkSize: MiB, maxTries, retryDelayMs: () => 10, onEvent });
}

function distinctBlobs(index: IndexImage): Map<string, number> {
  const blobs = new Map<string, number>();
  for (const m of [...index.manifests, ...index.attestations])
    for (const b of [m.config, ...m.layers]) blobs.set(b.digest, b.size);
  return blobs;
}

/** What `reg` holds under repo:1.0 is the source's index, byte for byte, with every manifest and blob. */
async function expectCopied(reg: Registry, repo: string, index: IndexImage): Promise<void> {
  const original = await rawBytes(source, SOURCE_REPO, 'manifests', '1.0');
  expect(original?.bytes.equals(index.bytes)).toBe(true);
  const tagged = await rawBytes(reg, repo, 'manifests', '1.0');
  expect(tagged?.bytes.equals(index.bytes)).toBe(true);
  const all: ManifestImage[] = [...index.manifests, ...index.attestations];
  for (const m of all) {
    const stored = await rawBytes(reg, repo, 'manifests', m.digest);
    const there = await rawBytes(source, SOURCE_REPO, 'manifests', m.digest);
    expect(stored?.bytes.equals(m.bytes)).toBe(true);
    expect(there?.bytes.equals(m.bytes)).toBe(true);
  }
  for (const [digest, size] of distinctBlobs(index)) {
    const got = await rawBytes(reg, repo, 'blobs', digest);
    expect(got && sha256(got.bytes)).toBe(digest);
    expect(got?.bytes.length).toBe(size);
  }
}

function expectTwoPlatforms(index: IndexImage): void {
  expect(index.kind).toBe('index');
  expect(index.manifests.map((m) => m.platform)).toEqual(PLATFORMS);
  expect(index.attestations).toHaveLength(2);
}

const ref = { repository: SOURCE_REPO, reference: '1.0' };

test('credentials from a docker config (auths): the index, every manifest and blob copied unchanged', async () => {
  const { username, password } = creds(source);
  const env = dockerEnv('auths', {
    auths: { [`http://${source.host}`]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } },
  });
  const found = await sourceCredentials(source.host, { env });
  expect(found).toEqual({ username, password });
  const opened = await openRegistrySource({ host: source.host, ...ref }, { workDir: dir, credentials: found });
  expect(opened.name).toBe(`docker://${source.host}/${SOURCE_REPO}:1.0`);
  const index = opened.image as IndexImage;
  expectTwoPlatforms(index);
  const result = await copy(index, { host: target.host, creds: creds(target), repo: 'copied/auths' });
  expect(result.digest).toBe(index.digest);
  await expectCopied(target, 'copied/auths', index);
});

test('credentials from a docker-credential-rptest helper on PATH; by digest', async () => {
  const { username, password } = creds(source);
  const env = dockerEnv('helper', { credHelpers: { [source.host]: 'rptest' } });
  const store = join(dir, 'helper', 'store.json');
  writeFileSync(store, JSON.stringify({ [source.host]: { Username: username, Secret: password } }));
  const script = join(dir, 'helper', 'bin', 'docker-credential-rptest');
  writeFileSync(
    script,
    [
      '#!/usr/bin/env node',
      "const fs = require('fs');",
      `const store = JSON.parse(fs.readFileSync(${JSON.stringify(store)}, 'utf8'));`,
      "const server = fs.readFileSync(0, 'utf8').trim();",
      "if (process.argv[2] !== 'get' || !store[server]) { console.log('credentials not found in native keychain'); process.exit(1); }",
      'console.log(JSON.stringify({ ServerURL: server, ...store[server] }));',
    ].join('\n'),
  );
  chmodSync(script, 0o755);
  const found = await sourceCredentials(source.host, { env });
  expect(found).toEqual({ username, password });
  const byTag = await openRegistrySource({ host: source.host, ...ref }, { workDir: dir, credentials: found });
  const digest = byTag.image.digest;
  const opened = await openRegistrySource(
    { host: source.host, repository: SOURCE_REPO, reference: digest },
    { workDir: dir, credentials: found },
  );
  expect(opened.name).toBe(`docker://${source.host}/${SOURCE_REPO}@${digest}`);
  const index = opened.image as IndexImage;
  expectTwoPlatforms(index);
  await copy(index, { host: target.host, creds: creds(target), repo: 'copied/helper' });
  await expectCopied(target, 'copied/helper', index);
});

test('a reset mid-download: still one try per blob, every byte reaches the target once', async () => {
  const from = await proxy(source);
  const to = await proxy(target);
  const opened = await openRegistrySource(
    { host: from.host, ...ref },
    { workDir: dir, credentials: creds(source), resumeDelayMs: () => 10 },
  );
  const index = opened.image as IndexImage;
  const layer = index.manifests[0].layers[0];
  expect(layer.size).toBeGreaterThan(3 * MiB);
  const blobPath = new RegExp(`/blobs/${layer.digest}$`);
  from.addFault({ method: 'GET', path: blobPath, times: 1, action: { resetResponseAfterBytes: 1536 * 1024 } });
  const events: UploadEvent[] = [];
  const result = await copy(index, { host: to.host, creds: creds(target), repo: 'copied/reset' }, (e) =>
    events.push(e),
  );
  await expectCopied(target, 'copied/reset', index);
  // the download was cut once and asked again
  const gets = from.requests.filter((r) => r.method === 'GET' && blobPath.test(r.path));
  expect(gets.map((r) => r.reset)).toEqual([true, false]);
  expect(gets[1].status).toBe(206);
  // the uploader never saw it: no failed chunk, no resume, no restart
  expect(events.filter((e) => e.type === 'chunk-failed' || e.type === 'resumed' || e.type === 'restarted')).toEqual([]);
  for (const m of result.manifests) for (const b of m.result.blobs) expect([b.resumes, b.restarts]).toEqual([0, 0]);
  // the target received every blob's bytes exactly once
  const uploaded = to.requests
    .filter((r) => (r.method === 'PATCH' || r.method === 'PUT') && /\/blobs\/uploads\//.test(r.path))
    .reduce((sum, r) => sum + r.requestBytes, 0);
  const total = [...distinctBlobs(index).values()].reduce((a, b) => a + b, 0);
  expect(uploaded).toBe(total);
});

test('a reset mid-upload: resumed in the same call where the target stands, no byte reaches it twice', async () => {
  const to = await proxy(target);
  const opened = await openRegistrySource({ host: source.host, ...ref }, { workDir: dir, credentials: creds(source) });
  const index = opened.image as IndexImage;
  const layer = index.manifests[0].layers[0];
  // the big layer's second chunk (the only blob of more than one chunk): cut before the registry sees a byte of it
  to.addFault({
    method: 'PATCH',
    path: /\/blobs\/uploads\//,
    times: 1,
    match: (r) => !/^(?:bytes )?0-/.test(String(r.headers['content-range'] ?? '0-')),
    action: { reset: true },
  });
  const events: UploadEvent[] = [];
  const result = await copy(
    index,
    { host: to.host, creds: creds(target), repo: 'copied/upload-reset' },
    (e) => events.push(e),
    5,
  );
  await expectCopied(target, 'copied/upload-reset', index);
  expect(to.requests.filter((r) => r.reset)).toHaveLength(1);
  // one call per blob (no restart): the chunk that failed was resumed where the registry said the upload stood
  expect(events.filter((e) => e.type === 'chunk-failed')).toHaveLength(1);
  expect(events.filter((e) => e.type === 'resumed')).toHaveLength(1);
  expect(events.filter((e) => e.type === 'restarted')).toEqual([]);
  const blobs = result.manifests.flatMap((m) => m.result.blobs);
  expect(blobs.reduce((n, b) => n + b.restarts, 0)).toBe(0);
  expect(layer.size).toBeGreaterThan(3 * MiB);
  // every byte the registry was given arrived once: the reset request forwarded nothing
  const forwarded = to.requests
    .filter((r) => !r.reset && (r.method === 'PATCH' || r.method === 'PUT') && /\/blobs\/uploads\//.test(r.path))
    .reduce((sum, r) => sum + r.requestBytes, 0);
  expect(forwarded).toBe([...distinctBlobs(index).values()].reduce((a, b) => a + b, 0));
});

test('within one registry: every blob mounted from the source repository, no byte sent', async () => {
  const reg = await proxy(source);
  const opened = await openRegistrySource({ host: reg.host, ...ref }, { workDir: dir, credentials: creds(source) });
  const index = opened.image as IndexImage;
  await copy(index, { host: reg.host, creds: creds(source), repo: 'promoted/app' });
  const mounts = reg.requests.filter((r) => r.method === 'POST' && r.url.includes('mount='));
  expect(mounts.length).toBe(distinctBlobs(index).size);
  expect(mounts.every((r) => r.status === 201 && r.url.includes(`from=${encodeURIComponent(SOURCE_REPO)}`))).toBe(true);
  expect(reg.requests.filter((r) => r.method === 'PATCH')).toEqual([]);
  expect(reg.requests.filter((r) => r.method === 'GET' && /\/blobs\//.test(r.path))).toEqual([]);
  expect(await rawBytes(source, 'promoted/app', 'manifests', '1.0').then((m) => m?.bytes.equals(index.bytes))).toBe(
    true,
  );
  for (const digest of distinctBlobs(index).keys())
    expect(await rawBytes(source, 'promoted/app', 'blobs', digest).then((b) => b && sha256(b.bytes))).toBe(digest);
});

test('wrong credentials: an error naming the source registry, before any blob is read', async () => {
  const reg = await proxy(source);
  const wrong = { username: creds(source).username, password: 'not-the-password' };
  const error = await rejection(
    openRegistrySource({ host: reg.host, ...ref }, { workDir: dir, credentials: wrong }),
    RegistryError,
  );
  expect(error.message).toBe(`the source registry ${reg.host}: refused the credentials for ${SOURCE_REPO}:1.0 (401)`);
  expect(reg.requests.every((r) => r.method === 'GET' && /\/manifests\/1\.0$/.test(r.path) && r.status === 401)).toBe(
    true,
  );
});
