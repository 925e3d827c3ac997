// Issue 3: every registry fault through the real engines, the real registry and the fault proxy in front of it.
// After each: what the user saw (annotation), how many attempts, what the registry holds under the tag, and
// that no credential or token was left behind.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { Job, type StepRun } from '../../test/support/action-runner.js';
import {
  ATTESTATION_REJECTION,
  startFaultProxy,
  type FaultProxy,
  type FaultRequest,
} from '../../test/support/fault-proxy.js';
import { buildImage, describeEngine, removeImages, uniqueName, type Engine } from '../../test/support/images.js';
import { freePort, listTags, manifestDigest, startRegistry, type Registry } from '../../test/support/registry.js';

const TOKEN = 'fault-token-3c9e7a';
const CF_524 = { status: 524, body: 'error code: 524', headers: { 'Content-Type': 'text/plain' } };
const BLOB_UPLOAD = /\/v2\/.+\/blobs\/uploads\//;
const MANIFEST = /\/v2\/.+\/manifests\//;
/** Requests of one test's repository: the proxy is shared by the tests of a describe. */
const uploadsOf = (repo: string) => new RegExp(`^/v2/faults/${repo}/blobs/uploads/`);
const manifestsOf = (repo: string) => new RegExp(`^/v2/faults/${repo}/manifests/`);
/** Engine B sends each blob in one PUT with a Content-Length: the layer's, not the small config blob's. */
const isLayerPut = (r: FaultRequest) => Number(r.headers['content-length'] ?? 0) > 10_000;

interface Ctx {
  eng: Engine;
  upstream: Registry;
  proxy: FaultProxy;
  images: string[];
}

async function setUp(eng: Engine): Promise<Ctx> {
  const upstream = await startRegistry();
  const proxy = await startFaultProxy({ upstream, auth: { scheme: 'bearer', token: TOKEN } });
  return { eng, upstream, proxy, images: [] };
}

async function tearDown(c: Ctx | undefined): Promise<void> {
  if (!c) return;
  await removeImages(c.eng, c.images);
  await c.proxy.stop();
  await c.upstream.stop();
}

async function image(c: Ctx, files: Record<string, number | string>): Promise<string> {
  const ref = `${uniqueName('rp-fault')}:b`;
  c.images.push(ref);
  return buildImage(c.eng, ref, { files });
}

async function push(
  c: Ctx,
  src: string,
  repo: string,
  extra: Record<string, string> = {},
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<StepRun & { job: Job }> {
  const job = new Job();
  const run = await job.main(
    {
      'app-slug': 'faults',
      image: src,
      'target-image': repo,
      tag: '1.0.0',
      token: TOKEN,
      registry: c.proxy.host,
      'retry-delay': '200ms',
      // what docker push does with each fault; the action's own chunked uploader has chunked-upload.test.ts
      upload: 'docker',
      ...extra,
    },
    { env: { DOCKER_HOST: c.eng.host, ...opts.env }, timeoutMs: opts.timeoutMs },
  );
  return { ...run, job };
}

/** The invariants every fault must keep, success or not. */
function expectNothingLeftBehind(run: StepRun & { job: Job }): void {
  const leaked = [run.stdout, run.stderr, ...Object.values(run.files)]
    .join('\n')
    .split('\n')
    .filter((l) => l.includes(TOKEN) && !l.startsWith('::add-mask::'));
  expect(leaked).toEqual([]);
  expect(existsSync(run.job.runnerTemp) ? readdirSync(run.job.runnerTemp) : []).toEqual([]);
  run.job.cleanup();
}

/** `docker push REF...` processes in the process table now (pid, argv), whoever started them. */
function pushProcesses(refPrefix: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    if (argv.includes('push') && argv.some((a) => a.startsWith(refPrefix))) found.push(`${pid} ${argv.join(' ')}`);
  }
  return found;
}

/** The push watchdog at 3 s for the stall tests (5 min in production). */
const STALL_ENV = { RP_TEST_PUSH_STALL_MS: '3000' };
const stallLine = /^docker push made no progress for 3 s: its last line: [a-f0-9]{12}: Preparing; ended it$/gm;
/** Runs `fn` while sampling the process table for docker push processes of `refPrefix`; what it saw, after. */
async function watchingPushes<T>(refPrefix: string, fn: () => Promise<T>): Promise<{ result: T; seen: Set<string> }> {
  const seen = new Set<string>();
  const timer = setInterval(() => pushProcesses(refPrefix).forEach((p) => seen.add(p)), 100);
  try {
    return { result: await fn(), seen };
  } finally {
    clearInterval(timer);
  }
}

function errorLine(run: StepRun): string {
  return run.stdout.split('\n').find((l) => l.startsWith('::error')) ?? '';
}

describeEngine('B', 'faults on engine B (containerd store: no per-layer retry in the engine)', (eng) => {
  let c: Ctx;
  beforeAll(async () => {
    c = await setUp(eng);
  });
  afterAll(() => tearDown(c));
  afterEach(() => c?.proxy.clearFaults());

  test('transient 524 on a layer upload: recovers on attempt 2', async () => {
    const src = await image(c, { '/a': 50_000 });
    c.proxy.addFault({ method: 'PUT', path: BLOB_UPLOAD, times: 1, match: isLayerPut, action: CF_524 });
    const run = await push(c, src, 't524');
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('2');
    // counted where it happened: one layer PUT refused, one accepted, one manifest PUT
    expect(c.proxy.count('PUT', uploadsOf('t524'), 524)).toBe(1);
    expect(
      c.proxy.requests
        .filter((q) => q.method === 'PUT' && uploadsOf('t524').test(q.path) && q.requestBytes > 10_000)
        .map((q) => q.status),
    ).toEqual([524, 201]);
    expect(c.proxy.count('PUT', manifestsOf('t524'))).toBe(1);
    expect(run.stdout).toMatch(/^::warning title=Upload timed out \(HTTP 524\)::/m);
    expect(await manifestDigest(c.upstream, 'faults/t524', '1.0.0')).toBe(run.outputs.digest);
    expectNothingLeftBehind(run);
  });

  test('persistent 524 on a layer over max-layer-size: one attempt, the advisory names the layer', async () => {
    const src = await image(c, { '/big/blob.bin': 400_000, '/small': 'x' });
    c.proxy.addFault({ method: 'PUT', path: BLOB_UPLOAD, action: CF_524 });
    const run = await push(c, src, 'p524', { 'max-layer-size': '200kB', retries: '3' });
    expect(run.code).toBe(1);
    expect(run.outputs.attempts).toBe('1');
    // preflight warned before any upload, naming the instruction
    expect(run.stdout).toMatch(
      /^::warning title=Layer 1 is 4\d\d kB::Layer 1\/2 .* made by `COPY f0 \/big\/blob.bin`/m,
    );
    const error = errorLine(run);
    expect(error).toMatch(/^::error title=Push timed out \(HTTP 524\)::/);
    expect(error).toContain('layer 1/2');
    expect(error).toContain('COPY f0 /big/blob.bin');
    expect(error).toContain('Not retrying');
    expect(error).toContain('layer-split: auto');
    expect(await listTags(c.upstream, 'faults/p524')).toEqual([]);
    expectNothingLeftBehind(run);
  });

  // The action's own uploader reads this store through the engine's push to its receiver on 127.0.0.1; by the time
  // a blob fails at the registry the engine has handed over its manifest, so the failure names the exact layer.
  test('upload: chunked, a persistent 524 on one of two big layers: one attempt, the advisory names that layer', async () => {
    const src = await image(c, { '/small': 'x', '/data/model.bin': 500_000, '/data/weights.bin': 900_000 });
    // every request carrying the ~500 kB layer (the gzip of 500 kB of random bytes) times out
    c.proxy.addFault({
      path: BLOB_UPLOAD,
      match: (r) => {
        const bytes = Number(r.headers['content-length'] ?? 0);
        return bytes > 400_000 && bytes < 700_000;
      },
      action: CF_524,
    });
    const run = await push(c, src, 'c524', { upload: 'chunked', 'max-layer-size': '300kB', retries: '0' });
    expect(run.code).toBe(1);
    expect(run.outputs.attempts).toBe('1');
    expect(c.proxy.count('PATCH', uploadsOf('c524'), 524)).toBeGreaterThanOrEqual(1);
    expect(c.proxy.count('PUT', manifestsOf('c524'))).toBe(0);
    const error = errorLine(run);
    expect(error).toMatch(/^::error title=Push timed out \(HTTP 524\)::/);
    expect(error).toContain('while uploading layer 2/3');
    expect(error).not.toContain('while uploading layer 3/3');
    expect(error).toMatch(/made by `COPY \S+ \/data\/model.bin`/);
    expect(error).not.toContain('most likely');
    expect(await listTags(c.upstream, 'faults/c524')).toEqual([]);
    expectNothingLeftBehind(run);
  });

  test('persistent 524 on a small layer: retries up to the bound, then fails', async () => {
    const src = await image(c, { '/a': 30_000 });
    c.proxy.addFault({ method: 'PUT', path: BLOB_UPLOAD, match: isLayerPut, action: CF_524 });
    const run = await push(c, src, 'bound524', { retries: '2' });
    expect(run.code).toBe(1);
    expect(run.outputs.attempts).toBe('3');
    // engine B never retries a 524 itself: one refused layer PUT per attempt of the action
    expect(c.proxy.count('PUT', uploadsOf('bound524'), 524)).toBe(3);
    expect(c.proxy.count('PUT', manifestsOf('bound524'))).toBe(0);
    expect(errorLine(run)).toMatch(/^::error title=Push timed out \(HTTP 524\)::.*after 3 attempts/);
    expect(await listTags(c.upstream, 'faults/bound524')).toEqual([]);
    expectNothingLeftBehind(run);
  });

  // Engine B retries a 503 once on its own but never a 502: a 502 is what reaches the action.
  test('502 on a layer upload then success', async () => {
    const src = await image(c, { '/a': 20_000 });
    c.proxy.addFault({ method: 'PUT', path: BLOB_UPLOAD, times: 1, action: { status: 502, body: 'bad gateway' } });
    const run = await push(c, src, 's502');
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('2');
    expect(c.proxy.count('PUT', uploadsOf('s502'), 502)).toBe(1);
    expect(c.proxy.count('PUT', manifestsOf('s502'), 201)).toBe(1);
    expect(await manifestDigest(c.upstream, 'faults/s502', '1.0.0')).toBe(run.outputs.digest);
    expectNothingLeftBehind(run);
  });

  test('524 after the registry stored the layer: the next attempt finds the blob and does not upload it again', async () => {
    const src = await image(c, { '/a': 200_000 });
    c.proxy.addFault({
      method: 'PUT',
      path: BLOB_UPLOAD,
      times: 1,
      match: isLayerPut,
      action: { forwardThen: CF_524 },
    });
    const run = await push(c, src, 'late524');
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('2');
    const layerPuts = c.proxy.requests.filter(
      (q) => q.method === 'PUT' && uploadsOf('late524').test(q.path) && q.requestBytes > 100_000,
    );
    // the registry answered 201 and kept the blob; the client heard 524; nobody sent those 200 kB again
    expect(layerPuts.map((q) => [q.upstreamStatus, q.status])).toEqual([[201, 524]]);
    expect(await manifestDigest(c.upstream, 'faults/late524', '1.0.0')).toBe(run.outputs.digest);
    expectNothingLeftBehind(run);
  });

  // The registry stops answering the layer's PUT (engine B sends a blob in one): the watchdog (3 s,
  // RP_TEST_PUSH_STALL_MS) ends docker push and the retry goes by the action's uploader (upload: auto).
  test('an upload the registry never answers (upload: auto): the watchdog ends docker push, the retry in chunks pushes the image', async () => {
    const src = await image(c, { '/a': 200_000 });
    c.proxy.addFault({ method: 'PUT', path: uploadsOf('stallb'), times: 1, match: isLayerPut, action: { hang: true } });
    const ref = `${c.proxy.host}/faults/stallb:`;
    const { result: run, seen } = await watchingPushes(ref, () =>
      push(c, src, 'stallb', { upload: 'auto' }, { env: STALL_ENV, timeoutMs: 90_000 }),
    );
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('2');
    expect(run.stdout).toMatch(/^docker push made no progress for 3 s: its last line: .*; ended it$/m);
    const uploads = c.proxy.requests.filter((q) => uploadsOf('stallb').test(q.path));
    const hung = uploads.find((q) => q.method === 'PUT' && q.userAgent !== '' && q.status === 0);
    const retry = uploads.filter((q) => q.userAgent === '');
    expect(retry.length).toBeGreaterThanOrEqual(1);
    // unlike engine A, engine B drops the hung request once its CLI is ended, before the retry starts; the watchdog
    // counts from the last line, printed before that PUT began
    expect(hung?.endedAt).toBeGreaterThan(0);
    expect(hung?.endedAt).toBeLessThanOrEqual(retry[0].startedAt);
    expect(retry[0].startedAt - (hung?.startedAt ?? 0)).toBeGreaterThanOrEqual(2000);
    expect(retry.every((q) => q.status >= 200 && q.status < 300)).toBe(true);
    expect(seen.size).toBe(1);
    expect(pushProcesses(ref)).toEqual([]);
    expect(await manifestDigest(c.upstream, 'faults/stallb', '1.0.0')).toBe(run.outputs.digest);
    expectNothingLeftBehind(run);
  });

  test('connection reset during a layer upload, then success', async () => {
    const src = await image(c, { '/a': 300_000 });
    c.proxy.addFault({ method: 'PUT', path: BLOB_UPLOAD, times: 1, action: { reset: true } });
    const run = await push(c, src, 'reset');
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('2');
    expect(c.proxy.requests.some((r) => r.reset)).toBe(true);
    expect(await manifestDigest(c.upstream, 'faults/reset', '1.0.0')).toBe(run.outputs.digest);
    expectNothingLeftBehind(run);
  });
});

describeEngine('A', 'faults on engine A (classic store: retries each layer 5 times itself)', (eng) => {
  let c: Ctx;
  beforeAll(async () => {
    c = await setUp(eng);
  });
  afterAll(() => tearDown(c));
  afterEach(() => c?.proxy.clearFaults());

  test('transient 524 on the manifest: recovers on attempt 2', async () => {
    const src = await image(c, { '/a': 20_000 });
    c.proxy.addFault({ method: 'PUT', path: MANIFEST, times: 1, action: CF_524 });
    const run = await push(c, src, 'm524');
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('2');
    expect(
      c.proxy.requests.filter((q) => q.method === 'PUT' && manifestsOf('m524').test(q.path)).map((q) => q.status),
    ).toEqual([524, 201]);
    expect(await manifestDigest(c.upstream, 'faults/m524', '1.0.0')).toBe(run.outputs.digest);
    expectNothingLeftBehind(run);
  });

  // Two layers over max-layer-size, and only the smaller one times out: the engine's own retry lines name it, so the
  // advisory must name layer 2; a guess (the biggest, or "the only one over the limit") would name layer 3.
  test("persistent 524 on one of two big layers: the engine's own retries, then one attempt and the exact layer", async () => {
    const src = await image(c, { '/small': 'x', '/data/model.bin': 500_000, '/data/weights.bin': 900_000 });
    // engine A streams a layer in PATCHes to the upload URL, then commits it with a PUT to the same URL:
    // refuse the commit of the upload that carried about 500 kB (the gzip of 500 kB of random bytes)
    const uploaded = (path: string) =>
      c.proxy.requests.filter((q) => q.method === 'PATCH' && q.path === path).reduce((n, q) => n + q.requestBytes, 0);
    c.proxy.addFault({
      method: 'PUT',
      path: BLOB_UPLOAD,
      match: (r) => uploaded(r.path) > 400_000 && uploaded(r.path) < 700_000,
      action: CF_524,
    });
    const run = await push(c, src, 'a524', { 'max-layer-size': '300kB' });
    expect(run.code).toBe(1);
    expect(run.outputs.attempts).toBe('1');
    expect(run.stdout).toMatch(/Retrying in 5 seconds/);
    // counted at the proxy: engine A's 5 tries of that one layer, no second attempt of the action (it would add 5)
    expect(c.proxy.count('PUT', uploadsOf('a524'), 524)).toBe(5);
    expect(c.proxy.count('PUT', manifestsOf('a524'))).toBe(0);
    const error = errorLine(run);
    expect(error).toContain('while uploading layer 2/3');
    expect(error).not.toContain('while uploading layer 3/3');
    expect(error).toMatch(/made by `COPY file:[a-f0-9]{64} in \/data\/model.bin`/);
    expect(error).not.toContain('most likely');
    expect(await listTags(c.upstream, 'faults/a524')).toEqual([]);
    expectNothingLeftBehind(run);
  });

  // A registry that stops answering mid-upload: the engine has no deadline there, so without the watchdog docker push
  // waits until the job's timeout. RP_TEST_PUSH_STALL_MS sets the watchdog to 3 s (5 min in production). Engine A keeps
  // the hung request open after its CLI is ended, and a new docker push of that layer waits on the same hung upload:
  // with upload: auto the retry goes by the action's own uploader.
  test('an upload the registry never answers (upload: auto): the watchdog ends docker push, the retry in chunks pushes the image', async () => {
    const src = await image(c, { '/a': 200_000 });
    c.proxy.addFault({ method: 'PATCH', path: uploadsOf('stall'), times: 1, action: { hang: true } });
    const ref = `${c.proxy.host}/faults/stall:`;
    const { result: run, seen } = await watchingPushes(ref, () =>
      push(c, src, 'stall', { upload: 'auto' }, { env: STALL_ENV, timeoutMs: 90_000 }),
    );
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('2');
    expect(run.stdout.match(stallLine)).toHaveLength(1);
    // at the registry: engine A's PATCH got no answer; the retry came at least the watchdog's 3 s later, from the
    // action's own client (no User-Agent), and its requests were answered
    const uploads = c.proxy.requests.filter((q) => uploadsOf('stall').test(q.path));
    const hung = uploads.find((q) => q.method === 'PATCH' && q.userAgent !== '');
    expect(hung).toMatchObject({ status: 0 });
    const retry = uploads.filter((q) => q.userAgent === '');
    expect(retry.length).toBeGreaterThanOrEqual(1);
    expect(retry[0].startedAt - (hung?.startedAt ?? 0)).toBeGreaterThanOrEqual(3000);
    // (the first may meet the registry's token challenge: a layer sent while it is gzipped opens with a POST, no HEAD)
    const answered = retry[0].status === 401 ? retry.slice(1) : retry;
    expect(answered.length).toBeGreaterThanOrEqual(1);
    expect(answered.every((q) => q.status >= 200 && q.status < 300)).toBe(true);
    // the process table: the stalled attempt's CLI was seen while the step ran, and none is left
    expect(seen.size).toBe(1);
    expect(pushProcesses(ref)).toEqual([]);
    expect(await manifestDigest(c.upstream, 'faults/stall', '1.0.0')).toBe(run.outputs.digest);
    expectNothingLeftBehind(run);
  });

  test('an upload the registry never answers (upload: docker): each attempt ends by the watchdog, then Push stalled', async () => {
    const src = await image(c, { '/a': 200_000 });
    c.proxy.addFault({ method: 'PATCH', path: uploadsOf('stalld'), action: { hang: true } });
    const ref = `${c.proxy.host}/faults/stalld:`;
    const started = Date.now();
    const { result: run, seen } = await watchingPushes(ref, () =>
      push(c, src, 'stalld', { retries: '1' }, { env: STALL_ENV, timeoutMs: 90_000 }),
    );
    // two attempts of 3 s of silence each, the SIGTERM grace and a backoff: bounded, not the job's timeout
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(run.code).toBe(1);
    expect(run.outputs.attempts).toBe('2');
    expect(run.stdout.match(stallLine)).toHaveLength(2);
    expect(errorLine(run)).toMatch(
      /^::error title=Push stalled::docker push made no progress for 3 s: .*\(after 2 attempts\)$/,
    );
    expect(c.proxy.count('PATCH', uploadsOf('stalld'))).toBeGreaterThanOrEqual(1);
    expect(c.proxy.count('PUT', manifestsOf('stalld'))).toBe(0);
    // both attempts' CLIs were seen, and neither is left
    expect(seen.size).toBe(2);
    expect(pushProcesses(ref)).toEqual([]);
    expect(await listTags(c.upstream, 'faults/stalld')).toEqual([]);
    expectNothingLeftBehind(run);
  });

  test('502 on the manifest then success', async () => {
    const src = await image(c, { '/a': 10_000 });
    c.proxy.addFault({ method: 'PUT', path: MANIFEST, times: 1, action: { status: 502, body: 'bad gateway' } });
    const run = await push(c, src, 'm502');
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('2');
    expect(
      c.proxy.requests.filter((q) => q.method === 'PUT' && manifestsOf('m502').test(q.path)).map((q) => q.status),
    ).toEqual([502, 201]);
    expect(await manifestDigest(c.upstream, 'faults/m502', '1.0.0')).toBe(run.outputs.digest);
    expectNothingLeftBehind(run);
  });

  test('400 on a plain manifest: one attempt and the generic 400 advisory', async () => {
    const src = await image(c, { '/a': 10_000 });
    c.proxy.addFault({
      method: 'PUT',
      path: MANIFEST,
      action: {
        status: 400,
        body: ATTESTATION_REJECTION,
        headers: { 'Content-Type': 'application/json' },
      },
    });
    const run = await push(c, src, 'b400');
    expect(run.code).toBe(1);
    expect(run.outputs.attempts).toBe('1');
    expect(c.proxy.count('PUT', manifestsOf('b400'), 400)).toBe(1);
    // a plain image manifest carries no attestations: the generic 400, which still names the usual cause
    expect(errorLine(run)).toMatch(/^::error title=Registry rejected the manifest \(HTTP 400\)::.*--provenance=false/);
    expect(await listTags(c.upstream, 'faults/b400')).toEqual([]);
    expectNothingLeftBehind(run);
  });

  // A per-client limit at the edge (Cloudflare's rate limiting rules): once it trips on the manifest PUT, every request
  // of that client gets 429 with Retry-After until it ends, /v2/ included. The action asks /v2/ how long to wait; the
  // proxy only limits, it answers nothing on /v2/ by itself. The wait is measured at the proxy.
  test.each(['seconds', 'date'] as const)(
    '429 with Retry-After as %s on the manifest: the next attempt reaches the registry only when the limit ends',
    async (form) => {
      const src = await image(c, { '/a': 10_000 });
      const limit = c.proxy.limitRate({ method: 'PUT', path: MANIFEST, forMs: 3_000, form });
      const run = await push(c, src, `r429${form}`);
      expect(run.code).toBe(0);
      expect(run.outputs.attempts).toBe('2');
      const puts = c.proxy.requests.filter((q) => q.method === 'PUT' && manifestsOf(`r429${form}`).test(q.path));
      expect(puts.map((q) => q.status)).toEqual([429, 201]);
      const failed = puts[0];
      // the engine's next request (the retry) started after the limit's end, and at least Retry-After after the 429
      const retry = c.proxy.requests.find((q) => q.userAgent !== '' && q.startedAt >= failed.endedAt && q !== failed);
      expect(retry).toBeDefined();
      const asked = form === 'seconds' ? 3_000 : limit.until - failed.endedAt;
      expect((retry?.startedAt ?? 0) - failed.endedAt).toBeGreaterThanOrEqual(asked);
      expect(retry?.startedAt ?? 0).toBeGreaterThanOrEqual(limit.until);
      // nothing of docker's met the limit after the first 429: the action did not knock early
      expect(
        c.proxy.requests.filter((q) => q.userAgent !== '' && q.status === 429 && q.startedAt >= limit.trippedAt),
      ).toHaveLength(1);
      expect(await manifestDigest(c.upstream, `faults/r429${form}`, '1.0.0')).toBe(run.outputs.digest);
      expectNothingLeftBehind(run);
    },
  );

  test('524 after the registry stored the manifest: the tag holds the image, and the action reports what it holds', async () => {
    const src = await image(c, { '/a': 10_000 });
    c.proxy.addFault({ method: 'PUT', path: MANIFEST, times: 1, action: { forwardThen: CF_524 } });
    const run = await push(c, src, 'mlate');
    const puts = c.proxy.requests.filter((q) => q.method === 'PUT' && manifestsOf('mlate').test(q.path));
    expect(puts[0]).toMatchObject({ upstreamStatus: 201, status: 524 });
    expect(run.code).toBe(0);
    // a second PUT of the same manifest is harmless (same digest); more than one retry is not needed
    expect(puts.length).toBeLessThanOrEqual(2);
    expect(Number(run.outputs.attempts)).toBe(puts.length);
    expect(await manifestDigest(c.upstream, 'faults/mlate', '1.0.0')).toBe(run.outputs.digest);
    expectNothingLeftBehind(run);
  });

  test('registry down: bounded retries, then a message naming the host', async () => {
    const src = await image(c, { '/a': 'x' });
    const host = `127.0.0.1:${await freePort()}`;
    const job = new Job();
    const run = await job.main(
      {
        'app-slug': 'faults',
        image: src,
        tag: '1',
        token: TOKEN,
        registry: host,
        retries: '1',
        'retry-delay': '100ms',
      },
      { env: { DOCKER_HOST: c.eng.host } },
    );
    expect(run.code).toBe(1);
    // the action asks the registry itself before docker logs in, and retries that under the policy
    expect(errorLine(run)).toMatch(
      new RegExp(`^::error title=Registry unreachable::${host.replace(/\./g, '\\.')} did not answer`),
    );
    expect(run.stdout).toMatch(new RegExp(`ask ${host.replace(/\./g, '\\.')}: attempt 1 failed .*retrying in`));
    expectNothingLeftBehind({ ...run, job });
  });

  test('engine not running (DOCKER_HOST wrong): says the engine is unreachable, not that the image is missing', async () => {
    const job = new Job();
    const run = await job.main(
      { 'app-slug': 'faults', image: 'anything:1', tag: '1', token: TOKEN, registry: c.proxy.host },
      { env: { DOCKER_HOST: 'unix:///nonexistent/docker.sock' } },
    );
    expect(run.code).toBe(1);
    expect(errorLine(run)).toMatch(
      /^::error title=Docker engine unreachable::Could not reach the Docker engine at DOCKER_HOST=unix:\/\/\/nonexistent\/docker\.sock/,
    );
    expectNothingLeftBehind({ ...run, job });
  });
});
