// The loopback receiver's blob endpoints: upload sessions (POST), their bodies (PATCH in order, PUT ?digest=), and
// HEAD of a blob. Every body goes to a file under the work directory as it arrives, hashed on the way; a blob whose
// digest and size are known when its bytes start (containerd's single PUT ?digest= with Content-Length) is
// announced at once, so its upload to the real registry can follow the bytes while they arrive.
import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Incoming } from './receiver-incoming.js';
import { ReceiveError, type ReceiverContext, type Send, type Session } from './receiver-state.js';
import { mark } from './timeline.js';

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const WRITE_BATCH = 1024 * 1024;

/** Opens an upload session. A cross-repository mount (?mount=&from=) gets one too: nothing is mounted here. */
export function startUpload(ctx: ReceiverContext, req: IncomingMessage, url: URL, send: Send): void {
  if (url.searchParams.has('digest')) throw new ReceiveError(405, 'UNSUPPORTED', 'monolithic POST');
  if (++ctx.state.sessionCount > ctx.limits.maxSessions)
    throw new ReceiveError(429, 'TOOMANYREQUESTS', 'too many uploads');
  const id = randomBytes(12).toString('hex');
  ctx.state.sessions.set(id, {
    id,
    file: join(ctx.dir, `upload-${id}`),
    fh: null,
    hash: createHash('sha256'),
    size: 0,
    busy: false,
    incoming: null,
  });
  req.resume();
  send(202, { Location: `${ctx.prefix}blobs/uploads/${id}`, 'Docker-Upload-UUID': id, Range: '0-0' });
}

function session(ctx: ReceiverContext, id: string): Session {
  const s = ctx.state.sessions.get(id);
  if (!s) throw new ReceiveError(404, 'BLOB_UPLOAD_UNKNOWN', `no upload ${id}`);
  if (s.busy) throw new ReceiveError(409, 'BLOB_UPLOAD_INVALID', `upload ${id} is busy`);
  return s;
}

/** PATCH (a chunk, in order) or PUT ?digest= (the last bytes, if any, and the digest) to session `id`. */
export async function writeUpload(
  ctx: ReceiverContext,
  id: string,
  req: IncomingMessage,
  url: URL,
  send: Send,
): Promise<void> {
  const s = session(ctx, id);
  s.busy = true;
  try {
    const range = req.headers['content-range'];
    const start = typeof range === 'string' ? Number(/^(?:bytes )?(\d+)-/.exec(range)?.[1] ?? NaN) : s.size;
    if (start !== s.size) throw new ReceiveError(416, 'BLOB_UPLOAD_INVALID', `range ${range} at ${s.size}`);
    if (req.method !== 'PATCH') return await putBlob(ctx, s, req, url, send);
    await append(ctx, s, req, null);
    send(202, {
      Location: `${ctx.prefix}blobs/uploads/${s.id}`,
      'Docker-Upload-UUID': s.id,
      Range: `0-${Math.max(0, s.size - 1)}`,
    });
  } finally {
    s.busy = false;
  }
}

/** Ends session `s` with its digest: receives the rest, checks the hash, stores and announces the blob. */
async function putBlob(ctx: ReceiverContext, s: Session, req: IncomingMessage, url: URL, send: Send): Promise<void> {
  const digest = url.searchParams.get('digest') ?? '';
  if (!DIGEST.test(digest)) throw new ReceiveError(400, 'DIGEST_INVALID', `digest ${digest}`);
  const inc = await announceEarly(ctx, s, req, digest);
  try {
    await append(ctx, s, req, inc);
    await s.fh?.close();
    s.fh = null;
    const got = `sha256:${s.hash.digest('hex')}`;
    if (got !== digest) throw new ReceiveError(400, 'DIGEST_INVALID', `blob ${digest} hashed to ${got}`);
    if (inc && s.size !== inc.size)
      throw new ReceiveError(400, 'SIZE_INVALID', `blob ${digest} has ${s.size} of ${inc.size} bytes`);
  } catch (e) {
    ctx.state.failBlob(inc, e as Error);
    if (inc && ctx.state.blobs.get(digest) && !inc.verified) ctx.state.blobs.delete(digest);
    throw e;
  }
  ctx.state.sessions.delete(s.id);
  ctx.state.progressed('stored');
  mark('recv-verified', { digest, size: s.size });
  if (inc) {
    inc.finish();
    ctx.state.incoming.delete(inc);
  } else if (!ctx.state.blobs.has(digest)) await announceWhole(ctx, s, digest);
  send(201, { Location: `${ctx.prefix}blobs/${digest}`, 'Docker-Content-Digest': digest });
}

/**
 * The whole blob in this request, its size said: announced now, so its upload follows the bytes. Its file is made
 * before the announcement: the reader opens it at once, and the first write would otherwise race that open (ENOENT,
 * seen under load as a failed chunked push).
 */
async function announceEarly(
  ctx: ReceiverContext,
  s: Session,
  req: IncomingMessage,
  digest: string,
): Promise<Incoming | null> {
  const length = Number(req.headers['content-length'] ?? NaN);
  if (s.size !== 0 || !Number.isSafeInteger(length) || length <= 0 || ctx.state.blobs.has(digest)) return null;
  if (length > ctx.limits.maxBlob)
    throw new ReceiveError(413, 'SIZE_INVALID', `a blob over ${ctx.limits.maxBlob} bytes`);
  s.fh ??= await open(s.file, 'a');
  const inc = new Incoming(s.file, digest, length);
  ctx.state.incoming.add(inc);
  mark('recv-announced', { digest, size: length, session: s.id });
  ctx.state.blobs.set(digest, inc.blob());
  ctx.onBlob(inc.blob());
  return inc;
}

/** A blob that came in chunks (or without its size), announced once whole and verified. */
async function announceWhole(ctx: ReceiverContext, s: Session, digest: string): Promise<void> {
  if (s.size === 0) await (await open(s.file, 'a')).close(); // an empty blob still has a file
  const done = new Incoming(s.file, digest, s.size);
  done.grew(s.size);
  done.finish();
  ctx.state.blobs.set(digest, done.blob());
  ctx.onBlob(done.blob());
}

/** Throws when `n` more bytes would take session `s` over a cap: per blob, over all blobs, or the size said. */
function checkCaps(ctx: ReceiverContext, s: Session, inc: Incoming | null, n: number): void {
  const { maxBlob, maxTotal } = ctx.limits;
  if (s.size + n > maxBlob) throw new ReceiveError(413, 'SIZE_INVALID', `a blob over ${maxBlob} bytes`);
  if (ctx.state.total + n > maxTotal) throw new ReceiveError(413, 'SIZE_INVALID', `the image over ${maxTotal} bytes`);
  if (inc && s.size + n > inc.size)
    throw new ReceiveError(400, 'SIZE_INVALID', `blob ${inc.digest} longer than its ${inc.size} bytes`);
}

/**
 * Appends a request body to a session, hashing it; honours the caps. One write at a time is under way while the
 * next bytes are received (batched up to WRITE_BATCH meanwhile): awaiting a write per socket read (64 KiB) would
 * make the engine wait on the thread pool for each.
 */
async function append(ctx: ReceiverContext, s: Session, req: IncomingMessage, inc: Incoming | null): Promise<void> {
  const fh = (s.fh ??= await open(s.file, 'a'));
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let writing: Promise<void> = Promise.resolve();
  let busy = false;
  const flush = () => {
    const parts = batch;
    const n = batchBytes;
    batch = [];
    batchBytes = 0;
    busy = true;
    writing = writing.then(async () => {
      await fh.writev(parts);
      busy = false;
      inc?.grew(n);
    });
    writing.catch(() => undefined); // awaited below; this keeps a failed write from being unhandled meanwhile
    return writing;
  };
  const from = s.size;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      if (s.size === from) mark('recv-first', { session: s.id, at: from });
      checkCaps(ctx, s, inc, chunk.length);
      s.hash.update(chunk);
      s.size += chunk.length;
      ctx.state.total += chunk.length;
      ctx.state.progressed(chunk.length);
      batch.push(chunk);
      batchBytes += chunk.length;
      // written at once when the file is idle (a reader follows closely), batched while a write is under way
      if (!busy) void flush();
      else if (batchBytes >= WRITE_BATCH) {
        await writing; // at most one batch being written while the next is received
        void flush();
      }
    }
    if (batchBytes) void flush();
    mark('recv-end', { session: s.id, at: s.size });
  } finally {
    await writing;
  }
  mark('recv-written', { session: s.id, at: s.size });
}

/** HEAD of a blob: what was received; a blob still arriving (another of the engine's requests) is waited for, but
 *  not for ever. GET is not served: the engine never reads back. */
export async function headBlob(ctx: ReceiverContext, digest: string, req: IncomingMessage, send: Send): Promise<void> {
  req.resume();
  const b = ctx.state.blobs.get(digest);
  if (!b || req.method === 'GET') throw new ReceiveError(404, 'BLOB_UNKNOWN', 'blob unknown');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('late')), ctx.limits.headWaitMs);
  });
  try {
    await Promise.race([b.done, late]);
  } catch {
    throw new ReceiveError(404, 'BLOB_UNKNOWN', 'blob unknown');
  } finally {
    clearTimeout(timer);
  }
  send(200, { 'Content-Length': String(b.size), 'Docker-Content-Digest': b.digest });
}
