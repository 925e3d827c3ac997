// httpRequest through a real forward proxy on 127.0.0.1 (test/support/forward-proxy.ts), which maps the test name
// registry.proxytest.example to 127.0.0.1: http:// as an absolute-URI request, https:// over a CONNECT tunnel with
// TLS to the registry's name inside it; the proxy's credentials go to the proxy only and into no message; the
// request's deadline and abort cover the CONNECT; loopback and NO_PROXY go direct.
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { HttpError, httpRequest } from '../../src/registry/http-request.js';
import { startForwardProxy, type ForwardProxy } from '../../test/support/forward-proxy.js';
import { rejection } from '../../test/support/rejection.js';
import { makeTestCa, type TestCa } from '../../test/support/test-ca.js';

const NAME = 'registry.proxytest.example';
const USER = 'proxy-user';
const PASSWORD = 'pw-7c1e9a';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function listen(server: http.Server | net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise((r) => {
        if ('closeAllConnections' in server) server.closeAllConnections();
        server.close(r);
      }),
  );
  return (server.address() as AddressInfo).port;
}

async function proxy(users?: Record<string, string>): Promise<ForwardProxy> {
  const p = await startForwardProxy({ hosts: { [NAME]: '127.0.0.1' }, users });
  closers.push(() => p.stop());
  return p;
}

/** A plain http server that answers what it was asked: method, path, Host, and whether a proxy header reached it. */
async function echoServer(): Promise<number> {
  return listen(
    http.createServer((req, res) => {
      res.end(
        JSON.stringify({
          what: `${req.method} ${req.url}`,
          host: req.headers.host,
          leaked: req.headers['proxy-authorization'] ?? null,
        }),
      );
    }),
  );
}

const caught = (p: Promise<unknown>) => rejection(p, HttpError);

describe('http:// through HTTP_PROXY: an absolute-URI request to the proxy', () => {
  test('the registry gets its own path and Host; the credentials stay with the proxy', async () => {
    const port = await echoServer();
    const fwd = await proxy({ [USER]: PASSWORD });
    const env = { HTTP_PROXY: fwd.urlWith(USER, PASSWORD) };
    const res = await httpRequest(`http://${NAME}:${port}/v2/app/tags/list?n=5`, { proxyEnv: env });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({
      what: 'GET /v2/app/tags/list?n=5',
      host: `${NAME}:${port}`,
      leaked: null,
    });
    expect(fwd.requests).toEqual([`GET http://${NAME}:${port}/v2/app/tags/list?n=5`]);
    expect(fwd.refused).toEqual([]);
  });

  test('a 407 from the proxy is an answer like any status (the proxy refused, not the registry)', async () => {
    const port = await echoServer();
    const fwd = await proxy({ [USER]: PASSWORD });
    const res = await httpRequest(`http://${NAME}:${port}/v2/`, {
      proxyEnv: { http_proxy: fwd.urlWith(USER, 'wrong') },
    });
    expect(res.status).toBe(407);
    expect(fwd.refused).toEqual([`GET http://${NAME}:${port}/v2/`]);
    expect(fwd.requests).toEqual([]);
  });
});

describe('https:// through HTTPS_PROXY: CONNECT, then TLS to the registry inside the tunnel', () => {
  let ca: TestCa;
  beforeAll(async () => {
    ca = await makeTestCa([NAME]);
  });
  afterAll(() => ca?.remove());

  /** A TLS server with a certificate from the test CA, which this process does not trust. */
  async function tlsServer(): Promise<number> {
    const server = https.createServer({ cert: ca.cert, key: ca.key }, (_req, res) => res.end('ok'));
    server.on('tlsClientError', () => undefined);
    return listen(server);
  }

  test('the tunnel is asked for NAME:PORT with the credentials; TLS speaks to NAME and checks its certificate', async () => {
    const port = await tlsServer();
    const fwd = await proxy({ [USER]: PASSWORD });
    const seen: string[] = [];
    // The handshake fails (untrusted CA), so the SNI is read off the ClientHello by a relay in front of the server.
    const sniffer = net.createServer((c) => {
      c.once('data', (hello: Buffer) => {
        seen.push(hello.includes(Buffer.from(NAME)) ? 'sni:name' : 'sni:none');
        const up = net.connect(port, '127.0.0.1', () => up.write(hello));
        up.pipe(c);
        c.pipe(up);
        up.on('error', () => c.destroy());
        c.on('error', () => up.destroy());
      });
    });
    const sniffPort = await listen(sniffer);
    const env = { HTTPS_PROXY: fwd.urlWith(USER, PASSWORD) };
    const e = await caught(httpRequest(`https://${NAME}:${sniffPort}/v2/`, { proxyEnv: env }));
    expect(fwd.tunnels).toEqual([`${NAME}:${sniffPort}`]);
    expect(fwd.refused).toEqual([]);
    expect(seen).toEqual(['sni:name']);
    // The test CA is not trusted in this process: the certificate is checked, not waved through.
    expect(e.kind).toBe('network');
    expect(e.message).toMatch(/certificate/i);
    expect(e.message).toContain(`(through the proxy 127.0.0.1:${fwd.url.split(':')[2]} from HTTPS_PROXY)`);
  });

  test('407 to the CONNECT: an error naming the proxy and the variable, never the password', async () => {
    const fwd = await proxy({ [USER]: PASSWORD });
    const proxyPort = fwd.url.split(':')[2];
    const e = await caught(
      httpRequest(`https://${NAME}:5000/v2/app/manifests/1?state=x`, {
        proxyEnv: { HTTPS_PROXY: fwd.urlWith(USER, 'wrong-pw-55') },
      }),
    );
    expect(e.message).toBe(
      `GET ${NAME}:5000/v2/app/manifests/1: the proxy answered 407 to CONNECT ${NAME}:5000; check the credentials in HTTPS_PROXY (through the proxy 127.0.0.1:${proxyPort} from HTTPS_PROXY)`,
    );
    expect(fwd.refused).toEqual([`CONNECT ${NAME}:5000`]);
  });

  /** A proxy that takes connections and never answers; says when each was closed by the client. */
  async function silentProxy(): Promise<{ port: number; closed: () => number; opened: () => number }> {
    let opened = 0;
    let closed = 0;
    const server = net.createServer((c) => {
      opened++;
      c.resume();
      c.on('close', () => closed++);
    });
    const port = await listen(server);
    return { port, opened: () => opened, closed: () => closed };
  }

  test('a proxy that takes the CONNECT and never answers: the request deadline ends it', async () => {
    const silent = await silentProxy();
    const started = Date.now();
    const e = await caught(
      httpRequest(`https://${NAME}/v2/`, {
        deadlineMs: 300,
        proxyEnv: { HTTPS_PROXY: `http://127.0.0.1:${silent.port}` },
      }),
    );
    expect(e.kind).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(1_500);
    // the CONNECT's connection is closed too, not left open at the proxy
    await new Promise((r) => setTimeout(r, 200));
    expect([silent.opened(), silent.closed()]).toEqual([1, 1]);
  });

  test('an abort during the CONNECT ends it', async () => {
    const silent = await silentProxy();
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('cancelled')), 100);
    const e = await caught(
      httpRequest(`https://${NAME}/v2/`, { signal: ac.signal, proxyEnv: { HTTPS_PROXY: `127.0.0.1:${silent.port}` } }),
    );
    expect(e.kind).toBe('aborted');
    await new Promise((r) => setTimeout(r, 200));
    expect([silent.opened(), silent.closed()]).toEqual([1, 1]);
  });

  test('no proxy listening: the error names the proxy (host:port, variable), not its credentials', async () => {
    const free = await listen(net.createServer());
    await closers.pop()?.();
    const e = await caught(
      httpRequest(`https://${NAME}/v2/`, { proxyEnv: { https_proxy: `http://${USER}:${PASSWORD}@127.0.0.1:${free}` } }),
    );
    expect(e.kind).toBe('network');
    expect(e.message).toContain(`ECONNREFUSED`);
    expect(e.message).toContain(`(through the proxy 127.0.0.1:${free} from https_proxy)`);
    expect(e.message).not.toContain(PASSWORD);
    expect(e.message).not.toContain(USER);
  });
});

describe('direct', () => {
  test('loopback is never proxied, whatever the variables say', async () => {
    const port = await echoServer();
    const fwd = await proxy();
    const env = { HTTP_PROXY: fwd.url, HTTPS_PROXY: fwd.url };
    expect((await httpRequest(`http://127.0.0.1:${port}/v2/`, { proxyEnv: env })).status).toBe(200);
    expect((await httpRequest(`http://localhost:${port}/v2/`, { proxyEnv: env })).status).toBe(200);
    expect(fwd.requests).toEqual([]);
    expect(fwd.tunnels).toEqual([]);
  });

  test('NO_PROXY naming the host: direct (here: the test name does not resolve, so the request fails)', async () => {
    const fwd = await proxy();
    const e = await caught(
      httpRequest(`http://${NAME}:9/v2/`, { proxyEnv: { HTTP_PROXY: fwd.url, NO_PROXY: '.proxytest.example' } }),
    );
    expect(e.kind).toBe('network');
    expect(e.message).not.toContain('through the proxy');
    expect(fwd.requests).toEqual([]);
  });

  test('a proxy setting that cannot be used fails the request, naming the variable and not the value', async () => {
    const e = await caught(
      httpRequest(`https://${NAME}/v2/?x=1`, {
        proxyEnv: { HTTPS_PROXY: `socks5://${USER}:${PASSWORD}@10.0.0.1:1080` },
      }),
    );
    expect(e.kind).toBe('proxy-config');
    expect(e.message).toBe(
      `GET ${NAME}/v2/: HTTPS_PROXY names a socks5:// proxy (10.0.0.1:1080); the action's own client speaks to http:// proxies only`,
    );
  });
});
