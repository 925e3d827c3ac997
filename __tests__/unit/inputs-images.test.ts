// `image` with one image a line (issue 20): each line a Config exactly as a run of that image alone would get, and
// the input errors that name the line.
import { InputError, readConfig, readConfigs, type Config } from '../../src/core/inputs.js';

type Inputs = Record<string, string>;
const BASE: Inputs = { 'app-slug': 'my-app', token: 's3cret', tag: '1.0.0, 1.0' };

function configs(inputs: Inputs): readonly Config[] {
  const all = { ...BASE, ...inputs };
  return readConfigs((name) => all[name] ?? '', { ref: '' });
}

function inputError(inputs: Inputs): InputError {
  try {
    configs(inputs);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error(`readConfigs accepted ${JSON.stringify(inputs)}`);
}

describe('readConfigs: several images', () => {
  test('one Config per line, in order, each what that image alone gets; every tag for every image', () => {
    const image = 'api:dev\n# the web front\n\nweb=oci:./out/web:v1\nworker=docker://ghcr.io/o/worker:2';
    const all = configs({ image });
    expect(all.map((c) => [c.target, c.repositoryPath, c.source?.transport])).toEqual([
      ['api', 'my-app/api', 'docker-daemon'],
      ['web', 'my-app/web', 'oci'],
      ['worker', 'my-app/worker', 'docker'],
    ]);
    for (const c of all) expect(c.tags).toEqual(['1.0.0', '1.0']);
    const alone = configs({ image: 'oci:./out/web:v1', 'target-image': 'web' })[0];
    expect(all[1]).toEqual(alone);
    expect(configs({ image: 'api:dev' })[0]).toEqual(
      readConfig((n) => ({ ...BASE, image: 'api:dev' })[n] ?? '', { ref: '' }),
    );
    expect(all[0].image?.raw).toBe('api:dev');
    expect(all[1].image).toBeNull();
  });

  test('one line TARGET=SOURCE is one image with that repository', () => {
    expect(configs({ image: 'web=oci:./out/web' }).map((c) => c.repositoryPath)).toEqual(['my-app/web']);
  });

  test.each<[string, Inputs, string, RegExp]>([
    [
      'no default target',
      { image: 'api:1\noci:./out/web' },
      'image',
      /^Input 'image', line 2 \('oci:.\/out\/web'\): 'image' is an OCI layout .* TARGET=oci:.\/out\/web\.$/,
    ],
    [
      'an unreadable line',
      { image: 'api:1\n\nBad Name!' },
      'image',
      /^Input 'image', line 3 \('Bad Name!'\): 'Bad Name!' is not a valid image reference/,
    ],
    [
      'two images to one repository',
      { image: 'api:1\nother/api:2' },
      'image',
      /^Input 'image': lines 1 \('api:1'\) and 2 \('other\/api:2'\) both push to the repository 'api'/,
    ],
    [
      'named twice',
      { image: 'web=a:1\nweb=oci:./w' },
      'image',
      /lines 1 \('a:1'\) and 2 \('oci:.\/w'\) both push to the repository 'web'/,
    ],
    [
      'target-image with several',
      { image: 'api:1\nweb:1', 'target-image': 'x' },
      'target-image',
      /names the repository of a single image; 'image' has 2/,
    ],
    [
      'repository with several',
      { image: 'api:1\nweb:1', registry: 'ghcr.io', repository: 'o/x' },
      'repository',
      /names the path of a single image/,
    ],
    [
      'target-image and TARGET=',
      { image: 'web=oci:./w', 'target-image': 'x' },
      'target-image',
      /both name the repository/,
    ],
    ['only comments', { image: '# nothing\n\n' }, 'image', /^Input 'image' is required\.$/],
    [
      'layer-split auto and a layout',
      { image: 'api:1\nweb=oci:./w', 'layer-split': 'auto' },
      'layer-split',
      /; oci: sources are read/,
    ],
    [
      'upload docker and a registry source',
      { image: 'api:1\nweb=docker://ghcr.io/o/web:1', upload: 'docker' },
      'upload',
      /^Input 'upload': docker pushes with the Docker engine; docker:\/\/ sources are read without one/,
    ],
    [
      'source-token with no registry source',
      { image: 'api:1\nweb:1', 'source-username': 'u', 'source-token': 't' },
      'source-token',
      /names none/,
    ],
  ])('%s', (_why, inputs, input, message) => {
    const e = inputError(inputs);
    expect(e.input).toBe(input);
    expect(e.message).toMatch(message);
  });

  test('source credentials with several images when one of them is a registry source', () => {
    const all = configs({ image: 'api:1\nw=docker://ghcr.io/o/w:1', 'source-username': 'u', 'source-token': 't' });
    expect(all.map((c) => c.sourceToken)).toEqual(['t', 't']);
  });

  test('a tombstone is still one Config, no image', () => {
    const all = configs({ mode: 'tombstone', 'target-image': 'api', tag: '1.0.0' });
    expect(all).toHaveLength(1);
    expect(all[0].source).toBeNull();
  });
});
