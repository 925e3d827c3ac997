// Where credentials and upload bytes may go (src/registry/registry-origin.ts): the token-realm rule and the Location rule,
// as tables over registry and target URLs. registry-client.test.ts holds the same rules through the client.
import { locationRule, realmRefusal } from '../../src/registry/registry-origin.js';

const u = (s: string) => new URL(s);
const REMOTE = 'https://registry.example.com';
const LOOPBACK = 'http://127.0.0.1:5000';

describe('realmRefusal: the Basic credentials go to a realm only over https, or to a loopback registry itself', () => {
  test.each([
    ['https elsewhere', REMOTE, 'https://auth.example.com/token'],
    ['https on the registry host', REMOTE, 'https://registry.example.com/token'],
    ['https on another port', REMOTE, 'https://registry.example.com:8443/token'],
    ['https for a loopback registry', LOOPBACK, 'https://auth.example.com/token'],
    ['http, the loopback registry origin itself', LOOPBACK, 'http://127.0.0.1:5000/token'],
    ['http, localhost registry itself, other case', 'http://localhost:5000', 'http://LOCALHOST:5000/token'],
    ['http, ::1 registry itself', 'http://[::1]:5000', 'http://[::1]:5000/token'],
    ['http, default port written out', 'http://127.0.0.1', 'http://127.0.0.1:80/token'],
  ])('allowed: %s', (_name, registry, realm) => {
    expect(realmRefusal(u(registry), u(realm))).toBeNull();
  });

  const otherOrigin = "it is plain http to another origin than the registry's";
  const remote = 'it is plain http and the registry is not on loopback';
  test.each([
    ['http on another port of the loopback registry', LOOPBACK, 'http://127.0.0.1:5001/token', otherOrigin],
    ['http on another loopback address', LOOPBACK, 'http://127.0.0.2:5000/token', otherOrigin],
    ['http on localhost for a 127.0.0.1 registry', LOOPBACK, 'http://localhost:5000/token', otherOrigin],
    ['http on ::1 for a 127.0.0.1 registry', LOOPBACK, 'http://[::1]:5000/token', otherOrigin],
    ['http on another host', LOOPBACK, 'http://auth.example.net/token', otherOrigin],
    ['http for a remote registry, on its own host', REMOTE, 'http://registry.example.com/token', remote],
    ['http for a remote registry, its host on another port', REMOTE, 'http://registry.example.com:5001/token', remote],
    ['http for a remote registry, on loopback', REMOTE, 'http://127.0.0.1:9/token', remote],
    ['http for a remote registry, elsewhere', REMOTE, 'http://auth.example.net:8080/token', remote],
    ['ftp', REMOTE, 'ftp://registry.example.com/token', 'its scheme ftp is not https'],
    ['ftp on a loopback registry', LOOPBACK, 'ftp://127.0.0.1:5000/token', 'its scheme ftp is not https'],
  ])('refused: %s', (_name, registry, realm, why) => {
    expect(realmRefusal(u(registry), u(realm))).toBe(why);
  });
});

describe('locationRule: the Authorization only to the registry origin; no downgrade to plain http', () => {
  test.each([
    ['a path on the remote registry', REMOTE, 'https://registry.example.com/v2/a/blobs/uploads/1', 'registry'],
    ['the remote registry, :443 written out', REMOTE, 'https://registry.example.com:443/v2/x', 'registry'],
    ['the loopback registry', LOOPBACK, 'http://127.0.0.1:5000/v2/a/blobs/uploads/1', 'registry'],
    ['https storage elsewhere', REMOTE, 'https://storage.example.net/upload?sig=x', 'elsewhere'],
    ['https on the registry host, another port', REMOTE, 'https://registry.example.com:8443/v2/x', 'elsewhere'],
    ['https on a registry subdomain', REMOTE, 'https://eu.registry.example.com/v2/x', 'elsewhere'],
    ['another loopback port from a loopback registry', LOOPBACK, 'http://127.0.0.1:5001/upload', 'elsewhere'],
    ['https from a loopback registry', LOOPBACK, 'https://storage.example.net/upload', 'elsewhere'],
  ])('%s -> %s', (_name, registry, target, kind) => {
    expect(locationRule(u(registry), u(target)).kind).toBe(kind);
  });

  test.each([
    [
      'plain http on the registry host',
      REMOTE,
      'http://registry.example.com/v2/a/blobs/uploads/1',
      'it is plain http, the registry https',
    ],
    ['plain http elsewhere', REMOTE, 'http://storage.example.net/upload', 'it is plain http, the registry https'],
    [
      'plain http on loopback from a remote registry',
      REMOTE,
      'http://127.0.0.1:9/upload',
      'it is plain http, the registry https',
    ],
    [
      'plain http to a remote host from a loopback registry',
      LOOPBACK,
      'http://storage.example.net/upload',
      'it is plain http to a host not on loopback',
    ],
    ['ftp', REMOTE, 'ftp://registry.example.com/x', 'its scheme ftp is not https'],
    ['file', LOOPBACK, 'file:///etc/passwd', 'its scheme file is not https'],
  ])('refused: %s', (_name, registry, target, why) => {
    expect(locationRule(u(registry), u(target))).toEqual({ kind: 'refused', why });
  });
});
