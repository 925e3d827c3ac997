// relayerToSink into a BlobSink (layer-split: auto, uploaded directly): every piece becomes a gzip blob file whose
// digest and size the manifest names, the pieces' diff IDs are the config's, the filesystem is the original's, the
// output is the same on every run, a gzip layer kept whole is the engine's own blob, and nothing is loaded anywhere.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { BlobSink, relayerToSink } from '../../../src/layer-split/index.js';
import { MEDIA_TYPES } from '../../../src/image/oci.js';
import type { ManifestImage } from '../../../src/image/image-model.js';
import type { BlobSource } from '../../../src/image/blob-source.js';
import { legacyArchive, ociArchive, type SavedImage } from '../../../test/fixtures/relayer/archives.js';
import { filesystemOf } from '../../../test/fixtures/relayer/overlay.js';
import { buildTar, d, f, hard, whiteout } from '../../../test/fixtures/relayer/tars.js';

const KB = 1024;
const LIMIT = 40 * KB;
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let work: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'rp-blob-sink-'));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

async function layers(): Promise<Buffer[]> {
  return [
    await buildTar([d('etc', { mode: 0o755 }), f('etc/os-release', 'base'), f('etc/remove-me', 'bye')]),
    await buildTar([
      d('app', { mode: 0o750, uid: 1000, gid: 1000 }),
      ...Array.from({ length: 8 }, (_, i) => f(`app/chunk-${i}.bin`, 12 * KB, { uid: 1000 })),
      hard('app/chunk-0.link', 'app/chunk-0.bin'),
      whiteout('etc/remove-me'),
    ]),
    await buildTar([f('etc/motd', 'top layer')]),
  ];
}

async function toBlobs(saved: SavedImage, name: string) {
  const dir = join(work, name);
  mkdirSync(dir);
  const announced: BlobSource[] = [];
  const sink = new BlobSink(dir, { onBlob: (b) => announced.push(b) });
  const logs: string[] = [];
  const report = await relayerToSink(Readable.from([saved.archive]), sink, {
    maxLayerSize: LIMIT,
    workDir: work,
    log: (l) => logs.push(l),
    skipUnchanged: true,
  });
  return { report, image: sink.image, logs, dir, announced };
}

const read = async (b: BlobSource): Promise<Buffer> => {
  const parts: Buffer[] = [];
  for await (const c of b.open(0)) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

describe('BlobSink', () => {
  test('classic store: gzip blobs named by digest and size, diff IDs in the config, the same filesystem', async () => {
    const input = await layers();
    const { report, image, announced, dir } = await toBlobs(await legacyArchive({ layers: input }), 'a');
    expect(report.changed).toBe(true);
    const img = image as ManifestImage;
    // each blob announced as soon as it was written (an upload may start while the next is cut), in order
    expect(announced).toEqual(img.layers);
    const manifest = JSON.parse(img.bytes.toString()) as {
      mediaType: string;
      config: { digest: string; size: number; mediaType: string };
      layers: { digest: string; size: number; mediaType: string }[];
    };
    expect(img.digest).toBe(sha(img.bytes));
    expect(manifest.mediaType).toBe(MEDIA_TYPES.dockerManifest);
    expect(manifest.config).toEqual({
      mediaType: MEDIA_TYPES.dockerConfig,
      digest: img.config.digest,
      size: img.config.size,
    });
    const configBytes = await read(img.config);
    const config = JSON.parse(configBytes.toString()) as { rootfs: { diff_ids: string[] }; history: unknown[] };
    expect(sha(configBytes)).toBe(img.config.digest);
    expect(img.layers.length).toBeGreaterThan(3);
    expect(manifest.layers).toEqual(
      img.layers.map((l) => ({ mediaType: MEDIA_TYPES.dockerLayerGzip, digest: l.digest, size: l.size })),
    );
    const tars: Buffer[] = [];
    for (const [i, l] of img.layers.entries()) {
      const blob = await read(l);
      expect(blob.length).toBe(l.size);
      expect(sha(blob)).toBe(l.digest);
      const tar = gunzipSync(blob);
      expect(sha(tar)).toBe(config.rootfs.diff_ids[i]);
      tars.push(tar);
    }
    expect(await filesystemOf(tars)).toEqual(await filesystemOf(input));
    // a resumed upload reads from an offset
    const second = img.layers[1];
    const tail: Buffer[] = [];
    for await (const c of second.open(10)) tail.push(c as Buffer);
    expect(Buffer.concat(tail).equals((await read(second)).subarray(10))).toBe(true);
    // the pieces' own report matches what was written
    expect(report.layers.flatMap((l) => l.pieces.map((p) => p.diffId))).toEqual(config.rootfs.diff_ids);
    expect(readdirSync(dir)).toHaveLength(img.layers.length);
  });

  test('the same image gives the same blobs and manifest digest on every run', async () => {
    const saved = await legacyArchive({ layers: await layers() });
    const one = await toBlobs(saved, 'one');
    const two = await toBlobs(saved, 'two');
    expect(two.image?.digest).toBe(one.image?.digest);
    expect(two.image?.layers.map((l) => l.digest)).toEqual(one.image?.layers.map((l) => l.digest));
  });

  test('containerd store: a gzip layer kept whole is the engine blob itself; the split one is gzipped here', async () => {
    const input = await layers();
    const saved = await ociArchive({ layers: input, gzip: [true, true, true] });
    const { image } = await toBlobs(saved, 'c');
    const img = image as ManifestImage;
    // layers 1 and 3 are small: the archive's own gzip blobs, byte for byte
    expect(img.layers[0].digest).toBe(sha(gzipSync(input[0])));
    expect(img.layers[img.layers.length - 1].digest).toBe(sha(gzipSync(input[2])));
    expect(img.layers.length).toBeGreaterThan(3);
    const tars = await Promise.all(img.layers.map(async (l) => gunzipSync(await read(l))));
    expect(await filesystemOf(tars)).toEqual(await filesystemOf(input));
  });

  test('nothing over the limit: nothing written, no image', async () => {
    const saved = await legacyArchive({ layers: [await buildTar([f('a', 'x')])] });
    const { report, image, dir } = await toBlobs(saved, 'none');
    expect(report.changed).toBe(false);
    expect(image).toBeNull();
    expect(readdirSync(dir)).toEqual([]);
  });

  test('a cancel mid-split stops it with an error', async () => {
    const saved = await legacyArchive({ layers: await layers() });
    const dir = join(work, 'cancel');
    mkdirSync(dir);
    const ac = new AbortController();
    ac.abort();
    const sink = new BlobSink(dir, { signal: ac.signal });
    await expect(
      relayerToSink(Readable.from([saved.archive]), sink, { maxLayerSize: LIMIT, workDir: work, log: () => {} }),
    ).rejects.toThrow(/aborted/);
    expect(sink.image).toBeNull();
  });
});
