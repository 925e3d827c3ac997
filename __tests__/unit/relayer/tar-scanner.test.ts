// The layer index: offsets that reproduce each entry byte for byte, paths through every extension the
// appliers honour (ustar prefix, pax, GNU long names), and robustness to how the stream is chunked.
import {
  BLOCK,
  decodeHeader,
  encodeFileHeader,
  isHeaderBlock,
  normalizePath,
  parsePaxRecords,
} from '../../../src/image/tar-header.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_RETAINED_EXTENSIONS, RawStore, TarScanner, type RawBytes } from '../../../src/image/tar-scanner.js';
import { scanChainInProcess } from '../../../test/fixtures/relayer/scanner-process.js';
import { scan } from '../../../test/fixtures/relayer/split.js';
import {
  buildTar,
  d,
  END,
  f,
  gnuLongNameFile,
  hard,
  opaque,
  paxHeader,
  paxRecord,
  pattern,
  readTar,
  sym,
  ustarHeader,
  whiteout,
} from '../../../test/fixtures/relayer/tars.js';

let work: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'rp-scanner-unit-'));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

const longDir = `${'deep/'.repeat(40)}end`; // > 155 + 100 bytes: needs pax

async function sample(): Promise<Buffer> {
  return buildTar([
    d('etc/', { uid: 3, gid: 4, uname: 'u3', gname: 'g4', mode: 0o750 }),
    f('etc/a.txt', 'hello'),
    f('etc/big.bin', 5000),
    hard('etc/a-link', 'etc/a.txt'),
    sym('etc/s', '../elsewhere'),
    f(`${longDir}/file`, 'long'),
    f('etc/x', 'xattr', { pax: { 'SCHILY.xattr.user.note': 'v1', 'SCHILY.xattr.security.capability': 'cap' } }),
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'run/fifo', type: 'fifo', mode: 0o600 },
    whiteout('etc/gone'),
    opaque('opq'),
  ]);
}

describe('tar header', () => {
  test.each([
    ['./etc/', 'etc'],
    ['/etc//x/', 'etc/x'],
    ['./', ''],
    ['a/./b', 'a/b'],
    ['plain', 'plain'],
  ])('normalizePath(%p) = %p', (input, expected) => {
    expect(normalizePath(input)).toBe(expected);
  });

  test('reads octal and base-256 sizes; rejects a bad checksum', () => {
    const h = encodeFileHeader('x', 12345);
    expect(decodeHeader(h, 0).size).toBe(12345);
    const huge = encodeFileHeader('x', 9 * 1024 ** 3); // >= 8 GiB needs base-256
    expect(huge[124] & 0x80).toBe(0x80);
    expect(decodeHeader(huge, 0).size).toBe(9 * 1024 ** 3);
    const bad = Buffer.from(h);
    bad[0] ^= 1;
    expect(isHeaderBlock(bad)).toBe(false);
    expect(() => decodeHeader(bad, 512)).toThrow(/checksum at byte 512/);
  });

  test('the outer archive header is a ustar header tar-stream reads', async () => {
    const data = Buffer.from('payload');
    const tarBuf = Buffer.concat([
      encodeFileHeader('blobs/sha256/abc', data.length),
      data,
      Buffer.alloc(BLOCK - data.length),
      END,
    ]);
    const [e] = await readTar(tarBuf);
    expect(e.header.name).toBe('blobs/sha256/abc');
    expect(e.data.toString()).toBe('payload');
  });

  test('pax records', () => {
    const rec = (k: string, v: string) => {
      const body = ` ${k}=${v}\n`;
      let len = body.length + 2;
      if (String(len).length + body.length !== len) len = String(len + 1).length + body.length;
      return `${len}${body}`;
    };
    const m = parsePaxRecords(Buffer.from(rec('path', 'a/b') + rec('SCHILY.xattr.user.k', 'x=y')), 0);
    expect(m.get('path')).toBe('a/b');
    expect(m.get('SCHILY.xattr.user.k')).toBe('x=y');
    expect(() => parsePaxRecords(Buffer.from('99 path=x\n'), 7)).toThrow(/malformed pax record/);
  });
});

describe('TarScanner', () => {
  test('indexes every kind of entry with its path, kind and hardlink target', async () => {
    const entries = scan(await sample());
    expect(entries.map((e) => [e.path, e.kind, e.typeflag])).toEqual([
      ['etc', 'directory', '5'],
      ['etc/a.txt', 'other', '0'],
      ['etc/big.bin', 'other', '0'],
      ['etc/a-link', 'hardlink', '1'],
      ['etc/s', 'other', '2'],
      [`${longDir}/file`, 'other', '0'],
      ['etc/x', 'other', '0'],
      ['dev/null', 'other', '3'],
      ['run/fifo', 'other', '6'],
      ['etc/.wh.gone', 'whiteout', '0'],
      ['opq/.wh..wh..opq', 'opaque', '0'],
    ]);
    expect(entries[3].linkTarget).toBe('etc/a.txt');
    expect(entries[2].size).toBe(5000);
  });

  test('each entry range is a complete tar entry: slices re-read as the same headers and data', async () => {
    const tarBuf = await sample();
    const original = await readTar(tarBuf);
    const entries = scan(tarBuf);
    for (const [i, e] of entries.entries()) {
      const [again] = await readTar(Buffer.concat([tarBuf.subarray(e.start, e.end), END]));
      expect(again.header).toEqual(original[i].header);
      expect(again.data.equals(original[i].data)).toBe(true);
    }
    // ranges tile the archive up to its end-of-archive blocks
    expect(entries[0].start).toBe(0);
    for (let i = 1; i < entries.length; i++) expect(entries[i].start).toBe(entries[i - 1].end);
  });

  test.each([
    ['all in memory', () => new RawStore(), false],
    ['past a memory limit of 1 KiB, on disk', () => new RawStore(join(work, 'raws'), 1024), true],
  ])('movable kinds carry their raw bytes, others do not: %s', async (_name, store, onDisk) => {
    const tarBuf = await sample();
    const raws = store();
    try {
      for (const e of scan(tarBuf, 4096, raws)) {
        const movable = ['directory', 'whiteout', 'opaque', 'hardlink'].includes(e.kind);
        if (!movable) {
          expect(e.raw).toBeUndefined();
          continue;
        }
        const read: Buffer[] = [];
        for await (const c of raws.read(e.raw as RawBytes)) read.push(c);
        expect(Buffer.concat(read).equals(tarBuf.subarray(e.start, e.end))).toBe(true);
      }
      expect(raws.spilled > 0).toBe(onDisk);
    } finally {
      await raws.close();
    }
  });

  test('GNU long names (typeflag L) give the entry its full path and start at the L block', () => {
    const longName = `${'x'.repeat(150)}/file.txt`;
    const tarBuf = Buffer.concat([gnuLongNameFile(longName, Buffer.from('gnu')), END]);
    const [e] = scan(tarBuf);
    expect(e.path).toBe(longName);
    expect(e.start).toBe(0);
    expect(e.end).toBe(tarBuf.length - END.length);
  });

  test.each([1, 7, 511, 512, 513, 4096, 65536])('chunks of %i bytes give the same index', async (size) => {
    const tarBuf = await sample();
    const reference = scan(tarBuf, tarBuf.length);
    expect(scan(tarBuf, size)).toEqual(reference);
  });

  test('bytes after the end-of-archive blocks are counted and ignored', async () => {
    const tarBuf = Buffer.concat([await buildTar([f('a', 'x')]), Buffer.alloc(10240)]);
    const s = new TarScanner();
    s.push(tarBuf);
    s.end();
    expect(s.ended).toBe(true);
    expect(s.offset).toBe(tarBuf.length);
    expect(s.entries).toHaveLength(1);
  });

  test('a truncated archive or non-tar bytes fail', async () => {
    const tarBuf = await buildTar([f('a', pattern('a', 3000))]);
    const s = new TarScanner();
    s.push(tarBuf.subarray(0, 1500));
    expect(() => s.end()).toThrow(/truncated/);
    expect(() => new TarScanner().push(Buffer.from('{"not":"a tar"}'.padEnd(600, ' ')))).toThrow(/checksum/);
  });
});

const MiB = 1024 * 1024;

describe('a chain of extension headers', () => {
  // Go reads the last of each kind, so the chain is legal and says no more than one header would; it is 300 MiB
  // of tar in a few hundred KB of gzip. The scanner used to hold every block of it until the entry's header
  // (+317 to +399 MiB peak RSS on these four); it keeps the last of each kind, and nothing of a sparse map it
  // will not move. Scanned in a process of its own so that the figure is the scanner's.
  test.each([
    ['300 pax headers of 1 MiB before a directory', ['pax', '300', 'd/', '5'], ['d', 'directory', 0, 1049600]],
    ['300 pax headers of 1 MiB before a file', ['pax', '300', 'f', '0'], ['f', 'other', 0, 0]],
    [
      '300 GNU long names of 1 MiB before a directory',
      ['long-name', '300', 'd/', '5'],
      ['n'.repeat(100), 'directory', 0, 1049600],
    ],
    [
      'a GNU sparse map of 300 MiB on a file',
      ['sparse-map', String((300 * MiB) / 512), 'f', '0'],
      ['f', 'other', 0, 0],
    ],
  ])(
    '%s: bounded memory',
    async (name, args, entry) => {
      const run = await scanChainInProcess(args, 60_000);
      const grew = run.maxRssBytes - run.rssBeforeBytes;
      process.stdout.write(
        `scanner on ${name}: RSS ${Math.round(run.rssBeforeBytes / MiB)} MiB loaded, ` +
          `${Math.round(run.maxRssBytes / MiB)} MiB peak (+${Math.round(grew / MiB)} MiB), ` +
          `heap + buffers ${Math.round(run.peakHeapBytes / MiB)} MiB peak\n`,
      );
      expect(run.result.error).toBeUndefined();
      expect(run.result.entries).toEqual([entry]);
      expect(entry[3]).toBeLessThanOrEqual(MAX_RETAINED_EXTENSIONS);
      expect(grew).toBeLessThan(32 * MiB);
      expect(run.peakHeapBytes).toBeLessThan(32 * MiB);
    },
    90_000,
  );

  test('a movable entry keeps the last extension of each kind, as it was, and reads as the whole chain does', async () => {
    const longName = (name: string) => {
      const data = Buffer.from(`${name}\0`);
      return Buffer.concat([ustarHeader('././@LongLink', 'L', data.length), data, Buffer.alloc(512 - data.length)]);
    };
    const superseded = [paxHeader(paxRecord('path', 'evil')), longName('long/evil')];
    const last = [paxHeader(paxRecord('SCHILY.xattr.user.a', '1')), longName('good/dir'), ustarHeader('x/', '5', 0)];
    const tarBuf = Buffer.concat([...superseded, ...last, END]);
    const raws = new RawStore();
    const [e] = scan(tarBuf, 700, raws);
    expect([e.path, e.kind, e.start, e.end]).toEqual(['good/dir', 'directory', 0, tarBuf.length - END.length]);
    const kept: Buffer[] = [];
    for await (const c of raws.read(e.raw as RawBytes)) kept.push(c);
    expect(Buffer.concat(kept).equals(Buffer.concat(last))).toBe(true);
    // tar-stream, which replaces each kind too, reads the kept bytes as the same entry as the whole range
    const [whole] = await readTar(Buffer.concat([tarBuf.subarray(e.start, e.end), END]));
    const [alone] = await readTar(Buffer.concat([...kept, END]));
    expect(alone.header).toEqual(whole.header);
    expect(alone.header.name).toBe('good/dir');
  });
});
