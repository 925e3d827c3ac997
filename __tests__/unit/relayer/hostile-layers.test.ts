// A layer is data from whoever wrote the image's base: numbers that are not numbers, sizes that point
// backwards, records longer than their header, archives cut short. Each must end the scan at once with an
// error that names what is wrong and where (it used to loop forever on a negative pax size), and the relayer
// must fail the run with it; what Go's archive/tar (Docker's and containerd's reader) accepts must still pass,
// read as Go reads it. The rejected tars are scanned in a child process with a deadline: an endless loop is a
// synchronous one, which would hang jest rather than fail a test in its own process.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { relayerArchive } from '../../../src/layer-split/index.js';
import { MAX_EXTENSION_SIZE } from '../../../src/image/tar-header.js';
import { TarScanner } from '../../../src/image/tar-scanner.js';
import { ociArchive } from '../../../test/fixtures/relayer/archives.js';
import { scanInProcess, type RowOutcome } from '../../../test/fixtures/relayer/scanner-process.js';
import {
  END,
  extensionChain,
  gzipSync,
  paxHeader,
  paxRecord,
  pattern,
  sha256,
  ustarHeader,
  withChecksum,
} from '../../../test/fixtures/relayer/tars.js';

/** A header whose 12-byte size field holds `bytes` (base-256 when the first has its high bit set). */
function sizeField(name: string, typeflag: string, bytes: number[]): Buffer {
  const header = ustarHeader(name, typeflag, 0);
  Buffer.from(bytes).copy(header, 124);
  return withChecksum(header);
}

const base256 = (value: bigint) => {
  const out: number[] = [];
  let v = BigInt.asUintN(88, value); // 11 bytes after the marker byte, two's complement
  for (let i = 0; i < 11; i++) {
    out.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return [value < 0n ? 0xff : 0x80, ...out];
};

const file = (name: string, data: Buffer) =>
  Buffer.concat([ustarHeader(name, '0', data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
const rawPax = (body: string) => paxHeader(Buffer.from(body));
const good = file('after', pattern('after', 700));
const padded = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
/** A pax global header ('g') holding `records`. */
const globalPax = (records: Buffer) =>
  Buffer.concat([ustarHeader('pax_global_header', 'g', records.length), padded(records)]);
/** A GNU long name ('L') whose data is `data`. */
const longName = (data: string) =>
  Buffer.concat([ustarHeader('././@LongLink', 'L', data.length), padded(Buffer.from(data, 'latin1'))]);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

const rejected: Array<[string, () => Buffer, RegExp]> = [
  [
    'a negative pax size (it pointed the scanner back at its own header)',
    () => Buffer.concat([paxHeader(paxRecord('size', '-1536')), ustarHeader('a', '0', 0), good, END]),
    /negative size -1536 for "a" at byte 1024/,
  ],
  [
    'a non-numeric pax size',
    () => Buffer.concat([paxHeader(paxRecord('size', '12abc')), ustarHeader('a', '0', 0), good, END]),
    /invalid pax size "12abc" for "a"/,
  ],
  [
    'an empty pax size',
    () => Buffer.concat([paxHeader(paxRecord('size', '')), ustarHeader('a', '0', 0), good, END]),
    /invalid pax size "" for "a"/,
  ],
  [
    'a pax size beyond 2^53',
    () => Buffer.concat([paxHeader(paxRecord('size', '99999999999999999999')), ustarHeader('a', '0', 0), END]),
    /invalid pax size "99999999999999999999"/,
  ],
  [
    'a negative base-256 size',
    () => Buffer.concat([sizeField('a', '0', base256(-1024n)), good, END]),
    /negative size -1024 for "a" at byte 0/,
  ],
  [
    'a base-256 size beyond 2^53',
    () => Buffer.concat([sizeField('a', '0', [0x80, ...Array(11).fill(0xff)]), good, END]),
    /invalid size field ".*" in the header of "a" at byte 0/,
  ],
  [
    'an octal size with a letter in it',
    () => Buffer.concat([sizeField('a', '0', [...Buffer.from('0000000012x\0')]), good, END]),
    /invalid size field "0000000012x\\u0000" in the header of "a"/,
  ],
  ...['NaN', 'Infinity', '1e3', '0x10', '-0x10'].map(
    (size) =>
      [
        `a pax size of ${size}`,
        () => Buffer.concat([paxHeader(paxRecord('size', size)), ustarHeader('a', '0', 0), good, END]),
        new RegExp(`invalid pax size "${size}" for "a" at byte 1024`),
      ] as [string, () => Buffer, RegExp],
  ),
  [
    'a pax size of 2^53 - 1 (a safe integer, but not once padded to a block)',
    () => Buffer.concat([paxHeader(paxRecord('size', String(MAX_SAFE))), ustarHeader('a', '0', 0), END]),
    /size 9007199254740991 for "a" runs past any archive at byte 1024/,
  ],
  [
    'a base-256 size of 2^53 - 1',
    () => Buffer.concat([sizeField('a', '0', base256(MAX_SAFE)), good, END]),
    /size 9007199254740991 for "a" runs past any archive at byte 0/,
  ],
  [
    'a negative pax size on a GNU sparse file (its size is checked after the sparse map)',
    () => Buffer.concat([paxHeader(paxRecord('size', '-5')), ...extensionChain('sparse-map', 2, 'a', '0')]),
    /negative size -5 for "a" at byte 1024/,
  ],
  [
    'a negative size on the pax header itself',
    () => Buffer.concat([sizeField('PaxHeaders/a', 'x', base256(-512n)), ustarHeader('a', '0', 0), END]),
    /pax header with a negative size -512 at byte 0/,
  ],
  [
    'a pax header over the 1 MiB Go reads',
    () => Buffer.concat([paxHeader(paxRecord('SCHILY.xattr.user.big', 'x'.repeat(MAX_EXTENSION_SIZE))), END]),
    /pax header of 1048\d{3} bytes, over the 1048576 that Docker and containerd read at byte 0/,
  ],
  [
    'a negative size on a GNU long name',
    () => Buffer.concat([sizeField('././@LongLink', 'L', base256(-1n)), ustarHeader('a', '0', 0), END]),
    /GNU long name with a negative size -1 at byte 0/,
  ],
  [
    'a negative size on a pax global header',
    () => Buffer.concat([sizeField('pax_global_header', 'g', base256(-512n)), good, END]),
    /pax global header with a negative size -512 at byte 0/,
  ],
  [
    'a pax global header over the 1 MiB Go reads',
    () => Buffer.concat([globalPax(paxRecord('comment', 'x'.repeat(MAX_EXTENSION_SIZE))), good, END]),
    /pax global header of 1048\d{3} bytes, over the 1048576 that Docker and containerd read at byte 0/,
  ],
  [
    'a pax global header with a malformed record (Go refuses it as it does in a pax header)',
    () => Buffer.concat([globalPax(Buffer.from('99 comment=x\n')), good, END]),
    /malformed pax record: length 99 does not fit/,
  ],
  ['a pax record of length 0', () => Buffer.concat([rawPax('0 path=a\n'), ustarHeader('a', '0', 0), END]), /length 0/],
  [
    'a negative pax record length',
    () => Buffer.concat([rawPax('-11 path=a\n'), ustarHeader('a', '0', 0), END]),
    /length "-11" is not a number/,
  ],
  [
    'a pax record length beyond the record',
    () => Buffer.concat([rawPax('99 path=a\n'), ustarHeader('a', '0', 0), END]),
    /length 99 does not fit its data \(10 bytes left\)/,
  ],
  [
    'a pax record length that is not a number',
    () => Buffer.concat([rawPax('1a path=a\n'), ustarHeader('a', '0', 0), END]),
    /length "1a" is not a number/,
  ],
  [
    'a pax record length that cuts the record short',
    () => Buffer.concat([rawPax('9 path=abc\n'), ustarHeader('a', '0', 0), END]),
    /does not end in a newline/,
  ],
  ['a pax record without "="', () => Buffer.concat([rawPax('12 pathabcd\n'), END]), /without "="/],
  [
    'an archive cut inside a file',
    () => Buffer.concat([good, file('cut', pattern('cut', 3000))]).subarray(0, 2500),
    /truncated tar archive inside "cut" at byte 2500/,
  ],
  ['an archive cut inside a header', () => good.subarray(0, 300), /truncated tar archive at byte 0/],
  [
    'an archive cut inside a pax header',
    () => paxHeader(paxRecord('path', 'x'.repeat(2000))).subarray(0, 1500),
    /truncated tar archive at byte 1500/,
  ],
];

describe('a hostile layer fails the scan at once, naming what and where', () => {
  // one chunk (the loop needed the whole header in one chunk to go back to) and small ones
  const chunks = [1 << 30, 100];
  let outcomes: RowOutcome[];
  beforeAll(async () => {
    outcomes = await scanInProcess(
      rejected.map(([, tar]) => tar()),
      chunks,
      30_000,
    );
  }, 40_000);

  test.each(rejected.map(([name, , error], row) => [name, row, error] as const))('%s', (_name, row, error) => {
    const outcome = outcomes[row];
    expect(outcome.unfinished).toBeUndefined();
    expect(outcome.results?.map((r) => [r.chunk, r.error])).toEqual(
      chunks.map((chunk) => [chunk, expect.stringMatching(error)]),
    );
    expect(outcome.ms).toBeLessThan(1000);
  });
});

describe('what Go accepts is still accepted', () => {
  const accepted: Array<[string, () => Buffer, Array<[string, number]>]> = [
    [
      'a header-only type with a negative pax size (Go ignores the size of links, devices, directories)',
      () => Buffer.concat([paxHeader(paxRecord('size', '-5')), ustarHeader('d', '5', 0, 0o755), good, END]),
      [
        ['d', 0],
        ['after', 700],
      ],
    ],
    [
      'a pax size with a plus sign',
      () => Buffer.concat([paxHeader(paxRecord('size', '+700')), ustarHeader('a', '0', 0), pattern('a', 1024), END]),
      [['a', 700]],
    ],
    [
      'a base-256 size',
      () => Buffer.concat([sizeField('a', '0', base256(700n)), pattern('a', 1024), END]),
      [['a', 700]],
    ],
    [
      'an octal size padded with spaces and NULs',
      () => Buffer.concat([sizeField('a', '0', [...Buffer.from('\0 1274 \0\0\0\0\0')]), pattern('a', 1024), END]),
      [['a', 0o1274]],
    ],
    [
      'two pax headers in a row: the last describes the entry, the path of the first is dropped (Go replaces)',
      () =>
        Buffer.concat([
          paxHeader(paxRecord('path', 'evil')),
          paxHeader(paxRecord('SCHILY.xattr.user.a', '1')),
          ustarHeader('good', '0', 0),
          END,
        ]),
      [['good', 0]],
    ],
    [
      'a pax size before a global header does not size it: the global header reads its own',
      () =>
        Buffer.concat([paxHeader(paxRecord('size', '0')), globalPax(paxRecord('comment', 'c'.repeat(600))), good, END]),
      [
        ['pax_global_header', 0],
        ['after', 700],
      ],
    ],
    [
      'an empty GNU long name counts as none (as in Go)',
      () => Buffer.concat([longName('evil\0'), longName('\0'), ustarHeader('good', '0', 0), END]),
      [['good', 0]],
    ],
    [
      'a pax header of exactly 1 MiB',
      () => {
        const record = paxRecord('SCHILY.xattr.user.big', 'x'.repeat(MAX_EXTENSION_SIZE - 31));
        expect(record.length).toBe(MAX_EXTENSION_SIZE);
        return Buffer.concat([paxHeader(record), ustarHeader('a', '0', 0), END]);
      },
      [['a', 0]],
    ],
  ];
  test.each(accepted)('%s', (_name, tar, expected) => {
    const scanner = new TarScanner();
    scanner.push(tar());
    scanner.end();
    expect(scanner.entries.map((e) => [e.path, e.size])).toEqual(expected);
  });
});

describe('relayerArchive on an image with a hostile layer', () => {
  let work: string;
  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), 'rp-hostile-'));
  });
  afterEach(() => rmSync(work, { recursive: true, force: true }));

  const huge = Buffer.concat([ustarHeader('huge', '0', 2 ** 32), pattern('huge', 64 * 1024), END]);
  test.each([
    [
      'negative pax size layer',
      gzipLayer(Buffer.concat([paxHeader(paxRecord('size', '-1536')), ustarHeader('a', '0', 0), good, END])),
      /negative size -1536 for "a" at byte 1024$/,
    ],
    [
      'truncated layer',
      gzipLayer(Buffer.concat([good, file('cut', pattern('cut', 300 * 1024))]).subarray(0, 200 * 1024)),
      /truncated tar archive inside "cut" at byte 204800$/,
    ],
    [
      // a plain layer's length is known: the scan stops at the header instead of reading on to the end
      'plain layer holding a file bigger than itself',
      huge,
      /size 4294967296 for "huge" runs past the end of the tar \(66560 bytes left\) at byte 0$/,
    ],
  ])(
    'a %s fails the run with an error naming the layer',
    async (_name, hostile, error) => {
      const big = Buffer.concat([file('big', pattern('big', 64 * 1024)), END]);
      const saved = await ociArchive({ layers: [big, hostile] });
      const out = new PassThrough();
      out.resume();
      const started = Date.now();
      const run = relayerArchive(Readable.from([saved.archive]), out, {
        maxLayerSize: 16 * 1024,
        tag: 'hostile:1',
        workDir: work,
        log: () => undefined,
      });
      await expect(run).rejects.toThrow(/^layer 2 \(blobs\/sha256\/[0-9a-f]{64}\) is not a valid tar archive: /);
      await expect(run).rejects.toThrow(error);
      expect(Date.now() - started).toBeLessThan(3000);
    },
    5000,
  );
});

function gzipLayer(tar: Buffer) {
  // the config names the layer's diff ID: the uncompressed bytes' digest
  return { gzip: gzipSync(tar), diffId: sha256(tar), size: tar.length };
}
