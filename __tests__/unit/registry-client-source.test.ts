// What reading from a source registry adds to RegistryClient, against a loopback registry of our own (node:http):
// anonymous access (no Authorization anywhere, a token fetched without credentials), an identity token POSTed to
// the realm as an OAuth2 refresh token (as docker does), and stream(): a blob GET authorized through a 401, its
// body streamed, a Location on another origin sent no Authorization.
import http from 'node:http';
import { RegistryClient } from '../../src/registry/registry-client.js';
import { localServers } from '../../test/support/local-servers.js';

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization?: string;
  body: string;
}
type Reply = (res: http.ServerResponse, seen: Seen) => void;
const servers = localServers();

async function serve(reply: Reply): Promise<{ host: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const s = {
        method: req.method ?? '',
        path: url.pathname,
        query: url.searchParams,
        authorization: req.headers.authorization,
        body,
      };
      seen.push(s);
      reply(res, s);
    });
  });
  return { host: await servers.listen(server), seen };
}

/** A Bearer registry whose realm is on its own origin: /token hands out `tok-<grant>`, blobs need it. */
function bearerRegistry(host: () => string): Reply {
  return (res, s) => {
    if (s.path === '/token') {
      const grant =
        s.method === 'POST' ? new URLSearchParams(s.body).get('grant_type') : s.authorization ? 'basic' : 'anonymous';
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ access_token: `tok-${grant}` }));
      return;
    }
    if (!s.authorization?.startsWith('Bearer tok-')) {
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${host()}/token",service="reg"` });
      res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    res.writeHead(200, { 'Content-Length': '11' });
    res.end('blob-bytes!');
  };
}

async function readAll(body: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const c of body) text += (c as Buffer).toString();
  return text;
}

test('anonymous: the token is fetched without credentials, the blob streamed with it', async () => {
  let host = '';
  const reg = await serve(bearerRegistry(() => host));
  host = reg.host;
  const client = new RegistryClient(host, null);
  const res = await client.stream({ url: '/v2/lib/app/blobs/sha256:abc', repository: 'lib/app' });
  expect(res.status).toBe(200);
  expect(await readAll(res.body)).toBe('blob-bytes!');
  const token = reg.seen.find((s) => s.path === '/token');
  expect(token?.method).toBe('GET');
  expect(token?.authorization).toBeUndefined();
  expect(token?.query.get('scope')).toBe('repository:lib/app:pull');
  expect(reg.seen.at(-1)?.authorization).toBe('Bearer tok-anonymous');
});

test('an identity token is POSTed as a refresh token with service and scope, never as Basic', async () => {
  let host = '';
  const reg = await serve(bearerRegistry(() => host));
  host = reg.host;
  const client = new RegistryClient(host, { username: '', password: '', identityToken: 'refresh-42' });
  const res = await client.stream({ url: '/v2/lib/app/blobs/sha256:abc', repository: 'lib/app' });
  expect(await readAll(res.body)).toBe('blob-bytes!');
  const token = reg.seen.find((s) => s.path === '/token');
  expect(token?.method).toBe('POST');
  expect(token?.authorization).toBeUndefined();
  expect(token?.query.toString()).toBe('');
  const form = new URLSearchParams(token?.body);
  expect(Object.fromEntries(form)).toEqual({
    service: 'reg',
    scope: 'repository:lib/app:pull',
    grant_type: 'refresh_token',
    refresh_token: 'refresh-42',
    client_id: 'replicated-push',
  });
  expect(reg.seen.at(-1)?.authorization).toBe('Bearer tok-refresh_token');
});

test('stream: a Location on another origin gets no Authorization; Basic credentials reach the registry only', async () => {
  const storage = await serve((res) => res.end('from-storage'));
  const reg = await serve((res, s) => {
    if (!s.authorization) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="reg"' });
      res.end();
      return;
    }
    res.writeHead(307, { Location: `http://${storage.host}/signed?sig=1` });
    res.end();
  });
  const client = new RegistryClient(reg.host, { username: 'u', password: 'p' });
  const first = await client.stream({ url: '/v2/app/blobs/sha256:abc', repository: 'app' });
  expect(first.status).toBe(307);
  first.body.resume();
  expect(reg.seen.map((s) => s.authorization)).toEqual([undefined, `Basic ${Buffer.from('u:p').toString('base64')}`]);
  const moved = await client.stream({ url: first.headers.get('location') ?? '', repository: 'app' });
  expect(await readAll(moved.body)).toBe('from-storage');
  expect(storage.seen[0].authorization).toBeUndefined();
});

test("a mount's POST asks the token for pull on the source repository too, one scope parameter each", async () => {
  let host = '';
  const reg = await serve(bearerRegistry(() => host));
  host = reg.host;
  const client = new RegistryClient(host, { username: 'u', password: 'p' });
  const url = '/v2/team/app/blobs/uploads/?mount=sha256:abc&from=ci/app';
  const res = await client.send({ method: 'POST', url, repository: 'team/app', push: true, mountFrom: 'ci/app' });
  expect(res.status).toBe(200);
  const token = reg.seen.find((s) => s.path === '/token');
  expect(token?.query.getAll('scope')).toEqual(['repository:team/app:pull,push', 'repository:ci/app:pull']);
  // an upload of the same repository after it asks only its own scope
  await client.send({ method: 'POST', url: '/v2/team/app/blobs/uploads/', repository: 'team/app', push: true });
  const scopes = reg.seen.filter((s) => s.path === '/token').map((s) => s.query.getAll('scope'));
  expect(scopes.at(-1)).toEqual(['repository:team/app:pull,push']);
});
