// proxyRoute: Go's http.ProxyFromEnvironment rules (golang.org/x/net/http/httpproxy), which the docker CLI
// follows, as a table: which variable applies, NO_PROXY in each of its forms, loopback, case, ports, IPv6.
import { ProxyConfigError, proxyDisplay, proxyRoute } from '../../src/registry/proxy-env.js';
import { rejection } from '../../test/support/rejection.js';

const P = 'http://proxy.corp:3128';

/** The route as a short string: `direct`, or `VARIABLE -> host:port`. */
function route(url: string, env: NodeJS.ProcessEnv): string {
  const r = proxyRoute(new URL(url), env);
  return r.kind === 'direct' ? 'direct' : `${r.variable} -> ${r.display}`;
}

describe('which variable', () => {
  test.each<[string, string, NodeJS.ProcessEnv, string]>([
    ['nothing set', 'https://reg.example.com/v2/', {}, 'direct'],
    ['https uses HTTPS_PROXY', 'https://reg.example.com/v2/', { HTTPS_PROXY: P }, 'HTTPS_PROXY -> proxy.corp:3128'],
    ['https ignores HTTP_PROXY', 'https://reg.example.com/v2/', { HTTP_PROXY: P }, 'direct'],
    ['http uses HTTP_PROXY', 'http://reg.example.com/v2/', { HTTP_PROXY: P }, 'HTTP_PROXY -> proxy.corp:3128'],
    ['http ignores HTTPS_PROXY', 'http://reg.example.com/v2/', { HTTPS_PROXY: P }, 'direct'],
    ['lower case works', 'https://reg.example.com/', { https_proxy: P }, 'https_proxy -> proxy.corp:3128'],
    [
      'upper case wins over lower case',
      'https://reg.example.com/',
      { HTTPS_PROXY: 'http://upper:1', https_proxy: 'http://lower:2' },
      'HTTPS_PROXY -> upper:1',
    ],
    [
      'an empty upper case falls back to lower case',
      'https://reg.example.com/',
      { HTTPS_PROXY: '', https_proxy: 'http://lower:2' },
      'https_proxy -> lower:2',
    ],
    [
      'host:port means http://',
      'https://reg.example.com/',
      { HTTPS_PROXY: 'proxy.corp:3128' },
      'HTTPS_PROXY -> proxy.corp:3128',
    ],
    [
      'an IP:port means http://',
      'https://reg.example.com/',
      { HTTPS_PROXY: '10.0.0.7:8080' },
      'HTTPS_PROXY -> 10.0.0.7:8080',
    ],
    ['no port: 80', 'https://reg.example.com/', { HTTPS_PROXY: 'http://proxy.corp' }, 'HTTPS_PROXY -> proxy.corp:80'],
    [
      'an IPv6 proxy',
      'https://reg.example.com/',
      { HTTPS_PROXY: 'http://[fd00::7]:3128' },
      'HTTPS_PROXY -> [fd00::7]:3128',
    ],
    [
      'credentials are not in the display',
      'https://reg.example.com/',
      { HTTPS_PROXY: 'http://alice:s3cret@proxy.corp:3128' },
      'HTTPS_PROXY -> proxy.corp:3128',
    ],
    ['another scheme: direct', 'ftp://reg.example.com/', { HTTPS_PROXY: P, HTTP_PROXY: P }, 'direct'],
    [
      'REQUEST_METHOD does not touch HTTPS_PROXY',
      'https://reg.example.com/',
      { HTTPS_PROXY: P, REQUEST_METHOD: 'GET' },
      'HTTPS_PROXY -> proxy.corp:3128',
    ],
  ])('%s', (_name, url, env, expected) => {
    expect(route(url, env)).toBe(expected);
  });
});

describe('never proxied: localhost and loopback', () => {
  test.each([
    'https://localhost:5000/v2/',
    'https://LOCALHOST/v2/',
    'http://localhost/v2/',
    'https://127.0.0.1:5000/v2/',
    'https://127.8.9.10/v2/',
    'https://[::1]:5000/v2/',
    'https://[::ffff:127.0.0.1]:5000/v2/',
    'https://[0:0:0:0:0:0:0:1]/v2/',
  ])('%s', (url) => {
    expect(route(url, { HTTPS_PROXY: P, HTTP_PROXY: P })).toBe('direct');
  });

  test.each([
    // Go checks the name `localhost` only, not its subdomains, and only loopback addresses.
    'https://registry.localhost/v2/',
    'https://128.0.0.1/v2/',
    'https://[::2]/v2/',
    'https://10.1.2.3/v2/',
  ])('proxied: %s', (url) => {
    expect(route(url, { HTTPS_PROXY: P })).toBe('HTTPS_PROXY -> proxy.corp:3128');
  });
});

describe('NO_PROXY', () => {
  test.each<[string, string, string, 'direct' | 'proxy']>([
    ['*', '*', 'https://reg.example.com/', 'direct'],
    ['* among others', 'a.com, *', 'https://reg.example.com/', 'direct'],
    ['the name itself', 'reg.example.com', 'https://reg.example.com/', 'direct'],
    ['a domain covers subdomains', 'example.com', 'https://reg.example.com/', 'direct'],
    ['a domain covers itself', 'example.com', 'https://example.com/', 'direct'],
    ['not a different name with the same tail', 'example.com', 'https://notexample.com/', 'proxy'],
    ['a leading dot: subdomains', '.example.com', 'https://reg.example.com/', 'direct'],
    ['a leading dot: not the domain itself', '.example.com', 'https://example.com/', 'proxy'],
    ['*. as a leading dot: subdomains', '*.example.com', 'https://reg.example.com/', 'direct'],
    ['*. as a leading dot: not the domain itself', '*.example.com', 'https://example.com/', 'proxy'],
    ['case-insensitive', 'REG.Example.COM', 'https://reg.example.com/', 'direct'],
    ['spaces around entries', ' a.com ,  reg.example.com  ', 'https://reg.example.com/', 'direct'],
    ['empty entries are skipped', ',,,a.com,,', 'https://reg.example.com/', 'proxy'],
    ['domain:port, the port of the URL', 'reg.example.com:5000', 'https://reg.example.com:5000/', 'direct'],
    ['domain:port, another port', 'reg.example.com:5000', 'https://reg.example.com:5001/', 'proxy'],
    ['domain:443 and a URL with no port (https)', 'reg.example.com:443', 'https://reg.example.com/', 'direct'],
    ['domain:80 and an https URL with no port', 'reg.example.com:80', 'https://reg.example.com/', 'proxy'],
    ['domain:80 and an http URL with no port', 'reg.example.com:80', 'http://reg.example.com/', 'direct'],
    ['an IP', '10.1.2.3', 'https://10.1.2.3:5000/', 'direct'],
    ['another IP', '10.1.2.3', 'https://10.1.2.4/', 'proxy'],
    ['IP:port', '10.1.2.3:5000', 'https://10.1.2.3:5000/', 'direct'],
    ['IP:port, another port', '10.1.2.3:5000', 'https://10.1.2.3:5001/', 'proxy'],
    ['a CIDR', '10.0.0.0/8', 'https://10.200.3.4/', 'direct'],
    ['outside the CIDR', '10.0.0.0/8', 'https://11.0.0.1/', 'proxy'],
    ['a /32', '192.168.1.1/32', 'https://192.168.1.1/', 'direct'],
    ['a CIDR does not match names', '10.0.0.0/8', 'https://ten.example.com/', 'proxy'],
    ['an IPv6 address', 'fd00::7', 'https://[fd00::7]:5000/', 'direct'],
    ['an IPv6 address, long form', 'fd00:0:0:0:0:0:0:7', 'https://[fd00::7]/', 'direct'],
    ['[IPv6]:port', '[fd00::7]:5000', 'https://[fd00::7]:5000/', 'direct'],
    ['[IPv6]:port, another port', '[fd00::7]:5000', 'https://[fd00::7]:5001/', 'proxy'],
    // As in Go: brackets without a port are neither an address nor a name that can match.
    ['[IPv6] without a port', '[fd00::7]', 'https://[fd00::7]/', 'proxy'],
    ['an IPv6 CIDR', 'fd00::/8', 'https://[fd12:3456::1]/', 'direct'],
    ['outside the IPv6 CIDR', 'fd00::/8', 'https://[fe80::1]/', 'proxy'],
    ['an IPv4-mapped IPv6 entry matches the IPv4 address', '::ffff:10.1.2.3', 'https://10.1.2.3/', 'direct'],
    ['an IP entry does not match a name', '10.1.2.3', 'https://reg.example.com/', 'proxy'],
    ['a bad CIDR is skipped, not an error', '10.0.0.0/99, reg.example.com', 'https://reg.example.com/', 'direct'],
    ['a bare port is skipped', ':5000', 'https://reg.example.com:5000/', 'proxy'],
    ['an IDN entry matches its punycode host', 'bücher.example', 'https://www.bücher.example/', 'direct'],
  ])('%s: NO_PROXY=%j, %s', (_name, noProxy, url, expected) => {
    const r = proxyRoute(new URL(url), { HTTPS_PROXY: P, HTTP_PROXY: P, NO_PROXY: noProxy });
    expect(r.kind).toBe(expected);
  });

  test.each<[string, NodeJS.ProcessEnv, string]>([
    ['lower-case no_proxy works', { HTTPS_PROXY: P, no_proxy: 'example.com' }, 'direct'],
    ['upper case wins', { HTTPS_PROXY: P, NO_PROXY: 'other.com', no_proxy: 'example.com' }, 'proxy'],
    ['an empty NO_PROXY falls back to no_proxy', { HTTPS_PROXY: P, NO_PROXY: '', no_proxy: 'example.com' }, 'direct'],
  ])('%s', (_name, env, expected) => {
    expect(proxyRoute(new URL('https://reg.example.com/'), env).kind).toBe(expected);
  });
});

describe('settings that cannot be used: an error naming the variable, never its value', () => {
  const thrown = (url: string, env: NodeJS.ProcessEnv) =>
    rejection((async () => proxyRoute(new URL(url), env))(), ProxyConfigError);

  test.each<[string, string, NodeJS.ProcessEnv, RegExp]>([
    [
      'not a URL',
      'https://reg.example.com/',
      { HTTPS_PROXY: 'http://al ice:pw-9f3@proxy corp:3128' },
      /^HTTPS_PROXY is not a proxy URL \(expected http:\/\/\[user:password@\]host\[:port\]\)$/,
    ],
    [
      'an unknown scheme',
      'https://reg.example.com/',
      { https_proxy: 'ftp://u:pw-9f3@proxy:21' },
      /^https_proxy is not a proxy URL/,
    ],
    [
      'socks5 (Go has it, this client does not)',
      'https://reg.example.com/',
      { HTTPS_PROXY: 'socks5://u:pw-9f3@proxy.corp:1080' },
      /^HTTPS_PROXY names a socks5:\/\/ proxy \(proxy\.corp:1080\); the action's own client speaks to http:\/\/ proxies only$/,
    ],
    [
      'an https:// proxy',
      'https://reg.example.com/',
      { HTTPS_PROXY: 'https://u:pw-9f3@proxy.corp' },
      /^HTTPS_PROXY names a https:\/\/ proxy \(proxy\.corp:443\)/,
    ],
    [
      'HTTP_PROXY in a CGI environment (REQUEST_METHOD set), as Go refuses',
      'http://reg.example.com/',
      { HTTP_PROXY: 'http://u:pw-9f3@proxy.corp:3128', REQUEST_METHOD: 'POST' },
      /^refusing to use HTTP_PROXY while REQUEST_METHOD is set .*golang\.org\/s\/cgihttpproxy$/,
    ],
  ])('%s', async (_name, url, env, message) => {
    const e = await thrown(url, env);
    expect(e.message).toMatch(message);
    expect(e.message).not.toContain('pw-9f3');
  });

  test('a broken HTTPS_PROXY does not matter to a request it does not apply to (loopback, NO_PROXY)', () => {
    const env = { HTTPS_PROXY: 'http://bad host', NO_PROXY: 'example.com' };
    expect(route('https://127.0.0.1:5000/', env)).toBe('direct');
    expect(route('https://reg.example.com/', env)).toBe('direct');
  });
});

test('proxyDisplay is host:port, without scheme or credentials', () => {
  expect(proxyDisplay(new URL('http://u:p@proxy.corp:3128/'))).toBe('proxy.corp:3128');
  expect(proxyDisplay(new URL('http://proxy.corp'))).toBe('proxy.corp:80');
});
