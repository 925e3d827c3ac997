// The files-on-disk sources read what the real tools write, and what they push is what the registry then holds:
// a two-platform buildx image FROM scratch with provenance attestations (engine B) as an OCI layout directory, an
// OCI tar and (--load, docker save) a containerd-store docker archive; a classic-store docker save (engine A).
// Each is opened, its attestations stripped (selectPlatforms) and uploaded (uploadIndex / uploadImage) to a real
// registry, which is then asked what it holds: the tag an index of exactly the two platform manifests, each
// byte-identical to the source's, no attestation manifest, every blob there with its digest.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import type { IndexImage, ManifestImage, OpenedImage } from '../../src/image/image-model.js';
import { selectPlatforms } from '../../src/image/index-select.js';
import { openDockerArchive } from '../../src/image/sources/docker-archive-source.js';
import { openOciArchive } from '../../src/image/sources/oci-archive-source.js';
import { openOciLayout } from '../../src/image/sources/oci-layout-source.js';
import { RegistryClient } from '../../src/registry/registry-client.js';
import { uploadImage } from '../../src/upload/image.js';
import { uploadIndex } from '../../src/upload/index-upload.js';
import { buildImage, docker, engine, removeImages, uniqueName } from '../../test/support/images.js';
import { rawBytes, startRegistry, type Registry } from '../../test/support/registry.js';

const execFileP = promisify(execFile);
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const MiB = 1024 * 1024;
const PLATFORMS = ['linux/amd64', 'linux/arm64'];

let registry: Registry;
let dir: string;
let n = 0;
const workDir = () => join(dir, `work-${++n}`);
const client = () => {
  const [username, password] = Object.entries(registry.users)[0];
  return new RegistryClient(registry.host, { username, password });
};

/** The buildx outputs of one two-platform build with provenance (engine B), and a classic save (engine A). */
const out = { ociDir: '', ociTar: '', dockerB: '', dockerA: '', tagB: '', tagA: '' };
beforeAll(async () => {
  registry = await startRegistry();
  dir = mkdtempSync(join(tmpdir(), 'rp-sources-e2e-'));
  const ctx = join(dir, 'ctx');
  mkdirSync(ctx);
  writeFileSync(join(ctx, 'f'), randomBytes(200_000));
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY f /f\n');
  const b = engine('B').host;
  const build = (output: string[]) =>
    docker(b, ['buildx', 'build', '-q', '--platform', PLATFORMS.join(','), '--provenance=mode=min', ...output, ctx]);
  out.ociDir = join(dir, 'oci-dir');
  out.ociTar = join(dir, 'oci.tar');
  out.dockerB = join(dir, 'docker-b.tar');
  out.dockerA = join(dir, 'docker-a.tar');
  await build(['--output', `type=oci,dest=${out.ociDir},tar=false`]);
  await build(['--output', `type=oci,dest=${out.ociTar}`]);
  out.tagB = `${uniqueName('rp-sources-b')}:1`;
  await build(['--load', '-t', out.tagB]);
  await docker(b, ['save', '-o', out.dockerB, out.tagB]);
  const a = engine('A');
  out.tagA = `${uniqueName('rp-sources-a')}:1`;
  await buildImage(a, out.tagA, { files: { '/one': randomBytes(100_000), '/two': 'two\n' }, builder: 'classic' });
  await docker(a.host, ['save', '-o', out.dockerA, out.tagA]);
}, 180_000);
afterAll(async () => {
  await registry?.stop();
  await removeImages(engine('B'), out.tagB ? [out.tagB] : []);
  await removeImages(engine('A'), out.tagA ? [out.tagA] : []);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function expectBlobs(repo: string, m: ManifestImage): Promise<void> {
  for (const blob of [m.config, ...m.layers]) {
    const got = await rawBytes(registry, repo, 'blobs', blob.digest);
    expect(got && sha256(got.bytes)).toBe(blob.digest);
    expect(got?.bytes.length).toBe(blob.size);
  }
}

/** Strips, uploads, and checks what the registry holds against the source index. */
async function pushAndCheck(opened: OpenedImage, repo: string): Promise<void> {
  const index = opened.image as IndexImage;
  expect(index.kind).toBe('index');
  expect(index.manifests.map((m) => m.platform)).toEqual(PLATFORMS);
  expect(index.attestations).toHaveLength(2);
  const sel = selectPlatforms(index, { platforms: null, attestations: 'strip' });
  expect(sel.changed).toBe(true);
  const result = await uploadIndex(client(), repo, sel, ['1'], { chunkSize: MiB });
  expect(result.digest).toBe(sel.digest);

  const tagged = await rawBytes(registry, repo, 'manifests', '1');
  expect(tagged && sha256(tagged.bytes)).toBe(sel.digest);
  const listed = (JSON.parse((tagged as { bytes: Buffer }).bytes.toString()) as { manifests: { digest: string }[] })
    .manifests;
  expect(listed.map((d) => d.digest)).toEqual(index.manifests.map((m) => m.digest));
  for (const m of index.manifests) {
    const stored = await rawBytes(registry, repo, 'manifests', m.digest);
    expect(stored?.bytes.equals(m.bytes)).toBe(true);
    await expectBlobs(repo, m);
  }
  for (const a of index.attestations) expect(await rawBytes(registry, repo, 'manifests', a.digest)).toBeNull();
}

describe('two-platform buildx image with provenance (engine B)', () => {
  test('oci: a layout directory', async () => {
    const opened = await openOciLayout(out.ociDir, null, { workDir: workDir() });
    await pushAndCheck(opened, 'sources/oci-dir');
  });

  test('oci-archive: the same as a tar, blobs read as byte ranges', async () => {
    const opened = await openOciArchive(out.ociTar, null, { workDir: workDir() });
    await pushAndCheck(opened, 'sources/oci-tar');
  });

  test('docker-archive: --load then docker save (containerd store)', async () => {
    const opened = await openDockerArchive(out.dockerB, out.tagB, { workDir: workDir() });
    await pushAndCheck(opened, 'sources/docker-b');
  });
});

test('docker-archive: a classic-store save (engine A), layers gzipped whose contents are the diff IDs', async () => {
  const opened = await openDockerArchive(out.dockerA, null, { workDir: workDir() });
  const image = opened.image as ManifestImage;
  expect(image.kind).toBe('manifest');
  const repo = 'sources/docker-a';
  const result = await uploadImage(client(), repo, image, ['1'], { chunkSize: MiB });
  expect(result.digest).toBe(image.digest);
  const stored = await rawBytes(registry, repo, 'manifests', '1');
  expect(stored?.bytes.equals(image.bytes)).toBe(true);
  const doc = JSON.parse(image.bytes.toString()) as {
    mediaType: string;
    config: { digest: string };
    layers: { mediaType: string; digest: string }[];
  };
  expect(doc.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
  const config = await rawBytes(registry, repo, 'blobs', doc.config.digest);
  const diffIds = (JSON.parse((config as { bytes: Buffer }).bytes.toString()) as { rootfs: { diff_ids: string[] } })
    .rootfs.diff_ids;
  expect(doc.layers).toHaveLength(diffIds.length);
  for (const [i, l] of doc.layers.entries()) {
    expect(l.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar.gzip');
    const blob = await rawBytes(registry, repo, 'blobs', l.digest);
    expect(blob && sha256(blob.bytes)).toBe(l.digest);
    expect(sha256(gunzipSync((blob as { bytes: Buffer }).bytes))).toBe(diffIds[i]);
  }
  // the config is the image ID engine A gave it
  expect(doc.config.digest).toBe(await docker(engine('A').host, ['image', 'inspect', '-f', '{{.Id}}', out.tagA]));
});

describe('bad input, refused before anything is pushed', () => {
  test('no such directory', async () => {
    await expect(openOciLayout(join(dir, 'absent'), null, { workDir: workDir() })).rejects.toThrow('no such directory');
  });

  test('a REF the layout lacks', async () => {
    await expect(openOciLayout(out.ociDir, 'v9', { workDir: workDir() })).rejects.toThrow(
      'index.json lists no image named "v9" (it has latest (sha256:',
    );
  });

  test('a tarball that is neither format', async () => {
    const tgz = join(dir, 'x.tar.gz');
    await execFileP('tar', ['czf', tgz, '-C', out.ociDir, '.']);
    await expect(openOciArchive(tgz, null, { workDir: workDir() })).rejects.toThrow('is gzip-compressed');
    const plain = join(dir, 'plain.tar');
    await execFileP('tar', ['cf', plain, '-C', join(dir, 'ctx'), '.']);
    await expect(openDockerArchive(plain, null, { workDir: workDir() })).rejects.toThrow(
      'neither manifest.json nor index.json',
    );
    await expect(openOciArchive(plain, null, { workDir: workDir() })).rejects.toThrow('no oci-layout file');
  });

  test('a blob whose bytes do not match its digest', async () => {
    const copy = join(dir, 'oci-corrupt');
    cpSync(out.ociDir, copy, { recursive: true });
    const index = (await openOciLayout(copy, null, { workDir: workDir() })).image as IndexImage;
    const victim = index.manifests[1].digest;
    const file = join(copy, 'blobs', 'sha256', victim.slice('sha256:'.length));
    writeFileSync(file, Buffer.concat([index.manifests[1].bytes, Buffer.from(' ')]));
    await expect(openOciLayout(copy, null, { workDir: workDir() })).rejects.toThrow(`the manifest ${victim}`);
  });
});
