import { DEFAULT_PROXY_DOMAIN, INPUTS, inputSpec, REPLICATED_REGISTRY } from '../../src/core/input-table.js';
import {
  InputError,
  PLACEHOLDER_USERNAME,
  readConfig,
  splitList,
  tagFromRef,
  type Config,
  type GitContext,
} from '../../src/core/inputs.js';
import { controlCharacterAt, printable } from '../../src/util/untrusted.js';

type Inputs = Record<string, string>;

const BASE: Inputs = { 'app-slug': 'my-app', image: 'app/worker:dev', token: 's3cret', tag: '1.0.0' };
const NO_REF: GitContext = { ref: '' };

function getter(inputs: Inputs): (name: string) => string {
  return (name) => inputs[name] ?? '';
}

function config(overrides: Inputs = {}, ctx: GitContext = NO_REF): Config {
  return readConfig(getter({ ...BASE, ...overrides }), ctx);
}

function inputError(overrides: Inputs, ctx: GitContext = NO_REF): InputError {
  try {
    config(overrides, ctx);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error(`readConfig accepted ${JSON.stringify(overrides)}`);
}

describe('tagFromRef', () => {
  test.each([
    ['refs/tags/v1.2.3', '1.2.3'],
    ['refs/tags/v1.2.3-rc.1', '1.2.3-rc.1'],
    ['refs/tags/v10.20.30', '10.20.30'],
    ['refs/tags/v1.2.3+build.5', '1.2.3-build.5'],
    ['refs/tags/v1.2.3-rc.1+sha.abc', '1.2.3-rc.1-sha.abc'],
    ['refs/tags/1.2.3', '1.2.3'],
    ['refs/tags/release-7', 'release-7'],
    ['refs/tags/v1.2', 'v1.2'],
    ['refs/tags/v1', 'v1'],
    ['refs/tags/vnext', 'vnext'],
    ['refs/tags/release/7', 'release/7'],
    ['refs/tags/a+b', 'a-b'],
  ])('%j -> %j', (ref, expected) => {
    expect(tagFromRef(ref)).toBe(expected);
  });

  test.each([
    [''],
    ['refs/heads/main'],
    ['refs/heads/v1.2.3'],
    ['refs/pull/12/merge'],
    ['refs/tags/'],
    ['v1.2.3'],
    ['tags/v1.2.3'],
  ])('%j -> null', (ref) => {
    expect(tagFromRef(ref)).toBeNull();
  });
});

describe('splitList', () => {
  test.each<[string, string[]]>([
    ['', []],
    ['   ', []],
    ['a', ['a']],
    ['a,b', ['a', 'b']],
    ['a\nb', ['a', 'b']],
    ['a, b ,\n c\n\n,d,', ['a', 'b', 'c', 'd']],
    [' a \r\n b ', ['a', 'b']],
    ['a,a', ['a', 'a']],
    ['a\rb', ['a', 'b']],
  ])('%j -> %j', (text, expected) => {
    expect(splitList(text)).toEqual(expected);
  });
});

describe('readConfig: defaults', () => {
  test('minimal inputs', () => {
    const c = config();
    expect(c).toEqual({
      mode: 'push',
      appSlug: 'my-app',
      image: { raw: 'app/worker:dev', path: 'app/worker', tag: 'dev', digest: null, isId: false },
      target: 'worker',
      repositoryPath: 'my-app/worker',
      external: false,
      proxyDomain: DEFAULT_PROXY_DOMAIN,
      tokenTypeGiven: false,
      tags: ['1.0.0'],
      tagSource: 'input',
      tokenType: 'service-account',
      token: 's3cret',
      username: PLACEHOLDER_USERNAME,
      registry: REPLICATED_REGISTRY,
      dryRun: false,
      retries: 2,
      retryDelayMs: 10_000,
      maxLayerSize: 1_000_000_000,
      layerSplit: 'advise',
      attestations: 'strip',
      upload: 'auto',
      chunkSize: 32_000_000,
      source: {
        transport: 'docker-daemon',
        image: { raw: 'app/worker:dev', path: 'app/worker', tag: 'dev', digest: null, isId: false },
      },
      platforms: [],
      sourceUsername: '',
      sourceToken: '',
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.tags)).toBe(true);
  });

  test('the action.yml defaults give the same config as empty inputs', () => {
    const withYamlDefaults = config({
      registry: 'registry.replicated.com',
      'proxy-domain': 'proxy.replicated.com',
      mode: 'push',
      'dry-run': 'false',
      retries: '2',
      'retry-delay': '10s',
      'max-layer-size': '1GB',
      'layer-split': 'advise',
      attestations: 'strip',
    });
    expect(withYamlDefaults).toEqual(config());
  });
});

describe('readConfig: tag', () => {
  test.each<[string, string, string[], 'input' | 'git-tag']>([
    ['', 'refs/tags/v1.2.3', ['1.2.3'], 'git-tag'],
    ['', 'refs/tags/v1.2.3-rc.1', ['1.2.3-rc.1'], 'git-tag'],
    ['', 'refs/tags/release-7', ['release-7'], 'git-tag'],
    ['', 'refs/tags/v2.0.0+meta', ['2.0.0-meta'], 'git-tag'],
    ['latest', 'refs/tags/v1.2.3', ['latest'], 'input'],
    ['1.0.0', 'refs/heads/main', ['1.0.0'], 'input'],
    ['1.0.0\nlatest', '', ['1.0.0', 'latest'], 'input'],
    ['1.0.0,latest', '', ['1.0.0', 'latest'], 'input'],
    ['1.0.0, latest\nstable,', '', ['1.0.0', 'latest', 'stable'], 'input'],
    ['1.0.0\nlatest\n1.0.0,latest', '', ['1.0.0', 'latest'], 'input'],
    ['b,a,b', '', ['b', 'a'], 'input'],
    ['a'.repeat(128), '', ['a'.repeat(128)], 'input'],
  ])('tag %j on ref %j -> %j from %s', (tag, ref, tags, source) => {
    const c = config({ tag }, { ref });
    expect(c.tags).toEqual(tags);
    expect(c.tagSource).toBe(source);
  });

  test.each([
    ['', 'refs/heads/main', "ref: 'refs/heads/main'"],
    ['', '', "ref: 'none'"],
    ['', 'refs/pull/3/merge', "ref: 'refs/pull/3/merge'"],
    ['', 'refs/tags/release/7', "ref: 'refs/tags/release/7'"],
    [' , \n ', 'refs/heads/main', "ref: 'refs/heads/main'"],
  ])('tag %j on ref %j -> error naming tag', (tag, ref, mentions) => {
    const e = inputError({ tag }, { ref });
    expect(e.input).toBe('tag');
    expect(e.message).toContain("Input 'tag'");
    expect(e.message).toContain(mentions);
  });

  test.each([['.hidden'], ['-dash'], ['a+b'], ['v1/2'], ['a'.repeat(129)], ['ok,bad tag'], ['1.0.0\nno:colon']])(
    'invalid tag %j',
    (tag) => {
      const e = inputError({ tag });
      expect(e.input).toBe('tag');
      expect(e.message).toMatch(/^Input 'tag': '.+' is not a valid Docker tag/);
    },
  );

  test('the error says why no tag is invented, and prints the ref escaped', () => {
    const e = inputError({ tag: '' }, { ref: 'refs/heads/x\n::warning::owned' });
    expect(e.message).toContain('a release artifact customers may already pull');
    expect(e.message).not.toContain('cannot be deleted');
    expect(e.message).not.toContain('\n');
    expect(e.message).toContain("ref: 'refs/heads/x\\n::warning::owned'");
  });

  test('tombstone mode never defaults the tag', () => {
    const e = inputError(
      { mode: 'tombstone', tag: '', image: '', 'target-image': 'worker' },
      { ref: 'refs/tags/v1.2.3' },
    );
    expect(e.input).toBe('tag');
    expect(e.message).toContain("mode 'tombstone'");
  });
});

describe('readConfig: app-slug', () => {
  test.each([['my-app'], ['a'], ['app2'], ['  my-app  ']])('%j is valid', (slug) => {
    expect(config({ 'app-slug': slug }).appSlug).toBe(slug.trim());
  });

  test.each([
    ['', "Input 'app-slug' is required."],
    ['   ', "Input 'app-slug' is required."],
    ['My-App', "Input 'app-slug': 'My-App' is not an application slug"],
    ['my_app', "Input 'app-slug': 'my_app' is not an application slug"],
    ['-app', "Input 'app-slug': '-app' is not an application slug"],
    ['my/app', "Input 'app-slug': 'my/app' is not an application slug"],
  ])('%j -> %j', (slug, message) => {
    const e = inputError({ 'app-slug': slug });
    expect(e.input).toBe('app-slug');
    expect(e.message).toContain(message);
  });
});

describe('readConfig: image and target-image', () => {
  const HEX = '6b80a606c07f9f2a329d59e2afd65005d715de39698397385c0fff66d4f3924b';

  test.each([
    ['app/worker:dev', '', 'worker', 'my-app/worker'],
    ['registry:5000/org/svc:1', '', 'svc', 'my-app/svc'],
    ['alpine', '', 'alpine', 'my-app/alpine'],
    ['alpine', 'base/alpine', 'base/alpine', 'my-app/base/alpine'],
    [HEX, 'api', 'api', 'my-app/api'],
    [`sha256:${HEX}`, 'api', 'api', 'my-app/api'],
    ['app/worker:dev', '  api  ', 'api', 'my-app/api'],
  ])('image %j, target %j -> target %j, path %j', (image, target, expectedTarget, path) => {
    const c = config({ image, 'target-image': target });
    expect(c.target).toBe(expectedTarget);
    expect(c.repositoryPath).toBe(path);
  });

  test.each([
    ['', 'image', "Input 'image' is required."],
    ['Bad/Image', 'image', "Input 'image': 'Bad/Image' is not a valid image reference"],
    ['app:', 'image', "Input 'image': 'app:' is not a valid image reference"],
    ['app@sha256:123', 'image', "Input 'image': 'app@sha256:123' is not a valid image reference"],
    [HEX, 'target-image', "Input 'target-image' is required when 'image' is an image ID."],
  ])('image %j -> error on %s', (image, input, message) => {
    const e = inputError({ image });
    expect(e.input).toBe(input);
    expect(e.message).toContain(message);
  });

  test.each([['Api'], ['api/'], ['a b'], ['-api']])('target-image %j is invalid', (target) => {
    const e = inputError({ 'target-image': target });
    expect(e.input).toBe('target-image');
    expect(e.message).toContain(`Input 'target-image': '${target}' is not a valid repository name`);
  });

  test('tombstone mode needs no image but needs target-image', () => {
    const c = config({ mode: 'tombstone', image: '', 'target-image': 'worker' });
    expect(c.mode).toBe('tombstone');
    expect(c.image).toBeNull();
    expect(c.target).toBe('worker');
    const e = inputError({ mode: 'tombstone', image: '' });
    expect(e.input).toBe('target-image');
    expect(e.message).toContain("Input 'target-image' is required with mode 'tombstone'");
  });
});

describe('readConfig: mode', () => {
  test.each([
    ['push', 'app/worker:dev', 'push'],
    ['', 'app/worker:dev', 'push'],
    [' tombstone ', '', 'tombstone'],
  ])('%j (image %j) -> %j', (mode, image, expected) => {
    expect(config({ mode, image, 'target-image': 'worker' }).mode).toBe(expected);
  });

  test.each([['app/worker:dev'], ['  alpine  '], [`sha256:${'a'.repeat(64)}`], ['Not A Reference']])(
    'tombstone refuses image %j: it never pushes the image',
    (image) => {
      const e = inputError({ mode: 'tombstone', image, 'target-image': 'worker' });
      expect(e.input).toBe('image');
      expect(e.message).toBe(
        "Input 'image' must be empty with mode 'tombstone': mode tombstone pushes an empty image over the tag; " +
          "it never pushes 'image'. Remove 'image', or use mode 'push' to push it.",
      );
    },
  );

  test.each([[''], ['   ']])('tombstone accepts an empty image %j', (image) => {
    expect(config({ mode: 'tombstone', image, 'target-image': 'worker' }).image).toBeNull();
  });

  test.each([['Push'], ['delete'], ['tomb']])('%j is invalid', (mode) => {
    const e = inputError({ mode });
    expect(e.input).toBe('mode');
    expect(e.message).toBe(`Input 'mode' must be one of push, tombstone; got '${mode}'.`);
  });
});

describe('readConfig: token-type, token and username', () => {
  test.each([
    ['', '', 'service-account', false, PLACEHOLDER_USERNAME],
    ['service-account', '', 'service-account', true, PLACEHOLDER_USERNAME],
    ['service-account', 'ci-bot', 'service-account', true, 'ci-bot'],
    ['team', '', 'team', true, PLACEHOLDER_USERNAME],
    ['team', 'anyone', 'team', true, 'anyone'],
    ['user', 'dev@example.com', 'user', true, 'dev@example.com'],
    ['password', ' dev@example.com ', 'password', true, 'dev@example.com'],
    ['user', 'first.last+ci@sub.example.co', 'user', true, 'first.last+ci@sub.example.co'],
  ])('token-type %j, username %j -> %s / given %s / %j', (tokenType, username, type, given, expectedUser) => {
    const c = config({ 'token-type': tokenType, username });
    expect(c.tokenType).toBe(type);
    expect(c.tokenTypeGiven).toBe(given);
    expect(c.username).toBe(expectedUser);
  });

  test.each([
    ['user', '', "Input 'username' is required with token-type 'user'"],
    ['password', '  ', "Input 'username' is required with token-type 'password'"],
    ['user', 'dev', "Input 'username' must be the Vendor Portal email address with token-type 'user'."],
    ['password', 'dev@', "Input 'username' must be the Vendor Portal email address with token-type 'password'."],
    ['user', '@example.com', "Input 'username' must be the Vendor Portal email address with token-type 'user'."],
    ['user', 'a@b@c', "Input 'username' must be the Vendor Portal email address with token-type 'user'."],
    ['user', 'dev @example.com', "Input 'username' must be the Vendor Portal email address with token-type 'user'."],
  ])('token-type %j, username %j -> %j', (tokenType, username, message) => {
    const e = inputError({ 'token-type': tokenType, username });
    expect(e.input).toBe('username');
    expect(e.message).toContain(message);
  });

  test.each([['Service-Account'], ['api'], ['service_account']])('token-type %j is invalid', (tokenType) => {
    const e = inputError({ 'token-type': tokenType });
    expect(e.input).toBe('token-type');
    expect(e.message).toBe(
      `Input 'token-type' must be one of service-account, user, password, team; got '${tokenType}'.`,
    );
  });

  test.each([[''], ['   ']])('token %j is required', (token) => {
    const e = inputError({ token });
    expect(e.input).toBe('token');
    expect(e.message).toBe("Input 'token' is required.");
  });
});

describe('readConfig: registry, repository and proxy-domain', () => {
  test.each([
    ['', REPLICATED_REGISTRY, false],
    ['registry.replicated.com', REPLICATED_REGISTRY, false],
    ['https://registry.replicated.com/', REPLICATED_REGISTRY, false],
    ['images.vendor.example.com', 'images.vendor.example.com', true],
    ['http://127.0.0.1:5055', '127.0.0.1:5055', true],
    ['localhost:5000//', 'localhost:5000', true],
    ['[::1]:5000', '[::1]:5000', true],
    // one normalized form: scheme, case, trailing slash and the default port 443 do not make another registry
    ['https://REGISTRY.Replicated.com:443/', REPLICATED_REGISTRY, false],
    ['HTTPS://registry.replicated.com', REPLICATED_REGISTRY, false],
    ['registry.replicated.com:443', REPLICATED_REGISTRY, false],
    ['Registry.Replicated.Com', REPLICATED_REGISTRY, false],
    ['registry.replicated.com:5000', 'registry.replicated.com:5000', true],
    ['ghcr.io:443', 'ghcr.io', true],
    ['https://Images.Vendor.Example.com:8443/', 'images.vendor.example.com:8443', true],
    ['localhost', 'localhost', true],
    ['localhost:443', 'localhost', true],
    ['[::1]:443', '[::1]', true],
  ])('registry %j -> %j (external %s)', (registry, expected, external) => {
    const c = config({ registry });
    expect(c.registry).toBe(expected);
    expect(c.external).toBe(external);
    expect(c.repositoryPath).toBe('my-app/worker');
  });

  test.each([
    ['registry.example.com/path'],
    ['registry:port'],
    ['reg_istry.com'],
    ['ftp://registry.example.com'],
    ['registry.example.com:0'],
    ['registry.example.com:65536'],
    ['registry.replicated.com.'],
    ['https://'],
  ])('registry %j is invalid', (registry) => {
    const e = inputError({ registry });
    expect(e.input).toBe('registry');
    expect(e.message).toContain("Input 'registry'");
    expect(e.message).toContain('is not a registry host');
  });

  test.each([['myregistry'], ['https://myregistry/'], ['MyRegistry'], ['myregistry:443'], ['registry-1']])(
    'registry %j (one label) is refused: docker would read it as a Docker Hub path',
    (registry) => {
      const e = inputError({ registry });
      expect(e.input).toBe('registry');
      expect(e.message).toContain("Input 'registry'");
      expect(e.message).toContain('is not a registry host');
      expect(e.message).toContain('Docker Hub path');
    },
  );

  test.each([
    ['ghcr.io', 'my-org/worker', 'my-org/worker'],
    ['ghcr.io', '', 'my-app/worker'],
    ['ghcr.io', ' org/team/worker ', 'org/team/worker'],
  ])('registry %j, repository %j -> %j', (registry, repository, path) => {
    expect(config({ registry, repository }).repositoryPath).toBe(path);
  });

  test.each([
    ['', 'my-org/worker', "Input 'repository' is for external registries"],
    ['registry.replicated.com', 'my-org/worker', "Input 'repository' is for external registries"],
    ['https://REGISTRY.Replicated.com:443/', 'other-app/api', "Input 'repository' is for external registries"],
    ['registry.replicated.com:443', 'other-app/api', "Input 'repository' is for external registries"],
    ['Registry.Replicated.Com/', 'other-app/api', "Input 'repository' is for external registries"],
    ['ghcr.io', 'My-Org/worker', "Input 'repository': 'My-Org/worker' is not a valid repository path"],
    ['ghcr.io', 'org//worker', "Input 'repository': 'org//worker' is not a valid repository path"],
  ])('registry %j, repository %j -> %j', (registry, repository, message) => {
    const e = inputError({ registry, repository });
    expect(e.input).toBe('repository');
    expect(e.message).toContain(message);
  });

  test.each([
    ['', 'proxy.replicated.com'],
    ['images.vendor.example.com', 'images.vendor.example.com'],
    ['https://proxy.vendor.example.com/', 'proxy.vendor.example.com'],
    ['HTTPS://Proxy.Vendor.Example.com:443/', 'proxy.vendor.example.com'],
    ['proxy.vendor.example.com:8443', 'proxy.vendor.example.com:8443'],
  ])('proxy-domain %j -> %j', (proxyDomain, expected) => {
    expect(config({ 'proxy-domain': proxyDomain }).proxyDomain).toBe(expected);
  });

  test.each([['proxy.example.com/x'], ['bad_host.com']])('proxy-domain %j is invalid', (proxyDomain) => {
    const e = inputError({ 'proxy-domain': proxyDomain });
    expect(e.input).toBe('proxy-domain');
    expect(e.message).toBe(`Input 'proxy-domain': '${proxyDomain}' is not a host name.`);
  });

  test.each([['proxy'], ['https://Proxy/']])('proxy-domain %j (one label) is refused', (proxyDomain) => {
    const e = inputError({ 'proxy-domain': proxyDomain });
    expect(e.input).toBe('proxy-domain');
    expect(e.message).toContain('Docker Hub path');
  });
});

describe('readConfig: retries', () => {
  test.each([
    ['', 2],
    ['0', 0],
    ['1', 1],
    ['10', 10],
    [' 3 ', 3],
    ['010', 10],
  ])('%j -> %d', (retries, expected) => {
    expect(config({ retries }).retries).toBe(expected);
  });

  test.each([['11'], ['-1'], ['1.5'], ['two'], ['1e1'], ['100']])('%j is invalid', (retries) => {
    const e = inputError({ retries });
    expect(e.input).toBe('retries');
    expect(e.message).toBe(`Input 'retries' must be a whole number from 0 to 10; got '${retries}'.`);
  });
});

describe('readConfig: retry-delay', () => {
  test.each([
    ['', 10_000],
    ['500ms', 500],
    ['10s', 10_000],
    ['2m', 120_000],
    ['5', 5_000],
    ['0', 0],
    ['1.5s', 1_500],
  ])('%j -> %d ms', (delay, expected) => {
    expect(config({ 'retry-delay': delay }).retryDelayMs).toBe(expected);
  });

  test.each([['ten'], ['-1s'], ['1d'], ['10 seconds']])('%j is invalid', (delay) => {
    const e = inputError({ 'retry-delay': delay });
    expect(e.input).toBe('retry-delay');
    expect(e.message).toContain(`Input 'retry-delay': '${delay}' is not a duration`);
  });
});

describe('readConfig: max-layer-size', () => {
  test.each([
    ['', 1_000_000_000],
    ['1GB', 1_000_000_000],
    ['900MB', 900_000_000],
    ['1GiB', 1_073_741_824],
    ['750MiB', 786_432_000],
    ['1048576', 1_048_576],
    ['1.5GB', 1_500_000_000],
  ])('%j -> %d bytes', (size, expected) => {
    expect(config({ 'max-layer-size': size }).maxLayerSize).toBe(expected);
  });

  test.each([['0'], ['big'], ['1PB'], ['-1GB'], ['0MB']])('%j is invalid', (size) => {
    const e = inputError({ 'max-layer-size': size });
    expect(e.input).toBe('max-layer-size');
    expect(e.message).toContain(`Input 'max-layer-size': '${size}' is not a size`);
  });
});

describe('readConfig: layer-split, attestations, dry-run', () => {
  test.each([
    ['', 'advise'],
    ['advise', 'advise'],
    ['auto', 'auto'],
    ['off', 'off'],
    [' off ', 'off'],
  ])('layer-split %j -> %j', (value, expected) => {
    expect(config({ 'layer-split': value }).layerSplit).toBe(expected);
  });

  test.each([['on'], ['Auto'], ['false']])('layer-split %j is invalid', (value) => {
    const e = inputError({ 'layer-split': value });
    expect(e.input).toBe('layer-split');
    expect(e.message).toBe(`Input 'layer-split' must be one of advise, auto, off; got '${value}'.`);
  });

  test.each([
    ['', 'strip'],
    ['strip', 'strip'],
    ['keep', 'keep'],
  ])('attestations %j -> %j', (value, expected) => {
    expect(config({ attestations: value }).attestations).toBe(expected);
  });

  test.each([['remove'], ['Keep'], ['true']])('attestations %j is invalid', (value) => {
    const e = inputError({ attestations: value });
    expect(e.input).toBe('attestations');
    expect(e.message).toBe(`Input 'attestations' must be one of strip, keep; got '${value}'.`);
  });

  test.each([
    ['', false],
    ['false', false],
    ['true', true],
    ['TRUE', true],
    [' True ', true],
    ['False', false],
  ])('dry-run %j -> %s', (value, expected) => {
    expect(config({ 'dry-run': value }).dryRun).toBe(expected);
  });

  test.each([['yes'], ['1'], ['0'], ['on']])('dry-run %j is invalid', (value) => {
    const e = inputError({ 'dry-run': value });
    expect(e.input).toBe('dry-run');
    expect(e.message).toBe(`Input 'dry-run' must be true or false; got '${value}'.`);
  });
});

describe('readConfig: the first invalid input is the one reported', () => {
  test.each([
    [{ mode: 'x', 'app-slug': 'BAD' }, 'mode'],
    [{ 'app-slug': 'BAD', image: '' }, 'app-slug'],
    [{ image: '', tag: '.bad' }, 'image'],
    [{ tag: '.bad', token: '' }, 'tag'],
    [{ 'token-type': 'x', token: '' }, 'token-type'],
    [{ token: '', 'token-type': 'user' }, 'token'],
    [{ 'token-type': 'user', registry: 'bad/host' }, 'username'],
    [{ registry: 'bad/host', retries: '99' }, 'registry'],
    [{ 'retry-delay': 'x', 'max-layer-size': 'x' }, 'retry-delay'],
    [{ 'max-layer-size': 'x', 'dry-run': 'x' }, 'max-layer-size'],
    [{ 'dry-run': 'x', retries: 'x' }, 'dry-run'],
    [{ retries: 'x', 'layer-split': 'x' }, 'retries'],
    [{ mode: 'tombstone', image: 'app/x:1', tag: '' }, 'image'],
    [{ username: 'a\nb', registry: 'myregistry' }, 'username'],
    [{ registry: 'myregistry', 'proxy-domain': 'proxy' }, 'registry'],
    [{ image: 'app\u0000', tag: '\t' }, 'image'],
    [{ 'layer-split': 'x', attestations: 'x' }, 'layer-split'],
  ])('%j -> %s', (overrides, input) => {
    expect(inputError(overrides).input).toBe(input);
  });
});

describe('INPUTS: the one table of inputs', () => {
  test('names are unique', () => {
    const names = INPUTS.map((i) => i.name);
    expect(new Set(names).size).toBe(names.length);
  });

  test('readConfig asks for every input in the table and for nothing else', () => {
    const asked = new Set<string>();
    readConfig((name) => {
      asked.add(name);
      return BASE[name] ?? '';
    }, NO_REF);
    expect([...asked].sort()).toEqual(INPUTS.map((i) => i.name).sort());
  });

  test.each(INPUTS.filter((i) => 'default' in i).map((i) => [i.name, (i as { default: string }).default]))(
    "%s: the table's default %j means the same as an empty input",
    (name, value) => {
      expect(config({ [name]: value })).toEqual(config());
    },
  );

  test('token-type has no default in action.yml, so the action can tell it was set; unset means service-account', () => {
    expect('default' in inputSpec('token-type')).toBe(false);
    expect(inputSpec('token-type').unset).toBe('service-account');
    expect(config({ 'token-type': 'service-account' })).toEqual({ ...config(), tokenTypeGiven: true });
  });

  test('the tokens are never CLI flags; the lists are tag and platforms; the only flag is dry-run', () => {
    expect(INPUTS.filter((i) => i.cli.kind === 'none').map((i) => i.name)).toEqual(['token', 'source-token']);
    expect(INPUTS.filter((i) => i.cli.kind === 'list').map((i) => i.name)).toEqual(['tag', 'platforms']);
    expect(INPUTS.filter((i) => i.cli.kind === 'flag').map((i) => i.name)).toEqual(['dry-run']);
  });

  test('required inputs are the ones readConfig cannot do without', () => {
    expect(INPUTS.filter((i) => i.required).map((i) => i.name)).toEqual(['app-slug', 'token']);
    for (const name of ['app-slug', 'token']) expect(inputError({ [name]: '' }).input).toBe(name);
  });

  test('no description says images or tags cannot be deleted', () => {
    for (const i of INPUTS) expect(i.description).not.toMatch(/cannot (be )?delete/);
    expect(inputSpec('tag').description).toContain('a pushed tag is a release artifact customers may already pull');
    expect(inputSpec('mode').description).toContain('Vendor Portal');
  });
});

describe('readConfig: control characters', () => {
  const CONTROLS = ['\n', '\r', '\t', '\u0000', '\u0007', '\u001b', '\u007f', '\u0085', '\u009b'];
  const SINGLE_LINE = INPUTS.filter((i) => i.cli.kind !== 'list' && i.cli.kind !== 'lines').map((i) => i.name);

  const rows = SINGLE_LINE.flatMap((name) => CONTROLS.map((c) => [name, c] as const));
  test.each(rows)('%s with %j is refused without echoing the value', (name, c) => {
    const value = `dev@example.com${c}::warning::owned`;
    const e = inputError({ 'token-type': 'user', username: 'dev@example.com', [name]: value });
    expect(e.input).toBe(name);
    expect(e.message).toContain(`Input '${name}' contains a control character`);
    expect(e.message).toContain(`at character 16`);
    expect(e.message).toContain('The value is not shown.');
    expect(e.message).not.toContain('::warning::');
    expect(e.message).not.toContain('dev@example.com');
    expect(controlCharacterAt(e.message)).toBe(-1);
  });

  test('the username of issue 11 (a newline, then a workflow command) is an input error naming username', () => {
    const e = inputError({ 'token-type': 'user', username: 'dev@example.com\n::warning::pwned' });
    expect(e.input).toBe('username');
    expect(e.message).toBe(
      "Input 'username' contains a control character (U+000A at character 16); it must be one line of text. " +
        'The value is not shown.',
    );
  });

  test.each([
    ['username', 'ci-bot\n', 'ci-bot'],
    ['username', '\r\n ci-bot \t', 'ci-bot'],
    ['token', 's3cret\n', 's3cret'],
  ])('%s %j: whitespace around the value is trimmed first -> %j', (name, value, expected) => {
    const c = config({ [name]: value });
    expect(name === 'token' ? c.token : c.username).toBe(expected);
  });

  test.each<[string, string[]]>([
    ['1.0.0\nlatest', ['1.0.0', 'latest']],
    ['1.0.0\r\nlatest\r\n', ['1.0.0', 'latest']],
    ['1.0.0\rlatest', ['1.0.0', 'latest']],
  ])('tag %j: newlines separate tags -> %j', (tag, tags) => {
    expect(config({ tag }).tags).toEqual(tags);
  });

  test.each([
    ['1.0.0\tlatest', '0009', 6],
    ['1.0.0,\u001b[31mlatest', '001B', 7],
    ['1.0.0\n\u0000', '0000', 7],
    ['1.0.0\n::warning::x\u007f', '007F', 19],
  ])('tag %j is refused (U+%s at %d)', (tag, code, at) => {
    const e = inputError({ tag });
    expect(e.input).toBe('tag');
    expect(e.message).toBe(
      `Input 'tag' contains a control character (U+${code} at character ${at}); ` +
        'only newlines and commas may separate its values. The value is not shown.',
    );
  });

  test('a tag list with a workflow command on its own line is refused without a newline in the message', () => {
    const e = inputError({ tag: '1.0.0\n::warning::owned' });
    expect(e.input).toBe('tag');
    expect(e.message).not.toContain('\n');
  });

  test.each([
    ['', false, -1],
    ['abc', false, -1],
    ['a\nb', false, 1],
    ['a\nb', true, -1],
    ['a\r\nb', true, -1],
    ['a\r\n\tb', true, 3],
    ['\u007f', false, 0],
    ['ab\u0085', false, 2],
    ['\u00a0é', false, -1],
  ])('controlCharacterAt(%j, newlines %s) -> %d', (text, newlines, expected) => {
    expect(controlCharacterAt(text, newlines)).toBe(expected);
  });

  test.each([
    ['plain', 'plain'],
    ['a\nb', 'a\\nb'],
    ['\r\n::warning::x', '\\r\\n::warning::x'],
    ['\u001b[31m', '\\u001b[31m'],
    ['\u0085', '\\u0085'],
    ['quote \' and " stay', 'quote \' and " stay'],
  ])('printable(%j) -> %j', (text, expected) => {
    expect(printable(text)).toBe(expected);
  });
});

describe('upload and chunk-size', () => {
  test.each<[Record<string, string>, string, number]>([
    [{}, 'auto', 32_000_000],
    [{ upload: 'chunked', 'chunk-size': '4MB' }, 'chunked', 4_000_000],
    [{ upload: 'docker', 'chunk-size': '64MiB' }, 'docker', 64 * 1024 * 1024],
    [{ 'chunk-size': '1GB' }, 'auto', 1_000_000_000],
  ])('%j -> %s, %d', (inputs, upload, chunkSize) => {
    expect(config(inputs)).toMatchObject({ upload, chunkSize });
  });

  test.each<[Record<string, string>, string, RegExp]>([
    [{ upload: 'fast' }, 'upload', /must be one of auto, docker, chunked/],
    [{ 'chunk-size': 'big' }, 'chunk-size', /'big' is not a size/],
    [{ 'chunk-size': '512kB' }, 'chunk-size', /from 1MB to 1GB/],
    [{ 'chunk-size': '2GB' }, 'chunk-size', /from 1MB to 1GB/],
  ])('%j is refused, naming %s', (inputs, input, message) => {
    const e = inputError(inputs);
    expect(e.input).toBe(input);
    expect(e.message).toMatch(message);
  });
});

describe('readConfig: image names any source (issue 19)', () => {
  const D = `sha256:${'a'.repeat(64)}`;
  test.each([
    ['oci:./out', 'api', 'oci', 'api'],
    ['oci:out:v1', 'api', 'oci', 'api'],
    ['oci-archive:out.tar', 'api', 'oci-archive', 'api'],
    ['docker-archive:x.tar:org/worker:1', '', 'docker-archive', 'worker'],
    [`docker://ghcr.io/org/app@${D}`, '', 'docker', 'app'],
    ['docker://127.0.0.1:5000/src/api:1', '', 'docker', 'api'],
    ['docker-daemon:app/worker:dev', '', 'docker-daemon', 'worker'],
  ])('%j (target %j) -> transport %s, target %s', (image, target, transport, expected) => {
    const c = config({ image, 'target-image': target });
    expect(c.source?.transport).toBe(transport);
    expect(c.target).toBe(expected);
    // the engine image only when the engine is the source
    expect(c.image === null).toBe(transport !== 'docker-daemon');
  });

  test.each([
    ['oci:out', "Input 'target-image' is required when 'image' is an OCI layout (oci:), which names no repository."],
    [
      'oci-archive:o.tar',
      "Input 'target-image' is required when 'image' is an OCI layout (oci-archive:), which names no repository.",
    ],
    [
      'docker-archive:x.tar',
      "Input 'target-image' is required when 'image' is a docker-archive: without :NAME, which names no repository.",
    ],
  ])('%j without target-image -> an error naming target-image', (image, message) => {
    const e = inputError({ image });
    expect(e.input).toBe('target-image');
    expect(e.message).toBe(message);
  });

  test.each([
    ['oci:', "Input 'image': 'oci:' names no directory."],
    ['oci:out:bad ref', "Input 'image': 'bad ref' is not a valid OCI reference name."],
    ['docker://', "Input 'image': '' is not a registry reference (REGISTRY/REPO[:TAG|@DIGEST])."],
  ])('%j -> an error naming image', (image, message) => {
    const e = inputError({ image, 'target-image': 'api' });
    expect(e.input).toBe('image');
    expect(e.message).toBe(message);
  });

  test('layer-split: auto with a source read without the engine: an error naming layer-split', () => {
    const e = inputError({ image: 'oci:out', 'target-image': 'api', 'layer-split': 'auto' });
    expect(e.input).toBe('layer-split');
    expect(e.message).toContain('; oci: sources are read without one');
    expect(config({ 'layer-split': 'auto' }).layerSplit).toBe('auto'); // the engine's image still splits
  });

  test.each(['oci:out', 'oci-archive:a.tar', 'docker-archive:a.tar', 'docker://ghcr.io/o/a:1'])(
    'upload: docker with %s (read without the engine): an error naming upload',
    (image) => {
      const e = inputError({ image, 'target-image': 'api', upload: 'docker' });
      expect(e.input).toBe('upload');
      expect(e.message).toMatch(/^Input 'upload': docker pushes with the Docker engine; \S+ sources are read/);
    },
  );

  test('upload: docker with an engine image, and upload: chunked with a layout, are what they say', () => {
    expect(config({ upload: 'docker' }).upload).toBe('docker');
    expect(config({ image: 'oci:out', 'target-image': 'api', upload: 'chunked' }).upload).toBe('chunked');
  });
});

describe('readConfig: platforms', () => {
  test.each([
    ['', []],
    ['linux/amd64', ['linux/amd64']],
    ['linux/amd64,linux/arm64', ['linux/amd64', 'linux/arm64']],
    [' linux/arm/v7 , linux/amd64,linux/amd64', ['linux/arm/v7', 'linux/amd64']],
    ['linux/amd64\nlinux/arm64', ['linux/amd64', 'linux/arm64']],
  ])('%j -> %j', (platforms, expected) => {
    expect(config({ platforms }).platforms).toEqual(expected);
  });

  test.each([['linux'], ['Linux/amd64'], ['linux/amd64/v8/x'], ['linux/'], ['/amd64'], ['linux amd64']])(
    '%j is refused naming platforms',
    (platforms) => {
      const e = inputError({ platforms });
      expect(e.input).toBe('platforms');
      expect(e.message).toContain('is not a platform (os/architecture[/variant]');
    },
  );
});

describe('readConfig: source-username and source-token', () => {
  const SRC = { image: 'docker://ghcr.io/org/app:1' };
  test('both, for a registry source', () => {
    const c = config({ ...SRC, 'source-username': 'bot', 'source-token': 'ghp_x' });
    expect(c).toMatchObject({ sourceUsername: 'bot', sourceToken: 'ghp_x' });
  });

  test('neither: empty (the job docker config is asked)', () => {
    expect(config(SRC)).toMatchObject({ sourceUsername: '', sourceToken: '' });
  });

  test.each<[Inputs, string, string]>([
    [{ ...SRC, 'source-username': 'bot' }, 'source-token', "Input 'source-token' is required with 'source-username'."],
    [{ 'source-token': 'x' }, 'source-token', "Input 'source-token' is for a registry source"],
    [{ image: 'oci:o', 'target-image': 'a', 'source-username': 'u' }, 'source-username', 'is for a registry source'],
  ])('%j -> an error naming %s', (inputs, input, message) => {
    const e = inputError(inputs);
    expect(e.input).toBe(input);
    expect(e.message).toContain(message);
  });

  test('source-token is never echoed in an error', () => {
    const e = inputError({ 'source-token': 'ghp_very_secret' });
    expect(e.message).not.toContain('ghp_very_secret');
  });
});
