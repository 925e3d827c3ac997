// Layer blobs in a saved archive are plain tars (classic store) or whatever the content store holds (the
// containerd store keeps pulled and BuildKit-built layers gzip'd, sometimes zstd). Told apart by magic
// bytes, not media types: the legacy layout has none.
import { Duplex, type Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { commandWorks, howItEnded, startProcess } from '../util/process.js';
import { outputTail } from '../util/untrusted.js';

export type Compression = 'none' | 'gzip' | 'zstd';

export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

// zlib gained zstd in Node 22.15 / 23.8. The action runs on Node 24 (action.yml: node24), whose zlib has it; the CLI
// may run on Node 20 (package.json engines), so zstd comes from zlib when the runtime has it, else from the zstd
// command (GitHub's runner images ship it), else not at all.
type ZstdFactory = () => Transform;
const nodeZstd = (zlib as unknown as { createZstdDecompress?: ZstdFactory }).createZstdDecompress;

const cliChecked = new Map<string, boolean>();
function zstdCli(): boolean {
  const path = process.env.PATH ?? '';
  let found = cliChecked.get(path);
  if (found === undefined) {
    found = commandWorks('zstd', ['--version']);
    cliChecked.set(path, found);
  }
  return found;
}

/** Where zstd can come from: zlib's decoder, else the zstd command when it runs here. */
export interface ZstdDecoders {
  readonly zlib?: ZstdFactory;
  readonly command: () => boolean;
}

/** This runtime's: zlib's when Node has it, and the zstd command on PATH. Tests pass others, to reach each way. */
export const HOST_ZSTD: ZstdDecoders = { zlib: nodeZstd, command: zstdCli };

/** Which decoder a zstd layer gets: zlib's (in process) before the command's (a child), or none. */
export function zstdDecoder(d: ZstdDecoders): 'zlib' | 'command' | null {
  if (d.zlib) return 'zlib';
  return d.command() ? 'command' : null;
}

export function canDecompress(c: Compression, zstd: ZstdDecoders = HOST_ZSTD): boolean {
  return c !== 'zstd' || zstdDecoder(zstd) !== null;
}

/**
 * `zstd -dc` as a stream, through the process layer (ended by a cancel, no secret in its environment); its
 * failure (corrupt input) becomes the stream's error.
 */
function zstdProcess(): Duplex {
  const child = startProcess('zstd', ['-dc', '-q'], { stdin: 'pipe', stdout: 'pipe', captureBytes: 16 * 1024 });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  void child.result.then((r) => {
    if (r.code === 0) return;
    duplex.destroy(
      new Error(
        r.code === null ? `zstd -d ${howItEnded(r)}` : `zstd -d failed (exit ${r.code}): ${outputTail(r.stderr)}`,
      ),
    );
  });
  duplex.on('close', () => void child.kill());
  return duplex;
}

/** A stream to the uncompressed tar, or null for a plain tar. */
export function decompressor(c: Compression, zstd: ZstdDecoders = HOST_ZSTD): Duplex | null {
  if (c === 'none') return null;
  if (c === 'gzip') return zlib.createGunzip({ chunkSize: 64 * 1024 });
  const use = zstdDecoder(zstd);
  if (use === 'zlib' && zstd.zlib) return zstd.zlib();
  if (use === 'command') return zstdProcess();
  throw new Error(`zstd layers need Node >= 22.15 or the zstd command (this is Node ${process.version})`);
}
