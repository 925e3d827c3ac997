// Reading a saved archive: what stays in memory and what is spilled, what is probed as a layer, and the
// probe's diff ID and index, for plain and compressed layers.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { gzipToFile, readArchive } from '../../../src/image/docker-archive-stream.js';
import { BlobDigestError } from '../../../src/image/saved-image.js';
import type { GrowingFile } from '../../../src/image/growing-file.js';
import type { KeepIndex } from '../../../src/image/layer-probe.js';
import { RawStore } from '../../../src/image/tar-scanner.js';
import { HOST_ZSTD, zstdDecoder, type ZstdDecoders } from '../../../src/image/compression.js';
import { resolveImage } from '../../../src/image/oci-layout-read.js';
import { legacyArchive, ociArchive, zstdCompress } from '../../../test/fixtures/relayer/archives.js';
import { buildTar, f, pattern, sha256 } from '../../../test/fixtures/relayer/tars.js';

let work: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'rp-reader-unit-'));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

const KB = 1024;

/** The relayer's read: layers probed, the kept indexes' bytes in a store of the work directory. */
function probed(input: Readable, keepIndex: KeepIndex, zstd?: ZstdDecoders) {
  return readArchive(input, work, { probe: { keepIndex, raws: new RawStore(join(work, 'raw-entries')), zstd } });
}

describe('readArchive', () => {
  test('small documents stay in memory, big blobs are spilled; layers are probed with their diff ID', async () => {
    const small = await buildTar([f('a', 'a')]);
    const big = await buildTar([f('big', pattern('big', 300 * KB))]);
    const saved = await ociArchive({ layers: [small, big], gzip: [false, true], attestation: true });
    const asked: Array<[string, number]> = [];
    const archive = await probed(Readable.from([saved.archive]), (diffId, size) => {
      asked.push([diffId, size]);
      return size > 100 * KB;
    });

    const refs = resolveImage((n) => archive.get(n)?.data);
    expect(refs.source).toBe('manifest.json');
    const [l1, l2] = refs.layers.map((n) => archive.get(n));
    expect(l1?.data).toBeDefined(); // 2 kB tar: memory
    expect(l1?.layer).toMatchObject({ compression: 'none', diffId: saved.diffIds[0], uncompressedSize: small.length });
    expect(l1?.layer?.entries).toBeUndefined(); // not asked for
    expect(l2?.file).toBeDefined(); // gzip of 300 kB random: spilled
    expect(readFileSync(l2?.file as string).equals(gzipSync(big))).toBe(true);
    expect(l2?.layer).toMatchObject({ compression: 'gzip', diffId: saved.diffIds[1], uncompressedSize: big.length });
    expect(l2?.layer?.entries?.map((e) => e.path)).toEqual(['big']);
    expect(asked).toEqual([
      [saved.diffIds[0], small.length],
      [saved.diffIds[1], big.length],
    ]);
    expect(archive.spilledBytes).toBe(gzipSync(big).length);
    // JSON documents are not mistaken for layers
    expect(archive.get(refs.config)?.layer).toBeUndefined();
    expect(archive.get('index.json')?.layer).toBeUndefined();
  });

  test('symlinked layer paths (older docker save) resolve to the entry they point at', async () => {
    const layer = await buildTar([f('x', 'x')]);
    const saved = await legacyArchive({ layers: [layer, layer], symlinkDuplicates: true });
    const archive = await probed(Readable.from([saved.archive]), () => false);
    const refs = resolveImage((n) => archive.get(n)?.data);
    const [a, b] = refs.layers.map((n) => archive.get(n));
    expect(a).toBe(b);
    expect(a?.layer?.diffId).toBe(sha256(layer));
  });

  // The decoder is passed in, so each way is tested on every Node: zlib's (Node >= 22.15), the zstd command's, none.
  async function probedZstd(zstd?: ZstdDecoders) {
    const layer = await buildTar([f('x', 'x'), f('y', pattern('y', 100 * KB))]);
    const saved = await ociArchive({ layers: [layer], zstd: [true] });
    const archive = await probed(Readable.from([saved.archive]), () => true, zstd);
    return { layer, saved, entry: archive.get(resolveImage((n) => archive.get(n)?.data).layers[0]) };
  }

  test('a zstd layer is probed through the zstd command when zlib has no zstd', async () => {
    let asked = 0;
    const { layer, saved, entry } = await probedZstd({
      command: () => {
        asked++;
        return true;
      },
    });
    expect(asked).toBeGreaterThan(0);
    expect(entry?.layer).toMatchObject({
      compression: 'zstd',
      diffId: saved.diffIds[0],
      uncompressedSize: layer.length,
    });
    expect(entry?.layer?.entries?.map((e) => e.path)).toEqual(['x', 'y']);
  });

  test("a zstd layer is probed with this Node's own decoders (zlib's from Node 22.15, else the zstd command)", async () => {
    const [major, minor] = process.versions.node.split('.').map(Number);
    const zlibHasZstd = major > 22 || (major === 22 && minor >= 15);
    expect(zstdDecoder(HOST_ZSTD)).toBe(zlibHasZstd ? 'zlib' : 'command');
    const { layer, saved, entry } = await probedZstd();
    expect(entry?.layer).toMatchObject({
      compression: 'zstd',
      diffId: saved.diffIds[0],
      uncompressedSize: layer.length,
    });
    expect(entry?.layer?.entries?.map((e) => e.path)).toEqual(['x', 'y']);
  });

  test('without any zstd decoder a zstd layer is kept whole and marked unreadable', async () => {
    const { layer, entry } = await probedZstd({ command: () => false });
    expect(entry?.layer).toEqual({
      compression: 'zstd',
      unreadable: 'zstd needs Node >= 22.15 or the zstd command, neither is here',
    });
    const kept = entry?.data ?? readFileSync(entry?.file as string);
    expect(kept.equals(zstdCompress(layer))).toBe(true);
  });

  test('spill files go in the work directory given', async () => {
    const big = await buildTar([f('big', pattern('b', 200 * KB))]);
    const saved = await legacyArchive({ layers: [big] });
    await probed(Readable.from([saved.archive]), () => false);
    expect(readdirSync(work)).toEqual(['blob-1']);
  });
});

describe('readArchive: one read for the relayer and the uploader', () => {
  test('each entry is told once whole, in archive order, with its digest; plain tars gzipped when asked', async () => {
    const layer = await buildTar([f('x', pattern('x', 100 * KB))]);
    const saved = await legacyArchive({ layers: [layer] });
    const told: Array<[string, string]> = [];
    const archive = await readArchive(Readable.from([saved.archive]), work, {
      gzipTars: {},
      onEntry: (e) => told.push([e.name, e.digest]),
    });
    expect(told).toEqual([...archive.entries.values()].map((e) => [e.name, e.digest]));
    const kept = [...archive.entries.values()].find((e) => e.gzip);
    expect(kept).toMatchObject({ digest: sha256(layer), size: layer.length });
    expect(kept?.file ?? kept?.data).toBeUndefined(); // only the gzipped copy is kept
    expect(kept?.layer).toBeUndefined(); // not asked for
    const gz = readFileSync(kept?.gzip?.file as string);
    expect(gunzipSync(gz).equals(layer)).toBe(true);
    expect(kept?.gzip).toMatchObject({ size: gz.length, digest: sha256(gz) });
    expect(archive.spilledBytes).toBe(gz.length);
  });

  test('a plain tar is told as its gzip starts: a follower reads the gzip as it is written, to the same bytes', async () => {
    const layer = await buildTar([f('x', randomBytes(3 * 1024 * KB)), f('y', pattern('y', 2 * 1024 * KB))]);
    const saved = await legacyArchive({ layers: [layer] });
    const order: string[] = [];
    let followed: Promise<Buffer> | null = null;
    let growing: GrowingFile | null = null;
    const archive = await readArchive(Readable.from([saved.archive]), work, {
      gzipTars: {},
      onGzipStart: (g) => {
        order.push(`start ${g.written} ${String(g.result)}`);
        growing = g;
        followed = (async () => {
          const parts: Buffer[] = [];
          for await (const chunk of g.follow(0)) parts.push(chunk as Buffer);
          return Buffer.concat(parts);
        })();
      },
      onEntry: (e) => order.push(e.gzip ? 'layer whole' : 'entry'),
    });
    expect(order.filter((o) => o !== 'entry')).toEqual(['start 0 null', 'layer whole']);
    const kept = [...archive.entries.values()].find((e) => e.gzip);
    const gz = readFileSync(kept?.gzip?.file as string);
    expect((await (followed as Promise<Buffer> | null))?.equals(gz)).toBe(true);
    expect((growing as GrowingFile | null)?.result).toEqual({ size: gz.length, digest: sha256(gz) });
    expect(gunzipSync(gz).equals(layer)).toBe(true);
  });

  test('a gzip whose input fails fails its growing file, and its follower', async () => {
    let growing: GrowingFile | null = null;
    async function* input() {
      yield randomBytes(3 * 1024 * KB);
      throw new Error('the save broke');
    }
    const err = await gzipToFile(input(), join(work, 'broken.gz'), {}, (g) => (growing = g)).catch((e: unknown) => e);
    expect((err as Error).message).toBe('the save broke');
    const g = growing as GrowingFile | null;
    expect(g?.error?.message).toBe('the save broke');
    const read = await (async () => {
      for await (const chunk of (g as GrowingFile).follow(0)) void chunk;
    })().catch((e: unknown) => e);
    expect((read as Error).message).toBe('the save broke');
  });

  test('a blob whose bytes are not what its name says fails the probed read too, before it is told', async () => {
    const good = await buildTar([f('g', pattern('g', 100 * KB))]);
    const bad = Buffer.from(good);
    bad[bad.length - 2000] ^= 1;
    const name = `blobs/sha256/${sha256(good).replace('sha256:', '')}`;
    const input = Readable.from([await buildTar([f(name, bad), f('next', 'after')])]);
    const told: string[] = [];
    const raws = new RawStore();
    const err = await readArchive(input, work, {
      probe: { keepIndex: () => true, raws },
      onEntry: (e) => told.push(e.name),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlobDigestError);
    expect((err as Error).message).toBe(
      `the archive's ${name} is not what its name says: its bytes hash to ${sha256(bad)}`,
    );
    expect(told).toEqual([]);
    expect(input.destroyed).toBe(true);
  });
});

describe('resolveImage', () => {
  const docs = (m: Record<string, unknown>) => (n: string) => (n in m ? Buffer.from(JSON.stringify(m[n])) : undefined);

  test('an OCI index with several platforms is refused, naming them', () => {
    const index = {
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: 'sha256:aa',
          platform: { os: 'linux', architecture: 'amd64' },
        },
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: 'sha256:bb',
          platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
        },
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: 'sha256:cc',
          annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
        },
      ],
    };
    expect(() => resolveImage(docs({ 'index.json': index }))).toThrow(
      'index.json holds 2 images (linux/amd64, linux/arm64/v8)',
    );
  });

  test('a manifest.json without Config or Layers is refused', () => {
    expect(() => resolveImage(docs({ 'manifest.json': [{ RepoTags: [] }] }))).toThrow(/no Config or Layers/);
  });
});

describe('readArchive on blobs that only look like layers', () => {
  const blobs: Array<[string, () => Buffer]> = [
    ['gzip of something that is not a tar', () => gzipSync(pattern('noise', 200 * KB))],
    [
      'a broken gzip stream',
      () => Buffer.concat([gzipSync(pattern('x', 100 * KB)).subarray(0, 5000), pattern('junk', 100 * KB)]),
    ],
    ['zstd of something that is not a tar', () => zstdCompress(pattern('z', 300 * KB))],
  ];
  test.each(blobs)('%s is kept, not probed, and does not stall the read', async (_name, blob) => {
    const archive = await probed(
      Readable.from([await buildTar([f('blobs/sha256/ab', blob()), f('next', 'after')])]),
      () => true,
    );
    expect(archive.get('blobs/sha256/ab')?.layer?.diffId).toBeUndefined();
    expect(archive.get('next')?.data?.toString()).toBe('after');
  });
});

describe('zstdDecoder', () => {
  const zlib = () => new PassThrough();
  test.each([
    ['zlib and the command', { zlib, command: () => true }, 'zlib'],
    ['zlib only', { zlib, command: () => false }, 'zlib'],
    ['the command only', { command: () => true }, 'command'],
    ['neither', { command: () => false }, null],
  ] as Array<[string, ZstdDecoders, string | null]>)('%s', (_name, decoders, expected) => {
    expect(zstdDecoder(decoders)).toBe(expected);
  });
});
