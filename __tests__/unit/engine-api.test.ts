// src/engine/engine-api.ts: which endpoint the engine API takes (a table), the engine's own unix socket spoken to
// directly (a node:http server on a socket in a temp directory stands in for the engine: no child process, the
// CLI's words when nothing listens, deadline and cancel), and answers as a raw socket sends them (chunked, cut into
// pieces, malformed, over the body cap, cut off).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Docker } from '../../src/engine/docker.js';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { DEFAULT_SOCKET, ENGINE_BODY_CAP, EngineConnection, engineEndpoint } from '../../src/engine/engine-api.js';
import { classifyFailure } from '../../src/core/policy/failure.js';
import { liveChildren } from '../../src/util/process.js';

describe('engineEndpoint', () => {
  const dial = { kind: 'dial-stdio' };
  test.each([
    ['nothing set: the default socket', {}, undefined, { kind: 'unix', path: DEFAULT_SOCKET }],
    [
      'DOCKER_HOST unix://',
      { DOCKER_HOST: 'unix:///run/x/docker.sock' },
      undefined,
      { kind: 'unix', path: '/run/x/docker.sock' },
    ],
    ['DOCKER_HOST tcp://', { DOCKER_HOST: 'tcp://10.0.0.2:2376' }, undefined, dial],
    ['DOCKER_HOST ssh://', { DOCKER_HOST: 'ssh://me@host' }, undefined, dial],
    [
      'DOCKER_HOST wins over a context',
      { DOCKER_HOST: 'unix:///a.sock', DOCKER_CONTEXT: 'remote' },
      'other',
      { kind: 'unix', path: '/a.sock' },
    ],
    ['DOCKER_CONTEXT', { DOCKER_CONTEXT: 'remote' }, undefined, dial],
    ['DOCKER_CONTEXT default', { DOCKER_CONTEXT: 'default' }, undefined, { kind: 'unix', path: DEFAULT_SOCKET }],
    ["the config's current context", {}, 'desktop-linux', dial],
    ["the config's current context is default", {}, 'default', { kind: 'unix', path: DEFAULT_SOCKET }],
  ])('%s', (_name, env, current, endpoint) => {
    expect(engineEndpoint(env as NodeJS.ProcessEnv, current)).toEqual(endpoint);
  });
});

describe('the engine on its unix socket', () => {
  let dir: string;
  let server: Server | null = null;
  const seen: string[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rp-engine-api-'));
    seen.length = 0;
  });
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((r) => (server ? server.close(r) : r(null)));
    server = null;
    rmSync(dir, { recursive: true, force: true });
  });

  /** An engine that answers what `routes` says; anything else hangs (the deadline tests). */
  async function engineOnSocket(routes: Record<string, [number, unknown]>): Promise<string> {
    const path = join(dir, 'docker.sock');
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const key = `${req.method} ${req.url}`;
      seen.push(key);
      const route = routes[key];
      if (!route) return; // hangs
      const body = route[1] === '' ? '' : JSON.stringify(route[1]);
      // as dockerd's middleware names itself on every answer
      res
        .writeHead(route[0], {
          'Content-Type': 'application/json',
          'Api-Version': '1.51',
          Server: 'Docker/28.5.2 (linux)',
        })
        .end(body);
    });
    await new Promise<void>((r) => server?.listen(path, r));
    return path;
  }

  const docker = (path: string, deadlineMs = 5000) =>
    new Docker({ DOCKER_HOST: `unix://${path}`, PATH: join(dir, 'no-docker-here') }, { deadlineMs });

  test('readImage, tag and removeImage go straight to the socket: no docker CLI is needed', async () => {
    const path = await engineOnSocket({
      'GET /_ping': [200, 'OK'],
      'GET /info': [200, { DriverStatus: [['driver-type', 'io.containerd.snapshotter.v1']] }],
      'GET /images/app:1/json': [200, { Id: 'sha256:1d', Os: 'linux', Architecture: 'arm64', RootFS: { Layers: [] } }],
      'GET /images/app:1/history': [200, [{ Size: 3, CreatedBy: 'COPY a /a' }]],
      'GET /images/r.example/app:2/json': [404, { message: 'No such image: r.example/app:2' }],
      'POST /images/sha256:1d/tag?repo=r.example%2Fapp&tag=2': [201, ''],
      'DELETE /images/r.example/app:2': [200, [{ Untagged: 'r.example/app:2' }]],
    });
    const d = docker(path);
    const read = await d.readImage('app:1', { names: ['r.example/app:2'] });
    expect(read.engine).toEqual({ serverVersion: '28.5.2', apiVersion: '1.51', containerdStore: true });
    expect(read.history).toEqual([{ size: 3, createdBy: 'COPY a /a' }]);
    expect(read.names).toEqual(new Map([['r.example/app:2', null]]));
    await d.tag('sha256:1d', 'r.example/app:2');
    await d.removeImage('r.example/app:2');
    expect(seen.slice(-2)).toEqual([
      'POST /images/sha256:1d/tag?repo=r.example%2Fapp&tag=2',
      'DELETE /images/r.example/app:2',
    ]);
    expect(liveChildren()).toBe(0);
  });

  test('nothing listening: the CLI\'s words, which the classifier reads as "engine-unreachable"', async () => {
    const path = join(dir, 'none.sock');
    const e = (await docker(path)
      .readImage('app:1')
      .catch((x: unknown) => x)) as Error;
    expect(e.message).toMatch(
      new RegExp(
        `^Cannot connect to the Docker daemon at unix://${path}\\. Is the docker daemon running\\? \\(ENOENT\\)$`,
      ),
    );
    expect(classifyFailure(e.message).kind).toBe('engine-unreachable');
  });

  test('an engine that accepts and never answers ends at the deadline; a cancel ends it at once', async () => {
    const path = await engineOnSocket({});
    const started = Date.now();
    await expect(docker(path, 400).tag('a:1', 'b:1')).rejects.toThrow('the Docker engine did not answer within 0.4 s');
    expect(Date.now() - started).toBeLessThan(2000);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    await expect(docker(path).readImage('a:1', { signal: ac.signal })).rejects.toThrow(
      'the Docker engine was cancelled',
    );
    const aborted = new AbortController();
    aborted.abort();
    await expect(docker(path).tag('a:1', 'b:1', { signal: aborted.signal })).rejects.toThrow('cancelled');
  });
});

describe('answers as the engine may send them (a raw socket stands in: node:http servers only send good ones)', () => {
  let dir: string;
  let server: NetServer | null = null;
  /** Connections the current raw engine saw closed (its own list: a previous one's may close late). */
  let closed: string[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rp-engine-raw-'));
  });
  afterEach(async () => {
    await new Promise((r) => (server ? server.close(r) : r(null)));
    server = null;
    rmSync(dir, { recursive: true, force: true });
  });

  /** Answers each request with answer(requestLine) written as it is; a function gets the socket to write to. */
  async function rawEngine(answer: (line: string) => string | ((s: Socket) => void)): Promise<string> {
    const path = join(dir, 'raw.sock');
    const mine: string[] = [];
    closed = mine;
    server = createNetServer((socket) => {
      let buf = '';
      socket.on('data', (c: Buffer) => {
        buf += c.toString('latin1');
        for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
          const line = buf.slice(0, buf.indexOf('\r\n'));
          buf = buf.slice(end + 4);
          const a = answer(line);
          if (typeof a === 'string') socket.write(a, 'latin1');
          else a(socket);
        }
      });
      socket.on('error', () => undefined);
      socket.on('close', () => mine.push('closed'));
    });
    await new Promise<void>((r) => server?.listen(path, r));
    return path;
  }

  const open = (path: string, bodyCap?: number) =>
    EngineConnection.open({ env: {}, endpoint: { kind: 'unix', path }, deadlineMs: 5000, bodyCap });
  const sized = (status: number, body: string) =>
    `HTTP/1.1 ${status} X\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const chunked = (parts: string[]) =>
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${parts.map((p) => `${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`).join('')}0\r\n\r\n`;

  test.each([
    ['sized', sized(200, '{"a":1}'), 200, '{"a":1}'],
    ['sized 404', sized(404, '{"message":"x"}'), 404, '{"message":"x"}'],
    ['chunked', chunked(['{"a":', '1}']), 200, '{"a":1}'],
    ['chunk extension', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n', 200, 'abc'],
    ['204', 'HTTP/1.1 204 No Content\r\n\r\n', 204, ''],
    ['HTTP/1.0', 'HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok', 200, 'ok'],
  ])('%s', async (_name, raw, status, body) => {
    const conn = open(await rawEngine(() => raw));
    const r = await conn.request('GET', '/x');
    await conn.close();
    expect(r.status).toBe(status);
    expect(r.body.toString()).toBe(body);
  });

  test('answers cut into pieces are put together, and many requests share the connections', async () => {
    const raw = chunked(['{"a":', '1}']);
    const path = await rawEngine(() => (s) => {
      const piece = (i: number): void => {
        if (i < raw.length) s.write(raw.slice(i, i + 7), 'latin1', () => setTimeout(() => piece(i + 7), 2));
      };
      piece(0);
    });
    const conn = open(path);
    const bodies = await Promise.all(Array.from({ length: 20 }, () => conn.json('/x')));
    await conn.close();
    expect(bodies).toEqual(Array.from({ length: 20 }, () => ({ a: 1 })));
  });

  test.each([
    ['not HTTP', 'SSH-2.0-OpenSSH\r\n\r\n', /^engine API \/x: Parse Error/],
    ['bad length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /^engine API \/x: Parse Error/],
    ['bad chunk', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /^engine API \/x: Parse Error/],
    [
      'a declared body over the cap, refused before it arrives',
      'HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n',
      new RegExp(`^engine API /x: response body over ${ENGINE_BODY_CAP} bytes$`),
    ],
  ])('%s fails, naming the request', async (_name, raw, error) => {
    const conn = open(await rawEngine(() => raw));
    await expect(conn.request('GET', '/x')).rejects.toThrow(error);
    await conn.close();
  });

  test('a chunked body that goes on past the cap fails there and the connection is dropped', async () => {
    const path = await rawEngine(() => (s) => {
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
      const more = (): void => {
        if (!s.destroyed) s.write(`100\r\n${'x'.repeat(256)}\r\n`, () => setImmediate(more));
      };
      more(); // never ends: only the cap stops it
    });
    const conn = open(path, 4096);
    const started = Date.now();
    await expect(conn.request('GET', '/x')).rejects.toThrow('engine API /x: response body over 4096 bytes');
    expect(Date.now() - started).toBeLessThan(2000);
    await conn.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toEqual(['closed']);
  });

  test('a sized body over the cap fails', async () => {
    const conn = open(await rawEngine(() => sized(200, 'y'.repeat(5000))), 4096);
    await expect(conn.json('/x')).rejects.toThrow('engine API /x: response body over 4096 bytes');
    await conn.close();
  });

  test('an engine that drops the connection mid-answer: the words for it, not a hang', async () => {
    const path = await rawEngine(() => (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    const conn = open(path);
    await expect(conn.request('GET', '/x')).rejects.toThrow(
      `the Docker engine closed the connection at unix://${path}`,
    );
    await conn.close();
  });
});
