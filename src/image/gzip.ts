// Deterministic gzip of a classic-store layer, compressed on several cores: the layer's tar is cut into blocks of a
// fixed size, each block is deflated on its own (node's zlib runs on the libuv thread pool, so a few blocks are
// compressed at once) and ended with a sync flush, and the raw deflate pieces are written in order between one
// fixed gzip header and the trailer (CRC-32 and size of the whole input), as pigz does. The output depends only on
// the input bytes, the level and the block size: not on how the input was chunked, not on the clock, not on which
// thread finished first. So the same layer gives the same blob digest on every run (a re-push finds the registry's
// copy by HEAD), and any gzip reader (Go's, docker pull's) reads it as one member.
//
// Level: 1 by default. On a loopback registry the compression is the slowest stage of a classic-store upload;
// level 6 (Go's and docker's default) saves ~10% more on text-heavy layers and nothing on binary/random ones, at
// 2-3x the CPU per byte on text (measured for issue 12 on one core of the rig: ~67 MB/s at level 1, ~26 MB/s at 6;
// random data runs at the same speed at both). A slow uplink may prefer 6: GzipOptions.level is there. Blocks
// without a shared dictionary cost under 1% of ratio at 1 MiB (a unit test holds it to that).

import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';

export const DEFAULT_GZIP_LEVEL = 1;
export const GZIP_BLOCK_SIZE = 1024 * 1024;

/** ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown), as Go's gzip writes it: no name, no time, no host. */
export const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff]);

const deflateRaw = promisify(zlib.deflateRaw) as (buf: Buffer, opts: zlib.ZlibOptions) => Promise<Buffer>;

export interface GzipOptions {
  /** 1 (fast) to 9 (small); default DEFAULT_GZIP_LEVEL. */
  readonly level?: number;
  /** Bytes per independently deflated block (part of what the output depends on); default 1 MiB. */
  readonly blockSize?: number;
  /** Blocks deflated at once; default min(4, cores) (libuv's thread pool has 4 threads). */
  readonly parallel?: number;
}

export interface GzipResult {
  /** Bytes read (the uncompressed size). */
  readonly inputSize: number;
  /** Bytes written. */
  readonly outputSize: number;
}

type Crc32 = (data: Buffer, value?: number) => number;

let crcTable: Uint32Array | null = null;
/** CRC-32 (IEEE) in JS, for a Node older than 20.15 (no zlib.crc32). */
function crc32Js(data: Buffer, value = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const crc32: Crc32 = (zlib as unknown as { crc32?: Crc32 }).crc32 ?? crc32Js;

function defaultParallel(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/**
 * Gzips `input` into `write`, in order, with back-pressure: `write` is awaited, and at most `parallel` blocks are
 * in memory (each: its input and its output). Rejects with the first failure of the input, a block or `write`.
 */
export async function gzipDeterministic(
  input: AsyncIterable<Buffer>,
  write: (chunk: Buffer) => Promise<void>,
  opts: GzipOptions = {},
): Promise<GzipResult> {
  const level = opts.level ?? DEFAULT_GZIP_LEVEL;
  const blockSize = opts.blockSize ?? GZIP_BLOCK_SIZE;
  const parallel = Math.max(1, opts.parallel ?? defaultParallel());
  const deflateOpts: zlib.ZlibOptions = { level, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  const inFlight: Promise<Buffer>[] = [];
  let crc = 0;
  let inputSize = 0;
  let outputSize = 0;
  let block = Buffer.allocUnsafe(blockSize);
  let fill = 0;

  const emit = async (chunk: Buffer) => {
    outputSize += chunk.length;
    await write(chunk);
  };
  const dispatch = async (data: Buffer) => {
    const p = deflateRaw(data, deflateOpts);
    p.catch(() => undefined); // awaited in order below; this keeps an early failure from being unhandled
    inFlight.push(p);
    if (inFlight.length >= parallel) await emit(await (inFlight.shift() as Promise<Buffer>));
  };

  try {
    await emit(GZIP_HEADER);
    for await (const chunk of input) {
      crc = crc32(chunk, crc);
      inputSize += chunk.length;
      for (let pos = 0; pos < chunk.length;) {
        const take = Math.min(blockSize - fill, chunk.length - pos);
        chunk.copy(block, fill, pos, pos + take);
        fill += take;
        pos += take;
        if (fill === blockSize) {
          await dispatch(block);
          block = Buffer.allocUnsafe(blockSize);
          fill = 0;
        }
      }
    }
    if (fill > 0) await dispatch(block.subarray(0, fill));
    while (inFlight.length) await emit(await (inFlight.shift() as Promise<Buffer>));
  } finally {
    // On a failure, wait for the blocks still on the thread pool so none outlives the call.
    await Promise.allSettled(inFlight);
  }
  // The final deflate block: empty, BFINAL set (03 00 at any level).
  await emit(zlib.deflateRawSync(Buffer.alloc(0), { level }));
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(inputSize % 2 ** 32, 4);
  await emit(trailer);
  return { inputSize, outputSize };
}
