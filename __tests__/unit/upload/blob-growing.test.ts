// The upload of a blob still being written (blob-growing.ts) against the scripted registry of blob.test.ts: chunks go
// before the writer finished, a resume mid-growth reads back from the file, the PUT names the file's digest, a
// refusal of chunks waits for the whole blob, a writer's failure stops the upload before any PUT.
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GROWING_CHUNK_FLOOR, uploadGrowingBlob } from '../../../src/upload/blob-growing.js';
import { ChunkSizing, type BlobProgress, type UploadEvent } from '../../../src/upload/blob.js';
import { UploadError } from '../../../src/upload/errors.js';
import { SharedBlobs } from '../../../src/upload/shared-blobs.js';
import { sha256Digest } from '../../../src/image/blob-source.js';
import { GrowingFile } from '../../../src/image/growing-file.js';
import {
  startScriptedRegistry,
  type ScriptedRegistry,
  type ScriptedRegistryOptions,
} from '../../../test/support/upload-registry.js';

const REPO = 'app/growing';
const WHAT = {
  mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  name: 'layer tar 1 of the save (being gzipped)',
};
const CHUNK = 4_096;

let reg: ScriptedRegistry;
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rp-growing-'));
});
afterEach(async () => {
  await reg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A file being written as the gzip writes one: append, then tell the growing file. */
class Writer {
  readonly growing: GrowingFile;
  readonly parts: Buffer[] = [];

  constructor(name = 'layer.tar.gz') {
    const file = join(dir, name);
    writeFileSync(file, '');
    this.growing = new GrowingFile(file);
  }

  write(bytes: Buffer): void {
    appendFileSync(this.growing.file, bytes);
    this.parts.push(bytes);
    this.growing.grew(bytes.length);
  }

  end(): Buffer {
    const all = Buffer.concat(this.parts);
    this.growing.end({ size: all.length, digest: sha256Digest(all) });
    return all;
  }
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const patches = () => reg.requests.filter((r) => r.method === 'PATCH' && r.status !== 0);

function start(w: Writer, opts: { shared?: SharedBlobs } = {}) {
  const events: UploadEvent[] = [];
  const progress: BlobProgress[] = [];
  const result = uploadGrowingBlob(reg.transport(), REPO, w.growing, WHAT, {
    chunkSize: CHUNK,
    sizing: new ChunkSizing({ targetMs: 0 }),
    retryDelayMs: () => 0,
    onEvent: (e) => events.push(e),
    onProgress: (p) => progress.push(p),
    ...opts,
  });
  result.catch(() => undefined);
  return { result, events, progress };
}

async function registry(opts: ScriptedRegistryOptions = {}) {
  reg = await startScriptedRegistry(opts);
}

describe('uploadGrowingBlob', () => {
  test('chunks go while the file grows; the last once the writer finished; the PUT names the file digest', async () => {
    await registry();
    const w = new Writer();
    const up = start(w);
    w.write(randomBytes(CHUNK + 100));
    await until('the first PATCH answered', () => patches().length === 1);
    w.write(randomBytes(CHUNK));
    await until('the second PATCH answered', () => patches().length === 2);
    expect(w.growing.result).toBeNull(); // both went before the writer finished
    w.write(randomBytes(50));
    await new Promise((r) => setTimeout(r, 50));
    expect(patches()).toHaveLength(2); // the last, short chunk waits for the end
    const bytes = w.end();
    const result = await up.result;
    expect(reg.sequence()).toEqual([
      'POST uploads -> 202',
      'PATCH upload 0-4095 -> 202',
      'PATCH upload 4096-8191 -> 202',
      `PATCH upload 8192-${bytes.length - 1} -> 202`,
      'PUT upload -> 201',
    ]);
    const put = reg.requests.find((r) => r.method === 'PUT');
    expect(new URLSearchParams(put?.query).get('digest')).toBe(sha256Digest(bytes));
    expect(reg.blobs.get(sha256Digest(bytes))?.equals(bytes)).toBe(true);
    expect(result).toMatchObject({ digest: sha256Digest(bytes), size: bytes.length, mode: 'chunked' });
    expect(up.events.at(-1)).toMatchObject({ type: 'uploaded', digest: sha256Digest(bytes), chunks: 3 });
    // progress only under the real digest: the last chunk's
    expect(up.progress).toEqual([
      { digest: sha256Digest(bytes), size: bytes.length, confirmed: bytes.length, chunks: 3 },
    ]);
  });

  test('with chunks grown big, what is written goes once there is a floor of it: little is left at the end', async () => {
    await registry();
    const w = new Writer();
    const up = uploadGrowingBlob(reg.transport(), REPO, w.growing, WHAT, {
      chunkSize: 64_000_000,
      sizing: new ChunkSizing({ targetMs: 0 }),
      retryDelayMs: () => 0,
    });
    w.write(randomBytes(GROWING_CHUNK_FLOOR + 1000));
    await until('the first PATCH answered', () => patches().length === 1);
    w.write(randomBytes(5000));
    const bytes = w.end();
    await up;
    expect(reg.sequence()).toEqual([
      'POST uploads -> 202',
      `PATCH upload 0-${GROWING_CHUNK_FLOOR + 999} -> 202`,
      `PATCH upload ${GROWING_CHUNK_FLOOR + 1000}-${bytes.length - 1} -> 202`,
      'PUT upload -> 201',
    ]);
    expect(reg.blobs.get(sha256Digest(bytes))?.equals(bytes)).toBe(true);
  });

  test('a chunk cut mid-growth resumes where the registry stands, read back from the file', async () => {
    let cut = false;
    await registry({
      strict: true,
      ignoreState: true,
      script: (r) => {
        if (cut || r.method !== 'PATCH' || !r.contentRange?.startsWith(`${CHUNK}-`)) return undefined;
        cut = true;
        return { resetAfterBytes: 1000 };
      },
    });
    const w = new Writer();
    const up = start(w);
    w.write(randomBytes(3 * CHUNK));
    await until(
      'the resumed rest of the chunk answered',
      () => up.events.some((e) => e.type === 'resumed') && patches().length >= 3,
    );
    expect(w.growing.result).toBeNull();
    w.write(randomBytes(500));
    const bytes = w.end();
    await up.result;
    expect(up.events.find((e) => e.type === 'resumed')).toMatchObject({ offset: CHUNK + 1000 });
    expect(reg.overlaps).toEqual([]);
    expect(reg.sequence()).toContain('GET upload -> 204');
    expect(reg.blobs.get(sha256Digest(bytes))?.equals(bytes)).toBe(true);
  });

  test('a registry that refuses chunks gets the whole blob in one request, once the writer finished', async () => {
    await registry({ refuseChunksWith: 400 });
    const w = new Writer();
    const up = start(w);
    w.write(randomBytes(2 * CHUNK));
    await until('the refused PATCH', () => up.events.some((e) => e.type === 'fallback'));
    await new Promise((r) => setTimeout(r, 50));
    expect(reg.requests.filter((r) => r.method === 'PUT')).toEqual([]); // not before the end
    w.write(randomBytes(10));
    const bytes = w.end();
    expect(await up.result).toMatchObject({ mode: 'single', digest: sha256Digest(bytes) });
    expect(reg.blobs.get(sha256Digest(bytes))?.equals(bytes)).toBe(true);
  });

  test("a writer's failure fails the upload (source) and nothing is committed", async () => {
    await registry();
    const w = new Writer();
    const up = start(w);
    w.write(randomBytes(CHUNK));
    await until('the first PATCH answered', () => patches().length === 1);
    w.growing.fail(new Error('the save broke'));
    const err = await up.result.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UploadError);
    expect(err).toMatchObject({ phase: 'source', message: `${WHAT.name}: the save broke` });
    expect(reg.requests.filter((r) => r.method === 'PUT')).toEqual([]);
    expect(reg.blobs.size).toBe(0);
  });

  test("the digest goes into the run's ledger once known, so another image mounts it", async () => {
    await registry();
    const shared = new SharedBlobs();
    const w = new Writer();
    const up = start(w, { shared });
    w.write(randomBytes(CHUNK));
    const bytes = w.end();
    await up.result;
    const claim = shared.claim(sha256Digest(bytes), 'app/other');
    expect(claim).toMatchObject({ kind: 'wait', repository: REPO });
    expect(await (claim as { end: Promise<boolean> }).end).toBe(true);
  });
});
