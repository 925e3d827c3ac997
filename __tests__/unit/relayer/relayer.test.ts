// relayerArchive on whole synthetic `docker save` archives, in each layout the engines write. The output
// is read back as `docker load` would: manifest.json -> config -> layers, and checked for the image it
// describes (same filesystem, diff IDs that are the layers' digests, history, tag).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { relayerArchive, type RelayerOptions, type RelayerReport } from '../../../src/layer-split/index.js';
import { legacyArchive, ociArchive, type ImageSpec, type SavedImage } from '../../../test/fixtures/relayer/archives.js';
import { filesystemOf } from '../../../test/fixtures/relayer/overlay.js';
import { runnerCommands } from '../../../test/support/runner-commands.js';
import {
  buildTar,
  d,
  f,
  hard,
  opaque,
  readArchiveFiles,
  sha256,
  sym,
  whiteout,
} from '../../../test/fixtures/relayer/tars.js';

const KB = 1024;
const LIMIT = 40 * KB;

let work: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'rp-relayer-unit-'));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

async function layers(): Promise<Buffer[]> {
  return [
    await buildTar([
      d('etc', { mode: 0o755 }),
      f('etc/os-release', 'base'),
      d('opq'),
      f('opq/lower', 'hidden later'),
      f('etc/remove-me', 'bye'),
    ]),
    await buildTar([
      d('app', { mode: 0o750, uid: 1000, gid: 1000, uname: 'app', gname: 'app' }),
      ...Array.from({ length: 8 }, (_, i) => f(`app/chunk-${i}.bin`, 12 * KB, { uid: 1000, gid: 1000 })),
      hard('app/chunk-0.link', 'app/chunk-0.bin'),
      sym('app/current', 'chunk-7.bin'),
      d('app/empty'),
      f('app/huge.bin', 60 * KB),
      whiteout('etc/remove-me'),
      opaque('opq'),
      f('opq/new', 'visible'),
    ]),
    await buildTar([f('etc/motd', 'top layer')]),
  ];
}

interface Loaded {
  files: Map<string, Buffer>;
  manifest: { Config: string; RepoTags: string[]; Layers: string[] };
  config: { rootfs: { diff_ids: string[] }; history: Array<{ created_by?: string; empty_layer?: boolean }> };
  configBytes: Buffer;
  layerTars: Buffer[];
}

async function load(archive: Buffer): Promise<Loaded> {
  const files = await readArchiveFiles(archive);
  const list = JSON.parse((files.get('manifest.json') as Buffer).toString()) as Loaded['manifest'][];
  expect(list).toHaveLength(1);
  const [manifest] = list;
  const configBytes = files.get(manifest.Config) as Buffer;
  const layerTars = manifest.Layers.map((l) => {
    const blob = files.get(l) as Buffer;
    return blob[0] === 0x1f && blob[1] === 0x8b ? gunzipSync(blob) : blob;
  });
  return { files, manifest, config: JSON.parse(configBytes.toString()), configBytes, layerTars };
}

async function run(
  saved: SavedImage,
  opts: Partial<RelayerOptions> = {},
): Promise<{ report: RelayerReport; out: Buffer; logs: string[] }> {
  const logs: string[] = [];
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (c: Buffer) => chunks.push(c));
  const report = await relayerArchive(Readable.from([saved.archive]), sink, {
    maxLayerSize: LIMIT,
    tag: 'relayered:1',
    workDir: work,
    log: (l) => logs.push(l),
    ...opts,
  });
  return { report, out: Buffer.concat(chunks), logs };
}

const layouts: Array<[string, (spec: ImageSpec) => Promise<SavedImage>, Partial<ImageSpec>]> = [
  ['legacy layout (engine A)', legacyArchive, {}],
  [
    'OCI layout with gzip layers and an attestation (engine B)',
    ociArchive,
    { gzip: [true, true, false], attestation: true },
  ],
  [
    'pure OCI layout (index.json only) with an attestation',
    ociArchive,
    { gzip: [false, true, true], attestation: true, withoutManifestJson: true },
  ],
];

describe.each(layouts)('relayerArchive: %s', (_name, make, extra) => {
  test('splits the big layer; the loaded image has the same filesystem, consistent digests, history and tag', async () => {
    const input = await layers();
    const saved = await make({ layers: input, ...extra });
    const { report, out, logs } = await run(saved);
    const loaded = await load(out);

    expect(report.changed).toBe(true);
    expect(loaded.manifest.RepoTags).toEqual(['relayered:1']);
    expect(report.configDigest).toBe(sha256(loaded.configBytes));
    // diff IDs are the digests of the (uncompressed) layer tars, in order
    expect(loaded.config.rootfs.diff_ids).toEqual(loaded.layerTars.map((t) => sha256(t)));
    // the report says what replaced what
    expect(report.layers.map((l) => l.diffId)).toEqual(saved.diffIds);
    expect(report.layers.flatMap((l) => l.pieces.map((p) => p.diffId))).toEqual(loaded.config.rootfs.diff_ids);
    const [, split] = report.layers;
    expect(split.pieces.length).toBeGreaterThanOrEqual(3);
    expect(report.layers[0].pieces).toEqual([{ diffId: saved.diffIds[0], size: input[0].length }]);
    expect(split.createdBy).toBe('COPY layer-2 / # buildkit');
    // pieces under the limit, except the one holding the unsplittable file
    const over = split.pieces.filter((p) => p.size > LIMIT);
    expect(over).toHaveLength(1);
    expect(report.unsplittable).toEqual([{ path: '/app/huge.bin', size: 60 * KB, layerDiffId: saved.diffIds[1] }]);
    expect(logs.join('\n')).toMatch(/unsplittable: \/app\/huge\.bin \(61\.4 kB, 61440 bytes\)/);
    // history: the split layer's entry became part i/n entries; the rest is untouched
    const createdBy = loaded.config.history.map((h) => h.created_by);
    const n = split.pieces.length;
    expect(createdBy).toEqual([
      'COPY layer-1 / # buildkit',
      'ENV A=1',
      ...Array.from({ length: n }, (_, i) => `COPY layer-2 / # buildkit (part ${i + 1}/${n})`),
      'COPY layer-3 / # buildkit',
    ]);
    // the same filesystem
    expect(await filesystemOf(loaded.layerTars)).toEqual(await filesystemOf(input));
    // config otherwise unchanged
    const strip = (c: Record<string, unknown>) => ({ ...c, rootfs: undefined, history: undefined });
    expect(strip(loaded.config as unknown as Record<string, unknown>)).toEqual(strip(JSON.parse(saved.config)));
    // only the image: no index, no attestation, nothing else
    expect([...loaded.files.keys()].sort()).toEqual(
      [...loaded.manifest.Layers, loaded.manifest.Config, 'manifest.json'].sort(),
    );
    // the work directory is left as it was given
    expect(readdirSync(work)).toEqual([]);
  });

  test('layers that are not split are passed through byte for byte (compressed ones stay compressed)', async () => {
    const input = await layers();
    const saved = await make({ layers: input, ...extra });
    const { out } = await run(saved);
    const inFiles = await readArchiveFiles(saved.archive);
    const outFiles = await readArchiveFiles(out);
    const { manifest } = await load(out);
    for (const name of [manifest.Layers[0], manifest.Layers[manifest.Layers.length - 1]]) {
      expect(outFiles.get(name)?.equals(inFiles.get(name) as Buffer)).toBe(true);
    }
  });
});

describe('relayerArchive options and edge cases', () => {
  test('split map: only the listed layers are split, to their own target', async () => {
    const input = await layers();
    const saved = await ociArchive({ layers: input, gzip: [true, true, true] });
    const { report, out } = await run(saved, { maxLayerSize: 4096, split: new Map([[saved.diffIds[1], 80 * KB]]) });
    expect(report.layers.map((l) => l.pieces.length > 1)).toEqual([false, true, false]);
    expect(report.unsplittable).toEqual([]); // the 60 kB file fits in 80 kB
    expect(report.layers[1].pieces.every((p) => p.size <= 80 * KB)).toBe(true);
    expect(await filesystemOf((await load(out)).layerTars)).toEqual(await filesystemOf(input));
  });

  test('a zstd layer is decompressed for splitting; its pieces are plain tars', async () => {
    const input = await layers();
    const saved = await ociArchive({ layers: input, zstd: [false, true, false] });
    const { report, out } = await run(saved);
    expect(report.layers[1].pieces.length).toBeGreaterThan(2);
    expect(await filesystemOf((await load(out)).layerTars)).toEqual(await filesystemOf(input));
  });

  test('a layer that is one file bigger than the limit is left whole and reported unsplittable', async () => {
    const input = [await buildTar([d('opt'), f('opt/blob.bin', 100 * KB)]), await buildTar([f('x', 'x')])];
    const saved = await legacyArchive({ layers: input });
    const { report, logs } = await run(saved);
    expect(report.changed).toBe(false);
    expect(report.unsplittable).toEqual([{ path: '/opt/blob.bin', size: 100 * KB, layerDiffId: saved.diffIds[0] }]);
    expect(logs.join('\n')).toMatch(/cannot be cut smaller: left whole/);
  });

  // Issue 18: whoever built the base image chose its file names; the relayer's log shows them as data.
  test.each([
    ['a newline and a command', 'opt/a\n::error title=pwned::owned', '/opt/a\\n::error title=pwned::owned'],
    ['a CR and a legacy command', 'opt/b\r##[error]legacy', '/opt/b\\r##\\[error]legacy'],
    ['an ESC sequence', 'opt/\x1b[2Kc', '/opt/\\e[2Kc'],
  ])('a file name with %s is logged as data, on one line, never as a command', async (_name, path, shown) => {
    const input = [
      await buildTar([d('opt'), f(path, 100 * KB), hard('opt/link', path), f('opt/z', 20 * KB)]),
      await buildTar([f('x', 'x')]),
    ];
    const { report, logs } = await run(await legacyArchive({ layers: input }));
    expect(report.unsplittable.map((u) => u.path)).toEqual([shown]);
    expect(logs.filter((l) => l.includes(shown)).length).toBeGreaterThanOrEqual(1);
    for (const line of logs) {
      expect(line.split(/\r\n|\r|\n/)).toEqual([line]);
      expect(runnerCommands(line)).toEqual([]);
    }
  });

  test('nothing to split: changed is false and the output is the same image, retagged', async () => {
    const input = await layers();
    const saved = await legacyArchive({ layers: input });
    const { report, out } = await run(saved, { maxLayerSize: 1024 * KB });
    const loaded = await load(out);
    expect(report.changed).toBe(false);
    expect(loaded.configBytes.toString()).toBe(saved.config);
    expect(loaded.manifest.RepoTags).toEqual(['relayered:1']);
    expect(report.unsplittable).toEqual([]);
  });

  test('nothing to split with skipUnchanged: nothing is written', async () => {
    const saved = await legacyArchive({ layers: await layers() });
    const { report, out } = await run(saved, { maxLayerSize: 1024 * KB, skipUnchanged: true });
    expect(report.changed).toBe(false);
    expect(out.length).toBe(0);
  });

  test('an identical layer listed twice (older docker save links it) is split once and listed twice', async () => {
    const big = await buildTar(Array.from({ length: 6 }, (_, i) => f(`d/f${i}`, 12 * KB)));
    const saved = await legacyArchive({ layers: [big, await buildTar([f('x', 'x')]), big], symlinkDuplicates: true });
    const { report, out } = await run(saved);
    const loaded = await load(out);
    expect(report.layers[0].pieces).toEqual(report.layers[2].pieces);
    expect(loaded.manifest.Layers.filter((l) => l.startsWith('relayer/'))).toHaveLength(
      report.layers[0].pieces.length * 2,
    );
    expect(new Set(loaded.manifest.Layers).size).toBe(report.layers[0].pieces.length + 1);
  });

  test("a layer whose bytes do not match the config's diff ID is refused", async () => {
    const input = await layers();
    const saved = await legacyArchive({ layers: input });
    const tampered = Buffer.from(saved.archive);
    const at = tampered.indexOf(Buffer.from('top layer'));
    tampered.write('TOP', at);
    await expect(run({ ...saved, archive: tampered })).rejects.toThrow(/has diff ID sha256:\w+ but the config says/);
  });

  test('an archive of several images, or of none, is refused', async () => {
    const saved = await legacyArchive({ layers: await layers() });
    const files = await readArchiveFiles(saved.archive);
    const [m] = JSON.parse((files.get('manifest.json') as Buffer).toString());
    files.set('manifest.json', Buffer.from(JSON.stringify([m, { ...m, RepoTags: ['other:1'] }])));
    const two = await buildTar([...files].map(([name, data]) => f(name, data)));
    await expect(run({ ...saved, archive: two })).rejects.toThrow(/manifest\.json lists 2 images/);
    await expect(run({ ...saved, archive: await buildTar([f('hello.txt', 'not an image')]) })).rejects.toThrow(
      /no index\.json/,
    );
  });

  test("the input is consumed from the call on: a child's stdout is not left for Node to discard on exit", async () => {
    const saved = await legacyArchive({ layers: [await buildTar([f('x', 'x')])] });
    const input = new PassThrough();
    const running = relayerArchive(input, new PassThrough().resume(), {
      maxLayerSize: LIMIT,
      tag: 't:1',
      workDir: work,
      log: () => undefined,
    });
    // child_process drains a stdout with no reader when the child exits; a piped stream has one
    expect(input.listenerCount('data')).toBeGreaterThan(0);
    input.end(saved.archive);
    await running;
  });

  test.each([
    [{ maxLayerSize: 100 }, /maxLayerSize must be/],
    [{ tag: '' }, /tag must be/],
    [{ split: new Map([['sha256:x', 10]]) }, /split size/],
  ])('options are validated: %p', async (opts, message) => {
    const saved = await legacyArchive({ layers: [await buildTar([f('x', 'x')])] });
    await expect(run(saved, opts as Partial<RelayerOptions>)).rejects.toThrow(message);
  });
});
