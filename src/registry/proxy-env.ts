// Which proxy, if any, a request of the action's own client goes through: the rules of Go's
// http.ProxyFromEnvironment (golang.org/x/net/http/httpproxy), which the docker CLI follows, so the action's
// registry check and docker agree on a runner behind a proxy. Pure: a URL and an environment in, a route out.
//
//   - HTTPS_PROXY for https:// URLs, HTTP_PROXY for http:// ones; the upper-case name first, then the lower-case
//     one; an empty value counts as unset.
//   - Never proxied: the host `localhost` and loopback addresses (127.0.0.0/8, ::1), whatever the variables say.
//   - NO_PROXY (then no_proxy): a comma list of `*` (nothing is proxied), IPs, CIDRs, `IP:port`, `[IPv6]:port`, and
//     domains: `example.com` matches it and its subdomains, `.example.com` and `*.example.com` only subdomains;
//     `domain:port` only that port (a URL without a port has its scheme's, 80 or 443). Malformed entries are
//     skipped, as Go does.
//   - REQUEST_METHOD set (a CGI handler, where a client's `Proxy:` header becomes HTTP_PROXY): an http:// request
//     that HTTP_PROXY would apply to is an error, as in Go (golang.org/s/cgihttpproxy).
// Where the action is stricter than Go: a value that is not a proxy URL is an error naming the variable (Go
// silently goes direct, which on a runner that may only reach the outside through the proxy would look like an
// outage), and socks5:// / https:// proxies, which this client does not speak, are refused by name.
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';

export type ProxyRoute =
  | { readonly kind: 'direct' }
  | {
      readonly kind: 'proxy';
      /** The proxy's URL, credentials included: for the connection only, never for a message. */
      readonly proxy: URL;
      /** The variable it came from (HTTPS_PROXY, https_proxy, ...), for messages. */
      readonly variable: string;
      /** `host:port` of the proxy: what a message may say. */
      readonly display: string;
    };

/** The proxy environment cannot be used; the message names the variable, never its value (it may hold a password). */
export class ProxyConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProxyConfigError';
  }
}

const DIRECT: ProxyRoute = { kind: 'direct' };
const DEFAULT_PORT: Record<string, string> = { 'http:': '80', 'https:': '443' };

/** The first of the names with a non-empty value (Go's getEnvAny). */
function envAny(env: NodeJS.ProcessEnv, ...names: string[]): { name: string; value: string } | null {
  for (const name of names) {
    const value = env[name];
    if (value) return { name, value };
  }
  return null;
}

/** The route for a request to `url` under `env`. Throws ProxyConfigError for a proxy setting that cannot be used. */
export function proxyRoute(url: URL, env: NodeJS.ProcessEnv): ProxyRoute {
  const setting =
    url.protocol === 'https:'
      ? envAny(env, 'HTTPS_PROXY', 'https_proxy')
      : url.protocol === 'http:'
        ? envAny(env, 'HTTP_PROXY', 'http_proxy')
        : null;
  if (!setting) return DIRECT;
  if (url.protocol === 'http:' && env.REQUEST_METHOD)
    throw new ProxyConfigError(
      `refusing to use ${setting.name} while REQUEST_METHOD is set (a CGI environment, where a request can set it); see golang.org/s/cgihttpproxy`,
    );
  const host = unbracket(url.hostname);
  if (!useProxy(host, url.port || DEFAULT_PORT[url.protocol], envAny(env, 'NO_PROXY', 'no_proxy')?.value ?? ''))
    return DIRECT;
  const proxy = parseProxy(setting.name, setting.value);
  return { kind: 'proxy', proxy, variable: setting.name, display: proxyDisplay(proxy) };
}

/** `host:port` of a proxy URL: no scheme, no user, no password. */
export function proxyDisplay(proxy: URL): string {
  return `${proxy.hostname}:${proxy.port || DEFAULT_PORT[proxy.protocol] || ''}`;
}

/** Go's parseProxy: a full URL, or `host[:port]` read as http://host[:port]. */
function parseProxy(name: string, value: string): URL {
  let parsed = tryURL(value);
  // `proxy.corp:3128` parses as scheme `proxy.corp:`; `10.0.0.1:3128` not at all: both mean http://.
  if (!value.includes('://') && (!parsed || !['http:', 'https:', 'socks5:'].includes(parsed.protocol)))
    parsed = tryURL(`http://${value}`);
  if (!parsed || !parsed.hostname || !['http:', 'https:', 'socks5:'].includes(parsed.protocol))
    throw new ProxyConfigError(`${name} is not a proxy URL (expected http://[user:password@]host[:port])`);
  if (parsed.protocol !== 'http:')
    throw new ProxyConfigError(
      `${name} names a ${parsed.protocol.slice(0, -1)}:// proxy (${proxyDisplay(parsed)}); the action's own client speaks to http:// proxies only`,
    );
  return parsed;
}

function tryURL(text: string): URL | null {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** Go's useProxy: whether a request to host:port goes through the proxy under this NO_PROXY. */
function useProxy(host: string, port: string, noProxy: string): boolean {
  host = host.trim().toLowerCase();
  if (host === 'localhost') return false;
  const ip = ipBytes(host);
  if (ip && isLoopback(ip)) return false;
  const entries = noProxy.split(',').map((p) => p.trim().toLowerCase());
  if (entries.includes('*')) return false;
  return !entries.some((entry) => entry && noProxyMatches(entry, host, port, ip));
}

function noProxyMatches(entry: string, host: string, port: string, ip: number[] | null): boolean {
  const cidr = parseCidr(entry);
  if (cidr) return ip !== null && inCidr(ip, cidr);
  const split = splitHostPort(entry);
  const pport = split ? split[1] : '';
  if (split && !split[0]) return false;
  let phost = split ? unbracket(split[0]) : entry;
  const pip = ipBytes(phost);
  if (pip) return ip !== null && sameBytes(pip, ip) && (!pport || pport === port);
  if (!phost) return false;
  if (phost.startsWith('*.')) phost = phost.slice(1);
  const matchHost = !phost.startsWith('.');
  if (matchHost) phost = `.${phost}`;
  const ascii = domainToASCII(phost.slice(1));
  if (ascii) phost = `.${ascii}`;
  return (host.endsWith(phost) || (matchHost && host === phost.slice(1))) && (!pport || pport === port);
}

/** Go's net.SplitHostPort: `host:port` or `[host]:port`; null when there is no port part or too many colons. */
function splitHostPort(s: string): [string, string] | null {
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0 || s[end + 1] !== ':') return null;
    const port = s.slice(end + 2);
    return port.includes(':') ? null : [s.slice(1, end), port];
  }
  const at = s.lastIndexOf(':');
  if (at < 0 || s.slice(0, at).includes(':')) return null;
  return [s.slice(0, at), s.slice(at + 1)];
}

// --- IP addresses as 16 bytes, IPv4 mapped into IPv6 (::ffff:a.b.c.d), as Go's net.IP compares them ----------

function ipBytes(text: string): number[] | null {
  const kind = isIP(text);
  if (kind === 4) return [...Array(10).fill(0), 0xff, 0xff, ...text.split('.').map(Number)];
  if (kind !== 6) return null;
  let s = text;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    tail = v4[1].split('.').map(Number);
    s = `${s.slice(0, v4.index)}0:0`;
  }
  const [head, rest] = s.includes('::') ? s.split('::') : [s, null];
  const groups = (part: string) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const left = groups(head);
  const right = rest === null ? [] : groups(rest);
  const words = [...left, ...Array(8 - left.length - right.length).fill(0), ...right];
  const bytes = words.flatMap((w) => [w >> 8, w & 0xff]);
  if (v4) bytes.splice(12, 4, ...tail);
  return bytes;
}

function isLoopback(ip: number[]): boolean {
  const mapped = ip.slice(0, 10).every((b) => b === 0) && ip[10] === 0xff && ip[11] === 0xff;
  if (mapped) return ip[12] === 127;
  return ip.slice(0, 15).every((b) => b === 0) && ip[15] === 1;
}

function sameBytes(a: number[], b: number[]): boolean {
  return a.every((x, i) => x === b[i]);
}

interface Cidr {
  readonly bytes: number[];
  readonly bits: number;
}

/** `IP/bits` (Go's net.ParseCIDR); an IPv4 prefix counts over the mapped form, so it matches as in Go. */
function parseCidr(entry: string): Cidr | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(entry);
  const bytes = m ? ipBytes(m[1]) : null;
  if (!m || !bytes) return null;
  const v4 = isIP(m[1]) === 4;
  const bits = Number(m[2]) + (v4 ? 96 : 0);
  return Number(m[2]) > (v4 ? 32 : 128) ? null : { bytes, bits };
}

function inCidr(ip: number[], cidr: Cidr): boolean {
  for (let bit = 0; bit < cidr.bits; bit++) {
    const mask = 0x80 >> (bit % 8);
    if ((ip[bit >> 3] & mask) !== (cidr.bytes[bit >> 3] & mask)) return false;
  }
  return true;
}
