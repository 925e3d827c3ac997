// A forward proxy as a corporate one behaves, on 127.0.0.1: CONNECT tunnels for https and absolute-URI requests
// for http, optionally behind Proxy-Authorization: Basic (407 otherwise). It records what it was asked (the
// CONNECT targets, the absolute URIs, the requests it refused) so a test asserts what really went through it.
// It resolves names itself: a test name such as `registry.proxytest.example` maps to 127.0.0.1 here, which is how
// a non-loopback name reaches a loopback registry. Anything else that is not a loopback address gets a 502: no
// traffic ever leaves the machine.
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';

export interface ForwardProxy {
  /** http://127.0.0.1:PORT, without credentials. */
  readonly url: string;
  /** http://USER:PASS@127.0.0.1:PORT (percent-encoded). */
  urlWith(user: string, password: string): string;
  /** Every CONNECT target let through, `host:port` as asked, in order. */
  readonly tunnels: string[];
  /** Every absolute-URI request let through: `METHOD http://host:port/path`. */
  readonly requests: string[];
  /** Requests refused with 407: `CONNECT host:port` or `METHOD uri`. */
  readonly refused: string[];
  stop(): Promise<void>;
}

export interface ForwardProxyOptions {
  /** name -> loopback address the proxy connects to for it. */
  readonly hosts?: Record<string, string>;
  /** When set, every request needs Proxy-Authorization: Basic with one of these user -> password pairs. */
  readonly users?: Record<string, string>;
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** host:port -> the loopback address and port to dial, or null (the proxy refuses: never off this machine). */
function resolveTarget(hosts: Record<string, string>, host: string, port: number): { ip: string; port: number } | null {
  const name = unbracket(host.toLowerCase());
  const ip = hosts[name] ?? (net.isIP(name) ? name : null);
  const loopback = ip !== null && (ip === '::1' || /^127\./.test(ip));
  return loopback && port > 0 ? { ip, port } : null;
}

function authorized(users: Record<string, string> | undefined, header: string | undefined): boolean {
  if (!users) return true;
  const m = /^Basic (.+)$/i.exec(header ?? '');
  if (!m) return false;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const at = text.indexOf(':');
  return at >= 0 && users[text.slice(0, at)] === text.slice(at + 1);
}

export async function startForwardProxy(opts: ForwardProxyOptions = {}): Promise<ForwardProxy> {
  const hosts = Object.fromEntries(Object.entries(opts.hosts ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  const tunnels: string[] = [];
  const requests: string[] = [];
  const refused: string[] = [];
  const sockets = new Set<net.Socket>();

  const server = http.createServer((req, res) => {
    const what = `${req.method} ${req.url}`;
    let target: URL;
    try {
      target = new URL(req.url ?? '');
      if (target.protocol !== 'http:') throw new Error('not http');
    } catch {
      res.writeHead(400).end('absolute http:// URI expected\n');
      return;
    }
    if (!authorized(opts.users, req.headers['proxy-authorization'])) {
      refused.push(what);
      res.writeHead(407, { 'Proxy-Authenticate': 'Basic realm="rp-forward-proxy"' }).end();
      return;
    }
    const to = resolveTarget(hosts, target.hostname, Number(target.port || 80));
    if (!to) {
      res.writeHead(502).end('not a test host\n');
      return;
    }
    requests.push(what);
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const upstream = http.request(
      { host: to.ip, port: to.port, method: req.method, path: `${target.pathname}${target.search}`, headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });

  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    const asked = req.url ?? '';
    if (!authorized(opts.users, req.headers['proxy-authorization'])) {
      refused.push(`CONNECT ${asked}`);
      client.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="rp-forward-proxy"\r\n\r\n',
      );
      return;
    }
    const at = asked.lastIndexOf(':');
    const to = at > 0 ? resolveTarget(hosts, asked.slice(0, at), Number(asked.slice(at + 1))) : null;
    if (!to) {
      client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
      return;
    }
    tunnels.push(asked);
    const upstream = net.connect(to.port, to.ip, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    urlWith: (user, password) => `http://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    tunnels,
    requests,
    refused,
    stop: async () => {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
