// httpRequest against loopback node:http servers: deadlines (wall clock, not idle time), body caps, abort, request
// bodies (Buffer and stream), and error messages that never carry a query string or credentials.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import { HttpError, httpRequest, describeRequest } from '../../src/registry/http-request.js';
import { localServers } from '../../test/support/local-servers.js';
import { rejection } from '../../test/support/rejection.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const servers = localServers();

async function serve(handler: Handler): Promise<string> {
  return `http://${await servers.listen(http.createServer(handler))}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const caught = (p: Promise<unknown>) => rejection(p, HttpError);

/** Reads a request body on the server side: its length and sha256. */
function digestOf(req: http.IncomingMessage): Promise<{ length: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (c: Buffer) => {
      length += c.length;
      hash.update(c);
    });
    req.on('end', () => resolve({ length, sha256: hash.digest('hex') }));
    req.on('error', reject);
  });
}

describe('answers', () => {
  test('status, headers and body; a non-2xx status is an answer, not an error', async () => {
    const base = await serve((req, res) => {
      res.setHeader('X-Seen', `${req.method} ${req.url}`);
      res.statusCode = req.url === '/missing' ? 404 : 200;
      res.end('hello');
    });
    const ok = await httpRequest(`${base}/v2/?a=b`);
    expect(ok.status).toBe(200);
    expect(ok.ok).toBe(true);
    expect(ok.headers.get('X-SEEN')).toBe('GET /v2/?a=b');
    expect(ok.headers.get('x-absent')).toBeNull();
    expect(ok.body.toString()).toBe('hello');
    const missing = await httpRequest(new URL(`${base}/missing`), { method: 'delete' });
    expect(missing.status).toBe(404);
    expect(missing.ok).toBe(false);
  });

  test('repeated headers are joined', async () => {
    const base = await serve((_req, res) => {
      res.setHeader('Link', ['<a>', '<b>']);
      res.end();
    });
    expect((await httpRequest(base)).headers.get('link')).toBe('<a>, <b>');
  });

  test('HEAD: a Content-Length over the cap is the size of a GET body, not an error', async () => {
    const base = await serve((_req, res) => {
      res.setHeader('Content-Length', String(5 * 1024 * 1024));
      res.setHeader('Docker-Content-Digest', 'sha256:abc');
      res.end();
    });
    const res = await httpRequest(base, { method: 'HEAD', maxBodyBytes: 1024 });
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(0);
  });
});

describe('the deadline is wall clock, connect to last byte', () => {
  test('a body dripped one byte per 200 ms is cut off at the deadline', async () => {
    let closed = false;
    const base = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const t = setInterval(() => res.write('x'), 200);
      res.on('close', () => {
        clearInterval(t);
        closed = true;
      });
    });
    const started = Date.now();
    const err = await caught(httpRequest(`${base}/token?secret=hunter2&scope=x`, { deadlineMs: 1000 }));
    const elapsed = Date.now() - started;
    expect(err.kind).toBe('timeout');
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(1800);
    expect(err.message).toBe(`GET ${new URL(base).host}/token: no complete answer within 1 s (deadline)`);
    expect(err.message).not.toContain('hunter2');
    await sleep(100);
    expect(closed).toBe(true); // the connection was closed, not left dripping
  });

  test('a server that never answers', async () => {
    const base = await serve(() => undefined);
    const started = Date.now();
    const err = await caught(httpRequest(base, { method: 'HEAD', deadlineMs: 300 }));
    expect(err.kind).toBe('timeout');
    expect(err.message).toContain('within 300 ms');
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('the body cap', () => {
  test('a declared Content-Length over the cap fails at once', async () => {
    const base = await serve((_req, res) => {
      res.setHeader('Content-Length', String(2 * 1024 * 1024));
      res.write(Buffer.alloc(1024));
    });
    const err = await caught(httpRequest(`${base}/token`, { deadlineMs: 5000 }));
    expect(err.kind).toBe('too-large');
    expect(err.message).toContain('2097152 bytes is over the 1 MiB limit');
  });

  test('a chunked body that grows past the cap fails and the connection is closed', async () => {
    let closed = false;
    let sent = 0;
    const base = await serve((_req, res) => {
      res.writeHead(200);
      const t = setInterval(() => {
        res.write(Buffer.alloc(16 * 1024, 'a'));
        sent += 16 * 1024;
      }, 1);
      res.on('close', () => {
        clearInterval(t);
        closed = true;
      });
    });
    const err = await caught(httpRequest(base, { maxBodyBytes: 100_000, deadlineMs: 5000 }));
    expect(err.kind).toBe('too-large');
    expect(err.message).toContain('over the 100000 bytes limit');
    await sleep(100);
    expect(closed).toBe(true);
    expect(sent).toBeLessThan(10 * 1024 * 1024);
  });

  test('a body exactly at the cap is fine', async () => {
    const base = await serve((_req, res) => res.end(Buffer.alloc(1000)));
    expect((await httpRequest(base, { maxBodyBytes: 1000 })).body.length).toBe(1000);
  });
});

describe('abort', () => {
  test('a signal aborts a request under way', async () => {
    const base = await serve(() => undefined);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = Date.now();
    const err = await caught(httpRequest(`${base}/v2/x/blobs/uploads/u?_state=s`, { signal: controller.signal }));
    expect(err.kind).toBe('aborted');
    expect(err.message).toBe(`GET ${new URL(base).host}/v2/x/blobs/uploads/u: aborted`);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  test('an aborted signal sends nothing', async () => {
    let requests = 0;
    const base = await serve((_req, res) => {
      requests++;
      res.end();
    });
    const body = new PassThrough();
    const err = await caught(httpRequest(base, { method: 'PATCH', body, signal: AbortSignal.abort() }));
    expect(err.kind).toBe('aborted');
    expect(body.destroyed).toBe(true);
    await sleep(50);
    expect(requests).toBe(0);
  });
});

describe('network failures', () => {
  test('connection refused', async () => {
    const s = http.createServer(() => undefined);
    const port = (await servers.listen(s)).split(':')[1];
    await new Promise((r) => s.close(r));
    const err = await caught(httpRequest(`http://user:pass@127.0.0.1:${port}/v2/?token=t`));
    expect(err.kind).toBe('network');
    expect(err.message).toContain(`GET 127.0.0.1:${port}/v2/: `);
    expect(err.message).toContain('ECONNREFUSED');
    expect(err.message).not.toMatch(/pass|token=/);
    expect(err.cause).toBeDefined();
  });

  test('a connection reset in the middle of the body', async () => {
    const base = await serve((req, res) => {
      res.writeHead(200, { 'Content-Length': '1000' });
      res.write('partial');
      setTimeout(() => req.socket.destroy(), 50);
    });
    const err = await caught(httpRequest(base));
    expect(err.kind).toBe('network');
  });

  test('an unsupported protocol, an invalid URL, an invalid header value', async () => {
    expect((await caught(httpRequest('ftp://127.0.0.1/x'))).message).toBe('GET 127.0.0.1/x: unsupported protocol ftp:');
    const bad = await caught(httpRequest('http://user:secret@[bad/x?y=secret'));
    expect(bad.message).toBe('GET: not a valid URL');
    const base = await serve((_req, res) => res.end());
    const header = await caught(httpRequest(base, { headers: { Authorization: 'Bearer a\nb-secret' } }));
    expect(header.kind).toBe('network');
    expect(header.message).not.toContain('secret');
  });

  test('describeRequest keeps method, host and path only', () => {
    expect(describeRequest('PUT', new URL('https://u:p@registry.example.com:8443/v2/a/blobs/uploads/1?digest=x'))).toBe(
      'PUT registry.example.com:8443/v2/a/blobs/uploads/1',
    );
  });
});

describe('request bodies', () => {
  test('a Buffer is sent with its Content-Length', async () => {
    const data = randomBytes(300_000);
    let seen: { length: number; sha256: string; header?: string } | null = null;
    const base = await serve(async (req, res) => {
      seen = { ...(await digestOf(req)), header: req.headers['content-length'] };
      res.statusCode = 201;
      res.end();
    });
    const res = await httpRequest(`${base}/v2/a/blobs/uploads/1?digest=x`, { method: 'PUT', body: data });
    expect(res.status).toBe(201);
    expect(seen).toEqual({
      length: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
      header: String(data.length),
    });
  });

  test.each([
    ['with Content-Length', true],
    ['chunked', false],
  ])('a stream arrives intact (%s)', async (_name, withLength) => {
    const chunks = Array.from({ length: 40 }, () => randomBytes(100_000));
    const whole = Buffer.concat(chunks);
    let seen: { length: number; sha256: string; header?: string; te?: string } | null = null;
    const base = await serve(async (req, res) => {
      seen = { ...(await digestOf(req)), header: req.headers['content-length'], te: req.headers['transfer-encoding'] };
      res.statusCode = 202;
      res.end();
    });
    const res = await httpRequest(`${base}/v2/a/blobs/uploads/1`, {
      method: 'PATCH',
      headers: withLength ? { 'Content-Length': String(whole.length) } : {},
      body: Readable.from(chunks),
      deadlineMs: 10_000,
    });
    expect(res.status).toBe(202);
    expect(seen).toEqual({
      length: whole.length,
      sha256: createHash('sha256').update(whole).digest('hex'),
      header: withLength ? String(whole.length) : undefined,
      te: withLength ? undefined : 'chunked',
    });
  });

  test('a body stream is destroyed when the deadline ends the request', async () => {
    const base = await serve(() => undefined); // never reads, never answers
    const body = new PassThrough();
    body.write(Buffer.alloc(1000));
    const err = await caught(httpRequest(base, { method: 'PATCH', body, deadlineMs: 200 }));
    expect(err.kind).toBe('timeout');
    expect(body.destroyed).toBe(true);
  });

  test('a failing body stream fails the request', async () => {
    const base = await serve((req, res) => {
      req.resume();
      req.on('end', () => res.end());
    });
    const body = new PassThrough();
    body.write('some');
    setTimeout(() => body.destroy(new Error('disk gone')), 50);
    const err = await caught(httpRequest(base, { method: 'PATCH', body, deadlineMs: 5000 }));
    expect(err.kind).toBe('network');
    expect(err.message).toContain('request body: disk gone');
  });

  test('an answer before the whole body (a 401 to an upload) ends the upload', async () => {
    const base = await serve((_req, res) => {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="r"', Connection: 'close' });
      res.end();
    });
    const body = new PassThrough();
    body.write(Buffer.alloc(64 * 1024));
    const res = await httpRequest(base, { method: 'PATCH', body, deadlineMs: 5000 });
    expect(res.status).toBe(401);
    expect(body.destroyed).toBe(true);
  });
});
