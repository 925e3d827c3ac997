// How a request of the action's own client goes through the proxy proxy-env.ts chose: https:// over a CONNECT
// tunnel (TLS with the registry inside it, so the proxy sees only `CONNECT host:port`), http:// as an
// absolute-URI request to the proxy. The proxy's credentials, from its URL, go only to the proxy, as
// Proxy-Authorization: Basic, and never into a message.
import http from 'node:http';
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { ProxyRoute } from './proxy-env.js';

type Proxied = Extract<ProxyRoute, { kind: 'proxy' }>;

/** `Basic base64(user:password)` from the proxy URL's userinfo (percent-decoded, as Go does); null without one. */
export function proxyAuthorization(proxy: URL): string | null {
  if (!proxy.username && !proxy.password) return null;
  const user = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return `Basic ${Buffer.from(user).toString('base64')}`;
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** `host:port` the CONNECT asks for: the port always (443 when the URL has none). */
function authority(target: URL): string {
  return `${target.hostname}:${target.port || '443'}`;
}

/**
 * http.request options for an http:// URL through the proxy: the request goes to the proxy, its path is the
 * absolute URL (without userinfo or fragment), Host stays the registry's.
 */
export function absoluteUriOptions(route: Proxied, target: URL): http.RequestOptions {
  const auth = proxyAuthorization(route.proxy);
  return {
    host: unbracket(route.proxy.hostname),
    port: route.proxy.port || 80,
    path: `${target.protocol}//${target.host}${target.pathname}${target.search}`,
    headers: { Host: target.host, ...(auth ? { 'Proxy-Authorization': auth } : {}) },
  };
}

/**
 * A createConnection for https.request: CONNECT through the proxy, then TLS to the registry over that socket
 * (SNI and the certificate check for the registry's name). `signal` ends a CONNECT still under way (the
 * request's deadline or abort, httpRequest); an error says what the proxy answered.
 */
export function tunnelConnection(
  route: Proxied,
  target: URL,
  signal: AbortSignal,
): NonNullable<http.RequestOptions['createConnection']> {
  return (_options, oncreate) => {
    openTunnel(route, target, signal).then(
      (socket) => oncreate(null, socket),
      (err: Error) => oncreate(err, undefined as unknown as Duplex),
    );
    return undefined;
  };
}

function openTunnel(route: Proxied, target: URL, signal: AbortSignal): Promise<tls.TLSSocket> {
  // The caller's message adds which proxy (host:port) and which variable.
  const where = 'the proxy';
  const to = authority(target);
  const auth = proxyAuthorization(route.proxy);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: unbracket(route.proxy.hostname),
      port: route.proxy.port || 80,
      method: 'CONNECT',
      path: to,
      headers: { Host: to, ...(auth ? { 'Proxy-Authorization': auth } : {}) },
      agent: false,
      signal,
    });
    req.once('connect', (res, socket: Socket, head: Buffer) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        const hint = res.statusCode === 407 ? `; check the credentials in ${route.variable}` : '';
        return reject(new Error(`${where} answered ${res.statusCode} to CONNECT ${to}${hint}`));
      }
      if (head.length) socket.unshift(head);
      const host = unbracket(target.hostname);
      // SNI carries names only, never an IP address.
      resolve(tls.connect({ socket, host, ...(isIP(host) ? {} : { servername: host }) }));
    });
    req.once('error', (err: NodeJS.ErrnoException) => {
      reject(new Error(`CONNECT ${to}: ${err.message || err.code}`, { cause: err }));
    });
    req.end();
  });
}
