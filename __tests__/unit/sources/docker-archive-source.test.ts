// The docker-archive: source over archives the test writes: a classic-store save (layers gzipped here,
// deterministically, a schema2 manifest made), a containerd-store save (the layout's image as it is, an index for
// several platforms), NAME among several images, and what is not a docker archive.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import type { ManifestImage } from '../../../src/image/image-model.js';
import { openDockerArchive } from '../../../src/image/sources/docker-archive-source.js';
import { legacyArchive } from '../../../test/fixtures/relayer/archives.js';
import { buildTar, f, readArchiveFiles } from '../../../test/fixtures/relayer/tars.js';
import { blobPath, buildLayout, packFiles, sha } from '../../../test/fixtures/sources/layouts.js';

let work: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'rp-docker-archive-'));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

let n = 0;
function saved(bytes: Buffer): string {
  const file = join(work, `save-${++n}.tar`);
  writeFileSync(file, bytes);
  return file;
}
const opts = () => ({ workDir: join(work, `w-${++n}`) });

describe('a classic-store save', () => {
  test('layers gzipped deterministically under a schema2 manifest; gunzipped, each is its diff ID', async () => {
    const layers = [await buildTar([f('a', 'one')]), await buildTar([f('b', 2_000)]), await buildTar([f('a', 'one')])];
    const img = await legacyArchive({ layers, symlinkDuplicates: true, tag: 'app:1' });
    const file = saved(img.archive);
    const first = (await openDockerArchive(file, null, opts())).image as ManifestImage;
    const again = (await openDockerArchive(file, 'app:1', opts())).image as ManifestImage;
    expect(first.kind).toBe('manifest');
    expect(first.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(first.digest).toBe(again.digest);
    expect(first.digest).toBe(sha(first.bytes));
    expect(first.platform).toBe('linux/amd64');
    const doc = JSON.parse(first.bytes.toString());
    expect(doc.config).toEqual({
      mediaType: 'application/vnd.docker.container.image.v1+json',
      size: img.config.length,
      digest: sha(img.config),
    });
    expect((await readAll(first.config.open(0))).toString()).toBe(img.config);
    for (const [i, l] of first.layers.entries()) {
      const gz = await readAll(l.open(0));
      expect(sha(gz)).toBe(l.digest);
      expect(sha(gunzipSync(gz))).toBe(img.diffIds[i]);
      expect(doc.layers[i]).toEqual({
        mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
        size: gz.length,
        digest: l.digest,
      });
    }
  });

  test('a layer that is not its diff ID is an error naming it', async () => {
    const img = await legacyArchive({ layers: [await buildTar([f('a', 'one')])] });
    const files = new Map<string, Buffer>();
    // the same archive with the layer swapped for another tar
    for (const [name, data] of await readArchiveFiles(img.archive)) files.set(name, data);
    const layerName = [...files.keys()].find((k) => k.endsWith('layer.tar')) as string;
    files.set(layerName, await buildTar([f('a', 'other')]));
    const file = saved(await buildTar([...files].map(([name, data]) => f(name, data))));
    await expect(openDockerArchive(file, null, opts())).rejects.toThrow(`the layer ${layerName} hashes to`);
  });

  test('NAME picks among several images by RepoTags; one the archive lacks is an error listing them', async () => {
    const a = await legacyArchive({ layers: [await buildTar([f('a', 'A')])], tag: 'a:1' });
    const b = await legacyArchive({ layers: [await buildTar([f('b', 'B')])], tag: 'docker.io/library/b:2' });
    const fa = await readArchiveFiles(a.archive);
    const fb = await readArchiveFiles(b.archive);
    const list = [
      ...JSON.parse(fa.get('manifest.json')!.toString()),
      ...JSON.parse(fb.get('manifest.json')!.toString()),
    ];
    const all = new Map([...fa, ...fb]);
    all.set('manifest.json', Buffer.from(JSON.stringify(list)));
    const file = saved(await buildTar([...all].map(([name, data]) => f(name, data))));
    const picked = (await openDockerArchive(file, 'b:2', opts())).image as ManifestImage;
    expect(JSON.parse(picked.bytes.toString()).config.digest).toBe(sha(b.config));
    await expect(openDockerArchive(file, 'c', opts())).rejects.toThrow(
      'holds no image tagged "c" (it has a:1, docker.io/library/b:2)',
    );
    await expect(openDockerArchive(file, null, opts())).rejects.toThrow('the archive holds 2 images');
  });
});

describe('a containerd-store save', () => {
  async function containerdSave(tag: string, seed: string) {
    const fx = await buildLayout({
      seed,
      annotations: {
        'io.containerd.image.name': `docker.io/library/${tag}`,
        'org.opencontainers.image.ref.name': tag.split(':')[1],
      },
    });
    const p = fx.platforms[0];
    const list = [{ Config: blobPath(sha(p.config)), RepoTags: [tag], Layers: [blobPath(sha(p.layer))] }];
    return { fx, list };
  }

  test('a multi-platform image is the index as saved, every blob a range of the archive', async () => {
    const { fx, list } = await containerdSave('app:1', 'ctr');
    fx.files.set('manifest.json', Buffer.from(JSON.stringify(list)));
    const image = (await openDockerArchive(saved(await packFiles(fx.files)), null, opts())).image;
    if (image.kind !== 'index') throw new Error('expected an index');
    expect(image.bytes.equals(fx.index)).toBe(true);
    expect(image.manifests.map((m) => m.digest)).toEqual(fx.platforms.map((p) => p.digest));
    expect(image.attestations).toHaveLength(2);
    expect((await readAll(image.manifests[1].layers[0].open(0))).equals(fx.platforms[1].layer)).toBe(true);
  });

  test('NAME picks the index.json entry containerd named', async () => {
    const one = await containerdSave('app:1', 'one');
    const two = await containerdSave('app:2', 'two');
    const files = new Map([...one.fx.files, ...two.fx.files]);
    const top = (m: Map<string, Buffer>) => JSON.parse(m.get('index.json')!.toString()).manifests[0];
    files.set(
      'index.json',
      Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [top(one.fx.files), top(two.fx.files)] })),
    );
    files.set('manifest.json', Buffer.from(JSON.stringify([...one.list, ...two.list])));
    const file = saved(await packFiles(files));
    expect((await openDockerArchive(file, 'app:2', opts())).image.digest).toBe(two.fx.indexDigest);
    expect((await openDockerArchive(file, 'docker.io/library/app:1', opts())).image.digest).toBe(one.fx.indexDigest);
    await expect(openDockerArchive(file, 'app:3', opts())).rejects.toThrow('holds no image tagged "app:3"');
  });
});

test('a tar with neither manifest.json nor index.json is not a docker archive', async () => {
  const file = saved(await buildTar([f('hello.txt', 'hi')]));
  await expect(openDockerArchive(file, null, opts())).rejects.toThrow(
    `docker-archive:${file}: it has neither manifest.json nor index.json`,
  );
});
