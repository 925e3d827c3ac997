import type { AdviceContext } from '../../src/core/report/advisory.js';
import { classifyFailure, type Failure } from '../../src/core/policy/failure.js';
import type { LayerFact } from '../../src/image/layers.js';
import {
  blamedLayer,
  decideAfterPushFailure,
  firstMethod,
  loginRetryable,
  MIN_SPLIT_SIZE,
  resplitAfter524,
  type PushFailureFacts,
} from '../../src/core/policy/push-policy.js';

const fact = (index: number, size: number, instruction: string | null = `RUN step${index}`): LayerFact => {
  const hex = String(index).repeat(64);
  return { index, diffId: `sha256:${hex}`, shortId: hex.slice(0, 12), size, instruction };
};

const GB = 1_000_000_000;
const SMALL = fact(1, 7_000_000);
const BIG = fact(2, 1_800 * 1_000_000);
const MID = fact(3, 600 * 1_000_000);
const BIG2 = fact(4, 1_500 * 1_000_000);

const ctx: AdviceContext = {
  registry: 'registry.replicated.com',
  appSlug: 'my-app',
  repository: 'registry.replicated.com/my-app/api',
  tokenType: 'service-account',
  username: 'replicated-push',
  maxLayerSize: GB,
  layerCount: 3,
};

const f524 = (blobDigest: string | null = null): Failure => ({
  kind: 'timeout-524',
  retryable: true,
  status: 524,
  blobDigest,
  detail: 'received unexpected HTTP status: 524',
});

function facts(over: Partial<PushFailureFacts> = {}): PushFailureFacts {
  const layers = over.layers ?? [SMALL, BIG, MID];
  return {
    failure: f524(),
    method: 'docker',
    chunkable: true,
    layers,
    oversized: layers.filter((l) => l.size > GB),
    containerdStore: false,
    suspect: null,
    attempt: 1,
    config: { retries: 2, layerSplit: 'advise', maxLayerSize: GB, upload: 'docker' },
    advice: ctx,
    ...over,
  };
}

describe('blamedLayer', () => {
  test.each<[string, Partial<PushFailureFacts>, LayerFact | null, boolean]>([
    ['the blob the engine names is a layer (an uncompressed piece)', { failure: f524(MID.diffId) }, MID, true],
    ['classic store: the layer its status lines left unfinished', { suspect: MID }, MID, true],
    [
      'containerd store: status lines are not trusted, the one oversized layer is named',
      { suspect: MID, containerdStore: true },
      BIG,
      false,
    ],
    ['no hint: the only layer over the limit', {}, BIG, false],
    ['no hint and two layers over the limit: nobody is blamed', { layers: [SMALL, BIG, BIG2] }, null, false],
    ['the named blob wins over the suspect', { failure: f524(SMALL.diffId), suspect: BIG }, SMALL, true],
  ])('%s', (_name, over, layer, exact) => {
    expect(blamedLayer(facts(over))).toEqual({ layer, exact });
  });
});

describe('resplitAfter524', () => {
  test.each<[string, LayerFact[], LayerFact | null, { layers: number[]; size: number } | null]>([
    ['halves the blamed layer', [SMALL, BIG, MID], MID, { layers: [2, 3], size: 300_000_000 }],
    ['and every layer as big', [SMALL, BIG, BIG2], BIG2, { layers: [2, 4], size: 750_000_000 }],
    ['nobody blamed: the biggest', [SMALL, BIG, MID], null, { layers: [2], size: 900_000_000 }],
    ['sizes unknown (history did not match): nothing to halve', [fact(1, 0, null), fact(2, 0, null)], null, null],
    ['too small to halve', [fact(1, MIN_SPLIT_SIZE)], null, null],
    ['just big enough', [fact(1, 2 * MIN_SPLIT_SIZE)], null, { layers: [1], size: MIN_SPLIT_SIZE }],
    ['no layers', [], null, null],
  ])('%s', (_name, layers, blamed, expected) => {
    const r = resplitAfter524(layers, blamed);
    expect(r && { layers: r.layers.map((l) => l.index), size: r.size }).toEqual(expected);
  });
});

describe('decideAfterPushFailure', () => {
  type Row = [
    string,
    Partial<PushFailureFacts>,
    { retry: boolean; resplit: number[] | null; warning: boolean; retryAfter: boolean; title: string; note?: RegExp },
  ];
  test.each<Row>([
    [
      '524 on a layer over the limit (advise): stop at once, with the reason',
      { suspect: BIG },
      {
        retry: false,
        resplit: null,
        warning: true,
        retryAfter: false,
        title: 'Push timed out (HTTP 524)',
        note: /Not retrying: layer 2/,
      },
    ],
    [
      '524 on a layer under the limit: retry (a transient origin timeout)',
      { suspect: MID },
      { retry: true, resplit: null, warning: true, retryAfter: false, title: 'Push timed out (HTTP 524)' },
    ],
    [
      '524 with nobody to blame: retry',
      { layers: [SMALL, MID] },
      { retry: true, resplit: null, warning: true, retryAfter: false, title: 'Push timed out (HTTP 524)' },
    ],
    [
      'layer-split auto: re-split the blamed layer and retry',
      { suspect: BIG, config: { retries: 2, layerSplit: 'auto', maxLayerSize: GB, upload: 'docker' } },
      { retry: true, resplit: [2], warning: true, retryAfter: false, title: 'Push timed out (HTTP 524)' },
    ],
    [
      'layer-split auto on the last attempt: no re-split that nobody would push',
      { suspect: BIG, attempt: 3, config: { retries: 2, layerSplit: 'auto', maxLayerSize: GB, upload: 'docker' } },
      { retry: true, resplit: null, warning: true, retryAfter: false, title: 'Push timed out (HTTP 524)' },
    ],
    [
      'layer-split auto with unknown sizes: no 0 B re-split, retried as it is',
      {
        layers: [fact(1, 0, null), fact(2, 0, null)],
        config: { retries: 2, layerSplit: 'auto', maxLayerSize: GB, upload: 'docker' },
      },
      {
        retry: true,
        resplit: null,
        warning: true,
        retryAfter: false,
        title: 'Push timed out (HTTP 524)',
        note: /unknown or too small/,
      },
    ],
    [
      '429: retry, honouring Retry-After',
      { failure: classifyFailure('toomanyrequests: slow down') },
      { retry: true, resplit: null, warning: false, retryAfter: true, title: 'Rate limited (HTTP 429)' },
    ],
    [
      '502: retry',
      { failure: classifyFailure('received unexpected HTTP status: 502 Bad Gateway') },
      { retry: true, resplit: null, warning: false, retryAfter: false, title: 'Registry error (HTTP 502)' },
    ],
    [
      'connection reset: retry',
      { failure: classifyFailure('read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer') },
      { retry: true, resplit: null, warning: false, retryAfter: false, title: 'Registry unreachable' },
    ],
    [
      'docker push stalled (the watchdog ended it): retry',
      { failure: classifyFailure('abc123def456: Preparing', { stalledMs: 300_000 }) },
      { retry: true, resplit: null, warning: false, retryAfter: false, title: 'Push stalled' },
    ],
    [
      'denied: final',
      { failure: classifyFailure('denied: requested access to the resource is denied') },
      { retry: false, resplit: null, warning: false, retryAfter: false, title: 'Access denied to the repository' },
    ],
    [
      'unauthorized: final',
      { failure: classifyFailure('unauthorized: authentication required') },
      { retry: false, resplit: null, warning: false, retryAfter: false, title: 'Registry rejected the credentials' },
    ],
  ])('%s', (_name, over, want) => {
    const d = decideAfterPushFailure(facts(over));
    expect(d.retry).toBe(want.retry);
    expect(d.resplit?.layers.map((l) => l.index) ?? null).toEqual(want.resplit);
    expect(d.warning !== null).toBe(want.warning);
    expect(d.honourRetryAfter).toBe(want.retryAfter);
    expect(d.error.title).toBe(want.title);
    if (want.note) expect(d.note).toMatch(want.note);
  });

  test('the stop reason is part of the final error', () => {
    const d = decideAfterPushFailure(facts({ suspect: BIG }));
    expect(d.error.message).toMatch(/Not retrying: layer 2 is over max-layer-size \(1.0 GB\)/);
    expect(d.error.message).toContain('layer 2/3');
  });

  test('the advisory names the blob when the layer is a guess', () => {
    const blob = `sha256:${'e'.repeat(64)}`;
    const d = decideAfterPushFailure(facts({ failure: f524(blob), containerdStore: true }));
    expect(d.warning?.message).toContain('blob sha256:eeeeeeeeeeee');
    expect(d.warning?.message).toContain('most likely layer 2/3');
  });
});

describe('upload: which method, and the switch after a 524', () => {
  const auto = { retries: 2, layerSplit: 'advise', maxLayerSize: GB, upload: 'auto' } as const;

  test.each<[string, 'auto' | 'docker' | 'chunked', LayerFact[], boolean, 'docker' | 'chunked']>([
    ['auto, every layer under the limit: docker push', 'auto', [SMALL, MID], true, 'docker'],
    ['auto, a layer over the limit: chunks from the first attempt', 'auto', [SMALL, BIG], true, 'chunked'],
    ['chunked: always', 'chunked', [SMALL], true, 'chunked'],
    ['docker: never', 'docker', [SMALL, BIG], true, 'docker'],
    ['an index pushed as it is cannot go in chunks', 'chunked', [SMALL, BIG], false, 'docker'],
  ])('%s', (_name, upload, layers, chunkable, method) => {
    expect(firstMethod({ upload }, { oversized: layers.filter((l) => l.size > GB), chunkable })).toBe(method);
  });

  test('a 524 on docker push: the retry goes in chunks, even on a layer over the limit', () => {
    const d = decideAfterPushFailure(facts({ suspect: BIG, config: auto }));
    expect(d).toMatchObject({ retry: true, method: 'chunked', resplit: null });
    expect(d.note).toMatch(/resumable chunks/);
  });

  test('a 524 in chunks on a layer over the limit: stop (advise), re-split (auto)', () => {
    expect(decideAfterPushFailure(facts({ suspect: BIG, method: 'chunked', config: auto }))).toMatchObject({
      retry: false,
      method: 'chunked',
    });
    const split = decideAfterPushFailure(
      facts({ failure: f524(BIG.diffId), method: 'chunked', config: { ...auto, layerSplit: 'auto' } }),
    );
    expect(split).toMatchObject({ retry: true, method: 'chunked' });
    expect(split.resplit?.layers.map((l) => l.index)).toEqual([2]);
  });

  test('a 524 in chunks on a split piece under the limit (layer-split: auto, pieces uploaded directly): re-split that piece and every one as big, still in chunks', () => {
    const pieces = [SMALL, fact(2, 600_000_000), fact(3, 600_000_000), fact(4, 200_000_000)];
    const d = decideAfterPushFailure(
      facts({
        layers: pieces,
        failure: f524(pieces[1].diffId),
        method: 'chunked',
        config: { ...auto, layerSplit: 'auto' },
      }),
    );
    expect(d).toMatchObject({ retry: true, method: 'chunked' });
    expect(d.resplit?.size).toBe(300_000_000);
    expect(d.resplit?.layers.map((l) => l.index)).toEqual([2, 3]);
  });

  test('upload: docker keeps docker push after a 524', () => {
    expect(decideAfterPushFailure(facts({ suspect: MID, config: { ...auto, upload: 'docker' } })).method).toBe(
      'docker',
    );
  });

  test('an index the uploader cannot send keeps docker push after a 524', () => {
    expect(decideAfterPushFailure(facts({ suspect: MID, chunkable: false, config: auto })).method).toBe('docker');
  });

  // engine A keeps a stalled push's hung upload after its CLI is gone, and a new docker push of the layer waits on it
  test.each<[string, Partial<PushFailureFacts>, 'docker' | 'chunked']>([
    ['upload: auto: the retry goes in chunks', { config: auto }, 'chunked'],
    ['upload: docker: docker push again', { config: { ...auto, upload: 'docker' } }, 'docker'],
    ['an index the uploader cannot send: docker push again', { config: auto, chunkable: false }, 'docker'],
    ['already in chunks: in chunks again', { config: auto, method: 'chunked' }, 'chunked'],
  ])('docker push stalled, %s', (_name, over, method) => {
    const failure = classifyFailure('abc123def456: Preparing', { stalledMs: 300_000 });
    const d = decideAfterPushFailure(facts({ failure, ...over }));
    expect(d).toMatchObject({ retry: true, method, resplit: null, warning: null, error: { title: 'Push stalled' } });
  });

  test('other failures keep the method', () => {
    const d = decideAfterPushFailure(
      facts({
        method: 'chunked',
        failure: classifyFailure('received unexpected HTTP status: 502 Bad Gateway'),
        config: auto,
      }),
    );
    expect(d).toMatchObject({ retry: true, method: 'chunked' });
  });
});

describe('loginRetryable', () => {
  test.each<[string, boolean]>([
    ['received unexpected HTTP status: 503 Service Unavailable', true],
    ['dial tcp 127.0.0.1:1: connect: connection refused', true],
    ['unauthorized: incorrect username or password', false],
    ['something nobody has seen before', false],
  ])('%s -> %s', (output, retry) => {
    expect(loginRetryable(classifyFailure(output))).toBe(retry);
  });
});
