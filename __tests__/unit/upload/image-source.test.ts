// The image content for the uploader, from saved archives made here (no engine): deterministic gzip, the Docker
// schema 2 manifest, which manifest of an index is taken, and the whole read over both layouts (classic store:
// gzipped here, config as saved; containerd store: its own blobs and manifest bytes), blob checks and cancel.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { manifestMediaType } from '../../../src/upload/image.js';
import { readArchiveForUpload } from '../../../src/upload/image-source.js';
import { UploadError } from '../../../src/upload/errors.js';
import type { BlobSource } from '../../../src/image/blob-source.js';
import { digestFromName } from '../../../src/image/docker-archive-stream.js';
import { isPlainTar } from '../../../src/image/layer-probe.js';
import { GZIP_HEADER, gzipDeterministic } from '../../../src/image/gzip.js';
import {
  dockerManifest,
  parsePlatform,
  platformMatches,
  selectManifest,
  type ReadDoc,
} from '../../../src/image/oci-layout.js';
import { MEDIA_TYPES } from '../../../src/image/oci.js';
import { legacyArchive, ociArchive } from '../../../test/fixtures/relayer/archives.js';
import { buildTar, f, d, gzippedLayer, pattern } from '../../../test/fixtures/relayer/tars.js';

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const hex = (digest: string) => digest.replace('sha256:', '');

async function gz(input: Buffer, chunk: number, opts: Parameters<typeof gzipDeterministic>[2] = {}): Promise<Buffer> {
  async function* pieces() {
    for (let i = 0; i < input.length; i += chunk) yield input.subarray(i, i + chunk);
  }
  const out: Buffer[] = [];
  const result = await gzipDeterministic(
    pieces(),
    async (c) => {
      out.push(Buffer.from(c));
    },
    opts,
  );
  const all = Buffer.concat(out);
  expect(result).toEqual({ inputSize: input.length, outputSize: all.length });
  return all;
}

async function readAll(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const blobBytes = (b: BlobSource, offset = 0) => readAll(b.open(offset));

let work: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'rp-imgsrc-'));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

describe('deterministic gzip', () => {
  const text = Buffer.from(Array.from({ length: 8_000 }, (_, i) => `line ${i % 977} of a layer\n`).join(''));
  const mixed = Buffer.concat([text, pattern('rnd', 300_000), text.subarray(0, 12_345)]);

  test.each([
    ['text', text],
    ['text and random', mixed],
    ['empty', Buffer.alloc(0)],
    ['one byte', Buffer.from('x')],
    ['exactly two blocks', pattern('two', 2 * 65_536)],
  ])('%s: gunzips to the input, with the fixed header', async (_n, input) => {
    const out = await gz(input, 7_777, { blockSize: 65_536 });
    expect(out.subarray(0, 10)).toEqual(GZIP_HEADER);
    expect(gunzipSync(out)).toEqual(input);
  });

  test('the same input gives the same bytes twice, however it is chunked and however many blocks run at once', async () => {
    const a = await gz(mixed, 65_536, { blockSize: 65_536, parallel: 4 });
    const b = await gz(mixed, 65_536, { blockSize: 65_536, parallel: 4 });
    const c = await gz(mixed, 1_000, { blockSize: 65_536, parallel: 1 });
    const e = await gz(mixed, 300_001, { blockSize: 65_536, parallel: 3 });
    expect(sha256(b)).toBe(sha256(a));
    expect(sha256(c)).toBe(sha256(a));
    expect(sha256(e)).toBe(sha256(a));
  });

  test('the level and the block size are what the output depends on', async () => {
    const l1 = await gz(text, 10_000, { level: 1 });
    const l6 = await gz(text, 10_000, { level: 6 });
    expect(l6.length).toBeLessThanOrEqual(l1.length);
    expect(sha256(l6)).not.toBe(sha256(l1));
    expect(gunzipSync(l6)).toEqual(text);
  });

  test('compresses like gzip (within 1% of one zlib stream at the same level)', async () => {
    const ours = await gz(text, 50_000, { level: 6 });
    expect(ours.length).toBeLessThan(gzipSync(text, { level: 6 }).length * 1.01 + 64);
  });

  test('a failing writer rejects, and no block is left running', async () => {
    async function* input() {
      for (let i = 0; i < 8; i++) yield pattern(`b${i}`, 70_000);
    }
    let writes = 0;
    await expect(
      gzipDeterministic(
        input(),
        async () => {
          if (++writes === 3) throw new Error('disk full');
        },
        { blockSize: 65_536 },
      ),
    ).rejects.toThrow('disk full');
  });
});

describe('docker schema 2 manifest', () => {
  const config = { digest: `sha256:${'c'.repeat(64)}`, size: 1234 };
  const layers = [
    { digest: `sha256:${'a'.repeat(64)}`, size: 10 },
    { digest: `sha256:${'b'.repeat(64)}`, size: 20 },
  ];

  test('is serialized one way: key order, indent, no newline', () => {
    const bytes = dockerManifest(config, layers);
    expect(bytes.toString()).toBe(
      [
        '{',
        '   "schemaVersion": 2,',
        `   "mediaType": "${MEDIA_TYPES.dockerManifest}",`,
        '   "config": {',
        `      "mediaType": "${MEDIA_TYPES.dockerConfig}",`,
        '      "size": 1234,',
        `      "digest": "${config.digest}"`,
        '   },',
        '   "layers": [',
        '      {',
        `         "mediaType": "${MEDIA_TYPES.dockerLayerGzip}",`,
        '         "size": 10,',
        `         "digest": "${layers[0].digest}"`,
        '      },',
        '      {',
        `         "mediaType": "${MEDIA_TYPES.dockerLayerGzip}",`,
        '         "size": 20,',
        `         "digest": "${layers[1].digest}"`,
        '      }',
        '   ]',
        '}',
      ].join('\n'),
    );
    expect(
      sha256(
        dockerManifest(
          { ...config },
          layers.map((l) => ({ ...l })),
        ),
      ),
    ).toBe(sha256(bytes));
  });
});

describe('which manifest of an index', () => {
  const docs = new Map<string, Buffer>();
  const put = (o: unknown) => {
    const b = Buffer.from(JSON.stringify(o));
    docs.set(`blobs/sha256/${hex(sha256(b))}`, b);
    return { digest: sha256(b), size: b.length };
  };
  const read: ReadDoc = (n) => docs.get(n);
  const manifest = (os: string, arch: string, variant?: string) => {
    const cfg = put({ os, architecture: arch, variant, n: Math.random() });
    return put({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, ...cfg },
      layers: [{ mediaType: MEDIA_TYPES.ociLayerGzip, digest: `sha256:${'1'.repeat(64)}`, size: 1 }],
    });
  };
  const amd = manifest('linux', 'amd64');
  const arm = manifest('linux', 'arm64', 'v8');
  const att = manifest('unknown', 'unknown');
  const entry = (m: { digest: string; size: number }, platform?: object, annotations?: object) => ({
    mediaType: MEDIA_TYPES.ociManifest,
    ...m,
    platform,
    annotations,
  });
  const attEntry = entry(
    att,
    { os: 'unknown', architecture: 'unknown' },
    { 'vnd.docker.reference.type': 'attestation-manifest' },
  );
  const index = (manifests: object[]) => {
    const nested = put({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests });
    docs.set(
      'index.json',
      Buffer.from(JSON.stringify({ manifests: [{ mediaType: MEDIA_TYPES.ociIndex, ...nested }] })),
    );
  };

  test('an attested image: the platform manifest, its bytes unchanged', () => {
    index([entry(amd, { os: 'linux', architecture: 'amd64' }), attEntry]);
    const c = selectManifest(read);
    expect(c.digest).toBe(amd.digest);
    expect(sha256(c.bytes)).toBe(amd.digest);
    expect(c.platform).toBe('linux/amd64');
    expect(selectManifest(read, 'linux/amd64').digest).toBe(amd.digest);
    expect(() => selectManifest(read, 'linux/arm64')).toThrow('has no linux/arm64 manifest (it has linux/amd64)');
  });

  test('several platforms: the one asked for; none asked for is an error naming them', () => {
    index([
      entry(amd, { os: 'linux', architecture: 'amd64' }),
      entry(arm, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
      attEntry,
    ]);
    expect(selectManifest(read, 'linux/arm64').digest).toBe(arm.digest);
    expect(selectManifest(read, { os: 'linux', architecture: 'arm64', variant: 'v8' }).digest).toBe(arm.digest);
    expect(selectManifest(read, 'linux/amd64').digest).toBe(amd.digest);
    expect(() => selectManifest(read)).toThrow('2 platforms (linux/amd64, linux/arm64/v8); name one');
  });

  test('a platform the archive does not hold is left out', () => {
    const missing = { digest: `sha256:${'9'.repeat(64)}`, size: 5 };
    index([entry(missing, { os: 'linux', architecture: 'arm64' }), entry(amd, { os: 'linux', architecture: 'amd64' })]);
    expect(selectManifest(read).digest).toBe(amd.digest);
  });

  test('a manifest listed without a platform takes the platform its config names', () => {
    docs.set('index.json', Buffer.from(JSON.stringify({ manifests: [entry(arm)] })));
    const c = selectManifest(read, 'linux/arm64');
    expect(c.digest).toBe(arm.digest);
    expect(c.platform).toBe('linux/arm64/v8');
  });

  test('only attestations, or a missing nested index, are errors', () => {
    index([attEntry]);
    expect(() => selectManifest(read)).toThrow('no image manifest');
    docs.set(
      'index.json',
      Buffer.from(
        JSON.stringify({
          manifests: [{ mediaType: MEDIA_TYPES.ociIndex, digest: `sha256:${'8'.repeat(64)}`, size: 3 }],
        }),
      ),
    );
    expect(() => selectManifest(read)).toThrow('lacks the index');
  });

  test.each([
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }, true],
    ['linux/amd64', { os: 'linux', architecture: 'arm64' }, false],
    ['linux/arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }, true],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64' }, true],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v6' }, false],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v7' }, true],
    ['windows/amd64', { os: 'linux', architecture: 'amd64' }, false],
  ])('platform %s matches %j: %s', (want, have, yes) => {
    expect(platformMatches(parsePlatform(want), have)).toBe(yes);
  });

  test('blob names and plain tars', () => {
    expect(digestFromName(`blobs/sha256/${'a'.repeat(64)}`)).toBe(`sha256:${'a'.repeat(64)}`);
    expect(digestFromName('abc/layer.tar')).toBeNull();
    expect(isPlainTar(Buffer.alloc(1024))).toBe(true);
    expect(isPlainTar(gzipSync(Buffer.alloc(1024)))).toBe(false);
    expect(isPlainTar(Buffer.from('{"a":1}'))).toBe(false);
  });
});

async function layerTar(seed: string, size: number): Promise<Buffer> {
  return buildTar([d('data'), f(`data/${seed}`, size), f(`data/${seed}.txt`, `text ${seed}\n`.repeat(500))]);
}

/** A tar-stream archive of the given entries (for archives the fixtures would not make: a wrong blob). */
async function pack(files: Array<{ name: string; data: Buffer }>): Promise<Buffer> {
  const p = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of p) chunks.push(c as Buffer);
  })();
  for (const file of files) p.entry({ name: file.name }, file.data);
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

async function expectClassic(archive: Buffer, layers: Buffer[], config: string) {
  const img = await readArchiveForUpload(Readable.from([archive]), { workDir: work, gzip: { blockSize: 65_536 } });
  expect(img.store).toBe('classic');
  expect(img.config.digest).toBe(sha256(config));
  expect(img.config.mediaType).toBe(MEDIA_TYPES.dockerConfig);
  expect(await blobBytes(img.config)).toEqual(Buffer.from(config));
  expect(img.layers).toHaveLength(layers.length);
  for (const [i, l] of img.layers.entries()) {
    const bytes = await blobBytes(l);
    expect(l.mediaType).toBe(MEDIA_TYPES.dockerLayerGzip);
    expect(bytes.length).toBe(l.size);
    expect(sha256(bytes)).toBe(l.digest);
    expect(gunzipSync(bytes)).toEqual(layers[i]);
    expect(await blobBytes(l, 100)).toEqual(bytes.subarray(100));
  }
  expect(img.mediaType).toBe(MEDIA_TYPES.dockerManifest);
  expect(img.digest).toBe(sha256(img.bytes));
  expect(img.bytes).toEqual(dockerManifest(img.config, img.layers));
  expect(manifestMediaType(img)).toBe(MEDIA_TYPES.dockerManifest);
  expect(img.platform).toBe('linux/amd64');
  return img;
}

describe('reading a saved archive', () => {
  test('classic store, legacy layout: gzipped layers, config as saved, a schema 2 manifest; twice the same', async () => {
    const layers = [await layerTar('one', 200_000), await layerTar('two', 1_000)];
    const saved = await legacyArchive({ layers });
    const first = await expectClassic(saved.archive, layers, saved.config);
    const spilled = readdirSync(work).reduce((n, name) => n + statSync(join(work, name)).size, 0);
    expect(first.spilledBytes).toBe(spilled);
    expect(spilled).toBe(first.layers.reduce((n, l) => n + l.size, 0)); // only the compressed copies
    rmSync(work, { recursive: true });
    const second = await readArchiveForUpload(Readable.from([saved.archive]), {
      workDir: work,
      gzip: { blockSize: 65_536 },
    });
    expect(second.digest).toBe(first.digest);
  });

  test('classic store, legacy layout with a repeated layer saved as a symlink', async () => {
    const same = await layerTar('same', 5_000);
    const saved = await legacyArchive({ layers: [same, await layerTar('mid', 10), same], symlinkDuplicates: true });
    const img = await expectClassic(saved.archive, [same, await layerTar('mid', 10), same], saved.config);
    expect(img.layers[0].digest).toBe(img.layers[2].digest);
  });

  test('classic store, Docker 25+ layout (blobs/sha256 of plain tars beside index.json)', async () => {
    const layers = [await layerTar('a', 70_000), await layerTar('b', 3)];
    const saved = await ociArchive({ layers });
    await expectClassic(saved.archive, layers, saved.config);
  });

  test('containerd store: its own compressed blobs and manifest bytes, the attestation left out', async () => {
    const layers = [await gzippedLayer([await layerTar('x', 90_000)]), await gzippedLayer([await layerTar('y', 5)])];
    const saved = await ociArchive({ layers, attestation: true });
    const files = await archiveFiles(saved.archive);
    const img = await readArchiveForUpload(Readable.from([saved.archive]), { workDir: work });
    expect(img.store).toBe('containerd');
    const doc = JSON.parse(img.bytes.toString()) as {
      config: { digest: string };
      layers: Array<{ digest: string; mediaType: string }>;
    };
    expect(files.get(`blobs/sha256/${hex(img.digest)}`)).toEqual(img.bytes);
    expect(img.mediaType).toBe(MEDIA_TYPES.ociManifest);
    expect(img.config.digest).toBe(sha256(saved.config));
    expect(img.config.mediaType).toBe(MEDIA_TYPES.ociConfig);
    expect(img.layers.map((l) => l.digest)).toEqual(doc.layers.map((l) => l.digest));
    for (const [i, l] of img.layers.entries()) {
      expect(l.mediaType).toBe(MEDIA_TYPES.ociLayerGzip);
      expect(await blobBytes(l)).toEqual(layers[i].gzip);
    }
    expect(img.platform).toBe('linux/amd64');
    expect(() => manifestMediaType(img)).not.toThrow();
    // the store is what the caller says when it knows
    rmSync(work, { recursive: true });
    const told = await readArchiveForUpload(Readable.from([saved.archive]), { workDir: work, containerdStore: true });
    expect(told.digest).toBe(img.digest);
  });

  test('containerd store holding a plain tar layer: served as it is, from any offset, though kept gzipped', async () => {
    const plain = await layerTar('plain', 150_000);
    const saved = await ociArchive({ layers: [plain, await gzippedLayer([await layerTar('z', 9)])] });
    const img = await readArchiveForUpload(Readable.from([saved.archive]), { workDir: work, containerdStore: true });
    expect(img.store).toBe('containerd');
    expect(img.layers[0]).toMatchObject({ digest: sha256(plain), size: plain.length });
    expect(img.layers[0].mediaType).toBe(MEDIA_TYPES.ociLayerTar);
    expect(await blobBytes(img.layers[0])).toEqual(plain);
    expect(await blobBytes(img.layers[0], 123_457)).toEqual(plain.subarray(123_457));
  });

  test('a blob whose bytes are not what its name says fails the read', async () => {
    const good = await layerTar('g', 100_000);
    const bad = Buffer.from(good);
    bad[bad.length - 2000] ^= 1;
    const archive = await pack([{ name: `blobs/sha256/${hex(sha256(good))}`, data: bad }]);
    await expect(readArchiveForUpload(Readable.from([archive]), { workDir: work })).rejects.toThrow(
      `is not what its name says: its bytes hash to ${sha256(bad)}`,
    );
  });

  test('a legacy layer that is not the one its config names fails the read', async () => {
    const saved = await legacyArchive({ layers: [await layerTar('orig', 1000)] });
    const files = await archiveFiles(saved.archive);
    const layerName = [...files.keys()].find((n) => n.endsWith('layer.tar')) as string;
    files.set(layerName, await layerTar('other', 1000));
    const archive = await pack([...files].map(([name, data]) => ({ name, data })));
    const err = await readArchiveForUpload(Readable.from([archive]), { workDir: work }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UploadError);
    expect((err as UploadError).phase).toBe('source');
    expect((err as Error).message).toMatch(/hashes to sha256:\w+, the config names sha256:\w+ \(layer 1\)/);
  });

  test('a cancel stops the read: the input is destroyed and the error says aborted', async () => {
    const layer = await layerTar('big', 500_000);
    const saved = await legacyArchive({ layers: [layer] });
    const ac = new AbortController();
    let sent = 0;
    const input = new Readable({
      read() {
        if (sent >= saved.archive.length / 2) return; // stalls half way, as a slow docker save would
        const next = saved.archive.subarray(sent, sent + 16_384);
        sent += next.length;
        this.push(next);
        if (sent >= 200_000) setImmediate(() => ac.abort(new Error('run cancelled')));
      },
    });
    const err = await readArchiveForUpload(input, { workDir: work, signal: ac.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UploadError);
    expect((err as UploadError).aborted).toBe(true);
    expect(input.destroyed).toBe(true);
  });
});

async function archiveFiles(archive: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const ex = tar.extract();
  Readable.from([archive]).pipe(ex);
  for await (const e of ex) {
    const parts: Buffer[] = [];
    for await (const c of e) parts.push(c as Buffer);
    if (e.header.type === 'file') out.set(e.header.name, Buffer.concat(parts));
  }
  return out;
}
