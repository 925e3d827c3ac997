// The oci: and oci-archive: sources over layouts the test writes: the image model they open to (the nested index,
// its bytes exact; a blob's bytes as the layout holds them), and the errors for what is not a usable layout.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Readable } from 'node:stream';
import type { BlobSource } from '../../../src/image/blob-source.js';
import type { OpenedImage } from '../../../src/image/image-model.js';
import { openOciArchive } from '../../../src/image/sources/oci-archive-source.js';
import { openOciLayout } from '../../../src/image/sources/oci-layout-source.js';
import {
  blobPath,
  buildLayout,
  packFiles,
  sha,
  writeFiles,
  type LayoutFixture,
} from '../../../test/fixtures/sources/layouts.js';

let work: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'rp-layout-src-'));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const read = (b: BlobSource, offset = 0) => readAll(b.open(offset));

type Kind = 'dir' | 'tar';
let opened = 0;
async function open(kind: Kind, files: ReadonlyMap<string, Buffer>, ref: string | null = null): Promise<OpenedImage> {
  const opts = { workDir: join(work, 'w') };
  if (kind === 'dir') {
    const dir = join(work, `layout-${++opened}`);
    writeFiles(dir, files);
    return openOciLayout(dir, ref, opts);
  }
  const file = join(work, `layout-${++opened}.tar`);
  writeFileSync(file, await packFiles(files, './'));
  return openOciArchive(file, ref, opts);
}

function edited(fixture: LayoutFixture, edit: (files: Map<string, Buffer>) => void): Map<string, Buffer> {
  const files = new Map(fixture.files);
  edit(files);
  return files;
}

describe.each<Kind>(['dir', 'tar'])('an OCI layout (%s)', (kind) => {
  test('opens to the nested index, bytes exact, with its platforms and attestations, every blob readable', async () => {
    const fx = await buildLayout({ seed: `open-${kind}` });
    const opened = await open(kind, fx.files);
    const image = opened.image;
    if (image.kind !== 'index') throw new Error(`expected an index, got ${image.kind}`);
    expect(image.bytes.equals(fx.index)).toBe(true);
    expect(image.digest).toBe(fx.indexDigest);
    expect(image.descriptors).toHaveLength(4);
    expect(image.manifests.map((m) => [m.platform, m.digest])).toEqual(fx.platforms.map((p) => [p.platform, p.digest]));
    expect(image.attestations.map((a) => a.digest)).toEqual(fx.attestations.map((a) => a.digest));
    for (const [i, m] of image.manifests.entries()) {
      expect(m.bytes.equals(fx.platforms[i].manifest)).toBe(true);
      expect((await read(m.config)).equals(fx.platforms[i].config)).toBe(true);
      expect((await read(m.layers[0])).equals(fx.platforms[i].layer)).toBe(true);
      expect((await read(m.layers[0], 5)).equals(fx.platforms[i].layer.subarray(5))).toBe(true);
      expect(m.layers[0].size).toBe(fx.platforms[i].layer.length);
    }
    expect(opened.name).toMatch(kind === 'dir' ? /^oci:/ : /^oci-archive:/);
  });

  test('REF picks the entry of that ref name; one the layout lacks is an error listing what it has', async () => {
    const a = await buildLayout({ seed: 'a', annotations: { 'org.opencontainers.image.ref.name': '1.0' } });
    const b = await buildLayout({ seed: 'b', annotations: { 'org.opencontainers.image.ref.name': '2.0' } });
    const files = new Map([...a.files, ...b.files]);
    const top = (fx: LayoutFixture) => JSON.parse(fx.files.get('index.json')!.toString()).manifests[0];
    files.set('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [top(a), top(b)] })));
    const two = await open(kind, files, '2.0');
    expect(two.image.digest).toBe(b.indexDigest);
    await expect(open(kind, files, '3.0')).rejects.toThrow(
      `index.json lists no image named "3.0" (it has 1.0 (${a.indexDigest}), 2.0 (${b.indexDigest}))`,
    );
    await expect(open(kind, files)).rejects.toThrow('index.json lists 2 images (1.0');
  });

  test('an entry that is one manifest opens to that manifest', async () => {
    const fx = await buildLayout({ seed: 'single', platforms: ['linux/amd64'], attestations: false });
    const p = fx.platforms[0];
    const files = edited(fx, (fs) =>
      fs.set(
        'index.json',
        Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            manifests: [
              { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: p.digest, size: p.manifest.length },
            ],
          }),
        ),
      ),
    );
    const image = (await open(kind, files)).image;
    expect(image.kind).toBe('manifest');
    expect(image.digest).toBe(p.digest);
    // no platform in the descriptor: the config says
    expect(image.kind === 'manifest' && image.platform).toBe('linux/amd64');
  });

  test('a missing blob is an error naming it', async () => {
    const fx = await buildLayout({ seed: `missing-${kind}` });
    const layer = sha(fx.platforms[1].layer);
    await expect(
      open(
        kind,
        edited(fx, (fs) => fs.delete(blobPath(layer))),
      ),
    ).rejects.toThrow(`the layout lacks the layer ${layer}`);
    await expect(
      open(
        kind,
        edited(fx, (fs) => fs.delete(blobPath(fx.indexDigest))),
      ),
    ).rejects.toThrow(`the layout lacks the index ${fx.indexDigest}`);
  });

  test('a document whose bytes are not its digest is an error naming it', async () => {
    const fx = await buildLayout({ seed: `bad-doc-${kind}` });
    const m = fx.platforms[0];
    const tampered = Buffer.from(m.manifest.toString().replace('"schemaVersion":2', '"schemaVersion":2 '));
    await expect(
      open(
        kind,
        edited(fx, (fs) => fs.set(blobPath(m.digest), tampered)),
      ),
    ).rejects.toThrow(`the manifest ${m.digest} does not match its bytes (they hash to ${sha(tampered)})`);
  });

  test('a layer whose bytes are not its digest fails its read at the end, naming it', async () => {
    const fx = await buildLayout({ seed: `bad-layer-${kind}` });
    const layer = fx.platforms[0].layer;
    const flipped = Buffer.from(layer);
    flipped[flipped.length - 1] ^= 0xff;
    const opened = await open(
      kind,
      edited(fx, (fs) => fs.set(blobPath(sha(layer)), flipped)),
    );
    const blob = opened.image.kind === 'index' ? opened.image.manifests[0].layers[0] : null;
    await expect(read(blob as BlobSource)).rejects.toThrow(`the layer ${sha(layer)} does not match its bytes`);
  });

  test('a document over 4 MiB is refused before it is read', async () => {
    const fx = await buildLayout({ seed: `big-${kind}` });
    const top = JSON.parse(fx.files.get('index.json')!.toString());
    top.manifests[0].size = 5 * 1024 * 1024;
    const files = edited(fx, (fs) => fs.set('index.json', Buffer.from(JSON.stringify(top))));
    await expect(open(kind, files)).rejects.toThrow('is 5242880 bytes, over the 4194304 a document may be');
  });

  test('no oci-layout file: not an OCI layout', async () => {
    const fx = await buildLayout({ seed: `nolayout-${kind}` });
    await expect(
      open(
        kind,
        edited(fx, (fs) => fs.delete('oci-layout')),
      ),
    ).rejects.toThrow('it has no oci-layout file');
  });
});

describe('oci: errors', () => {
  test('no such directory', async () => {
    await expect(openOciLayout(join(work, 'nope'), null, { workDir: work })).rejects.toThrow(
      `oci:${join(work, 'nope')}: no such directory`,
    );
  });
  test('a file is not a layout directory', async () => {
    writeFileSync(join(work, 'file'), 'x');
    await expect(openOciLayout(join(work, 'file'), null, { workDir: work })).rejects.toThrow('is not a directory');
  });
});

describe('oci-archive: errors', () => {
  test('a gzipped tarball is refused saying so', async () => {
    const fx = await buildLayout({ seed: 'gz' });
    writeFileSync(join(work, 'x.tar.gz'), gzipSync(await packFiles(fx.files)));
    await expect(openOciArchive(join(work, 'x.tar.gz'), null, { workDir: work })).rejects.toThrow('is gzip-compressed');
  });
  test('a file that is no tar is refused', async () => {
    writeFileSync(join(work, 'x.txt'), 'not a tar at all\n'.repeat(100));
    await expect(openOciArchive(join(work, 'x.txt'), null, { workDir: work })).rejects.toThrow('is not a tar file');
  });
  test('a tar cut short is refused', async () => {
    const fx = await buildLayout({ seed: 'cut' });
    const tar = await packFiles(fx.files);
    writeFileSync(join(work, 'cut.tar'), tar.subarray(0, 1500));
    await expect(openOciArchive(join(work, 'cut.tar'), null, { workDir: work })).rejects.toThrow(
      'is not a valid tar file',
    );
  });
  test('no such file', async () => {
    await expect(openOciArchive(join(work, 'none.tar'), null, { workDir: work })).rejects.toThrow('no such file');
  });
});
