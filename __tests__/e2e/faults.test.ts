// Issue 3: every registry fault through the real engines, the real registry and the fault proxy in front of it.
// After each: what the user saw (annotation), how many attempts, what the registry holds under the tag, and
// that no credential or token was left behind.
import { existsSync, readdirSync } from 'node:fs';
import { Job, type StepRun } from '../../test/support/action-runner.js';
import { startFaultProxy, type FaultProxy } from '../../test/support/fault-proxy.js';
import { buildImage, engine, removeImages, rigEngines, uniqueName, type Engine } from '../../test/support/images.js';
import { freePort, listTags, manifestDigest, startRegistry, type Registry } from '../../test/support/registry.js';

const TOKEN = 'fault-token-3c9e7a';
const CF_524 = { status: 524, body: 'error code: 524', headers: { 'Content-Type': 'text/plain' } };
const BLOB_UPLOAD = /\/v2\/.+\/blobs\/uploads\//;
const MANIFEST = /\/v2\/.+\/manifests\//;

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
      ...extra,
    },
    { env: { DOCKER_HOST: c.eng.host } },
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

function errorLine(run: StepRun): string {
  return run.stdout.split('\n').find((l) => l.startsWith('::error')) ?? '';
}

describe('faults on engine B (containerd store: no per-layer retry in the engine)', () => {
  const eng = rigEngines().find((e) => e.name === 'B');
  const maybe = eng ? test : test.skip;
  let c: Ctx;
  beforeAll(async () => {
    if (eng) c = await setUp(eng);
  });
  afterAll(() => tearDown(c));
  afterEach(() => c?.proxy.clearFaults());

  maybe('transient 524 on a layer upload: recovers on attempt 2', async () => {
    const src = await image(c, { '/a': 50_000 });
    c.proxy.addFault({ method: 'PUT', path: BLOB_UPLOAD, times: 1, action: CF_524 });
    const run = await push(c, src, 't524');
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('2');
    expect(run.stdout).toMatch(/^::warning title=Upload timed out \(HTTP 524\)::/m);
    expect(await manifestDigest(c.upstream, 'faults/t524', '1.0.0')).toBe(run.outputs.digest);
    expectNothingLeftBehind(run);
  });

  maybe('persistent 524 on a layer over max-layer-size: one attempt, the advisory names the layer', async () => {
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

  maybe('persistent 524 on a small layer: retries up to the bound, then fails', async () => {
    const src = await image(c, { '/a': 30_000 });
    c.proxy.addFault({ method: 'PUT', path: BLOB_UPLOAD, action: CF_524 });
    const run = await push(c, src, 'bound524', { retries: '2' });
    expect(run.code).toBe(1);
    expect(run.outputs.attempts).toBe('3');
    expect(errorLine(run)).toMatch(/^::error title=Push timed out \(HTTP 524\)::.*after 3 attempts/);
    expect(await listTags(c.upstream, 'faults/bound524')).toEqual([]);
    expectNothingLeftBehind(run);
  });

  // Engine B retries a 503 once on its own but never a 502: a 502 is what reaches the action.
  maybe('502 on a layer upload then success', async () => {
    const src = await image(c, { '/a': 20_000 });
    c.proxy.addFault({ method: 'PUT', path: BLOB_UPLOAD, times: 1, action: { status: 502, body: 'bad gateway' } });
    const run = await push(c, src, 's502');
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('2');
    expect(c.proxy.count('PUT', BLOB_UPLOAD, 502)).toBe(1);
    expect(await manifestDigest(c.upstream, 'faults/s502', '1.0.0')).toBe(run.outputs.digest);
    expectNothingLeftBehind(run);
  });

  maybe('connection reset during a layer upload, then success', async () => {
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

describe('faults on engine A (classic store: retries each layer 5 times itself)', () => {
  let c: Ctx;
  beforeAll(async () => {
    c = await setUp(engine('A'));
  });
  afterAll(() => tearDown(c));
  afterEach(() => c?.proxy.clearFaults());

  test('transient 524 on the manifest: recovers on attempt 2', async () => {
    const src = await image(c, { '/a': 20_000 });
    c.proxy.addFault({ method: 'PUT', path: MANIFEST, times: 1, action: CF_524 });
    const run = await push(c, src, 'm524');
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('2');
    expect(await manifestDigest(c.upstream, 'faults/m524', '1.0.0')).toBe(run.outputs.digest);
    expectNothingLeftBehind(run);
  });

  test("persistent 524 on a big layer: the engine's own retries, then one attempt and the exact layer", async () => {
    const src = await image(c, { '/small': 'x', '/data/model.bin': 500_000 });
    c.proxy.addFault({ method: 'PUT', path: BLOB_UPLOAD, action: CF_524 });
    c.proxy.addFault({ method: 'PATCH', path: BLOB_UPLOAD, action: CF_524 });
    const run = await push(c, src, 'a524', { 'max-layer-size': '300kB' });
    expect(run.code).toBe(1);
    expect(run.outputs.attempts).toBe('1');
    expect(run.stdout).toMatch(/Retrying in 5 seconds/);
    const error = errorLine(run);
    expect(error).toContain('while uploading layer 2/2');
    expect(error).toMatch(/made by `COPY file:[a-f0-9]{64} in \/data\/model.bin`/);
    expect(error).not.toContain('most likely');
    expect(await listTags(c.upstream, 'faults/a524')).toEqual([]);
    expectNothingLeftBehind(run);
  });

  test('502 on the manifest then success', async () => {
    const src = await image(c, { '/a': 10_000 });
    c.proxy.addFault({ method: 'PUT', path: MANIFEST, times: 1, action: { status: 502, body: 'bad gateway' } });
    const run = await push(c, src, 'm502');
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('2');
    expectNothingLeftBehind(run);
  });

  test('400 on the manifest: one attempt and the attestation advisory', async () => {
    const src = await image(c, { '/a': 10_000 });
    c.proxy.addFault({
      method: 'PUT',
      path: MANIFEST,
      action: {
        status: 400,
        body: '{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":"provenance attestations are not supported"}]}',
        headers: { 'Content-Type': 'application/json' },
      },
    });
    const run = await push(c, src, 'b400');
    expect(run.code).toBe(1);
    expect(run.outputs.attempts).toBe('1');
    expect(errorLine(run)).toMatch(/^::error title=.*\(HTTP 400\)::.*--provenance=false/);
    expect(await listTags(c.upstream, 'faults/b400')).toEqual([]);
    expectNothingLeftBehind(run);
  });

  test('429 with Retry-After on the manifest: the next attempt waits as long as the registry asks', async () => {
    const src = await image(c, { '/a': 10_000 });
    const limited = {
      status: 429,
      body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
      headers: { 'Retry-After': '3' },
    };
    c.proxy.addFault({ method: 'PUT', path: MANIFEST, times: 1, action: limited });
    // The limit still holds when the action asks /v2/ how long to wait; docker login's own GET /v2/ came earlier.
    c.proxy.addFault({
      method: 'GET',
      path: /^\/v2\/$/,
      times: 1,
      action: limited,
      match: (req) => !/docker/i.test(String(req.headers['user-agent'])),
    });
    const run = await push(c, src, 'r429');
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('2');
    expect(run.stdout).toMatch(/retrying in 3\.0s/);
    expect(await manifestDigest(c.upstream, 'faults/r429', '1.0.0')).toBe(run.outputs.digest);
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
    expect(errorLine(run)).toMatch(
      new RegExp(`^::error title=Registry unreachable::Could not keep a connection to ${host.replace(/\./g, '\\.')}`),
    );
    expect(run.stdout).toMatch(/login: attempt 1 failed .*retrying in/);
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
