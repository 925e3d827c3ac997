// The relayer on real engines (issue 5): an image whose layers cover every rule (owners, modes, hardlinks,
// symlinks, empty directories, a fifo and a device, a whiteout of a lower file, an opaque directory, a layer
// by the classic builder on engine A and by BuildKit on engine B) is relayered with a 64 KiB limit and loaded
// back; then both images are exported from containers and compared path by path.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { relayerImage, type RelayerReport } from '../../src/layer-split/index.js';
import { legacyArchive } from '../../test/fixtures/relayer/archives.js';
import { exportFilesystem, type ExportedEntry } from '../../test/support/export.js';
import { buildTar, d, f, hard, opaque, pattern, sym, whiteout } from '../../test/fixtures/relayer/tars.js';
import { describeEachEngine, docker, uniqueName, type Engine } from '../../test/support/images.js';

const KB = 1024;
const LIMIT = 64 * KB;

/** The base image: a lower layer with everything, and a layer that deletes (whiteout, opaque directory). */
async function baseLayers(): Promise<Buffer[]> {
  const lower = await buildTar([
    d('etc', { mode: 0o755 }),
    f('etc/os-release', 'ID=relayer-test\n'),
    f('etc/remove-me', 5 * KB),
    d('opq', { mode: 0o750, uid: 10, gid: 10 }),
    f('opq/lower-a', 3 * KB),
    f('opq/lower-b', 9 * KB, { uid: 10 }),
    d('srv', { mode: 0o2775, uid: 1000, gid: 1000 }),
    ...[4, 12, 30, 45, 60, 90, 120].map((kb, i) =>
      f(`srv/data-${i}`, kb * KB, {
        mode: [0o600, 0o640, 0o644, 0o755, 0o4755, 0o400, 0o664][i],
        uid: 1000 + i,
        gid: 2000 + i,
      }),
    ),
    hard('srv/data-0.hard', 'srv/data-0'),
    d('bin', { mode: 0o755 }),
    hard('bin/data-0.alias', 'srv/data-0'),
    sym('srv/latest', 'data-3'),
    sym('etc/absolute', '/srv/data-1'),
    d('var', { mode: 0o755 }),
    d('var/empty', { mode: 0o1777 }),
    d('var/lib', { mode: 0o755 }),
    d('var/lib/empty-owned', { mode: 0o700, uid: 5, gid: 6 }),
    d('run'),
    { name: 'run/queue', type: 'fifo', mode: 0o620, uid: 4, gid: 5 },
    d('opt'),
    { name: 'opt/devnode', type: 'character-device', devmajor: 1, devminor: 5, mode: 0o666 },
  ]);
  const deleting = await buildTar([
    d('etc', { mode: 0o755 }),
    whiteout('etc/remove-me'),
    d('opq', { mode: 0o750, uid: 10, gid: 10 }),
    opaque('opq'),
    f('opq/new', 8 * KB),
    d('srv2', { mode: 0o755, uid: 7, gid: 7 }),
    ...Array.from({ length: 8 }, (_, i) => f(`srv2/part-${i}`, (10 + i * 3) * KB, { uid: 7, gid: 7, mode: 0o640 })),
    hard('srv2/part-7.link', 'srv2/part-7'),
  ]);
  return [lower, deleting];
}

function buildContext(dir: string, base: string): void {
  mkdirSync(join(dir, 'app', 'lib'), { recursive: true });
  for (let i = 0; i < 10; i++)
    writeFileSync(join(dir, 'app', i % 2 ? 'lib' : '', `mod-${i}.js`), pattern(`mod-${i}`, (5 + i * 4) * KB));
  writeFileSync(join(dir, 'big.bin'), pattern('big', 200 * KB));
  writeFileSync(join(dir, 'small.txt'), 'small\n');
  writeFileSync(
    join(dir, 'Dockerfile'),
    [
      `FROM ${base}`,
      'COPY app/ /app/',
      'COPY --chown=4242:4343 big.bin /opt/big.bin',
      'ENV RELAYER_TEST=1',
      'COPY small.txt /etc/small.txt',
      'CMD ["/nothing"]',
      '',
    ].join('\n'),
  );
}

describeEachEngine('relayer on $label', (eng: Engine) => {
  const base = `${uniqueName('rp-relayer-base')}:1`;
  const built = `${uniqueName('rp-relayer-built')}:1`;
  const relayered = `${uniqueName('rp-relayer-out')}:1`;
  const dirs: string[] = [];
  const env = { ...process.env, DOCKER_HOST: eng.host };
  let report: RelayerReport;
  let logs: string[];

  beforeAll(async () => {
    const saved = await legacyArchive({ layers: await baseLayers(), tag: base });
    const work = mkdtempSync(join(tmpdir(), 'rp-relayer-e2e-'));
    dirs.push(work);
    writeFileSync(join(work, 'base.tar'), saved.archive);
    await docker(eng.host, ['load', '-i', join(work, 'base.tar')]);
    const ctx = join(work, 'ctx');
    mkdirSync(ctx);
    buildContext(ctx, base);
    if (eng.name === 'A') await docker(eng.host, ['build', '-q', '-t', built, ctx], { DOCKER_BUILDKIT: '0' });
    else await docker(eng.host, ['buildx', 'build', '-q', '--load', '-t', built, ctx]);
    logs = [];
    report = await relayerImage(built, {
      maxLayerSize: LIMIT,
      tag: relayered,
      workDir: work,
      log: (l) => logs.push(l),
      env,
    });
  });

  afterAll(async () => {
    await docker(eng.host, ['image', 'rm', '-f', relayered, built, base]).catch(() => undefined);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test('layers over the limit are split; the engine lists the pieces as the report says', async () => {
    const inspect = async (ref: string) =>
      JSON.parse(await docker(eng.host, ['image', 'inspect', '--format', '{{json .}}', ref])) as {
        Id: string;
        RootFS: { Layers: string[] };
      };
    const [before, after] = await Promise.all([inspect(built), inspect(relayered)]);
    expect(report.changed).toBe(true);
    expect(report.layers.map((l) => l.diffId)).toEqual(before.RootFS.Layers);
    expect(after.RootFS.Layers).toEqual(report.layers.flatMap((l) => l.pieces.map((p) => p.diffId)));
    expect(after.RootFS.Layers.length).toBeGreaterThan(before.RootFS.Layers.length + 4);
    // base lower layer, deleting layer and the COPY app/ layer are all over 64 KiB
    expect(report.layers.filter((l) => l.pieces.length > 1).length).toBeGreaterThanOrEqual(3);
    for (const l of report.layers)
      for (const p of l.pieces)
        if (l.pieces.length > 1 && p.size > LIMIT) expect(report.unsplittable.length).toBeGreaterThan(0);
    // the classic store names an image by its config digest
    if (eng.name === 'A') expect(after.Id).toBe(report.configDigest);
  });

  test('history has a "part i/n" entry per piece', async () => {
    const history = (await docker(eng.host, ['history', '--no-trunc', '--format', '{{.CreatedBy}}', relayered]))
      .split('\n')
      .reverse();
    for (const l of report.layers.filter((x) => x.pieces.length > 1)) {
      const n = l.pieces.length;
      for (let i = 1; i <= n; i++)
        expect(history.filter((h) => h.endsWith(`(part ${i}/${n})`)).length).toBeGreaterThan(0);
      expect(history.some((h) => h.includes(l.createdBy) && h.endsWith(`(part ${n}/${n})`))).toBe(true);
    }
    expect(history.some((h) => h.includes('RELAYER_TEST=1'))).toBe(true);
  });

  test('files bigger than the limit are reported unsplittable, with path, size and layer', () => {
    const [lower, , , big] = report.layers;
    expect(report.unsplittable).toEqual([
      { path: '/srv/data-5', size: 90 * KB, layerDiffId: lower.diffId },
      { path: '/srv/data-6', size: 120 * KB, layerDiffId: lower.diffId },
      { path: '/opt/big.bin', size: 200 * KB, layerDiffId: big.diffId },
    ]);
    // the classic builder writes `#(nop) COPY --chown=4242:4343file:<sum> in /opt/big.bin`
    expect(big.createdBy).toMatch(/COPY --chown=4242:4343.*\/opt\/big\.bin/);
    expect(logs.join('\n')).toMatch(/unsplittable: \/opt\/big\.bin \(205 kB, 204800 bytes\)/);
  });

  test('the relayered image has exactly the same filesystem (type, mode, owner, size, content, links)', async () => {
    const [original, copy] = await Promise.all([
      exportFilesystem(eng.host, built),
      exportFilesystem(eng.host, relayered),
    ]);
    expect(copy).toEqual(original);
    // and the image is the one intended: the deleting layer took effect, links and owners are there
    const fs: Record<string, ExportedEntry> = original;
    expect(fs['etc/remove-me']).toBeUndefined();
    expect(fs['opq/lower-a']).toBeUndefined();
    expect(fs['opq/new']).toMatchObject({ type: 'file', size: 8 * KB });
    expect(fs['srv/data-0'].hardlinks).toEqual(['bin/data-0.alias', 'srv/data-0', 'srv/data-0.hard']);
    expect(fs['srv2/part-7'].hardlinks).toEqual(['srv2/part-7', 'srv2/part-7.link']);
    expect(fs['srv/latest']).toMatchObject({ type: 'symlink', linkname: 'data-3' });
    // (the export's mode field may carry the file type bits too)
    expect(fs['var/lib/empty-owned']).toMatchObject({ type: 'directory', uid: 5, gid: 6 });
    expect(fs['var/lib/empty-owned'].mode & 0o7777).toBe(0o700);
    expect(fs['srv/data-4']).toMatchObject({ uid: 1004, gid: 2004 });
    expect(fs['srv/data-4'].mode & 0o7777).toBe(0o4755);
    expect(fs['opt/big.bin']).toMatchObject({ uid: 4242, gid: 4343, size: 200 * KB });
    expect(fs['run/queue']).toMatchObject({ type: 'fifo' });
    expect(fs['opt/devnode']).toMatchObject({ type: 'character-device' });
  });
});
