// The uploader's image content read from real engines (readImageForUpload), then pushed with the action's own
// uploader to a real registry and read back with skopeo: one describe per engine, never one for the other.
// - engine A (classic store): config digest = image ID, layers gzipped here gunzip to `docker save`'s tars, the
//   same manifest digest on a second read, and the engine pulls the pushed image back as the same image ID.
// - engine B (containerd store): the manifest digest equals what `docker push --platform linux/amd64` gives the
//   registry for the same image, with the same blobs.
// - the chunked push through the action's receiver on 127.0.0.1 (pushLocalImage; the default on the containerd
//   store), on both engines: the same digests as above, and nothing left in the engine or the work directory.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { liveChildren } from '../../src/util/process.js';
import { RegistryClient } from '../../src/registry/registry-client.js';
import { Docker } from '../../src/engine/docker.js';
import { UploadError } from '../../src/upload/errors.js';
import { uploadImage } from '../../src/upload/image.js';
import { readImageForUpload, type SavedImage } from '../../src/upload/image-source.js';
import { pushLocalImage, type PushLocalOptions } from '../../src/upload/push-local.js';
import type { ChunkedPushRequest } from '../../src/upload/push-local.js';
import type { ChunkedPushResult } from '../../src/upload/errors.js';
import type { BlobSource } from '../../src/image/blob-source.js';
import { MEDIA_TYPES } from '../../src/image/oci.js';
import {
  buildImage,
  describeEngine,
  docker,
  removeImages,
  uniqueName,
  type Engine,
} from '../../test/support/images.js';
import { rawManifest, startRegistry, type Registry } from '../../test/support/registry.js';

const execFileP = promisify(execFile);
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const MiB = 1024 * 1024;

let registry: Registry;
let dir: string;
beforeAll(async () => {
  registry = await startRegistry();
  dir = mkdtempSync(join(tmpdir(), 'rp-imgsrc-e2e-'));
});
afterAll(async () => {
  await registry?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const creds = () => Object.entries(registry.users)[0];
const engineEnv = (e: Engine): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: e.host };
  delete env.DOCKER_CONTEXT;
  return env;
};
let workCount = 0;
const workDir = () => join(dir, `work-${++workCount}`);

async function bytesOf(b: BlobSource): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of b.open(0)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** `docker save` into a directory (tar xf), for comparing files. */
async function savedFiles(e: Engine, ref: string): Promise<string> {
  const out = mkdtempSync(join(dir, 'saved-'));
  const file = join(out, 'image.tar');
  await docker(e.host, ['save', '-o', file, ref]);
  await execFileP('tar', ['xf', file, '-C', out]);
  return out;
}

/** Pushes what readImageForUpload read, through the action's uploader (in chunks), to repo:tag. */
async function upload(img: SavedImage, repo: string, tag: string) {
  const [username, password] = creds();
  const client = new RegistryClient(registry.host, { username, password });
  return uploadImage(client, repo, img, [tag], { chunkSize: MiB });
}

/** skopeo's view of what the registry holds, and its copy of every file of it, compared with what was read. */
async function expectRegistryHolds(img: SavedImage, repo: string, tag: string): Promise<void> {
  const ref = `docker://${registry.host}/${repo}:${tag}`;
  const [u, p] = creds();
  const { stdout } = await execFileP('skopeo', ['inspect', '--tls-verify=false', `--creds=${u}:${p}`, ref]);
  const inspected = JSON.parse(stdout) as { Digest: string; Layers: string[] };
  expect(inspected.Digest).toBe(img.digest);
  expect(inspected.Layers).toEqual(img.layers.map((l) => l.digest));
  const copy = mkdtempSync(join(dir, 'skopeo-'));
  await execFileP('skopeo', ['copy', '--src-tls-verify=false', `--src-creds=${u}:${p}`, ref, `dir:${copy}`]);
  expect(readFileSync(join(copy, 'manifest.json'))).toEqual(img.bytes);
  for (const blob of [img.config, ...img.layers]) {
    const file = readFileSync(join(copy, blob.digest.replace('sha256:', '')));
    expect(sha256(file)).toBe(blob.digest);
    expect(file).toEqual(await bytesOf(blob));
  }
}

/** The chunked push as the run calls it, in chunks of 1 MiB; the work directory must be empty after. */
async function chunkedPush(
  e: Engine,
  image: string,
  repo: string,
  over: Partial<ChunkedPushRequest> = {},
  opts: PushLocalOptions = {},
): Promise<ChunkedPushResult & { events: string[] }> {
  const [username, password] = creds();
  const work = workDir();
  const events: string[] = [];
  mkdirSync(work, { recursive: true });
  const r = await pushLocalImage(
    {
      image,
      platform: null,
      containerdStore: e.name === 'B',
      repositoryPath: repo,
      tags: ['1'],
      chunkSize: MiB,
      workDir: work,
      env: engineEnv(e),
      // the engine's names over its API, as the run's DockerApi makes them
      names: new Docker(engineEnv(e)),
      signal: new AbortController().signal,
      transport: new RegistryClient(registry.host, { username, password }),
      onEvent: (ev) => events.push(ev.type),
      onProgress: () => undefined,
      ...over,
    },
    opts,
  );
  expect(readdirSync(work)).toEqual([]);
  return { ...r, events };
}

/** Names in the engine that the receiver's push made (there must be none after it). */
async function receiverNames(e: Engine): Promise<string[]> {
  const out = await docker(e.host, ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']);
  return out.split('\n').filter((n) => n.includes('/replicated-push-'));
}

/** A docker config of its own, logged in to the registry. */
async function loggedInConfig(e: Engine): Promise<string> {
  const config = mkdtempSync(join(dir, 'docker-config-'));
  writeFileSync(join(config, 'config.json'), '{}');
  const [u, p] = creds();
  await execFileP('sh', ['-c', `printf %s "$P" | docker login -u "$U" --password-stdin ${registry.host}`], {
    env: { ...engineEnv(e), DOCKER_CONFIG: config, U: u, P: p },
  });
  return config;
}

/** The reference: REF pushed by `docker push --platform linux/amd64` to a new repository; what the registry holds. */
async function pushedByDocker(e: Engine, ref: string, label: string) {
  const repo = `imgsrc/${uniqueName(label)}`;
  const pushedRef = `${registry.host}/${repo}:1`;
  const config = await loggedInConfig(e);
  await docker(e.host, ['tag', ref, pushedRef]);
  try {
    await docker(e.host, ['push', '--platform', 'linux/amd64', pushedRef], { DOCKER_CONFIG: config });
  } finally {
    await removeImages(e, [pushedRef]);
  }
  return rawManifest(registry, repo, '1');
}

/** REPO:1 pulled back into the engine: the image ID it gets (the pulled name removed after). */
async function pulledImageId(e: Engine, repo: string): Promise<string> {
  const pulled = `${registry.host}/${repo}:1`;
  try {
    await docker(e.host, ['pull', pulled], { DOCKER_CONFIG: await loggedInConfig(e) });
    return await docker(e.host, ['image', 'inspect', '--format', '{{.Id}}', pulled]);
  } finally {
    await removeImages(e, [pulled]);
  }
}

describeEngine('A', 'image content from engine A (classic store)', (eng) => {
  const ref = `${uniqueName('rp-imgsrc-a')}:1`;
  let id: string;
  let layersInEngine: string[];
  beforeAll(async () => {
    await buildImage(eng, ref, { files: { '/big': 3 * MiB, '/etc/text': 'hello\n'.repeat(10_000), '/x': 'x' } });
    const inspect = JSON.parse(await docker(eng.host, ['image', 'inspect', ref]))[0] as {
      Id: string;
      RootFS: { Layers: string[] };
    };
    id = inspect.Id;
    layersInEngine = inspect.RootFS.Layers;
  });
  afterAll(() => removeImages(eng, [ref]));

  test('config digest = image ID; each layer gzipped here gunzips to the tar docker save wrote; deterministic', async () => {
    const img = await readImageForUpload(ref, { env: engineEnv(eng), workDir: workDir() });
    expect(img.store).toBe('classic');
    expect(img.config.digest).toBe(id);
    expect(img.config.mediaType).toBe(MEDIA_TYPES.dockerConfig);
    expect(img.layers).toHaveLength(layersInEngine.length);
    expect(img.mediaType).toBe(MEDIA_TYPES.dockerManifest);

    const saved = await savedFiles(eng, ref);
    const list = JSON.parse(readFileSync(join(saved, 'manifest.json'), 'utf8')) as [{ Layers: string[] }];
    expect(list[0].Layers).toHaveLength(img.layers.length);
    for (const [i, layer] of img.layers.entries()) {
      expect(layer.mediaType).toBe(MEDIA_TYPES.dockerLayerGzip);
      const tarBytes = readFileSync(join(saved, list[0].Layers[i]));
      const gz = await bytesOf(layer);
      expect(gz.length).toBe(layer.size);
      expect(sha256(gz)).toBe(layer.digest);
      expect(gunzipSync(gz).equals(tarBytes)).toBe(true);
      expect(sha256(tarBytes)).toBe(layersInEngine[i]);
    }
    const again = await readImageForUpload(ref, { env: engineEnv(eng), workDir: workDir() });
    expect(again.digest).toBe(img.digest);
  });

  test('pushed with the uploader: skopeo sees the same manifest and files, and the engine pulls the same image ID', async () => {
    const img = await readImageForUpload(ref, { env: engineEnv(eng), workDir: workDir() });
    const repo = `imgsrc/${uniqueName('a')}`;
    const result = await upload(img, repo, '1');
    expect(result.digest).toBe(img.digest);
    await expectRegistryHolds(img, repo, '1');

    expect(await pulledImageId(eng, repo)).toBe(id);
  });

  test('through the receiver (docker push to 127.0.0.1): config digest = image ID, pulled back as the same ID, nothing left', async () => {
    const repo = `imgsrc/${uniqueName('a-rx')}`;
    const r = await chunkedPush(eng, ref, repo, {}, { reader: 'loopback' });
    expect(r.ok ? 'ok' : JSON.stringify(r)).toBe('ok');
    const held = await rawManifest(registry, repo, '1');
    expect(r.ok && r.digest).toBe(held?.digest);
    expect(held?.json.config?.digest).toBe(id);
    expect(held?.json.layers).toHaveLength(layersInEngine.length);
    expect(await receiverNames(eng)).toEqual([]);
    expect(await pulledImageId(eng, repo)).toBe(id);
  });

  test('a cancel ends docker save and the read rejects as aborted', async () => {
    const big = `${uniqueName('rp-imgsrc-a-cancel')}:1`;
    await buildImage(eng, big, { files: { '/big': 64 * MiB } });
    try {
      const ac = new AbortController();
      const reading = readImageForUpload(big, { env: engineEnv(eng), workDir: workDir(), signal: ac.signal });
      setTimeout(() => ac.abort(new Error('run cancelled')), 300);
      const err = await reading.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UploadError);
      expect((err as UploadError).aborted).toBe(true);
      expect(liveChildren()).toBe(0);
    } finally {
      await removeImages(eng, [big]);
    }
  });

  test('a missing image fails with docker save’s own words', async () => {
    const err = await readImageForUpload(`${uniqueName('rp-imgsrc-none')}:1`, {
      env: engineEnv(eng),
      workDir: workDir(),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UploadError);
    expect((err as Error).message).toMatch(
      /docker save .* failed \(exit 1\): .*(No such image|not found|reference does not exist)/i,
    );
  });
});

describeEngine('B', 'image content from engine B (containerd store)', (eng) => {
  const ref = `${uniqueName('rp-imgsrc-b')}:1`;
  beforeAll(async () => {
    // buildx with its default attestations: the index holds the amd64 manifest and an attestation manifest
    await buildImage(eng, ref, { files: { '/big': 3 * MiB, '/etc/text': 'hello\n'.repeat(10_000), '/x': 'x' } });
  });
  afterAll(() => removeImages(eng, [ref]));

  test('the manifest digest equals what docker push --platform linux/amd64 gives the registry, with the same blobs', async () => {
    const img = await readImageForUpload(ref, { env: engineEnv(eng), workDir: workDir(), platform: 'linux/amd64' });
    expect(img.store).toBe('containerd');
    expect(img.platform).toBe('linux/amd64');
    const inspect = JSON.parse(await docker(eng.host, ['image', 'inspect', ref]))[0] as {
      RootFS: { Layers: string[] };
    };
    expect(img.layers).toHaveLength(inspect.RootFS.Layers.length);
    expect(img.layers.every((l) => l.mediaType === MEDIA_TYPES.ociLayerGzip)).toBe(true);

    // docker push --platform to one repository, our uploader to another
    const byDocker = await pushedByDocker(eng, ref, 'b-docker');
    expect(byDocker?.digest).toBe(img.digest);
    expect(byDocker?.json.config?.digest).toBe(img.config.digest);
    expect(byDocker?.json.layers?.map((l) => l.digest)).toEqual(img.layers.map((l) => l.digest));

    const ourRepo = `imgsrc/${uniqueName('b-ours')}`;
    const result = await upload(img, ourRepo, '1');
    expect(result.digest).toBe(byDocker?.digest);
    await expectRegistryHolds(img, ourRepo, '1');
  });

  test('the chunked push (through the receiver, the default here) gives the registry the manifest docker push --platform gives it; nothing left', async () => {
    const byDocker = await pushedByDocker(eng, ref, 'b-docker-rx');

    const repo = `imgsrc/${uniqueName('b-rx')}`;
    let fellBack = '';
    const r = await chunkedPush(eng, ref, repo, { platform: 'linux/amd64' }, { onFallback: (w) => (fellBack = w) });
    expect(r.ok ? 'ok' : JSON.stringify(r)).toBe('ok');
    expect(fellBack).toBe('');
    expect(r.ok && r.digest).toBe(byDocker?.digest);
    const held = await rawManifest(registry, repo, '1');
    expect(held?.digest).toBe(byDocker?.digest);
    expect(r.events.filter((e) => e === 'uploaded').length).toBe((byDocker?.json.layers?.length ?? 0) + 1);
    const [u, p] = creds();
    const copy = mkdtempSync(join(dir, 'skopeo-'));
    await execFileP('skopeo', [
      'copy',
      '--src-tls-verify=false',
      `--src-creds=${u}:${p}`,
      `docker://${registry.host}/${repo}:1`,
      `dir:${copy}`,
    ]);
    for (const l of byDocker?.json.layers ?? [])
      expect(sha256(readFileSync(join(copy, l.digest.replace('sha256:', ''))))).toBe(l.digest);
    expect(await receiverNames(eng)).toEqual([]);
    expect(liveChildren()).toBe(0);
  });

  test('a platform the image lacks is an error naming the one it has', async () => {
    const err = await readImageForUpload(ref, {
      env: engineEnv(eng),
      workDir: workDir(),
      platform: 'linux/s390x',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UploadError);
    expect((err as Error).message).toContain('has no linux/s390x manifest (it has linux/amd64)');
  });
});
