// The layer index: offsets that reproduce each entry byte for byte, paths through every extension the
// appliers honour (ustar prefix, pax, GNU long names), and robustness to how the stream is chunked.
import {
  BLOCK,
  decodeHeader,
  encodeFileHeader,
  isHeaderBlock,
  normalizePath,
  parsePaxRecords,
} from '../../../src/relayer/tar-header.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawStore, TarScanner, type RawBytes } from '../../../src/relayer/tar-scanner.js';
import { scan } from '../../../test/fixtures/relayer/split.js';
import {
  buildTar,
  d,
  END,
  f,
  gnuLongNameFile,
  hard,
  opaque,
  pattern,
  readTar,
  sym,
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
