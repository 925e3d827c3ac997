import { duplicateTarget, MAX_IMAGES, parseImageLines } from '../../src/core/image-lines.js';

describe('parseImageLines', () => {
  it.each<[string, Array<[number, string | null, string]>]>([
    ['app:1', [[1, null, 'app:1']]],
    ['api=oci:./out/api', [[1, 'api', 'oci:./out/api']]],
    ['org/web = docker://ghcr.io/o/web@sha256:x', [[1, 'org/web', 'docker://ghcr.io/o/web@sha256:x']]],
    ['oci:./a=b', [[1, null, 'oci:./a=b']]],
    ['Upper=app:1', [[1, null, 'Upper=app:1']]],
    [
      'api=api:1\n\n# the worker\nworker:2\r\n  web=web:3  ',
      [
        [1, 'api', 'api:1'],
        [4, null, 'worker:2'],
        [5, 'web', 'web:3'],
      ],
    ],
    ['', []],
  ])('%j', (text, want) => {
    expect(parseImageLines(text)).toEqual(want.map(([line, target, source]) => ({ line, target, source })));
  });

  it('refuses a target with no image, and too many images', () => {
    expect(parseImageLines('app:1\napi=')).toEqual({ error: expect.stringMatching(/line 2 .*'api' but no image/) });
    const many = Array.from({ length: MAX_IMAGES + 1 }, (_, i) => `img${i}:1`).join('\n');
    expect(parseImageLines(many)).toEqual({ error: expect.stringMatching(/at most 32/) });
    expect(parseImageLines(many.split('\n').slice(1).join('\n'))).toHaveLength(MAX_IMAGES);
  });
});

describe('duplicateTarget', () => {
  it.each<[Array<[number, string]>, ReturnType<typeof duplicateTarget>]>([
    [
      [
        [1, 'api'],
        [2, 'web'],
      ],
      null,
    ],
    [
      [
        [1, 'api'],
        [3, 'web'],
        [4, 'api'],
      ],
      { target: 'api', lines: [1, 4] },
    ],
    [[], null],
  ])('%j', (targets, want) => {
    expect(duplicateTarget(targets.map(([line, target]) => ({ line, target })))).toEqual(want);
  });
});
