// RegistryClient against a loopback registry of our own (node:http): Basic and Bearer with scopes, the remembered
// Authorization, the realm rule, manifest HEAD answers, Retry-After, and the bounds every request carries (a token
// that drips, a huge token, garbage JSON, abort), plus send() for the uploader.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { HttpError, httpRequest, type HttpRequest } from '../../src/registry/http-request.js';
import { MANIFEST_ACCEPT } from '../../src/image/oci.js';
import { RegistryClient, RegistryError } from '../../src/registry/registry-client.js';
import { localServers } from '../../test/support/local-servers.js';
import { rejection } from '../../test/support/rejection.js';

const USER = 'vendor@example.com';
const PASS = 's3cret-token';
const BASIC = `Basic ${Buffer.from(`${USER}:${PASS}`).toString('base64')}`;
const DIGEST = `sha256:${'a'.repeat(64)}`;

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization?: string;
  accept?: string;
  bodyLength: number;
  bodySha256: string;
}

type Reply = (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen) => void | Promise<void>;

const servers = localServers();

/** A server that records every request (its body read in full first) and answers with `reply`. */
async function serve(reply: Reply): Promise<{ host: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const hash = createHash('sha256');
    let bodyLength = 0;
    req.on('data', (c: Buffer) => {
      bodyLength += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const s: Seen = {
        method: req.method ?? '',
        path: url.pathname,
        query: url.searchParams,
        authorization: req.headers.authorization,
        accept: req.headers.accept,
        bodyLength,
        bodySha256: hash.digest('hex'),
      };
      seen.push(s);
      void reply(req, res, s);
    });
  });
  return { host: await servers.listen(server), seen };
}

function manifestReply(res: http.ServerResponse, path: string): void {
  if (path.endsWith('/manifests/missing')) {
    res.statusCode = 404;
    res.end();
    return;
  }
  res.writeHead(200, {
    'Docker-Content-Digest': DIGEST,
    'Content-Type': 'application/vnd.oci.image.manifest.v1+json; charset=utf-8',
    'Content-Length': '1234',
  });
  res.end();
}

/** A registry with Basic auth (distribution's htpasswd). */
async function basicRegistry() {
  return serve((_req, res, s) => {
    if (s.authorization !== BASIC) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="Registry Realm"' });
      res.end();
      return;
    }
    if (s.path.includes('/manifests/')) return manifestReply(res, s.path);
    res.statusCode = s.method === 'PATCH' ? 202 : 200;
    res.end();
  });
}

interface TokenServer {
  /** The answer of the token endpoint: JSON of a fresh token by default. */
  token?: (res: http.ServerResponse, s: Seen) => void;
  /** Where the challenge's realm points; the registry's own /token by default. */
  realm?: (host: string) => string;
}

/** A registry with Bearer auth: tokens from /token carry their scope; the registry checks it. */
async function bearerRegistry(opts: TokenServer = {}) {
  const issued = new Map<string, string>(); // token -> scope
  let counter = 0;
  const ctx: { host: string; revoke(): void } = { host: '', revoke: () => issued.clear() };
  const server = await serve((_req, res, s) => {
    if (s.path === '/token') {
      if (s.authorization !== BASIC) {
        res.statusCode = 401;
        res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      if (opts.token) return opts.token(res, s);
      const token = `tok${++counter}`;
      issued.set(token, s.query.get('scope') ?? '');
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ token, expires_in: 300 }));
      return;
    }
    const repo = /^\/v2\/(.+?)\/(manifests|blobs)\//.exec(s.path)?.[1];
    const needed = repo ? `repository:${repo}:${s.method === 'HEAD' || s.method === 'GET' ? 'pull' : 'push'}` : '';
    const granted = issued.get(s.authorization?.replace(/^Bearer /, '') ?? '');
    const grants = (g: string) => {
      if (!needed) return true;
      const [, name, actions] = /^repository:(.+):([^:]+)$/.exec(g) ?? [];
      return name === repo && actions.split(',').includes(needed.split(':').pop() as string);
    };
    if (granted === undefined || !grants(granted)) {
      const realm = opts.realm ? opts.realm(ctx.host) : `http://${ctx.host}/token`;
      const scope = needed ? `,scope="${needed}"` : '';
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="${realm}",service="test-registry"${scope}` });
      res.end();
      return;
    }
    if (s.path.includes('/manifests/')) return manifestReply(res, s.path);
    res.statusCode = s.method === 'PATCH' ? 202 : s.method === 'PUT' ? 201 : 200;
    res.setHeader('Range', `0-${s.bodyLength - 1}`);
    res.end();
  });
  ctx.host = server.host;
  return { ...server, revoke: ctx.revoke };
}

const client = (host: string, options?: ConstructorParameters<typeof RegistryClient>[2]) =>
  new RegistryClient(host, { username: USER, password: PASS }, options);

const unauthorized = (seen: Seen[]) => seen.filter((s) => s.path !== '/token' && !s.authorization).length;
const tokenRequests = (seen: Seen[]) => seen.filter((s) => s.path === '/token');

const registryError = (p: Promise<unknown>) => rejection(p, RegistryError);
const httpError = (p: Promise<unknown>) => rejection(p, HttpError);

describe('Basic', () => {
  test('a 401 Basic challenge is answered with the credentials, then remembered for every scope', async () => {
    const { host, seen } = await basicRegistry();
    const c = client(host);
    expect(await c.headManifest('app/api', 'v1')).toEqual({
      digest: DIGEST,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
    });
    expect(seen.map((s) => [s.method, s.path, s.authorization])).toEqual([
      ['HEAD', '/v2/app/api/manifests/v1', undefined],
      ['HEAD', '/v2/app/api/manifests/v1', BASIC],
    ]);
    expect(seen[1].accept).toBe(MANIFEST_ACCEPT);
    expect(await c.headManifest('app/other', 'v2')).not.toBeNull();
    const body = Buffer.from('chunk');
    expect(
      (await c.send({ method: 'PATCH', url: '/v2/app/api/blobs/uploads/1', repository: 'app/api', push: true, body }))
        .status,
    ).toBe(202);
    expect(unauthorized(seen)).toBe(1);
    expect(seen.filter((s) => s.method === 'PATCH')).toHaveLength(1);
  });

  test('wrong credentials: one 401 round trip, not a loop, and the 401 is reported', async () => {
    const { host, seen } = await basicRegistry();
    const c = new RegistryClient(host, { username: USER, password: 'wrong' });
    const err = await registryError(c.headManifest('app/api', 'v1'));
    expect(err.status).toBe(401);
    expect(err.message).toBe(`${host}: HEAD app/api:v1 answered 401`);
    expect(seen).toHaveLength(2);
    await registryError(c.headManifest('app/api', 'v1'));
    expect(seen).toHaveLength(3); // Basic is sent at once; the same credentials are not sent twice
  });

  test('a 401 without a challenge is the answer', async () => {
    const { host, seen } = await serve((_req, res) => {
      res.statusCode = 401;
      res.end();
    });
    expect((await registryError(client(host).headManifest('a', 'b'))).status).toBe(401);
    expect(seen).toHaveLength(1);
  });

  test('an unsupported scheme', async () => {
    const { host } = await serve((_req, res) => {
      res.writeHead(401, { 'WWW-Authenticate': 'Negotiate' });
      res.end();
    });
    const err = await registryError(client(host).headManifest('a', 'b'));
    expect(err.message).toContain('unsupported authentication scheme "negotiate"');
  });
});

describe('Bearer', () => {
  test('pull scope for a manifest HEAD; the token endpoint gets service, scope and Basic', async () => {
    const { host, seen } = await bearerRegistry();
    const c = client(host);
    expect((await c.headManifest('app/api', 'v1'))?.digest).toBe(DIGEST);
    const [token] = tokenRequests(seen);
    expect(token.authorization).toBe(BASIC);
    expect(token.method).toBe('GET');
    expect(Object.fromEntries(token.query)).toEqual({ service: 'test-registry', scope: 'repository:app/api:pull' });
    expect(seen.at(-1)?.authorization).toBe('Bearer tok1');
  });

  test('the Authorization that worked is remembered per scope: no second 401, no second token', async () => {
    const { host, seen } = await bearerRegistry();
    const c = client(host);
    await c.headManifest('app/api', 'v1');
    await c.headManifest('app/api', 'v2');
    await c.headManifest('app/api', 'missing');
    expect(unauthorized(seen)).toBe(1);
    expect(tokenRequests(seen)).toHaveLength(1);
    // another repository is another scope
    await c.headManifest('app/web', 'v1');
    expect(tokenRequests(seen).map((s) => s.query.get('scope'))).toEqual([
      'repository:app/api:pull',
      'repository:app/web:pull',
    ]);
  });

  test('push scope for uploads, fetched before the body is sent; a push token also reads', async () => {
    const { host, seen } = await bearerRegistry();
    const c = client(host);
    const body = randomBytes(200_000);
    const res = await c.send({
      method: 'PATCH',
      url: '/v2/app/api/blobs/uploads/u1',
      repository: 'app/api',
      push: true,
      body,
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('range')).toBe(`0-${body.length - 1}`);
    expect(tokenRequests(seen).map((s) => s.query.get('scope'))).toEqual(['repository:app/api:pull,push']);
    const patches = seen.filter((s) => s.method === 'PATCH');
    expect(patches).toHaveLength(1); // the body crossed the wire once
    expect(patches[0].bodyLength).toBe(body.length);
    // the probe that fetched the challenge carried no credentials and no body
    expect(seen[0]).toMatchObject({ method: 'GET', path: '/v2/', authorization: undefined, bodyLength: 0 });
    await c.headManifest('app/api', 'v1');
    expect(tokenRequests(seen)).toHaveLength(1);
  });

  test('a pull token is not enough for a push: the 401 fetches a push token (no body)', async () => {
    const { host, seen } = await bearerRegistry();
    const c = client(host);
    await c.headManifest('app/api', 'v1');
    const res = await c.send({ method: 'POST', url: '/v2/app/api/blobs/uploads/', repository: 'app/api', push: true });
    expect(res.status).toBe(200);
    expect(tokenRequests(seen).map((s) => s.query.get('scope'))).toEqual([
      'repository:app/api:pull',
      'repository:app/api:pull,push',
    ]);
  });

  test('an expired token: the 401 fetches a fresh one and the request is sent once more', async () => {
    const { host, seen, revoke } = await bearerRegistry();
    const c = client(host);
    await c.headManifest('app/api', 'v1');
    revoke();
    expect((await c.headManifest('app/api', 'v1'))?.digest).toBe(DIGEST);
    expect(seen.filter((s) => s.path === '/v2/app/api/manifests/v1').map((s) => s.authorization)).toEqual([
      undefined,
      'Bearer tok1',
      'Bearer tok1',
      'Bearer tok2',
    ]);
  });

  test('a stream body is never sent twice: a 401 with a stale token is the answer, the next request gets a fresh token', async () => {
    const { host, seen, revoke } = await bearerRegistry();
    const c = client(host);
    const first = await c.send({
      method: 'PATCH',
      url: '/v2/app/api/blobs/uploads/u1',
      repository: 'app/api',
      push: true,
      body: Readable.from([Buffer.from('abc')]),
    });
    expect(first.status).toBe(202);
    revoke();
    const stale = await c.send({
      method: 'PATCH',
      url: '/v2/app/api/blobs/uploads/u1',
      repository: 'app/api',
      push: true,
      body: Readable.from([Buffer.from('def')]),
    });
    expect(stale.status).toBe(401);
    expect(seen.filter((s) => s.method === 'PATCH')).toHaveLength(2);
    const again = await c.send({
      method: 'PATCH',
      url: '/v2/app/api/blobs/uploads/u1',
      repository: 'app/api',
      push: true,
      body: Readable.from([Buffer.from('def')]),
    });
    expect(again.status).toBe(202);
    expect(tokenRequests(seen)).toHaveLength(2);
  });

  test('a streamed body arrives intact, with its Content-Length', async () => {
    const { host, seen } = await bearerRegistry();
    const chunks = Array.from({ length: 30 }, () => randomBytes(64 * 1024));
    const whole = Buffer.concat(chunks);
    const res = await client(host).send({
      method: 'PATCH',
      url: `http://${host}/v2/app/api/blobs/uploads/u1?_state=abc`,
      repository: 'app/api',
      push: true,
      headers: { 'Content-Length': String(whole.length), 'Content-Range': `0-${whole.length - 1}` },
      body: Readable.from(chunks),
      deadlineMs: 10_000,
    });
    expect(res.status).toBe(202);
    const patch = seen.find((s) => s.method === 'PATCH');
    expect(patch?.query.get('_state')).toBe('abc');
    expect(patch?.bodyLength).toBe(whole.length);
    expect(patch?.bodySha256).toBe(createHash('sha256').update(whole).digest('hex'));
  });

  test('parallel uploads share one token request', async () => {
    const { host, seen } = await bearerRegistry();
    const c = client(host);
    const results = await Promise.all(
      [1, 2, 3, 4].map((i) =>
        c.send({
          method: 'PUT',
          url: `/v2/app/api/blobs/uploads/u${i}`,
          repository: 'app/api',
          push: true,
          body: Buffer.from('x'),
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual([201, 201, 201, 201]);
    expect(tokenRequests(seen)).toHaveLength(1);
  });

  test('an access_token field, and a challenge scope used when the request has none', async () => {
    const { host, seen } = await bearerRegistry({
      token: (res) => res.end(JSON.stringify({ access_token: 'tokA' })),
    });
    // GET /v2/ is not repository-scoped: the client asks for no scope, and the token is accepted by nothing here
    expect(await client(host).retryAfterMs()).toBeNull();
    expect(tokenRequests(seen)[0].query.get('scope')).toBeNull();
  });

  test('an open registry: a body request probes /v2/ once and sends no credentials', async () => {
    const { host, seen } = await serve((_req, res) => {
      res.statusCode = 202;
      res.end();
    });
    const c = client(host);
    for (const u of ['u1', 'u2'])
      await c.send({
        method: 'PATCH',
        url: `/v2/a/blobs/uploads/${u}`,
        repository: 'a',
        push: true,
        body: Buffer.from('x'),
      });
    expect(seen.map((s) => [s.method, s.path, s.authorization])).toEqual([
      ['GET', '/v2/', undefined],
      ['PATCH', '/v2/a/blobs/uploads/u1', undefined],
      ['PATCH', '/v2/a/blobs/uploads/u2', undefined],
    ]);
  });

  test('a probe that fails fails its request; the next body request probes again', async () => {
    let probes = 0;
    const sent: (string | undefined)[] = [];
    const request: HttpRequest = async (url, init = {}) => {
      const path = new URL(url).pathname;
      const headers = (h: Record<string, string>) => ({ get: (n: string) => h[n.toLowerCase()] ?? null });
      if (path === '/v2/' && ++probes === 1) throw new HttpError('network', 'GET registry.example.com/v2/', 'reset');
      if (path === '/v2/')
        return {
          status: 401,
          ok: false,
          headers: headers({ 'www-authenticate': 'Basic realm="r"' }),
          body: Buffer.alloc(0),
        };
      sent.push(init.headers?.Authorization);
      return { status: 202, ok: true, headers: headers({}), body: Buffer.alloc(0) };
    };
    const c = new RegistryClient('registry.example.com', { username: USER, password: PASS }, { request });
    const patch = {
      method: 'PATCH',
      url: '/v2/a/blobs/uploads/u',
      repository: 'a',
      push: true,
      body: Buffer.from('x'),
    };
    expect((await httpError(c.send(patch))).kind).toBe('network');
    expect((await c.send(patch)).status).toBe(202);
    expect(probes).toBe(2);
    expect(sent).toEqual([BASIC]);
  });

  test('a Location on another host is sent no Authorization', async () => {
    const { host } = await bearerRegistry();
    const storage = await serve((_req, res) => {
      res.statusCode = 201;
      res.end();
    });
    const c = client(host);
    await c.headManifest('app/api', 'v1');
    const res = await c.send({
      method: 'PUT',
      url: `http://${storage.host}/upload/abc?signature=x`,
      repository: 'app/api',
      push: true,
      body: Buffer.from('data'),
    });
    expect(res.status).toBe(201);
    expect(storage.seen).toHaveLength(1);
    expect(storage.seen[0].authorization).toBeUndefined();
  });
});

describe('Locations: the Authorization only to the registry origin, no downgrade to plain http', () => {
  // Issue 18: the mutation "send the remembered token of the same scope to any Location" failed no test.
  test.each([
    ['another port of 127.0.0.1', '127.0.0.1'],
    ['another loopback address', '127.0.0.2'],
  ])(
    'a push token remembered for the scope is not sent to a Location on %s, nor a token fetched for it',
    async (_name, at) => {
      const { host, seen } = await bearerRegistry();
      const storageSeen: Array<string | undefined> = [];
      const storage = http.createServer((req, res) => {
        storageSeen.push(req.headers.authorization);
        req.resume();
        // a storage host that asks for credentials itself gets none either
        res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${host}/token",service="s"` });
        res.end();
      });
      const storageHost = await servers.listen(storage, at);
      const c = client(host);
      const push = { repository: 'app/api', push: true, body: Buffer.from('data') };
      expect((await c.send({ ...push, method: 'PATCH', url: '/v2/app/api/blobs/uploads/1' })).status).toBe(202);
      const pushToken = seen.find((s) => s.method === 'PATCH' && s.authorization)?.authorization;
      expect(pushToken).toMatch(/^Bearer tok/);
      const tokensBefore = tokenRequests(seen).length;

      const res = await c.send({ ...push, method: 'PUT', url: `http://${storageHost}/upload/abc?signature=x` });
      expect(res.status).toBe(401);
      expect(storageSeen).toEqual([undefined]);
      expect(tokenRequests(seen)).toHaveLength(tokensBefore);
      // and the registry itself still gets it
      await c.send({ ...push, method: 'PATCH', url: `http://${host}/v2/app/api/blobs/uploads/1` });
      expect(seen[seen.length - 1].authorization).toBe(pushToken);
    },
  );

  /** A fake network for an https registry: every request recorded with its Authorization. */
  function remoteNetwork() {
    const asked: Array<[string, string | undefined]> = [];
    const request: HttpRequest = async (url, init = {}) => {
      const u = new URL(url);
      asked.push([`${init.method ?? 'GET'} ${u.origin}${u.pathname}`, init.headers?.Authorization]);
      return { status: 202, ok: true, headers: { get: () => null }, body: Buffer.alloc(0) };
    };
    return {
      asked,
      request,
      c: new RegistryClient('registry.example.com', { username: USER, password: PASS }, { request }),
    };
  }

  test.each([
    ['plain http on the registry host', 'http://registry.example.com/v2/app/api/blobs/uploads/1?_state=x'],
    ['plain http on another host', 'http://storage.example.net/upload?sig=x'],
    ['plain http on loopback', 'http://127.0.0.1:9/upload'],
  ])('an https registry: a Location over %s is refused, nothing sent', async (_name, url) => {
    const { asked, c } = remoteNetwork();
    const body = Readable.from([Buffer.from('layer bytes')]);
    const err = await registryError(c.send({ method: 'PATCH', url, repository: 'app/api', push: true, body }));
    expect(err.kind).toBe('unsafe-location');
    expect(err.message).toBe(
      `registry.example.com: refusing to send PATCH to ${new URL(url).host}: it is plain http, the registry https`,
    );
    expect(err.message).not.toContain('_state');
    expect(asked).toEqual([]);
    expect(body.destroyed).toBe(true);
  });

  test('an https registry: an https Location elsewhere is sent, without any Authorization', async () => {
    const { asked, c } = remoteNetwork();
    const url = 'https://storage.example.net/upload?sig=x';
    const res = await c.send({ method: 'PUT', url, repository: 'app/api', push: true, body: Buffer.from('x') });
    expect(res.status).toBe(202);
    expect(asked).toEqual([['PUT https://storage.example.net/upload', undefined]]);
  });

  test('a loopback registry: a Location over plain http to a remote host is refused', async () => {
    const { host, seen } = await bearerRegistry();
    const url = 'http://storage.example.net/upload';
    const err = await registryError(client(host).send({ method: 'PUT', url, repository: 'app/api', push: true }));
    expect(err.message).toBe(
      `${host}: refusing to send PUT to storage.example.net: it is plain http to a host not on loopback`,
    );
    expect(seen).toEqual([]);
  });
});

describe('the token request is bounded like every other', () => {
  test('a token dripped one byte per 200 ms ends at the deadline', async () => {
    const { host } = await bearerRegistry({
      token: (res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const t = setInterval(() => res.write(' '), 200);
        res.on('close', () => clearInterval(t));
      },
    });
    const started = Date.now();
    const err = await httpError(client(host, { deadlineMs: 1000 }).headManifest('app/api', 'v1'));
    const elapsed = Date.now() - started;
    expect(err.kind).toBe('timeout');
    expect(err.message).toContain(`GET ${host}/token: `);
    expect(err.message).not.toContain('scope=');
    expect(elapsed).toBeLessThan(1800);
  });

  test('a huge token body is refused at the cap', async () => {
    const { host } = await bearerRegistry({
      token: (res) => res.end(JSON.stringify({ token: 'x'.repeat(2 * 1024 * 1024) })),
    });
    const err = await httpError(client(host).headManifest('app/api', 'v1'));
    expect(err.kind).toBe('too-large');
  });

  test.each([
    [
      'garbage JSON',
      (res: http.ServerResponse) => res.end('<html>gateway</html>'),
      'answered 20 bytes that are not JSON',
    ],
    ['no token', (res: http.ServerResponse) => res.end('{"expires_in":60}'), 'returned no token'],
    ['null', (res: http.ServerResponse) => res.end('null'), 'returned no token'],
    ['a token that is not a string', (res: http.ServerResponse) => res.end('{"token":42}'), 'returned no token'],
    [
      'a token that would smuggle a header',
      (res: http.ServerResponse) => res.end('{"token":"abc\\r\\nX-Evil: 1"}'),
      'returned a token that is not a valid header value',
    ],
    [
      'a refusal',
      (res: http.ServerResponse) => {
        res.statusCode = 403;
        res.end();
      },
      'answered 403',
    ],
  ])('%s', async (_name, token, message) => {
    const { host } = await bearerRegistry({ token });
    const err = await registryError(client(host).headManifest('app/api', 'v1'));
    expect(err.message).toBe(`${host}: the token realm ${host} ${message}`);
  });

  test('wrong credentials at the token endpoint', async () => {
    const { host } = await bearerRegistry();
    const c = new RegistryClient(host, { username: USER, password: 'nope' });
    const err = await registryError(c.headManifest('app/api', 'v1'));
    expect(err.status).toBe(401);
    expect(err.message).not.toContain('nope');
  });

  test('a signal aborts the lookup', async () => {
    const { host } = await serve(() => undefined);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const err = await httpError(client(host).headManifest('app/api', 'v1', controller.signal));
    expect(err.kind).toBe('aborted');
  });
});

describe('the realm rule', () => {
  /** A fake HTTP layer for hosts that are not on this machine: every URL it is asked for is recorded. */
  function fakeNetwork(realm: string) {
    const asked: string[] = [];
    const request: HttpRequest = async (url, init = {}) => {
      const u = new URL(url);
      asked.push(`${init.method ?? 'GET'} ${u.origin}${u.pathname}`);
      const headers = (h: Record<string, string>) => ({ get: (n: string) => h[n.toLowerCase()] ?? null });
      if (u.pathname.endsWith('/token'))
        return { status: 200, ok: true, headers: headers({}), body: Buffer.from('{"token":"t"}') };
      if (init.headers?.Authorization === 'Bearer t')
        return { status: 200, ok: true, headers: headers({ 'docker-content-digest': DIGEST }), body: Buffer.alloc(0) };
      return {
        status: 401,
        ok: false,
        headers: headers({ 'www-authenticate': `Bearer realm="${realm}",service="s"` }),
        body: Buffer.alloc(0),
      };
    };
    return { asked, request };
  }

  // A remote registry is https: its realm must be too, wherever it is (registry-origin.test.ts has the full table).
  test.each([
    ['https on another host', 'https://auth.example.com/token'],
    ['https on the registry host, another port', 'https://registry.example.com:8443/token'],
  ])('allowed: %s', async (_name, realm) => {
    const { asked, request } = fakeNetwork(realm);
    const c = new RegistryClient('registry.example.com', { username: USER, password: PASS }, { request });
    expect((await c.headManifest('app/api', 'v1'))?.digest).toBe(DIGEST);
    expect(asked[0]).toBe('HEAD https://registry.example.com/v2/app/api/manifests/v1');
    expect(asked[1]).toBe(`GET ${new URL(realm).origin}/token`);
  });

  const remote = 'it is plain http and the registry is not on loopback';
  test.each([
    ['http on another host', 'http://auth.example.net:8080/token', 'auth.example.net:8080', remote],
    ['a scheme that is not http', 'ftp://auth.example.net/token', 'auth.example.net', 'its scheme ftp is not https'],
    // plain http crosses the network in clear text, whichever host of the registry's it names
    ['http on the registry host', 'http://registry.example.com/token', 'registry.example.com', remote],
    ['http on the registry host, other case', 'http://REGISTRY.example.com/token', 'registry.example.com', remote],
    [
      'http on the registry host, another port',
      'http://registry.example.com:5001/token',
      'registry.example.com:5001',
      remote,
    ],
    // a local service on a shared runner is another host too
    ['http on localhost', 'http://localhost:9/token', 'localhost:9', remote],
    ['http on 127.x', 'http://127.5.0.1/token', '127.5.0.1', remote],
    ['http on ::1', 'http://[::1]:9/token', '[::1]:9', remote],
    [
      'ftp on the registry host',
      'ftp://registry.example.com/token',
      'registry.example.com',
      'its scheme ftp is not https',
    ],
  ])('refused: %s, naming the realm host', async (_name, realm, realmHost, why) => {
    const { asked, request } = fakeNetwork(realm);
    const c = new RegistryClient('registry.example.com', { username: USER, password: PASS }, { request });
    const err = await registryError(c.headManifest('app/api', 'v1'));
    expect(err.kind).toBe('unsafe-realm');
    expect(err.message).toBe(
      `registry.example.com: refusing to send credentials to the token realm ${realmHost}: ${why} ` +
        "(a realm must use https, or plain http only on a loopback registry's own origin)",
    );
    expect(asked).toEqual(['HEAD https://registry.example.com/v2/app/api/manifests/v1']); // nothing sent to the realm
  });

  test('refused against a real loopback registry whose realm points elsewhere over http', async () => {
    const { host, seen } = await bearerRegistry({ realm: () => 'http://tokens.example.org/token' });
    const err = await registryError(client(host).headManifest('app/api', 'v1'));
    expect(err.message).toContain(
      "token realm tokens.example.org: it is plain http to another origin than the registry's",
    );
    expect(tokenRequests(seen)).toHaveLength(0);
  });

  // Issue 18 item 3: the old rule compared host names only, and sent Basic to any port of the registry's host.
  test.each([
    ['another port of 127.0.0.1', '127.0.0.1'],
    ['another loopback address', '127.0.0.2'],
  ])('a loopback registry whose realm is on %s: that server receives no credentials', async (_name, at) => {
    const realm = http.createServer((req, res) => {
      realmSeen.push(req.headers.authorization ?? '');
      res.setHeader('Content-Type', 'application/json');
      res.end('{"token":"stolen"}');
    });
    const realmSeen: string[] = [];
    const realmHost = await servers.listen(realm, at);
    const { host, seen } = await bearerRegistry({ realm: () => `http://${realmHost}/token` });
    const err = await registryError(client(host).headManifest('app/api', 'v1'));
    expect(realmSeen).toEqual([]);
    expect(err.kind).toBe('unsafe-realm');
    expect(err.message).toContain(`token realm ${realmHost}: it is plain http to another origin than the registry's`);
    expect(seen.map((s) => s.authorization)).toEqual([undefined]);
  });

  test.each([
    ['no realm', 'Bearer service="s"', 'Bearer challenge without a realm'],
    ['a realm that is not a URL', 'Bearer realm="not a url"', "the Bearer challenge's realm is not a URL"],
  ])('%s', async (_name, challenge, message) => {
    const { host } = await serve((_req, res) => {
      res.writeHead(401, { 'WWW-Authenticate': challenge });
      res.end();
    });
    expect((await registryError(client(host).headManifest('a', 'b'))).message).toBe(`${host}: ${message}`);
  });

  test('the registry itself is https unless on loopback', async () => {
    const { asked, request } = fakeNetwork('https://auth.example.com/token');
    await new RegistryClient('localhost:5000', { username: USER, password: PASS }, { request }).headManifest('a', 'b');
    expect(asked[0]).toBe('HEAD http://localhost:5000/v2/a/manifests/b');
  });
});

describe('headManifest answers', () => {
  async function answering(status: number, headers: Record<string, string> = {}) {
    const { host } = await serve((_req, res) => {
      res.writeHead(status, headers);
      res.end();
    });
    return client(host);
  }

  test('404 is absent', async () => {
    expect(await (await answering(404)).headManifest('app/api', 'v1')).toBeNull();
  });

  test.each([500, 502, 524, 403, 400])('%i throws with its status', async (status) => {
    const err = await registryError((await answering(status)).headManifest('app/api', 'v1'));
    expect(err.status).toBe(status);
  });

  test('a redirect is not followed: it throws with its status', async () => {
    const c = await answering(307, { Location: 'http://elsewhere.example/v2/' });
    const err = await registryError(c.headManifest('app/api', `sha256:${'b'.repeat(64)}`));
    expect(err.status).toBe(307);
    expect(err.message).toContain(`HEAD app/api@sha256:${'b'.repeat(64)} answered 307`);
  });

  test('a 200 without Docker-Content-Digest throws', async () => {
    const err = await registryError((await answering(200, { 'Content-Type': 'x' })).headManifest('app/api', 'v1'));
    expect(err.status).toBe(200);
    expect(err.message).toContain('no Docker-Content-Digest');
  });

  // Issue 18: the digest reaches the outputs, the summary and the verification's comparison: only a digest may.
  test.each([
    ['upper-case hex', `sha256:${'A'.repeat(64)}`, `"sha256:${'A'.repeat(64)}"`],
    ['too short', 'sha256:abc', '"sha256:abc"'],
    ['an unknown algorithm', `md5:${'a'.repeat(32)}`, `"md5:${'a'.repeat(32)}"`],
    ['Markdown', '`x` | **y**', '"`x` | **y**"'],
    ['a workflow command', '::error::x', '"\\::error::x"'],
  ])('a Docker-Content-Digest that is no digest (%s) is refused, quoted', async (_name, value, quoted) => {
    const err = await registryError((await answering(200, { 'Docker-Content-Digest': value })).headManifest('a', 'b'));
    expect(err.kind).toBe('protocol');
    expect(err.message).toMatch(/: the Docker-Content-Digest for a:b is not a digest: /);
    expect(err.message.endsWith(quoted)).toBe(true);
  });

  test('a sha512 digest is one', async () => {
    const digest = `sha512:${'0'.repeat(128)}`;
    const head = await (await answering(200, { 'Docker-Content-Digest': digest })).headManifest('a', 'b');
    expect(head?.digest).toBe(digest);
  });

  test('no Content-Type: an empty media type', async () => {
    const head = await (await answering(200, { 'Docker-Content-Digest': DIGEST })).headManifest('a', 'b');
    expect(head).toEqual({ digest: DIGEST, mediaType: '' });
  });
});

describe('retryAfterMs', () => {
  async function answering(status: number, retryAfter?: string) {
    const { host, seen } = await serve((_req, res) => {
      res.writeHead(status, retryAfter === undefined ? {} : { 'Retry-After': retryAfter });
      res.end();
    });
    return { c: client(host), seen };
  }

  test.each([
    [429, '3', 3000],
    [503, '0', 0],
    [429, '1.5', 1500],
    [429, undefined, null],
    [429, 'soon', null],
    [200, '3', null],
    [500, '3', null],
    [429, 'Wed, 21 Oct 2015 07:28:00 GMT', 0],
    // a wait of a day is not waited out: at most 10 minutes
    [429, '86400', 600_000],
    [503, 'Fri, 31 Dec 9999 23:59:59 GMT', 600_000],
  ])('%i with Retry-After %s -> %s', async (status, header, expected) => {
    const { c, seen } = await answering(status, header);
    expect(await c.retryAfterMs()).toBe(expected);
    expect(seen[0].path).toBe('/v2/');
  });

  test('the HTTP-date form', async () => {
    const at = new Date(Math.ceil(Date.now() / 1000) * 1000 + 10_000);
    const { c } = await answering(429, at.toUTCString());
    const ms = (await c.retryAfterMs()) as number;
    expect(ms).toBeGreaterThan(8000);
    expect(ms).toBeLessThanOrEqual(11_000);
  });

  test('behind Basic auth, with the credentials', async () => {
    const { host, seen } = await serve((req, res) => {
      if (req.headers.authorization !== BASIC) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="r"' });
      } else {
        res.writeHead(429, { 'Retry-After': '7' });
      }
      res.end();
    });
    expect(await client(host).retryAfterMs()).toBe(7000);
    expect(seen).toHaveLength(2);
  });
});

test('the default HTTP layer is httpRequest', () => {
  expect(typeof httpRequest).toBe('function');
  expect(client('127.0.0.1:1').host).toBe('127.0.0.1:1');
});
