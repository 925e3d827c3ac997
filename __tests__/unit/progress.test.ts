import type { LayerFact } from '../../src/image/layers.js';
import { PushProgress } from '../../src/core/report/progress.js';
import { parsePushLine, type LayerStatus, type PushEvent } from '../../src/engine/push-output.js';

const fact = (index: number, shortId: string, size: number, instruction: string | null): LayerFact => ({
  index,
  diffId: `sha256:${shortId}${'0'.repeat(52)}`,
  shortId,
  size,
  instruction,
});

const BASE = fact(1, 'aaaaaaaaaaaa', 7_800_000, 'ADD file:6b80a606c07f in /');
const RUN = fact(2, 'bbbbbbbbbbbb', 40_000_000, 'RUN apk add --no-cache curl');
const BIG = fact(3, 'cccccccccccc', 1_800_000_000, 'COPY --from=build /very/long/path/to/the/model/weights /models');
const ANON = fact(4, 'dddddddddddd', 900_000_000, null);
const LAYERS = [BASE, RUN, BIG, ANON];

const T0 = 1_000_000;

function progressAfter(lines: string[], layers: LayerFact[] = LAYERS): PushProgress {
  const p = new PushProgress(layers, T0);
  for (const l of lines) {
    const e = parsePushLine(l);
    if (e) p.observe(e);
  }
  return p;
}

describe('PushProgress.line', () => {
  test.each<[string, string[], number, string]>([
    ['nothing seen yet', [], 0, 'push: 0 blobs, 0 done; 0ms elapsed'],
    [
      'repository line only',
      ['The push refers to repository [127.0.0.1:5055/app/demo]'],
      1_500,
      'push: 0 blobs, 0 done; 1.5s elapsed',
    ],
    [
      'all preparing',
      ['aaaaaaaaaaaa: Preparing', 'bbbbbbbbbbbb: Preparing'],
      2_000,
      'push: 0/4 layers done (0 B of 2.7 GB); layer 2 (40.0 MB, RUN apk add --no-cache curl) uploading; ' +
        'layer 1 (7.8 MB, ADD file:6b80a606c07f in /) uploading; 2.0s elapsed',
    ],
    [
      'base exists, big one pushing',
      [
        'aaaaaaaaaaaa: Preparing',
        'bbbbbbbbbbbb: Preparing',
        'cccccccccccc: Preparing',
        'aaaaaaaaaaaa: Layer already exists',
        'bbbbbbbbbbbb: Pushed',
        'cccccccccccc: Pushing [=>   ]  12MB/1.8GB',
      ],
      95_000,
      'push: 2/4 layers done (47.8 MB of 2.7 GB); layer 3 (1.8 GB, COPY --from=build /very/long/path/to/the/model/weights /mod…) uploading; 1m35s elapsed',
    ],
    [
      'retrying, and a layer without an instruction',
      ['cccccccccccc: Retrying in 5 seconds', 'dddddddddddd: Waiting', 'aaaaaaaaaaaa: Mounted from app/other'],
      600_000,
      'push: 1/4 layers done (7.8 MB of 2.7 GB); layer 3 (1.8 GB, COPY --from=build /very/long/path/to/the/model/weights /mod…) retrying; ' +
        'layer 4 (900 MB) queued; 10m00s elapsed',
    ],
    [
      'all done',
      [
        'aaaaaaaaaaaa: Layer already exists',
        'bbbbbbbbbbbb: Pushed',
        'cccccccccccc: Pushed',
        'dddddddddddd: Mounted from app/x',
      ],
      250,
      'push: 4/4 layers done (2.7 GB of 2.7 GB); 250ms elapsed',
    ],
    [
      'unknown IDs only (containerd store names compressed blobs)',
      [
        '111111111111: Preparing',
        '222222222222: Pushed',
        '333333333333: Layer already exists',
        '444444444444: Pushing',
      ],
      3_000,
      'push: 4 blobs, 2 done; 3.0s elapsed',
    ],
    [
      'unknown IDs are left out once a known one appears',
      ['111111111111: Pushed', '222222222222: Pushing', 'bbbbbbbbbbbb: Pushed'],
      3_000,
      'push: 1/4 layers done (40.0 MB of 2.7 GB); 3.0s elapsed',
    ],
    [
      'text and digest lines do not count',
      [
        'bbbbbbbbbbbb: Pushed',
        'received unexpected HTTP status: 524',
        '1: digest: sha256:6b80a606c07f9f2a329d59e2afd65005d715de39698397385c0fff66d4f3924b size: 735',
      ],
      3_000,
      'push: 1/4 layers done (40.0 MB of 2.7 GB); 3.0s elapsed',
    ],
    [
      'the latest status of a layer wins',
      [
        'cccccccccccc: Pushing',
        'cccccccccccc: Retrying in 10 seconds',
        'cccccccccccc: Pushing',
        'cccccccccccc: Pushed',
      ],
      3_000,
      'push: 1/4 layers done (1.8 GB of 2.7 GB); 3.0s elapsed',
    ],
  ])('%s', (_name, lines, elapsed, expected) => {
    expect(progressAfter(lines).line(T0 + elapsed)).toBe(expected);
  });

  test('an image with no layers', () => {
    expect(new PushProgress([], T0).line(T0 + 10)).toBe('push: 0 blobs, 0 done; 10ms elapsed');
  });

  test('an instruction of exactly 60 characters is not truncated', () => {
    const sixty = 'COPY ' + 'x'.repeat(55);
    const p = progressAfter(['eeeeeeeeeeee: Pushing'], [fact(1, 'eeeeeeeeeeee', 5_000, sixty)]);
    expect(p.line(T0)).toBe(`push: 0/1 layers done (0 B of 5.0 kB); layer 1 (5.0 kB, ${sixty}) uploading; 0ms elapsed`);
  });

  test('a classic builder file hash is shortened, the destination kept', () => {
    const copy = `COPY file:${'ab'.repeat(32)} in /opt/model.bin`;
    const p = progressAfter(['eeeeeeeeeeee: Preparing'], [fact(1, 'eeeeeeeeeeee', 5_000, copy)]);
    expect(p.line(T0)).toBe(
      'push: 0/1 layers done (0 B of 5.0 kB); layer 1 (5.0 kB, COPY file:abababababab… in /opt/model.bin) uploading; 0ms elapsed',
    );
  });
});

describe('PushProgress.unfinished and suspect', () => {
  test.each<[string, string[], string[], LayerFact | null]>([
    ['nothing seen', [], [], null],
    [
      'everything done',
      ['aaaaaaaaaaaa: Pushed', 'cccccccccccc: Layer already exists', 'dddddddddddd: Mounted from a/b'],
      [],
      null,
    ],
    ['one retrying', ['aaaaaaaaaaaa: Pushed', 'cccccccccccc: Retrying in 5 seconds'], ['cccccccccccc'], BIG],
    [
      'the biggest unfinished known layer',
      ['aaaaaaaaaaaa: Pushing', 'dddddddddddd: Pushing', 'bbbbbbbbbbbb: Waiting', 'cccccccccccc: Pushed'],
      ['aaaaaaaaaaaa', 'dddddddddddd', 'bbbbbbbbbbbb'],
      ANON,
    ],
    [
      'the big layer is unfinished among smaller ones',
      ['aaaaaaaaaaaa: Preparing', 'cccccccccccc: Pushing', 'bbbbbbbbbbbb: Pushing'],
      ['aaaaaaaaaaaa', 'cccccccccccc', 'bbbbbbbbbbbb'],
      BIG,
    ],
    [
      'unknown IDs are unfinished but never suspects',
      ['111111111111: Pushing', '222222222222: Retrying in 5 seconds'],
      ['111111111111', '222222222222'],
      null,
    ],
    [
      'an unknown big blob does not hide a known one',
      ['111111111111: Pushing', 'bbbbbbbbbbbb: Pushing'],
      ['111111111111', 'bbbbbbbbbbbb'],
      RUN,
    ],
    [
      'failed and other statuses are unfinished',
      ['aaaaaaaaaaaa: error: unexpected EOF', 'bbbbbbbbbbbb: Buffering to disk'],
      ['aaaaaaaaaaaa', 'bbbbbbbbbbbb'],
      RUN,
    ],
  ])('%s', (_name, lines, unfinished, suspect) => {
    const p = progressAfter(lines);
    expect(p.unfinished()).toEqual(unfinished);
    expect(p.suspect()).toBe(suspect);
  });

  test('equal sizes: the first seen wins', () => {
    const a = fact(1, 'aaaaaaaaaaaa', 100, 'COPY a /a');
    const b = fact(2, 'bbbbbbbbbbbb', 100, 'COPY b /b');
    expect(progressAfter(['bbbbbbbbbbbb: Pushing', 'aaaaaaaaaaaa: Pushing'], [a, b]).suspect()).toBe(b);
  });

  test.each<[LayerStatus, boolean]>([
    ['preparing', false],
    ['waiting', false],
    ['pushing', false],
    ['retrying', false],
    ['failed', false],
    ['other', false],
    ['pushed', true],
    ['exists', true],
    ['mounted', true],
  ])('status %s counts as done: %s', (status, done) => {
    const p = new PushProgress(LAYERS, T0);
    const e: PushEvent = { kind: 'layer', id: 'cccccccccccc', status, text: status };
    p.observe(e);
    expect(p.unfinished()).toEqual(done ? [] : ['cccccccccccc']);
  });
});
