import type { AdviceContext } from '../../src/core/report/advisory.js';
import { classifyFailure, classifyUploadStop, type Failure } from '../../src/core/policy/failure.js';
import type { LayerFact } from '../../src/image/layers.js';
import {
  blamedFor413,
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

// Issue 19: a 413 is a limit on request bodies (nginx's client_max_body_size, Cloudflare's plan limit). docker push
// sends each blob in one request and meets it again; the action's uploader goes under it.
describe('a 413 (a limit on request bodies)', () => {
  const auto = { retries: 2, layerSplit: 'advise', maxLayerSize: GB, upload: 'auto' } as const;
  // the lines engine A and engine B printed through the fault proxy answering as nginx does (failure.test.ts)
  const engineA = classifyFailure(
    'The push refers to repository [127.0.0.1:36115/probe/ea]\nf23f6c3e334c: Preparing\n' +
      `error parsing HTTP 413 response body: invalid character '<' looking for beginning of value: "<html>..."`,
  );
  const blob = `sha256:${'e'.repeat(64)}`;
  const engineB = classifyFailure(
    `unknown: failed to copy: unexpected status from PUT request to http://127.0.0.1:1/v2/a/b/blobs/uploads/u?digest=${encodeURIComponent(blob)}: 413 Request Entity Too Large`,
  );
  const uploader = classifyUploadStop({
    status: 413,
    phase: 'chunk',
    message: `${blob}: the registry or a proxy in front of it refused a request body of 1000000 bytes (the chunk at 0): it limits request bodies to less than that, and chunks do not shrink below 1.0 MB (HTTP 413)`,
  });

  type Want = { retry: boolean; method: 'docker' | 'chunked'; warning: boolean; title: string; says: RegExp[] };
  test.each<[string, Partial<PushFailureFacts>, Want]>([
    [
      'docker push, upload: auto (engine A names the layer): the retry goes in chunks, with an advisory naming it',
      { failure: engineA, suspect: MID, config: auto },
      {
        retry: true,
        method: 'chunked',
        warning: true,
        title: 'Request body too large (HTTP 413)',
        says: [
          /^The registry or a proxy in front of it limits request bodies, and refused the upload of layer 3\/3 \(sha256:333333333333…, 600 MB uncompressed\) made by `RUN step3` \(HTTP 413\)\./,
          /the next attempt sends it in resumable chunks under the limit/,
          /client_max_body_size/,
        ],
      },
    ],
    [
      'docker push on the containerd store (a compressed blob, no layer): the biggest is named as a guess, with the blob',
      { failure: engineB, containerdStore: true, config: auto },
      {
        retry: true,
        method: 'chunked',
        warning: true,
        title: 'Request body too large (HTTP 413)',
        says: [
          /refused the upload of blob sha256:eeeeeeeeeeee…, most likely layer 2\/3 \(sha256:222222222222…, 1.8 GB uncompressed\) made by `RUN step2`, the biggest/,
        ],
      },
    ],
    [
      'a layer under max-layer-size and no other: still switched (a 413 is about the request, not max-layer-size)',
      { failure: engineA, layers: [SMALL], suspect: SMALL, config: auto },
      {
        retry: true,
        method: 'chunked',
        warning: true,
        title: 'Request body too large (HTTP 413)',
        says: [/layer 1\/3/],
      },
    ],
    [
      'upload: docker: stop, with the way out',
      { failure: engineA, suspect: MID, config: { ...auto, upload: 'docker' } },
      {
        retry: false,
        method: 'docker',
        warning: false,
        title: 'Push refused: request body too large (HTTP 413)',
        says: [/limits request bodies/, /layer 3\/3/, /set `upload: auto` \(the default\) or `upload: chunked`/],
      },
    ],
    [
      'an index the uploader cannot send: stop, raise the limit',
      { failure: engineB, chunkable: false, config: auto },
      {
        retry: false,
        method: 'docker',
        warning: false,
        title: 'Push refused: request body too large (HTTP 413)',
        says: [/cannot go through the action's chunked uploader: raise the limit/],
      },
    ],
    [
      'the uploader met it at its smallest chunk: stop, saying what it met',
      { failure: uploader, method: 'chunked', config: auto },
      {
        retry: false,
        method: 'chunked',
        warning: false,
        title: 'Push refused: request body too large (HTTP 413)',
        says: [
          /could not get under it either: sha256:e+: the registry or a proxy in front of it refused a request body of 1000000 bytes/,
        ],
      },
    ],
    [
      'layer-split: auto does not re-split on a 413: the chunks are what go under it',
      { failure: engineA, suspect: BIG, config: { ...auto, layerSplit: 'auto' } },
      {
        retry: true,
        method: 'chunked',
        warning: true,
        title: 'Request body too large (HTTP 413)',
        says: [/layer 2\/3/],
      },
    ],
  ])('%s', (_name, over, want) => {
    const d = decideAfterPushFailure(facts(over));
    expect({ retry: d.retry, method: d.method, warning: d.warning !== null, resplit: d.resplit }).toEqual({
      retry: want.retry,
      method: want.method,
      warning: want.warning,
      resplit: null,
    });
    const advice = d.warning ?? d.error;
    expect(advice.title).toBe(want.title);
    for (const re of want.says) expect(advice.message).toMatch(re);
    expect(d.error.title).toBe('Push refused: request body too large (HTTP 413)');
  });

  test('the note says the next attempt goes in chunks under the limit; on its last attempt the error says how', () => {
    const d = decideAfterPushFailure(facts({ failure: engineA, suspect: MID, config: auto }));
    expect(d.note).toBe(
      'upload: the next attempt sends the blobs in resumable chunks, under the limit on request bodies (the image is unchanged).',
    );
    expect(d.error.message).toMatch(/with a retry left \(`retries`\), or with `upload: chunked`/);
  });

  test.each<[string, Partial<PushFailureFacts>, number | null, boolean]>([
    ['the named layer', { failure: engineA, suspect: MID }, 3, true],
    ['no name: the biggest', { failure: engineB, containerdStore: true }, 2, false],
    ['no layers known', { failure: engineB, containerdStore: true, layers: [] }, null, false],
  ])('blamedFor413: %s', (_name, over, index, exact) => {
    const b = blamedFor413(facts(over));
    expect({ index: b.layer?.index ?? null, exact: b.exact }).toEqual({ index, exact });
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
