// The split rules, each on a synthetic layer built with tar-stream. Every case also checks the property the
// rules exist for: the pieces, applied in order over the same lower layer, build exactly the filesystem the
// original layer builds (test/fixtures/relayer/overlay.ts models how layers are applied), and every entry
// of the layer reaches the pieces byte for byte.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawStore } from '../../../src/image/tar-scanner.js';
import { filesystemOf } from '../../../test/fixtures/relayer/overlay.js';
import { splitLayer, type SplitResult } from '../../../test/fixtures/relayer/split.js';
import {
  buildTar,
  d,
  f,
  hard,
  opaque,
  readTar,
  sym,
  whiteout,
  type ReadEntry,
  type Spec,
} from '../../../test/fixtures/relayer/tars.js';

const KB = 1024;

interface Case {
  name: string;
  lower?: Spec[];
  layer: Spec[];
  target: number;
  /** Minimum number of pieces the case must produce. */
  minPieces: number;
  /** The original layer is one a per-layer applier (overlay2) cannot apply on its own: skip the model. */
  skipModel?: boolean;
  check?: (r: SplitResult, pieces: ReadEntry[][]) => void;
}

function names(piece: ReadEntry[]): string[] {
  return piece.map((e) => e.header.name.replace(/\/$/, ''));
}

function pieceOf(pieces: ReadEntry[][], name: string): number[] {
  return pieces.flatMap((p, i) => (names(p).includes(name) ? [i] : []));
}

function headerFields(e: ReadEntry) {
  const { mode, uid, gid, uname, gname, mtime, type } = e.header;
  return { mode, uid, gid, uname, gname, mtime, type };
}

const files = (dir: string, n: number, size: number, extra: Partial<Spec> = {}) =>
  Array.from({ length: n }, (_, i) => f(`${dir}/file-${i}`, size, extra));

const cases: Case[] = [
  {
    name: 'whiteouts and opaque markers go in the first piece, with their parent directories',
    lower: [d('a'), f('a/old', 'lower'), f('a/keep', 'lower'), d('b'), f('b/lower-only', 'lower')],
    layer: [
      d('a', { mode: 0o751, uid: 7, gid: 8, uname: 'seven', gname: 'eight' }),
      ...files('a', 6, 20 * KB),
      d('b', { mode: 0o700 }),
      ...files('b', 6, 20 * KB),
      whiteout('a/old'),
      opaque('b'),
      f('b/new', 'upper'),
    ],
    target: 48 * KB,
    minPieces: 4,
    check: (r, pieces) => {
      expect(names(pieces[0]).slice(0, 4)).toEqual(['a', 'a/.wh.old', 'b', 'b/.wh..wh..opq']);
      // the directory re-emitted for the whiteout is not repeated when its own turn comes
      expect(names(pieces[0]).filter((n) => n === 'a')).toHaveLength(1);
      expect(
        pieces
          .slice(1)
          .flatMap(names)
          .filter((n) => n.includes('.wh.')),
      ).toEqual([]);
      const a = pieces[0].find((e) => e.header.name.replace(/\/$/, '') === 'a') as ReadEntry;
      expect(headerFields(a)).toMatchObject({ mode: 0o751, uid: 7, gid: 8, uname: 'seven', gname: 'eight' });
      expect(r.plan.oversized).toEqual([]);
    },
  },
  {
    name: 'each piece re-emits the parent directories of its entries, with the original attributes',
    layer: [
      d('usr', { mode: 0o755, uid: 0, gid: 0, mtime: 1_600_000_000 }),
      d('usr/share', { mode: 0o775, uid: 10, gid: 20, uname: 'ten', gname: 'twenty', mtime: 1_600_000_100 }),
      d('usr/share/empty', { mode: 0o700, uid: 30, gid: 40 }),
      d('usr/share/doc', { mode: 0o711, uid: 50, gid: 60, mtime: 1_600_000_200 }),
      ...files('usr/share/doc', 10, 15 * KB, { uid: 1000, gid: 1000 }),
    ],
    target: 40 * KB,
    minPieces: 4,
    check: (r, pieces) => {
      const original = new Map<string, ReadEntry>();
      for (const p of pieces) for (const e of p) if (!original.has(names([e])[0])) original.set(names([e])[0], e);
      for (const p of pieces) {
        const seen: string[] = [];
        for (const e of p) {
          const n = names([e])[0];
          const parts = n.split('/');
          for (let i = 1; i < parts.length; i++) {
            const parent = parts.slice(0, i).join('/');
            expect(seen).toContain(parent);
          }
          seen.push(n);
        }
        // no directory twice in one piece
        const dirs = p.filter((e) => e.header.type === 'directory').map((e) => names([e])[0]);
        expect(new Set(dirs).size).toBe(dirs.length);
        for (const e of p.filter((x) => x.header.type === 'directory')) {
          expect(headerFields(e)).toEqual(headerFields(original.get(names([e])[0]) as ReadEntry));
        }
      }
      // the empty directory exists once, where it was
      expect(pieceOf(pieces, 'usr/share/empty')).toEqual([0]);
      expect(r.plan.pieces.every((p) => p.size <= 40 * KB)).toBe(true);
    },
  },
  {
    name: 'a hardlink goes into the piece of its target, after it (chains too)',
    layer: [
      d('bin'),
      f('bin/tool', 10 * KB, { mode: 0o755, uid: 2, gid: 3 }),
      ...files('data', 8, 15 * KB),
      hard('bin/tool-alias', 'bin/tool'),
      hard('bin/tool-alias2', 'bin/tool-alias'),
      f('z-last', 'z'),
    ],
    target: 40 * KB,
    minPieces: 3,
    check: (_r, pieces) => {
      const [p] = pieceOf(pieces, 'bin/tool');
      expect(pieceOf(pieces, 'bin/tool-alias')).toEqual([p]);
      expect(pieceOf(pieces, 'bin/tool-alias2')).toEqual([p]);
      const order = names(pieces[p]);
      expect(order.indexOf('bin/tool')).toBeLessThan(order.indexOf('bin/tool-alias'));
      expect(order.indexOf('bin/tool-alias')).toBeLessThan(order.indexOf('bin/tool-alias2'));
      expect(pieceOf(pieces, 'z-last')).toEqual([pieces.length - 1]);
    },
  },
  {
    name: 'a hardlink whose target is in an earlier layer stays where it is',
    lower: [f('lib/base.so', 'from below')],
    layer: [...files('a', 4, 15 * KB), hard('lib/base-link.so', 'lib/base.so'), ...files('b', 4, 15 * KB)],
    target: 40 * KB,
    minPieces: 3,
    skipModel: true, // overlay2 cannot link across layers; the relayer must not make that worse or better
    check: (_r, pieces) => {
      const [p] = pieceOf(pieces, 'lib/base-link.so');
      expect(pieceOf(pieces, 'a/file-3')[0] === p || pieceOf(pieces, 'b/file-0')[0] === p).toBe(true);
      const all = pieces.flatMap(names).filter((n) => !n.endsWith('lib') && n !== '');
      expect(all.indexOf('lib/base-link.so')).toBe(all.indexOf('a/file-3') + 1);
    },
  },
  {
    name: 'a hardlink that may not move ahead of an entry for its own path keeps target..link in one piece',
    layer: [
      f('t', 8 * KB),
      f('l', 'a file at the link path'),
      ...files('m', 2, 10 * KB),
      hard('l', 't'),
      ...files('n', 4, 15 * KB),
    ],
    target: 40 * KB,
    minPieces: 2,
    check: (_r, pieces) => {
      const [p] = pieceOf(pieces, 't');
      const inP = names(pieces[p]);
      expect(inP.filter((n) => n === 'l')).toHaveLength(2);
      expect(inP.lastIndexOf('l')).toBeGreaterThan(inP.indexOf('m/file-1'));
    },
  },
  {
    name: 'symlinks, devices, fifos, xattrs, empty directories, modes, owners and mtimes are kept',
    layer: [
      d('dev', { mode: 0o755 }),
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660, gid: 6 },
      ...files('big', 3, 15 * KB),
      { name: 'run/queue', type: 'fifo', mode: 0o620, uid: 4, gid: 5 },
      d('run'),
      sym('etc/localtime', '/usr/share/zoneinfo/UTC', { uid: 9, mtime: 1_500_000_000 }),
      f('etc/caps', 'binary', {
        mode: 0o4755,
        pax: { 'SCHILY.xattr.security.capability': 'AQAAAgAgAAAAAAAAAAAAAAAAAAA', 'SCHILY.xattr.user.x': 'y' },
      }),
      d('var/empty', { mode: 0o1777 }),
      ...files('more', 3, 15 * KB),
      f('setgid', 'g', { mode: 0o2750, uid: 65534, gid: 65534, uname: 'nobody', gname: 'nogroup', mtime: 1 }),
    ],
    target: 40 * KB,
    minPieces: 3,
    check: (_r, pieces) => {
      const all = pieces.flat();
      const caps = all.find((e) => e.header.name === 'etc/caps') as ReadEntry;
      expect(caps.header.pax).toMatchObject({ 'SCHILY.xattr.user.x': 'y' });
      expect(all.find((e) => e.header.name === 'dev/sda')?.header).toMatchObject({
        type: 'block-device',
        devmajor: 8,
        devminor: 0,
      });
    },
  },
  {
    name: 'entry order is kept: a later entry for the same path still wins',
    layer: [
      f('conf', 'first version'),
      ...files('x', 4, 15 * KB),
      f('conf', 'second version'),
      ...files('y', 2, 15 * KB),
      d('dup', { mode: 0o700 }),
      d('dup', { mode: 0o755 }),
    ],
    target: 40 * KB,
    minPieces: 3,
    check: (_r, pieces) => {
      const at = pieceOf(pieces, 'conf');
      expect(at).toHaveLength(2);
      expect(at[0]).toBeLessThan(at[1]);
      const conf = pieces[at[1]].find((e) => e.header.name === 'conf') as ReadEntry;
      expect(conf.data.toString()).toBe('second version');
    },
  },
  {
    name: 'a single file bigger than the limit gets a piece of its own (plus parents) and is reported',
    layer: [
      d('opt', { mode: 0o705 }),
      f('opt/small-1', 10 * KB),
      f('opt/huge.bin', 100 * KB),
      f('opt/small-2', 10 * KB),
    ],
    target: 40 * KB,
    minPieces: 3,
    check: (r, pieces) => {
      const [p] = pieceOf(pieces, 'opt/huge.bin');
      expect(names(pieces[p])).toEqual(['', 'opt', 'opt/huge.bin'].filter((n) => n !== ''));
      expect(r.plan.oversized).toEqual([{ path: 'opt/huge.bin', size: 100 * KB, reason: 'single-entry' }]);
      expect(r.plan.pieces.filter((x) => x.size > 40 * KB)).toHaveLength(1);
    },
  },
  {
    name: 'a layer that fits stays one piece',
    layer: [d('a'), f('a/b', 1 * KB)],
    target: 40 * KB,
    minPieces: 1,
    check: (r) => expect(r.plan.pieces).toHaveLength(1),
  },
];

describe('splitting a layer', () => {
  test.each(cases)('$name', async (c) => {
    const lower = c.lower ? [await buildTar(c.lower)] : [];
    const layer = await buildTar(c.layer);
    const result = await splitLayer(layer, c.target);
    const pieces = await Promise.all(result.pieces.map(readTar));
    expect(result.pieces.length).toBeGreaterThanOrEqual(c.minPieces);

    // sizes: what the plan announced is what was written, and under the target unless reported
    for (const [i, p] of result.plan.pieces.entries()) {
      expect(result.pieces[i].length).toBe(p.size);
      if (result.plan.oversized.length === 0) expect(p.size).toBeLessThanOrEqual(c.target);
    }

    // every entry of the layer reaches some piece byte for byte
    const pieceBytes = Buffer.concat(result.pieces);
    for (const e of result.entries) expect(pieceBytes.includes(layer.subarray(e.start, e.end))).toBe(true);

    if (!c.skipModel)
      expect(await filesystemOf([...lower, ...result.pieces])).toEqual(await filesystemOf([...lower, layer]));
    c.check?.(result, pieces);
  });

  test('the model notices a missing parent directory: what re-emitting parents prevents', async () => {
    const whole = await buildTar([d('a', { mode: 0o700, uid: 5 }), f('a/x', 'x')]);
    const naive = [await buildTar([d('a', { mode: 0o700, uid: 5 })]), await buildTar([f('a/x', 'x')])];
    expect(await filesystemOf(naive)).not.toEqual(await filesystemOf([whole]));
  });

  test('the model notices a hardlink split from its target: what keeping them together prevents', async () => {
    const naive = [await buildTar([f('t', 't')]), await buildTar([hard('l', 't')])];
    await expect(filesystemOf(naive)).rejects.toThrow(/target not in this layer/);
  });

  test('the model notices a whiteout placed after the entries it would hide', async () => {
    const lower = await buildTar([d('b'), f('b/lower', 'l')]);
    const whole = await buildTar([d('b'), f('b/new', 'n'), opaque('b')]);
    const late = [await buildTar([d('b'), f('b/new', 'n')]), await buildTar([d('b'), opaque('b')])];
    expect(await filesystemOf([lower, ...late])).not.toEqual(await filesystemOf([lower, whole]));
  });
});

/** mulberry32: a seeded generator, so a failing case can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random but valid lower layer and layer: whiteouts name lower paths, hardlinks name files of the layer. */
function randomLayers(seed: number): { lower: Spec[]; layer: Spec[]; target: number } {
  const r = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const dirs = ['a', 'a/b', 'a/b/c', 'd', 'd/e', 'f'];
  const lower: Spec[] = [];
  const lowerPaths: string[] = [];
  for (const dir of dirs) lower.push(d(dir));
  for (let i = 0; i < 12; i++) {
    const p = `${pick(dirs)}/lower-${i}`;
    lower.push(f(p, Math.floor(r() * 3000)));
    lowerPaths.push(p);
  }
  const layer: Spec[] = [];
  const files: string[] = [];
  const used = new Set<string>();
  const n = 20 + Math.floor(r() * 40);
  for (let i = 0; i < n; i++) {
    const dir = pick(dirs);
    const roll = r();
    if (roll < 0.15) {
      layer.push(d(dir, { mode: pick([0o755, 0o700, 0o750]), uid: Math.floor(r() * 3), mtime: 1_600_000_000 + i }));
    } else if (roll < 0.55) {
      const p = r() < 0.15 && files.length ? pick(files) : `${dir}/file-${i}`; // sometimes a duplicate path
      layer.push(
        f(p, Math.floor(r() * 20 * KB), {
          mode: pick([0o644, 0o600, 0o755]),
          uid: Math.floor(r() * 1000),
          gid: Math.floor(r() * 1000),
        }),
      );
      files.push(p);
    } else if (roll < 0.65) {
      layer.push(sym(`${dir}/sym-${i}`, pick(['../x', '/abs/target', 'rel'])));
    } else if (roll < 0.8 && files.length) {
      const target = pick(files);
      const p = r() < 0.2 && files.length > 1 ? pick(files.filter((x) => x !== target)) : `${dir}/link-${i}`;
      layer.push(hard(p, target));
      files.push(p);
    } else if (roll < 0.9) {
      const candidates = lowerPaths.filter((p) => !used.has(p));
      if (candidates.length) {
        const p = pick(candidates);
        used.add(p);
        layer.push(whiteout(p));
      }
    } else if (roll < 0.95) {
      layer.push(d(dir), opaque(dir));
    } else {
      layer.push({ name: `${dir}/fifo-${i}`, type: 'fifo', mode: 0o600 });
    }
  }
  // hardlinks whose target path was later replaced by a non-file would be invalid tars for any applier
  return { lower, layer: validHardlinks(layer), target: (8 + Math.floor(r() * 56)) * KB };
}

/** Drops hardlinks whose target path does not hold a regular file of the layer at that point. */
function validHardlinks(layer: Spec[]): Spec[] {
  const kind = new Map<string, string>();
  const out: Spec[] = [];
  for (const s of layer) {
    if (s.type === 'link' && kind.get(s.linkname as string) !== 'file') continue;
    out.push(s);
    kind.set(s.name, s.type === 'link' ? 'file' : (s.type ?? 'file'));
  }
  return out;
}

describe('splitting random layers', () => {
  // the cases must exercise what they claim to: several pieces, moved hardlinks, whiteouts, oversized files
  const seen = { pieces: 0, movedLinks: 0, whiteouts: 0, oversized: 0 };
  afterAll(() => {
    expect(seen.pieces).toBeGreaterThan(60 * 3);
    expect(seen.movedLinks).toBeGreaterThan(10);
    expect(seen.whiteouts).toBeGreaterThan(10);
    expect(seen.oversized).toBeGreaterThan(0);
  });

  // even seeds keep every movable entry's bytes on disk, as a relayer does past its memory limit: what comes
  // back from the file must be the same bytes, in the same places
  test.each(Array.from({ length: 60 }, (_, i) => i + 1))(
    'seed %i: same filesystem, pieces within the target',
    async (seed) => {
      const { lower, layer: specs, target } = randomLayers(seed);
      const lowerTar = await buildTar(lower);
      const layer = await buildTar(specs);
      const work = mkdtempSync(join(tmpdir(), 'rp-split-'));
      const raws = seed % 2 === 0 ? new RawStore(join(work, 'raws'), 0) : new RawStore();
      const result = await splitLayer(layer, target, raws).finally(async () => {
        await raws.close();
        rmSync(work, { recursive: true, force: true });
      });
      if (seed % 2 === 0) expect(raws.spilled > 0).toBe(result.entries.some((e) => e.raw));
      expect(await filesystemOf([lowerTar, ...result.pieces])).toEqual(await filesystemOf([lowerTar, layer]));
      seen.pieces += result.plan.pieces.length;
      seen.oversized += result.plan.oversized.length;
      for (const p of result.plan.pieces) {
        for (const item of p.items) {
          if (item.kind !== 'bytes' || item.reason !== 'moved') continue;
          if (result.entries[item.entry].kind === 'hardlink') seen.movedLinks++;
          else seen.whiteouts++;
        }
      }
      const over = result.plan.pieces.filter((p) => p.size > target).length;
      expect(over).toBeLessThanOrEqual(result.plan.oversized.length);
      const pieceBytes = Buffer.concat(result.pieces);
      for (const e of result.entries) expect(pieceBytes.includes(layer.subarray(e.start, e.end))).toBe(true);
    },
  );
});
