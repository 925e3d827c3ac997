// The run's stages end to end with a fake engine, registry and clock: what is pushed, how often, how long it
// waits, what it reports, and what it leaves behind.
import { existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { HttpError } from '../../src/registry/http-request.js';
import { RegistryError } from '../../src/registry/registry-client.js';
import { isEmptyLayer } from '../../src/core/stages/tombstone-check.js';
import { ActionFailure, runAction, type RunResult } from '../../src/core/run.js';
import type { ManifestHead } from '../../src/registry/registry-client.js';
import { config, harness, image, sha, type Harness } from '../../test/fixtures/core-fakes.js';
import { sha256Digest } from '../../src/image/blob-source.js';
import { runnerCommands } from '../../test/support/runner-commands.js';
import type { ImagePushRequest } from '../../src/upload/push-image.js';

const MB = 1_000_000;
const REF = 'registry.example.com/my-app/api:1.0.0';
const REPO_TAG = 'my-app/api:1.0.0';
const RESET = 'read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer';

function setup(
  sizes = [5 * MB, 40 * MB],
  opts: Parameters<typeof image>[1] = {},
  env: NodeJS.ProcessEnv = {},
): Harness {
  const h = harness({ env });
  h.docker.add('api:dev', image(sizes, opts));
  return h;
}

async function fails(p: Promise<RunResult>): Promise<ActionFailure> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ActionFailure);
  return e as ActionFailure;
}

const pushes = (h: Harness) => h.docker.calls.filter((c) => c.startsWith('push '));
/** The layers of an image the uploader was given (the split's is one manifest). */
const layersOf = (req: ImagePushRequest) => (req.image.kind === 'manifest' ? req.image.layers : []);

describe('a push that works', () => {
  test('logs in, tags, pushes, verifies with the registry, and leaves nothing behind', async () => {
    const h = setup();
    const r = await runAction(config(), h.deps);
    expect(r.digest).toBe(h.registry.tags.get(REPO_TAG));
    expect(r.pinnedRef).toBe(`registry.example.com/my-app/api@${r.digest}`);
    expect(r.attempts).toBe(1);
    expect(pushes(h)).toEqual([`push ${REF}`]);
    expect(h.registry.heads).toEqual([REPO_TAG, REPO_TAG]); // before, and the verification after
    expect(h.docker.names.has(REF)).toBe(false); // the name the run made is gone
    expect(h.docker.names.get('api:dev')).toBeDefined(); // the user's image is not
    expect(h.workDirs).toHaveLength(1);
    expect(existsSync(h.workDirs[0])).toBe(false);
  });

  test('docker push is told the largest layer, so its stall watchdog allows a big layer on a slow link', async () => {
    const h = setup([5 * MB, 700 * MB, 20 * MB]);
    await runAction(config({ 'max-layer-size': '2GB' }), h.deps);
    expect(h.docker.largestLayerBytes).toEqual([700 * MB]);
  });

  test('no child gets the token: not INPUT_TOKEN, not any variable holding it', async () => {
    const h = setup([MB], {}, { REPLICATED_TOKEN: 's3cret-token', OTHER: 'x-s3cret-token-y', KEEP: 'me' });
    await runAction(config(), h.deps);
    const env = h.docker.env;
    expect(Object.values(env).some((v) => v?.includes('s3cret-token'))).toBe(false);
    expect(env.INPUT_TOKEN).toBeUndefined();
    expect(env.KEEP).toBe('me');
    expect(env.DOCKER_CONFIG).toContain(h.workDirs[0]);
  });

  test('a local name that existed before is pointed back where it was', async () => {
    const h = setup();
    h.docker.add(REF, image([MB], { id: sha('older build') }));
    await runAction(config(), h.deps);
    expect(h.docker.names.get(REF)).toBe(sha('older build'));
  });

  test('an image given by ID with no name: the run leaves it in the engine (its last name is not removed)', async () => {
    const h = harness();
    const img = image([5 * MB], { id: sha('built, never named') });
    h.docker.images.set(img.image.Id, img); // no name points to it: `docker build` without -t
    const r = await runAction(config({ image: img.image.Id, 'target-image': 'api' }), h.deps);
    expect(r.digest).toBe(h.registry.tags.get(REPO_TAG));
    // the push name was its only name: removing it would have deleted the image, so it stays on the image
    expect(h.docker.images.has(img.image.Id)).toBe(true);
    expect(h.docker.names.get(REF)).toBe(img.image.Id);
  });

  test('several tags: each pushed and verified', async () => {
    const h = setup();
    const r = await runAction(config({ tag: '1.0.0,latest' }), h.deps);
    expect(pushes(h)).toEqual([`push ${REF}`, 'push registry.example.com/my-app/api:latest']);
    expect(r.refs).toHaveLength(2);
    expect(h.registry.tags.get('my-app/api:latest')).toBe(r.digest);
  });

  test('dry run: logs in and reads, tags and pushes nothing', async () => {
    const h = setup();
    const r = await runAction(config({ 'dry-run': 'true' }), h.deps);
    expect(r).toMatchObject({ digest: null, attempts: 0, dryRun: true });
    expect(h.docker.calls.filter((c) => /^(tag|push) /.test(c))).toEqual([]);
    expect(h.docker.calls[0]).toMatch(/^(start-login|read)/);
  });

  test('the tag it replaces is reported', async () => {
    const h = setup();
    h.registry.tags.set(REPO_TAG, sha('old'));
    const r = await runAction(config(), h.deps);
    expect(r.replaced).toEqual([{ tag: '1.0.0', digest: sha('old') }]);
    expect(h.log.text()).toContain(`my-app/api:1.0.0 now points to ${sha('old')}; it will be replaced`);
  });
});

describe('retries', () => {
  test('502 twice, then pushed: 3 attempts, backoff doubling from retry-delay', async () => {
    const h = setup();
    h.docker.pushes = [
      { code: 1, lines: ['received unexpected HTTP status: 502 Bad Gateway'] },
      { code: 1, lines: [RESET] },
    ];
    const r = await runAction(config({ retries: '2' }), h.deps);
    expect(r.attempts).toBe(3);
    expect(h.sleeps).toEqual([1000, 2000]); // random 0.5: no jitter
  });

  test('retries exhausted: the last error, with the count', async () => {
    const h = setup();
    h.docker.pushes = Array(3).fill({ code: 1, lines: ['received unexpected HTTP status: 503 Service Unavailable'] });
    const e = await fails(runAction(config({ retries: '2' }), h.deps));
    expect(e.title).toBe('Registry error (HTTP 503)');
    expect(e.message).toMatch(/\(after 3 attempts\)$/);
    expect(e.opts.attempts).toBe(3);
    expect(pushes(h)).toHaveLength(3);
  });

  test('a push the watchdog ended (no output for 5 min) is retried in chunks: attempts 2, the log says why', async () => {
    const h = setup();
    h.docker.pushes = [{ code: 143, lines: ['abc123def456: Preparing'], stalledMs: 300_000 }];
    const r = await runAction(config(), h.deps);
    expect(r.attempts).toBe(2);
    // the engine may still hold the hung upload: the retry is the action's own uploader, not docker push
    expect(pushes(h)).toEqual([`push ${REF}`]);
    expect(h.uploader.calls.map((c) => c.tags)).toEqual([['1.0.0']]);
    expect(h.registry.tags.get(REPO_TAG)).toBe(r.digest);
    expect(h.log.lines).toContain(
      'docker push made no progress for 5 min: its last line: abc123def456: Preparing; ended it',
    );
    expect(h.log.text()).toMatch(/attempt 1 failed \(Push stalled\); retrying in/);
  });

  test('upload: docker, a push that stalls on every attempt: docker push again, then Push stalled, with the count', async () => {
    const h = setup();
    h.docker.pushes = Array(2).fill({ code: 143, lines: ['abc123def456: Preparing'], stalledMs: 300_000 });
    const e = await fails(runAction(config({ retries: '1', upload: 'docker' }), h.deps));
    expect(pushes(h)).toEqual([`push ${REF}`, `push ${REF}`]);
    expect(e.title).toBe('Push stalled');
    expect(e.message).toMatch(/^docker push made no progress for 5 min: .*\(after 2 attempts\)$/);
    expect(e.opts.attempts).toBe(2);
  });

  test('retries: 0 means one attempt', async () => {
    const h = setup();
    h.docker.pushes = [{ code: 1, lines: [RESET] }];
    const e = await fails(runAction(config({ retries: '0' }), h.deps));
    expect(e.opts.attempts).toBe(1);
    expect(h.sleeps).toEqual([]);
  });

  test('429: the next attempt waits as long as Retry-After asks, when that is longer', async () => {
    const h = setup();
    h.registry.retryAfter = 30_000;
    h.docker.pushes = [{ code: 1, lines: ['toomanyrequests: retry later'] }];
    await runAction(config(), h.deps);
    expect(h.sleeps).toEqual([30_000]);
  });

  test('a final error is not retried', async () => {
    const h = setup();
    h.docker.pushes = [{ code: 1, lines: ['denied: requested access to the resource is denied'] }];
    const e = await fails(runAction(config(), h.deps));
    expect(e.title).toBe('Access denied to the repository');
    expect(pushes(h)).toHaveLength(1);
  });

  // Issue 18: docker push's own lines (and the registry's words docker prints in them) are data.
  test("docker push's lines are logged as data: one line each, no workflow command, in the error too", async () => {
    const h = setup();
    const lines = [
      '::error title=pwned::owned',
      '  ::add-mask::x',
      'a1b2c3d4e5f6: Pushing ##[warning]legacy',
      'denied: \x1b[31mno\r::warning title=pwned::y',
    ];
    h.docker.pushes = [{ code: 1, lines }];
    const e = await fails(runAction(config({ retries: '0' }), h.deps));
    for (const line of [...h.log.lines, e.message]) {
      expect(line.split(/\r\n|\r|\n/)).toEqual([line]);
      expect(runnerCommands(line)).toEqual([]);
    }
    expect(h.log.lines).toEqual(expect.arrayContaining(['\\::error title=pwned::owned', '  \\::add-mask::x']));
    expect(e.message).toContain('Docker said: denied: \\e[31mno\\r::warning title=pwned::y');
  });

  test('login: a bad password is not retried; a 503 is', async () => {
    const h = setup();
    h.docker.loginErrors = [
      new Error('Error response from daemon: Get "https://x/v2/": unauthorized: incorrect username or password'),
    ];
    const e = await fails(runAction(config(), h.deps));
    expect(e.title).toBe('Registry rejected the credentials');
    expect(pushes(h)).toHaveLength(0);

    const h2 = setup();
    h2.docker.loginErrors = [new Error('received unexpected HTTP status: 503 Service Unavailable')];
    await runAction(config(), h2.deps);
    expect(h2.docker.calls.filter((c) => c.startsWith('login'))).toHaveLength(2);
  });
});

describe('HTTP 524', () => {
  const big = 1_800 * MB;
  const retrying = (h: Harness, i: number) => {
    const id = (h.docker.images.get(h.docker.names.get('api:dev') as string)?.image.RootFS.Layers ?? [])[i];
    return `${id.slice(7, 19)}: Retrying in 5 seconds`;
  };

  test('on a layer over max-layer-size: one attempt, the layer named, no blind retries', async () => {
    const h = setup([5 * MB, big]);
    h.docker.pushes = [{ code: 1, lines: [retrying(h, 1), 'received unexpected HTTP status: 524 '] }];
    const e = await fails(runAction(config({ upload: 'docker' }), h.deps));
    expect(pushes(h)).toHaveLength(1);
    expect(e.message).toContain('layer 2/2');
    expect(e.message).toContain('Not retrying: layer 2 is over max-layer-size');
  });

  test('layer-split auto: the blamed layer is halved and the split image pushed under the same ref', async () => {
    const h = setup([5 * MB, 600 * MB]);
    h.docker.pushes = [{ code: 1, lines: [retrying(h, 1), 'received unexpected HTTP status: 524 '] }];
    const r = await runAction(config({ 'layer-split': 'auto', upload: 'docker' }), h.deps);
    expect(r.attempts).toBe(2);
    expect(h.relayed).toHaveLength(1);
    expect([...(h.relayed[0].split?.values() ?? [])]).toEqual([300 * MB]);
    expect(r.split).toMatchObject({ layersBefore: 2, layersAfter: 3 });
    expect(r.layerCount).toBe(3);
    // pushed under the user's ref only; the split image's own name is gone afterwards
    expect(pushes(h)).toEqual([`push ${REF}`, `push ${REF}`]);
    expect([...h.docker.names.keys()].filter((n) => n.startsWith('replicated-push-'))).toEqual([]);
    expect(h.log.maxDepth).toBe(1); // groups never nested
  });

  test('layer-split auto with upload: docker splits before the first upload, loads, and docker pushes', async () => {
    const h = setup([5 * MB, 2_500 * MB]);
    const r = await runAction(config({ 'layer-split': 'auto', upload: 'docker' }), h.deps);
    expect(r.attempts).toBe(1);
    expect(h.relayed).toHaveLength(1);
    expect(h.relayedBlobs).toHaveLength(0);
    expect(h.relayed[0].split).toBeUndefined();
    expect(r.split?.layersAfter).toBe(4); // 2.5 GB in 1 GB pieces: 3, plus the small layer
    expect(h.docker.calls).toContain(`tag replicated-push-split-abc123:1 ${REF}`);
    expect(pushes(h)).toEqual([`push ${REF}`]);
    expect(h.uploader.images).toHaveLength(0);
  });

  test('layer-split auto with unknown layer sizes: no 0 B re-split; the retries are still used', async () => {
    const h = setup([5 * MB, 600 * MB], { unknownSizes: true });
    h.docker.pushes = Array(3).fill({ code: 1, lines: ['received unexpected HTTP status: 524 '] });
    const e = await fails(runAction(config({ 'layer-split': 'auto', retries: '2', upload: 'docker' }), h.deps));
    expect(h.relayed).toHaveLength(0);
    expect(e.opts.attempts).toBe(3);
    expect(h.log.text()).not.toMatch(/(to|:) +0 B/);
  });
});

describe('layer-split: auto uploads its pieces directly (upload: auto or chunked)', () => {
  const engineState = (h: Harness) => ({ names: [...h.docker.names.entries()], images: [...h.docker.images.keys()] });

  test('split into blobs before the first upload, sent in chunks under every tag; nothing new in the engine', async () => {
    const h = setup([5 * MB, 2_500 * MB]);
    const before = engineState(h);
    const r = await runAction(config({ 'layer-split': 'auto', tag: '1.0.0,latest' }), h.deps);
    expect(r.attempts).toBe(1);
    // no docker load, no docker save for the uploader, no docker push
    expect(h.relayed).toHaveLength(0);
    expect(h.uploader.calls).toHaveLength(0);
    expect(pushes(h)).toEqual([]);
    expect(h.relayedBlobs).toHaveLength(1);
    expect(h.relayedBlobs[0]).toMatchObject({ image: 'api:dev', split: undefined, maxLayerSize: 1_000_000_000 });
    expect(h.relayedBlobs[0].blobDir.startsWith(h.workDirs[0])).toBe(true);
    expect(h.uploader.images).toHaveLength(1);
    const sent = h.uploader.images[0];
    expect(sent.tags).toEqual(['1.0.0', 'latest']);
    expect(layersOf(sent)).toHaveLength(4);
    expect(r.digest).toBe(sent.image.digest);
    expect(h.registry.tags.get('my-app/api:latest')).toBe(r.digest);
    // the plan after the split, built without the engine
    expect(r.layerCount).toBe(4);
    expect(r.plan.source).toBe('api:dev');
    expect(r.plan.chunkable).toBe(true);
    expect(r.plan.oversized).toEqual([]);
    expect(r.plan.layers.map((l) => [l.index, l.size, l.instruction])).toEqual([
      [1, 5 * MB, 'RUN step1'],
      [2, 1_000 * MB, 'RUN step2'],
      [3, 1_000 * MB, 'RUN step2'],
      [4, 500 * MB, 'RUN step2'],
    ]);
    expect(r.split).toMatchObject({ layersBefore: 2, layersAfter: 4 });
    expect(r.split?.lines).toEqual(['layer 2 (2.5 GB, RUN step2) -> 3 layers: 1.0 GB + 1.0 GB + 500 MB']);
    expect(h.log.groups).toContain(`Push ${REF} in chunks`);
    // pipelined: each piece was sent as soon as it was written, before the push attempt (which HEADs them)
    expect(h.uploader.early.map((e) => e.blob)).toEqual(layersOf(sent));
    expect(h.uploader.early[0]).toMatchObject({ repositoryPath: 'my-app/api', chunkSize: 32_000_000 });
    // the engine holds what it held: no split image, no name moved to one
    expect(h.docker.calls.filter((c) => c.includes('replicated-push-split'))).toEqual([]);
    expect(engineState(h)).toEqual(before);
    expect(existsSync(h.workDirs[0])).toBe(false);
  });

  test('a piece not sent while splitting is only logged: the push attempt sends it', async () => {
    const h = setup([5 * MB, 2_500 * MB]);
    h.uploader.earlyResults = [null, 'PATCH answered 524'];
    const r = await runAction(config({ 'layer-split': 'auto' }), h.deps);
    expect(r.attempts).toBe(1);
    expect(h.uploader.early).toHaveLength(4);
    expect(h.uploader.images).toHaveLength(1);
    expect(h.log.text()).toMatch(/: not sent while splitting \(PATCH answered 524\); the push sends it/);
  });

  test('upload: chunked takes the same path', async () => {
    const h = setup([5 * MB, 2_500 * MB]);
    const r = await runAction(config({ 'layer-split': 'auto', upload: 'chunked' }), h.deps);
    expect(h.relayedBlobs).toHaveLength(1);
    expect(h.uploader.images).toHaveLength(1);
    expect(h.relayed).toHaveLength(0);
    expect(r.layerCount).toBe(4);
  });

  test('a retry uploads the same prepared blobs again: no second split, no docker save', async () => {
    const h = setup([5 * MB, 2_500 * MB]);
    h.uploader.imageResults = [
      { ok: false, stop: { status: null, phase: 'chunk', message: 'socket hang up' }, layer: 2 },
    ];
    const r = await runAction(config({ 'layer-split': 'auto' }), h.deps);
    expect(r.attempts).toBe(2);
    expect(h.relayedBlobs).toHaveLength(1);
    expect(h.uploader.images).toHaveLength(2);
    expect(h.uploader.images[1].image).toBe(h.uploader.images[0].image);
    expect(h.uploader.calls).toHaveLength(0);
    expect(r.digest).toBe(h.uploader.images[0].image.digest);
  });

  test('a 524 on a piece: re-split from the user image, smaller, into a new prepared image', async () => {
    const h = setup([5 * MB, 2_500 * MB]);
    const original = h.docker.images.get(h.docker.names.get('api:dev') as string)?.image.RootFS.Layers ?? [];
    h.uploader.imageResults = [
      { ok: false, stop: { status: 524, phase: 'commit', message: 'PUT answered 524' }, layer: 2 },
    ];
    const dirs: boolean[] = [];
    h.uploader.onImage = () => dirs.push(...h.relayedBlobs.map((c) => existsSync(c.blobDir)));
    const r = await runAction(config({ 'layer-split': 'auto' }), h.deps);
    expect(r.attempts).toBe(2);
    expect(h.relayedBlobs).toHaveLength(2);
    // the pieces of 1 GB named by the policy map back to layer 2 of api:dev, split now to 500 MB
    expect(h.relayedBlobs[1].image).toBe('api:dev');
    expect([...(h.relayedBlobs[1].split ?? [])]).toEqual([[original[1], 500 * MB]]);
    expect(h.log.groups).toContain('Re-split layer 2, 3 to 500 MB');
    const [first, second] = h.uploader.images;
    expect(second.image).not.toBe(first.image);
    expect(layersOf(second)).toHaveLength(6);
    expect(r.layerCount).toBe(6);
    expect(r.split).toMatchObject({ layersBefore: 2, layersAfter: 6 });
    expect(r.split?.lines).toEqual([
      'layer 2 (2.5 GB, RUN step2) -> 5 layers: 500 MB + 500 MB + 500 MB + 500 MB + 500 MB',
    ]);
    expect(r.digest).toBe(second.image.digest);
    // the first blobs are gone once replaced; the second upload had its own
    expect(dirs).toEqual([true, false, true]);
    expect(h.relayed).toHaveLength(0);
    expect(pushes(h)).toEqual([]);
  });

  test('docker push, then chunks, then a re-split into blobs: each after a 524', async () => {
    const h = setup([5 * MB, 600 * MB], { containerd: true });
    h.docker.pushes = [
      {
        code: 1,
        lines: ['failed commit on ref "layer-sha256:x": unexpected status from PUT request to https://r/v2/x: 524 '],
      },
    ];
    h.uploader.results = [{ ok: false, stop: { status: 524, phase: 'commit', message: 'PUT answered 524' }, layer: 2 }];
    const r = await runAction(config({ 'layer-split': 'auto' }), h.deps);
    expect(pushes(h)).toHaveLength(1);
    expect(h.uploader.calls).toHaveLength(1);
    expect(h.relayedBlobs).toHaveLength(1);
    expect([...(h.relayedBlobs[0].split?.values() ?? [])]).toEqual([300 * MB]);
    expect(h.uploader.images).toHaveLength(1);
    expect(r.attempts).toBe(3);
    expect(r.layerCount).toBe(3);
    expect(r.digest).toBe(h.uploader.images[0].image.digest);
  });

  test('a cancel during the split: Cancelled, nothing uploaded', async () => {
    const h = setup([5 * MB, 2_500 * MB]);
    const relay = h.deps.ports.relayerBlobs;
    const deps = {
      ...h.deps,
      ports: {
        ...h.deps.ports,
        relayerBlobs: async (...args: Parameters<typeof relay>) => {
          const out = await relay(...args);
          h.controller.abort();
          return out;
        },
      },
    };
    const e = await fails(runAction(config({ 'layer-split': 'auto' }), deps));
    expect(e.title).toBe('Cancelled');
    expect(h.uploader.images).toHaveLength(0);
  });
});

describe('the chunked uploader', () => {
  const big = 1_800 * MB;

  test('upload auto with a layer over max-layer-size: chunks from the first attempt, every tag at once', async () => {
    const h = setup([5 * MB, big]);
    const r = await runAction(config({ tag: '1.0.0,latest', 'chunk-size': '8MB' }), h.deps);
    expect(pushes(h)).toEqual([]);
    expect(h.uploader.calls).toHaveLength(1);
    expect(h.uploader.calls[0]).toMatchObject({ image: 'api:dev', tags: ['1.0.0', 'latest'], chunkSize: 8_000_000 });
    expect(h.uploader.calls[0].env.INPUT_TOKEN).toBeUndefined();
    expect(r.digest).toBe(h.registry.tags.get('my-app/api:latest'));
    expect(r.attempts).toBe(1);
    expect(h.log.warnings[0].message).toMatch(/uploads it in resumable chunks of 8.0 MB/);
  });

  test('a 524 on docker push: the retry goes in chunks (attempts 2)', async () => {
    const h = setup([5 * MB, 600 * MB], { containerd: true });
    h.docker.pushes = [
      {
        code: 1,
        lines: [
          'failed commit on ref "layer-sha256:x": unexpected status from PUT request to https://r/v2/x/blobs/uploads/y: 524 ',
        ],
      },
    ];
    const r = await runAction(config(), h.deps);
    expect(pushes(h)).toHaveLength(1);
    expect(h.uploader.calls).toHaveLength(1);
    // the containerd store's push through the receiver tags and untags the image with the run's own DockerApi
    expect(h.uploader.calls[0].containerdStore).toBe(true);
    expect(h.uploader.calls[0].names).toBe(h.docker);
    expect(r.attempts).toBe(2);
    expect(r.digest).toBe(h.registry.tags.get(REPO_TAG));
  });

  test('upload: docker never uses the uploader', async () => {
    const h = setup([5 * MB, big]);
    await runAction(config({ upload: 'docker' }), h.deps);
    expect(h.uploader.calls).toHaveLength(0);
    expect(pushes(h)).toHaveLength(1);
  });

  test('the advisory says where the chunked upload failed, and names the exact layer', async () => {
    const h = setup([5 * MB, big]);
    h.uploader.results = [{ ok: false, stop: { status: 524, phase: 'commit', message: 'PUT answered 524' }, layer: 2 }];
    const e = await fails(runAction(config(), h.deps));
    expect(e.message).toMatch(/^The chunked upload of layer 2 sent every chunk; the final PUT/);
    expect(e.message).toContain('layer 2/2');
    expect(e.message).toContain('Not retrying');
    expect(e.opts.attempts).toBe(1);
  });

  test('a reset that outlasts the uploader is retried under the policy', async () => {
    const h = setup([5 * MB], {});
    h.uploader.results = [{ ok: false, stop: { status: null, phase: 'chunk', message: 'socket hang up' }, layer: 1 }];
    const r = await runAction(config({ upload: 'chunked' }), h.deps);
    expect(h.uploader.calls).toHaveLength(2);
    expect(r.attempts).toBe(2);
  });

  test('docker save failing under the uploader is final', async () => {
    const h = setup([5 * MB], {});
    h.uploader.results = [
      { ok: false, stop: { status: null, phase: 'source', message: 'docker save: no space left' }, layer: null },
    ];
    const e = await fails(runAction(config({ upload: 'chunked' }), h.deps));
    expect(e.message).toMatch(/^Reading the image from the engine/);
    expect(h.uploader.calls).toHaveLength(1);
  });
});

describe('verification asks the registry', () => {
  test('another digest under the tag: Digest mismatch', async () => {
    const h = setup();
    h.registry.lie = () => (h.registry.heads.length > 1 ? { digest: sha('someone else'), mediaType: 'x' } : undefined);
    const e = await fails(runAction(config(), h.deps));
    expect(e.title).toBe('Digest mismatch');
    expect(e.opts.attempts).toBe(1);
  });

  // every tag is asked, not only the first: each row fails on the second tag alone
  test.each<[string, ManifestHead | null, string, string]>([
    [
      'another digest',
      { digest: sha('someone else'), mediaType: 'x' },
      'Digest mismatch',
      'my-app/api:latest resolves to',
    ],
    ['missing', null, 'Tag missing after push', 'does not list my-app/api:latest after the push'],
  ])('the second of two tags %s after the push: the run fails naming it', async (_name, lie, title, says) => {
    const h = setup();
    // after the push (the tag exists in the fake registry), the registry answers otherwise for latest only
    h.registry.lie = (key) => (key === 'my-app/api:latest' && h.registry.tags.has(key) ? lie : undefined);
    const e = await fails(runAction(config({ tag: '1.0.0,latest' }), h.deps));
    expect(e.title).toBe(title);
    expect(e.message).toContain(says);
    expect(h.log.lines).toContain(
      `verified: my-app/api:1.0.0 -> ${h.registry.tags.get(REPO_TAG)} (application/vnd.docker.distribution.manifest.v2+json)`,
    );
  });

  test('the tag missing after the push', async () => {
    const h = setup();
    h.registry.lie = () => null;
    const e = await fails(runAction(config(), h.deps));
    expect(e.title).toBe('Tag missing after push');
  });

  test('a failed verification request is asked again, not reported as a mismatch', async () => {
    const h = setup();
    h.docker.onPush = () => {
      h.registry.headErrors = [new Error('registry.example.com: HEAD answered 503')];
    };
    const r = await runAction(config(), h.deps);
    expect(r.digest).toBe(h.registry.tags.get(REPO_TAG));
    expect(h.sleeps).toHaveLength(1);
  });

  test('a registry that never answers the check: its own error, after the retries', async () => {
    const h = setup();
    h.docker.onPush = () => {
      h.registry.headErrors = Array(3).fill(new Error('timed out: HEAD https://registry.example.com'));
    };
    const e = await fails(runAction(config({ retries: '2' }), h.deps));
    expect(e.title).toBe('Could not verify the push');
    expect(e.message).toContain('timed out');
  });
});

describe('tombstone', () => {
  test('a tag that does not exist is refused before anything is pushed', async () => {
    const h = harness();
    const e = await fails(runAction(config({ mode: 'tombstone', image: '', 'target-image': 'api' }), h.deps));
    expect(e.title).toBe('Tombstone of a tag that does not exist');
    expect(e.opts).toMatchObject({ input: 'tag', attempts: 0 });
    expect(pushes(h)).toEqual([]);
    expect([...h.docker.names.keys()]).toEqual([]); // the empty image is removed again
  });

  // every tag is checked, not only the first: the first exists in each row
  test('several tags, the second does not exist: refused before anything is pushed', async () => {
    const h = harness();
    h.registry.tags.set(REPO_TAG, sha('released'));
    const e = await fails(
      runAction(config({ mode: 'tombstone', image: '', 'target-image': 'api', tag: '1.0.0,latest' }), h.deps),
    );
    expect(e.title).toBe('Tombstone of a tag that does not exist');
    expect(e.message).toMatch(/^Input 'tag': latest does not exist/);
    expect(pushes(h)).toEqual([]);
    expect(h.registry.tags.get(REPO_TAG)).toBe(sha('released'));
  });

  test('several tags, the state of the second unknown (500): refused before anything is pushed', async () => {
    const h = harness();
    h.registry.tags.set(REPO_TAG, sha('released'));
    h.registry.lie = (key) => {
      if (key === 'my-app/api:latest') throw new Error('registry.example.com: HEAD my-app/api:latest answered 500');
      return undefined;
    };
    const e = await fails(
      runAction(config({ mode: 'tombstone', image: '', 'target-image': 'api', tag: '1.0.0,latest' }), h.deps),
    );
    expect(e.title).toBe('Could not tell whether the tag exists');
    expect(e.message).toContain('latest (');
    expect(pushes(h)).toEqual([]);
  });

  test('a registry error is not read as "the tag is new": refused as unknown', async () => {
    const h = harness();
    h.registry.headErrors = [new Error('registry.example.com: HEAD my-app/api:1.0.0 answered 500')];
    const e = await fails(runAction(config({ mode: 'tombstone', image: '', 'target-image': 'api' }), h.deps));
    expect(e.title).toBe('Could not tell whether the tag exists');
    expect(pushes(h)).toEqual([]);
  });

  test('an existing tag gets the empty image, never the user image', async () => {
    const h = harness();
    h.docker.add('api:dev', image([5 * MB]));
    h.registry.tags.set(REPO_TAG, sha('released'));
    const r = await runAction(config({ mode: 'tombstone', image: '', 'target-image': 'api' }), h.deps);
    expect(r.replaced[0].digest).toBe(sha('released'));
    expect(r.digest).not.toBe(sha('released'));
    expect(h.registry.tags.get(REPO_TAG)).toBe(r.digest);
    // made in memory and sent by the action's uploader: no docker import, no docker login, no docker push
    expect(h.docker.calls).toEqual([]);
    const manifest = JSON.parse(h.registry.manifests.get(r.digest as string) as string) as {
      layers: { digest: string }[];
    };
    expect(manifest.layers).toHaveLength(1); // one empty layer, as docker import made
    expect(isEmptyLayer(h.registry.blobs.get(manifest.layers[0].digest) as Buffer)).toBe(true);
    expect([...h.docker.names.keys()]).toEqual(['api:dev']);
    expect(h.log.text()).toContain('is an image with no files');
  });

  test('every tombstone is the same image: the same digest on two runs', async () => {
    const digests: (string | null)[] = [];
    for (let i = 0; i < 2; i++) {
      const h = harness();
      h.registry.tags.set(REPO_TAG, sha('released'));
      digests.push((await runAction(config({ mode: 'tombstone', image: '', 'target-image': 'api' }), h.deps)).digest);
    }
    expect(digests[0]).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(digests[1]).toBe(digests[0]);
  });

  test('a tag that serves files after the tombstone push fails the run', async () => {
    const h = harness();
    h.registry.tags.set(REPO_TAG, sha('released'));
    // a registry that stored other layers under the tombstone's manifest (they hash right, and hold a file)
    const files = gzipSync(Buffer.from('a file'));
    const filesDigest = sha256Digest(files);
    h.registry.blobs.set(filesDigest, files);
    const send = h.registry.send.bind(h.registry);
    h.registry.send = async (req) => {
      const res = await send(req);
      if (!/\/manifests\//.test(req.url) || res.status !== 200) return res;
      const doc = JSON.parse(res.body.toString()) as { layers: { digest: string; size: number }[] };
      doc.layers = [{ digest: filesDigest, size: files.length }];
      return { ...res, body: Buffer.from(JSON.stringify(doc)) };
    };
    const e = await fails(runAction(config({ mode: 'tombstone', image: '', 'target-image': 'api' }), h.deps));
    expect(e.title).toBe('Tombstone check failed');
    expect(e.message).toMatch(/holds files/);
  });

  // the manifest and blobs are the registry's answers (issue 18): a layer digest is used only when it is one, and a
  // blob only when its bytes are the layer's
  test.each([
    [
      'a layer digest that is a path',
      (d: string) => `../../${d}`,
      /a layer's digest is "\.\.\/\.\.\/sha256:[0-9a-f]{8}.*", not a sha256 digest/,
    ],
    [
      'a layer digest with a workflow command',
      () => '::error::x',
      /a layer's digest is "\\::error::x", not a sha256 digest/,
    ],
    [
      'a blob served for another digest',
      (d: string) => sha(`other-${d}`),
      /the registry served other bytes for layer sha256:/,
    ],
  ])('a tombstone check against a registry that lies: %s', async (_, lie, why) => {
    const h = harness();
    h.registry.tags.set(REPO_TAG, sha('released'));
    const send = h.registry.send.bind(h.registry);
    h.registry.send = async (req) => {
      const res = await send(req);
      if (!/\/manifests\//.test(req.url) || res.status !== 200) return res;
      const doc = JSON.parse(res.body.toString()) as { layers: { digest: string }[] };
      for (const l of doc.layers) {
        const bytes = h.registry.blobs.get(l.digest);
        l.digest = lie(l.digest);
        if (bytes && /^sha256:[0-9a-f]{64}$/.test(l.digest)) h.registry.blobs.set(l.digest, bytes);
      }
      return { ...res, body: Buffer.from(JSON.stringify(doc)) };
    };
    const e = await fails(runAction(config({ mode: 'tombstone', image: '', 'target-image': 'api' }), h.deps));
    expect(e.title).toBe('Tombstone check failed');
    expect(e.message).toMatch(why);
  });
});

describe('cancel', () => {
  test('during a push: nothing more is pushed, the run says cancelled, names are cleaned up', async () => {
    const h = setup();
    h.docker.onPush = () => h.controller.abort();
    const e = await fails(runAction(config({ tag: '1.0.0,latest' }), h.deps));
    expect(e.title).toBe('Cancelled');
    expect(pushes(h)).toHaveLength(1);
    expect(h.docker.names.has(REF)).toBe(false);
    expect(existsSync(h.workDirs[0])).toBe(false);
  });

  test('during the wait between attempts: no next attempt', async () => {
    const h = setup();
    h.docker.pushes = [{ code: 1, lines: [RESET] }];
    h.docker.onPush = () => {
      // abort right after the first attempt fails, before the backoff
      queueMicrotask(() => h.controller.abort());
    };
    const e = await fails(runAction(config(), h.deps));
    expect(e.title).toBe('Cancelled');
    expect(pushes(h)).toHaveLength(1);
  });
});

describe('a registry that misbehaves before the push', () => {
  const logins = (h: Harness) => h.docker.calls.filter((c) => c.startsWith('login'));

  test('docker login is started at once, but gets the secret only after the registry was asked', async () => {
    const h = setup();
    const head = h.registry.headManifest.bind(h.registry);
    h.registry.headManifest = async (...args: Parameters<typeof head>) => {
      h.docker.calls.push('registry-head');
      return head(...args);
    };
    await runAction(config(), h.deps);
    const order = h.docker.calls
      .filter((c) => /^(start-login|login|registry-head)/.test(c))
      .map((c) => c.split(' ')[0]);
    // (the last HEAD is the verification after the push)
    expect(order).toEqual(['start-login', 'registry-head', 'login', 'registry-head']);
    expect(h.docker.calls).not.toContain('abandon-login');
  });

  test('a token realm that may not get the credentials: refused before docker login sends them', async () => {
    const h = setup();
    h.registry.headErrors = [
      new RegistryError(
        'registry.example.com: refusing to send credentials to the token realm evil:80',
        null,
        'unsafe-realm',
      ),
    ];
    const e = await fails(runAction(config(), h.deps));
    expect(e.title).toBe('Credentials withheld');
    expect(e.message).toContain('token realm evil:80');
    expect(logins(h)).toEqual([]);
    expect(h.docker.calls).toContain('abandon-login');
    expect(pushes(h)).toEqual([]);
  });

  test('a registry that does not answer in time (retries: 0): one try, an error naming the host', async () => {
    const h = setup();
    h.registry.headErrors = [new HttpError('timeout', 'GET 127.0.0.1:9/token', 'no complete answer within 30 s')];
    const e = await fails(runAction(config({ retries: '0' }), h.deps));
    expect(e.title).toBe('Registry unreachable');
    expect(e.message).toMatch(/^registry\.example\.com did not answer/);
    expect(logins(h)).toEqual([]);
    expect(h.docker.calls).toContain('abandon-login');
  });

  test('credentials the registry refuses: the credentials message, without a docker login', async () => {
    const h = setup();
    h.registry.headErrors = [new RegistryError('registry.example.com: the token realm r answered 401', 401)];
    const e = await fails(runAction(config(), h.deps));
    expect(e.title).toBe('Registry rejected the credentials');
    expect(logins(h)).toEqual([]);
    expect(h.docker.calls).toContain('abandon-login');
  });

  test('a reset is asked again under the retry policy', async () => {
    const h = setup();
    h.registry.headErrors = [new HttpError('network', 'HEAD registry.example.com/v2/x', 'socket hang up')];
    const r = await runAction(config(), h.deps);
    expect(r.attempts).toBe(1);
    expect(h.sleeps).toEqual([1000]);
  });

  test('garbage from the token endpoint: not retried, not read as "the tag is new"', async () => {
    const h = setup();
    h.registry.headErrors = [
      new RegistryError('registry.example.com: the token realm x answered 9 bytes that are not JSON', 200, 'protocol'),
    ];
    const e = await fails(runAction(config(), h.deps));
    expect(e.title).toBe('Registry answer unusable');
    expect(h.sleeps).toEqual([]);
  });

  test('an HTTP status on the lookup is reported and the push goes on', async () => {
    const h = setup();
    h.registry.headErrors = [new RegistryError('registry.example.com: HEAD my-app/api:1.0.0 answered 500', 500)];
    const r = await runAction(config(), h.deps);
    expect(r.replaced[0]).toEqual({ tag: '1.0.0', digest: null, error: expect.stringContaining('answered 500') });
    expect(h.log.text()).toContain('could not read what it points to now');
  });
});

/** A buildx image on the containerd store: an index of these platforms plus an attestation manifest. */
function attestedIndex(h: Harness, architectures: string[]): void {
  const img = image([MB], { containerd: true });
  h.docker.add('api:dev', {
    ...img,
    image: {
      ...img.image,
      Descriptor: { mediaType: 'application/vnd.oci.image.index.v1+json', digest: sha('i'), size: 1 },
    },
    manifests: [
      ...architectures.map((architecture) => ({ Descriptor: { platform: { os: 'linux', architecture } } })),
      { Kind: 'attestation', Descriptor: { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } } },
    ],
  });
}

describe('what is refused before any upload', () => {
  test('an image the engine does not have', async () => {
    const h = harness();
    const e = await fails(runAction(config(), h.deps));
    expect(e.title).toBe('Image not found');
    expect(e.opts.input).toBe('image');
  });

  test('attestations: keep on an attested index: a manifest 400 is read as the attestation rejection', async () => {
    const h = harness();
    attestedIndex(h, ['amd64']);
    h.docker.pushes = [{ code: 1, lines: ['manifest invalid: manifest invalid'] }];
    const e = await fails(runAction(config({ attestations: 'keep' }), h.deps));
    expect(e.title).toBe('Provenance attestations rejected (HTTP 400)');
    expect(pushes(h)).toEqual([`push ${REF}`]);
  });

  test('a single-platform attested image is pushed with --platform', async () => {
    const h = harness();
    attestedIndex(h, ['amd64']);
    const r = await runAction(config(), h.deps);
    expect(pushes(h)).toEqual([`push ${REF} --platform linux/amd64`]);
    expect(r.platform).toBe('linux/amd64');
  });
});

describe('isEmptyLayer', () => {
  test.each<[string, Buffer, boolean]>([
    ['an empty tar (two zero blocks)', Buffer.alloc(1024), true],
    ['the same, gzipped', gzipSync(Buffer.alloc(1024)), true],
    ['a tar with an entry', Buffer.concat([Buffer.from('etc/passwd'), Buffer.alloc(1014)]), false],
    ['gzip of a tar with an entry', gzipSync(Buffer.concat([Buffer.from('a'), Buffer.alloc(1023)])), false],
    ['broken gzip', Buffer.from([0x1f, 0x8b, 1, 2, 3]), false],
    ['a gzip bomb is cut off, not inflated', gzipSync(Buffer.alloc(10 * 1024 * 1024)), false],
  ])('%s -> %s', (_name, blob, empty) => {
    expect(isEmptyLayer(blob)).toBe(empty);
  });
});
