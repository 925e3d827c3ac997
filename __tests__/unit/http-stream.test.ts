// httpStream against loopback node:http servers: the body arrives as a stream once the headers are in, within the
// header deadline; a server that stops sending for the idle deadline, a body over the cap, a cut connection or an
// abort fail the stream with an HttpError; a reader that is slow to ask is never cut off (the idle clock runs only
// while it waits).
import http from 'node:http';
import { HttpError, httpStream, type HttpErrorKind } from '../../src/registry/http-request.js';
import { localServers } from '../../test/support/local-servers.js';
import { rejection } from '../../test/support/rejection.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
const servers = localServers();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function serve(handler: Handler): Promise<string> {
  return `http://${await servers.listen(http.createServer(handler))}`;
}

/** Reads a body to its end; `pauseMs` after the first chunk (a reader busy elsewhere). */
async function readAll(body: NodeJS.ReadableStream, pauseMs = 0): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) {
    chunks.push(c as Buffer);
    if (pauseMs && chunks.length === 1) await sleep(pauseMs);
  }
  return Buffer.concat(chunks);
}

const KiB = 1024;
const piece = Buffer.alloc(64 * KiB, 7);

/** Sends `n` pieces of 64 KiB, `gapMs` apart, then ends (or resets instead of the last). */
function dripper(n: number, gapMs: number, end: 'end' | 'reset' | 'hang' = 'end'): Handler {
  return async (_req, res) => {
    res.writeHead(200, { 'Content-Length': String(n * piece.length) });
    for (let i = 0; i < n - 1 && !res.destroyed; i++) {
      res.write(piece);
      await sleep(gapMs);
    }
    if (end === 'reset') res.socket?.destroy();
    else if (end === 'end') res.end(piece);
  };
}

describe('httpStream', () => {
  test('the body in full, status and headers at once', async () => {
    const base = await serve(dripper(8, 5));
    const res = await httpStream(`${base}/blob`, { maxBodyBytes: 8 * piece.length, idleMs: 2000 });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(8 * piece.length));
    expect((await readAll(res.body)).equals(Buffer.concat(Array(8).fill(piece)))).toBe(true);
  });

  test('a small body that arrives with the headers is read before its end is seen', async () => {
    const base = await serve((_q, r) => r.end('eleven byte'));
    const res = await httpStream(`${base}/blob`);
    await new Promise((r) => setTimeout(r, 50)); // the whole answer is parsed before anyone reads
    expect((await readAll(res.body)).toString()).toBe('eleven byte');
  });

  test('a reader that pauses longer than the idle deadline between reads is not cut off', async () => {
    const base = await serve(dripper(40, 0));
    const res = await httpStream(`${base}/blob`, { maxBodyBytes: 40 * piece.length, idleMs: 150 });
    // the server has sent all it can; the reader is away for 500 ms: backpressure, not a server that went quiet
    expect((await readAll(res.body, 500)).length).toBe(40 * piece.length);
  });

  test.each<[string, Handler, { idleMs?: number; maxBodyBytes?: number; deadlineMs?: number }, HttpErrorKind, RegExp]>([
    [
      'a server that stops mid-body',
      dripper(3, 10, 'hang'),
      { idleMs: 200 },
      'timeout',
      /no byte of the answer for 200 ms/,
    ],
    [
      'a connection reset mid-body',
      dripper(3, 10, 'reset'),
      {},
      'network',
      /connection closed|aborted|socket hang up|ECONNRESET/,
    ],
    [
      'a chunked body past the cap',
      (_q, r) => [r.write(piece), r.write(piece), r.end(piece)],
      { maxBodyBytes: 100 * KiB },
      'too-large',
      /over the 102400 bytes limit/,
    ],
  ])('%s: the stream fails with an HttpError', async (_name, handler, options, kind, message) => {
    const base = await serve(handler);
    const res = await httpStream(`${base}/v2/x/blobs/sha256:abc?sig=secret`, { maxBodyBytes: 1024 * KiB, ...options });
    const error = await rejection(readAll(res.body), HttpError);
    expect(error.kind).toBe(kind);
    expect(error.message).toMatch(message);
    expect(error.message).toContain('GET 127.0.0.1');
    expect(error.message).not.toContain('secret');
  });

  test.each<[string, Handler, { maxBodyBytes?: number; deadlineMs?: number }, HttpErrorKind]>([
    ['no headers within the deadline', () => undefined, { deadlineMs: 200 }, 'timeout'],
    ['a declared length over the cap', dripper(4, 0), { maxBodyBytes: 100 * KiB }, 'too-large'],
  ])('%s: the request itself fails', async (_name, handler, options, kind) => {
    const base = await serve(handler);
    expect((await rejection(httpStream(`${base}/blob`, options), HttpError)).kind).toBe(kind);
  });

  test('an abort mid-body fails the stream and closes the connection', async () => {
    let closed!: Promise<void>;
    const base = await serve((req, res) => {
      closed = new Promise((r) => res.on('close', () => r()));
      dripper(1000, 20)(req, res);
    });
    const abort = new AbortController();
    const res = await httpStream(`${base}/blob`, { maxBodyBytes: 1000 * piece.length, signal: abort.signal });
    const reading = readAll(res.body);
    await sleep(50);
    abort.abort();
    expect((await rejection(reading, HttpError)).kind).toBe('aborted');
    await closed;
  });

  test('a reader that destroys the body early closes the connection', async () => {
    let closed!: Promise<void>;
    const base = await serve((req, res) => {
      closed = new Promise((r) => res.on('close', () => r()));
      dripper(1000, 5)(req, res);
    });
    const res = await httpStream(`${base}/blob`, { maxBodyBytes: 1000 * piece.length });
    res.body.once('data', () => res.body.destroy());
    await closed;
    expect(res.body.destroyed).toBe(true);
  });
});
