import {
  defaultTargetName,
  isLoopbackRegistry,
  isValidAppSlug,
  isValidRegistryHost,
  isValidRepositoryPath,
  isValidTag,
  namesRegistryHost,
  normalizeRegistryHost,
  parseLocalImage,
  readsAsDockerHubPath,
  pinnedRef,
  repositoryOf,
  taggedRef,
  type LocalImage,
} from '../../src/image/reference.js';

const HEX = '6b80a606c07f9f2a329d59e2afd65005d715de39698397385c0fff66d4f3924b';
const DIGEST = `sha256:${HEX}`;

type Parsed = Omit<LocalImage, 'raw'>;
const ref = (path: string, tag: string | null = null, digest: string | null = null): Parsed => ({
  path,
  tag,
  digest,
  isId: false,
});
const id: Parsed = { path: null, tag: null, digest: null, isId: true };

describe('parseLocalImage: valid references', () => {
  test.each<[string, Parsed]>([
    ['alpine', ref('alpine')],
    ['alpine:3.20', ref('alpine', '3.20')],
    ['library/alpine', ref('library/alpine')],
    ['library/alpine:latest', ref('library/alpine', 'latest')],
    ['my-app', ref('my-app')],
    ['my_app__x.y', ref('my_app__x.y')],
    ['a--b', ref('a--b')],
    ['org/team/svc:1.0.0', ref('org/team/svc', '1.0.0')],
    ['registry:5000/path/name:tag', ref('path/name', 'tag')],
    ['registry.example.com/path/name:tag', ref('path/name', 'tag')],
    ['127.0.0.1:5055/app/demo:1', ref('app/demo', '1')],
    ['localhost/x', ref('x')],
    ['localhost:5000/x', ref('x')],
    ['localhost:5000', ref('localhost', '5000')],
    ['[::1]:5000/app/x:2', ref('app/x', '2')],
    ['Registry/app', ref('app')],
    ['ghcr.io/org/app:sha-1a2b3c', ref('org/app', 'sha-1a2b3c')],
  ])('%j', (raw, expected) => {
    expect(parseLocalImage(raw)).toEqual({ raw, ...expected });
  });

  test.each<[string, Parsed]>([
    [`name@${DIGEST}`, ref('name', null, DIGEST)],
    [`name:1.2@${DIGEST}`, ref('name', '1.2', DIGEST)],
    [`registry:5000/path/name@${DIGEST}`, ref('path/name', null, DIGEST)],
    [`registry:5000/path/name:v1@${DIGEST}`, ref('path/name', 'v1', DIGEST)],
    [HEX, id],
    [DIGEST, id],
  ])('%s', (raw, expected) => {
    expect(parseLocalImage(raw)).toEqual({ raw, ...expected });
  });

  test.each<[string, Parsed]>([
    // 12..63 hex is a valid repository name, not an ID.
    ['6b80a606c07f', ref('6b80a606c07f')],
    [HEX.slice(0, 63), ref(HEX.slice(0, 63))],
    // a short "sha256:abc" is name "sha256", tag "abc" in the grammar.
    ['sha256:abc', ref('sha256', 'abc')],
    [`sha256:${HEX.slice(0, 63)}`, ref('sha256', HEX.slice(0, 63))],
    [`name:${'a'.repeat(128)}`, ref('name', 'a'.repeat(128))],
    ['name:_x', ref('name', '_x')],
    ['name:V1.0-RC_1', ref('name', 'V1.0-RC_1')],
  ])('%j (grammar edge)', (raw, expected) => {
    expect(parseLocalImage(raw)).toEqual({ raw, ...expected });
  });

  test.each([
    ['  alpine:3  ', 'alpine:3'],
    ['\tapp/x\n', 'app/x'],
  ])('%j is trimmed to raw %j', (input, raw) => {
    expect(parseLocalImage(input)?.raw).toBe(raw);
  });
});

describe('parseLocalImage: invalid references -> null', () => {
  test.each([
    [''],
    ['   '],
    ['Alpine'],
    ['app/MyImage'],
    ['registry:5000/App/x'],
    ['ghcr.io/Org/app'],
    ['name:'],
    ['name:.tag'],
    ['name:-tag'],
    [`name:${'a'.repeat(129)}`],
    ['name:ta/g'],
    ['name:t@g'],
    ['name:tag:more'],
    ['name@'],
    ['name@sha256:abc'],
    [`name@sha512:${HEX}${HEX}`],
    [`name@sha256:${HEX.toUpperCase()}`],
    [`name@${DIGEST}@${DIGEST}`],
    [':tag'],
    ['/x'],
    ['x/'],
    ['a//b'],
    ['-app'],
    ['app-'],
    ['app.'],
    ['_app'],
    ['a___b'],
    ['app name'],
    ['http://registry/app'],
    ['reg_istry.com/app'],
    ['-registry.com/app'],
    ['registry:port/app'],
    [HEX.toUpperCase()],
    [`${'a'.repeat(256)}`],
  ])('%j', (raw) => {
    expect(parseLocalImage(raw)).toBeNull();
  });
});

describe('defaultTargetName', () => {
  test.each([
    ['alpine', 'alpine'],
    ['alpine:3.20', 'alpine'],
    ['library/alpine', 'alpine'],
    ['registry:5000/org/team/svc:1', 'svc'],
    [`app/worker@${DIGEST}`, 'worker'],
    ['localhost/x', 'x'],
  ])('%j -> %j', (raw, expected) => {
    const image = parseLocalImage(raw);
    expect(image).not.toBeNull();
    expect(defaultTargetName(image as LocalImage)).toBe(expected);
  });

  test.each([[HEX], [DIGEST]])('image ID %s -> null', (raw) => {
    expect(defaultTargetName(parseLocalImage(raw) as LocalImage)).toBeNull();
  });
});

describe('isValidTag', () => {
  test.each([
    ['latest', true],
    ['1.2.3', true],
    ['1.2.3-rc.1', true],
    ['v1', true],
    ['_', true],
    ['a', true],
    ['A', true],
    ['9', true],
    ['a'.repeat(128), true],
    ['a'.repeat(129), false],
    [`_${'-'.repeat(127)}`, true],
    ['', false],
    ['.hidden', false],
    ['-dash', false],
    ['a+b', false],
    ['a/b', false],
    ['a:b', false],
    ['a b', false],
    ['ä', false],
    ['1.2.3\n', false],
  ])('%j -> %s', (tag, expected) => {
    expect(isValidTag(tag)).toBe(expected);
  });
});

describe('isValidRepositoryPath', () => {
  test.each([
    ['app/x', true],
    ['a', true],
    ['a.b_c__d-e---f/g', true],
    [`${'a'.repeat(255)}`, true],
    [`${'a'.repeat(256)}`, false],
    ['A/x', false],
    ['app/', false],
    ['', false],
  ])('%j -> %s', (path, expected) => {
    expect(isValidRepositoryPath(path)).toBe(expected);
  });
});

describe('isValidAppSlug', () => {
  test.each([
    ['my-app', true],
    ['a', true],
    ['0', true],
    ['app2', true],
    ['a--b', true],
    ['', false],
    ['-app', false],
    ['app-', false],
    ['My-App', false],
    ['my_app', false],
    ['my.app', false],
    ['my app', false],
    ['my/app', false],
  ])('%j -> %s', (slug, expected) => {
    expect(isValidAppSlug(slug)).toBe(expected);
  });
});

describe('isValidRegistryHost', () => {
  test.each([
    ['registry.replicated.com', true],
    ['registry:5000', true],
    ['127.0.0.1:5055', true],
    ['localhost', true],
    ['[::1]:5000', true],
    ['[::1]', true],
    ['Registry.Example.COM', true],
    ['', false],
    ['::1', false],
    ['-bad.com', false],
    ['bad-.com', false],
    ['a_b.com', false],
    ['host:port', false],
    ['host:', false],
    ['https://registry.example.com', false],
    ['registry.example.com/path', false],
  ])('%j -> %s', (host, expected) => {
    expect(isValidRegistryHost(host)).toBe(expected);
  });
});

describe('normalizeRegistryHost', () => {
  test.each([
    ['registry.replicated.com', 'registry.replicated.com'],
    ['https://REGISTRY.Replicated.com:443/', 'registry.replicated.com'],
    ['HTTPS://registry.replicated.com', 'registry.replicated.com'],
    ['http://registry.replicated.com//', 'registry.replicated.com'],
    ['  registry.replicated.com:443  ', 'registry.replicated.com'],
    ['Registry.Example.COM', 'registry.example.com'],
    ['registry.example.com:8443', 'registry.example.com:8443'],
    ['registry.example.com:4430', 'registry.example.com:4430'],
    ['registry.example.com:1', 'registry.example.com:1'],
    ['registry.example.com:65535', 'registry.example.com:65535'],
    ['registry:5000', 'registry:5000'],
    ['http://127.0.0.1:5055', '127.0.0.1:5055'],
    ['127.0.0.1:443', '127.0.0.1'],
    ['localhost', 'localhost'],
    ['LOCALHOST:5000/', 'localhost:5000'],
    ['localhost:443', 'localhost'],
    ['[::1]:5000', '[::1]:5000'],
    ['[::1]:443', '[::1]'],
    ['[::1]', '[::1]'],
    ['[FE80::1]', '[fe80::1]'],
  ])('%j -> %j', (text, expected) => {
    expect(normalizeRegistryHost(text)).toBe(expected);
  });

  test.each([
    [''],
    ['   '],
    ['https://'],
    ['/'],
    // one label without a dot or port: docker reads myregistry/app/img as docker.io/myregistry/app/img
    ['myregistry'],
    ['MyRegistry'],
    ['https://myregistry/'],
    ['myregistry:443'],
    ['registry.example.com/path'],
    ['registry.example.com:0'],
    ['registry.example.com:65536'],
    ['registry.example.com:'],
    ['registry:port'],
    ['reg_istry.com'],
    ['registry.example.com.'],
    ['ftp://registry.example.com'],
    ['https://user@registry.example.com'],
    ['registry.example.com\n::warning::x'],
    ['registry.\texample.com'],
    ['::1'],
  ])('%j -> null', (text) => {
    expect(normalizeRegistryHost(text)).toBeNull();
  });

  test('idempotent: the normalized form normalizes to itself', () => {
    for (const text of ['https://REGISTRY.Replicated.com:443/', 'LOCALHOST:5000/', '[::1]:443', 'ghcr.io']) {
      const once = normalizeRegistryHost(text) as string;
      expect(normalizeRegistryHost(once)).toBe(once);
    }
  });
});

describe('namesRegistryHost and readsAsDockerHubPath: docker reads one label as a Docker Hub path', () => {
  test.each([
    ['registry.example.com', true],
    ['registry:5000', true],
    ['localhost', true],
    ['[::1]', true],
    ['Registry', true],
    ['myregistry', false],
    ['library', false],
    ['localhost2', false],
  ])('namesRegistryHost(%j) -> %s', (component, expected) => {
    expect(namesRegistryHost(component)).toBe(expected);
  });

  test.each([
    ['myregistry', true],
    ['https://MyRegistry/', true],
    ['myregistry:443', true],
    ['my-registry', true],
    ['myregistry:5000', false],
    ['registry.example.com', false],
    ['localhost', false],
    ['reg_istry', false],
    ['registry.example.com/path', false],
  ])('readsAsDockerHubPath(%j) -> %s', (text, expected) => {
    expect(readsAsDockerHubPath(text)).toBe(expected);
  });

  test('the same rule decides what the image reference names: myregistry/app/img is a Docker Hub path', () => {
    expect(parseLocalImage('myregistry/app/img')?.path).toBe('myregistry/app/img');
    expect(parseLocalImage('myregistry.example.com/app/img')?.path).toBe('app/img');
  });
});

describe('isLoopbackRegistry', () => {
  test.each([
    ['localhost', true],
    ['localhost:5000', true],
    ['127.0.0.1', true],
    ['127.0.0.1:5055', true],
    ['127.1.2.3:80', true],
    ['[::1]', true],
    ['[::1]:5000', true],
    ['registry.replicated.com', false],
    ['localhost.example.com', false],
    ['mylocalhost:5000', false],
    ['127.0.0.1.nip.io', false],
    ['128.0.0.1:5000', false],
    ['0.0.0.0:5000', false],
    ['10.0.0.1:5000', false],
  ])('%j -> %s', (host, expected) => {
    expect(isLoopbackRegistry(host)).toBe(expected);
  });
});

describe('ref builders', () => {
  test.each([
    ['registry.replicated.com', 'app/x', 'registry.replicated.com/app/x'],
    ['127.0.0.1:5055', 'app/demo', '127.0.0.1:5055/app/demo'],
  ])('repositoryOf(%j, %j) -> %j', (registry, path, expected) => {
    expect(repositoryOf(registry, path)).toBe(expected);
  });

  test('taggedRef and pinnedRef', () => {
    expect(taggedRef('r.example.com/app/x', '1.2.3')).toBe('r.example.com/app/x:1.2.3');
    expect(pinnedRef('r.example.com/app/x', DIGEST)).toBe(`r.example.com/app/x@${DIGEST}`);
  });
});
