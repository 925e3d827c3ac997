// Issue 12's targets through the action as a user runs it (the main step, INPUT_* variables, the runner's files),
// real engines, the real registry (CNCF distribution 2.8.2) behind the fault proxy playing Cloudflare: a 524 to any
// upload request carrying more than 8 MB, resets, a registry that refuses chunks, slow chunks and a cancel. What
// was pushed is read back from the registry itself (v2 API, skopeo) and from an engine pulling it, never from the
// action's own words. Who sent an upload request is told by its User-Agent: docker and containerd send one, the
// action's own client none.
//   1. engine A: a 40 MB layer over max-layer-size goes in chunks from 4 MB on attempt 1 (they grow while fast,
//      and halve at the proxy's limit, once); same config, same files
//   2. engine B, default inputs: docker push meets the 524, the retry is chunked, attempts 2, same manifest
//   3. a reset on one chunk: resumed within size + 2 chunks; a reset mid-chunk: the blob restarts, still attempt 1
//   4. a registry refusing chunked PATCHes: one request per blob, said in the log
//   5. SIGINT during a chunked upload: 130, no tag, nothing under RUNNER_TEMP
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job, type StepRun } from '../../test/support/action-runner.js';
import {
  cloudflareError,
  startFaultProxy,
  type FaultAction,
  type FaultProxy,
  type FaultRequest,
  type ProxiedRequest,
} from '../../test/support/fault-proxy.js';
import {
  describeEngine,
  docker,
  imageExists,
  removeImages,
  uniqueName,
  type Engine,
} from '../../test/support/images.js';
import { listTags, manifestDigest, rawManifest, startRegistry, type Registry } from '../../test/support/registry.js';
import { buildOneLayerImage, digests, heldImage } from '../../test/support/trust-image.js';
import { cancelLikeRunner, descendants, startMain } from '../../test/support/trust-spy.js';

const MiB = 1024 * 1024;
const MB = 1_000_000;
/** "more than 8 MB": the proxy's stand-in for Cloudflare's origin timeout. */
const LIMIT = 8 * MB;
/** chunk-size: 4MB is 4,000,000 bytes (units as max-layer-size). */
const CHUNK = 4 * MB;
const TOKEN = `chunked-token-${randomBytes(8).toString('hex')}`;
const UPLOADS = /^\/v2\/.+\/blobs\/uploads\//;
const APP = 'chunked';

/**
 * A request the proxy refuses with a 524: a PATCH or PUT to an upload URL carrying more than 8 MB. A streamed body
 * (Transfer-Encoding: chunked, no Content-Length: docker 20.10's one PATCH per layer) cannot be measured before it
 * is read, so it counts as big: that is the request a chunked upload replaces.
 */
function carriesOver8MB(r: FaultRequest): boolean {
  if (r.method !== 'PATCH' && r.method !== 'PUT') return false;
  const length = r.headers['content-length'];
  return length === undefined ? /chunked/i.test(String(r.headers['transfer-encoding'] ?? '')) : Number(length) > LIMIT;
}

function refuseOver8MB(proxy: FaultProxy): void {
  proxy.addFault({ path: UPLOADS, match: carriesOver8MB, action: cloudflareError(524) });
}

/**
 * A fault on the n-th PATCH (1-based) that carries at least a whole chunk of `size` bytes (chunks start at
 * chunk-size and grow while they are fast: the n-th is at least that big).
 */
function onFullChunk(proxy: FaultProxy, n: number, size: number, action: FaultAction): void {
  let seen = 0;
  proxy.addFault({
    method: 'PATCH',
    path: UPLOADS,
    times: 1,
    match: (r) => Number(r.headers['content-length'] ?? 0) >= size && ++seen === n,
    action,
  });
}

const uploadsOf = (proxy: FaultProxy, repo: string): ProxiedRequest[] =>
  proxy.requests.filter((r) => r.path.startsWith(`/v2/${repo}/blobs/uploads/`));
const byDocker = (r: ProxiedRequest) => r.userAgent !== '';
const bytesOf = (rs: readonly ProxiedRequest[]) => rs.reduce((n, r) => n + r.requestBytes, 0);

/** Enough of a step's output to see why an expectation failed. */
function tail(text: string, chars = 6000): string {
  return text.length > chars ? `...${text.slice(-chars)}` : text;
}

/** Fails with the step's output (and what else is given) when it did not exit 0. */
function expectPushed(run: StepRun, ...more: string[]): void {
  if (run.code !== 0) throw new Error(`the step exited ${run.code}:\n${[tail(run.stdout), ...more].join('\n')}`);
}

function entries(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** `size` bytes of random content in files of at most 8 MiB, under data/ (one layer: buildOneLayerImage). */
function randomFiles(label: string, size: number): Record<string, Buffer | string> {
  const files: Record<string, Buffer | string> = { 'app.txt': `${label}\n` };
  for (let i = 0, left = size; left > 0; i++, left -= 8 * MiB)
    files[`data/part-${i}.bin`] = randomBytes(Math.min(left, 8 * MiB));
  return files;
}

/** The layer count and config digest an engine reports for a local image (classic store: the ID is the config's). */
async function localImage(e: Engine, ref: string): Promise<{ id: string; layers: number }> {
  const [id, layers] = (
    await docker(e.host, ['image', 'inspect', '--format', '{{.Id}} {{len .RootFS.Layers}}', ref])
  ).split(' ');
  return { id, layers: Number(layers) };
}

/** A docker config of its own (never the user's), logged in to `reg` directly, for pulls and reference pushes. */
async function loggedIn(e: Engine, reg: Registry, dirs: string[]): Promise<NodeJS.ProcessEnv> {
  const cfg = mkdtempSync(join(tmpdir(), 'rp-chunked-cfg-'));
  dirs.push(cfg);
  const [user, password] = Object.entries(reg.users)[0];
  const env = { DOCKER_CONFIG: cfg };
  await docker(e.host, ['login', reg.host, '-u', user, '-p', password], env);
  return env;
}

interface Rig {
  reg: Registry;
  proxy: FaultProxy;
}

function suite(eng: Engine) {
  const images: string[] = [];
  const dirs: string[] = [];
  const stops: (() => Promise<void>)[] = [];
  const jobs: Job[] = [];

  afterAll(async () => {
    await removeImages(eng, images);
    for (const s of stops.reverse()) await s();
    for (const j of jobs) j.cleanup();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** A registry and a proxy of the test's own: no other test's requests in its log. */
  async function rig(): Promise<Rig> {
    const reg = await startRegistry();
    stops.push(() => reg.stop());
    const proxy = await startFaultProxy({ upstream: reg, auth: { scheme: 'bearer', token: TOKEN } });
    stops.push(() => proxy.stop());
    return { reg, proxy };
  }

  async function image(label: string, files: Record<string, Buffer | string>): Promise<string> {
    const ref = `${uniqueName(`rp-chunked-${label}`)}:src`;
    images.push(ref);
    await buildOneLayerImage(eng, ref, files);
    return ref;
  }

  function inputs(r: Rig, src: string, target: string, extra: Record<string, string>): Record<string, string> {
    return {
      'app-slug': APP,
      image: src,
      'target-image': target,
      tag: '1.0.0',
      registry: r.proxy.host,
      username: 'service-account',
      token: TOKEN,
      'retry-delay': '200ms',
      ...extra,
    };
  }

  async function push(
    r: Rig,
    src: string,
    target: string,
    extra: Record<string, string> = {},
  ): Promise<StepRun & { job: Job }> {
    const job = new Job();
    jobs.push(job);
    const run = await job.main(inputs(r, src, target, extra), { env: { DOCKER_HOST: eng.host }, timeoutMs: 240_000 });
    return { ...run, job };
  }

  return { images, dirs, jobs, rig, image, inputs, push };
}

describeEngine('A', 'chunked uploads on engine A (classic store)', (eng) => {
  const s = suite(eng);

  // chunk-size is where the chunks start: fast ones double (4 MB, 8 MB, 16 MB); the one over the proxy's limit meets
  // its 524 and is halved, and the run never grows past that again
  test('a 40 MB layer over max-layer-size 10MB, chunk-size 4MB, behind a 524 for anything over 8 MB: attempt 1, one 524 at most and no request over 8 MB after it, the same image pulled back', async () => {
    const r = await s.rig();
    refuseOver8MB(r.proxy);
    const files = randomFiles('forty', 40 * MiB);
    const src = await s.image('forty', files);
    const local = await localImage(eng, src);
    const target = uniqueName('forty');
    const repo = `${APP}/${target}`;
    const run = await s.push(r, src, target, { 'max-layer-size': '10MB', 'chunk-size': '4MB' });
    expectPushed(run);
    expect(run.outputs.attempts).toBe('1');

    // at the proxy: docker never uploaded a blob (its requests carry a User-Agent); the chunks started at 4 MB, at
    // most one met the 524, and every one after it was under 8 MB and accepted
    const uploads = uploadsOf(r.proxy, repo);
    expect(uploads.filter(byDocker).map((u) => `${u.method} ${u.userAgent}`)).toEqual([]);
    const patches = uploads.filter((u) => u.method === 'PATCH');
    expect(patches[0].requestBytes).toBe(CHUNK);
    const refused = patches.filter((u) => u.requestBytes > LIMIT || u.status === 524);
    expect(refused.length).toBeLessThanOrEqual(1);
    const after = patches.slice(refused.length ? patches.indexOf(refused[0]) + 1 : 0);
    expect(after.length).toBeGreaterThanOrEqual(4);
    expect(after.every((u) => u.requestBytes <= LIMIT && u.status === 202)).toBe(true);

    // the registry's own manifest: config digest = local image ID, same layer count, the digest the action output
    const held = await rawManifest(r.reg, repo, '1.0.0');
    expect(held?.json.config?.digest).toBe(local.id);
    expect(held?.json.layers?.length).toBe(local.layers);
    expect(held?.digest).toBe(run.outputs.digest);
    // the files, byte for byte, read without an engine
    expect((await heldImage(r.reg, repo, '1.0.0')).files).toEqual(digests(files));

    // pulled back into the same engine once the local image is gone: the same image ID
    await docker(eng.host, ['image', 'rm', '-f', local.id]);
    expect(await imageExists(eng, local.id)).toBe(false);
    const env = await loggedIn(eng, r.reg, s.dirs);
    const pulled = `${r.reg.host}/${repo}:1.0.0`;
    s.images.push(pulled);
    await docker(eng.host, ['pull', '-q', pulled], env);
    expect((await localImage(eng, pulled)).id).toBe(local.id);
    expect(entries(run.job.runnerTemp)).toEqual([]);
    process.stderr.write(
      `[chunked A] 40 MB layer: ${uploads.length} upload requests, PATCHes ${patches.map((u) => `${u.requestBytes}:${u.status}`).join(' ')}\n`,
    );
  });

  test('a reset on one chunk before any of it reached the registry: attempt 1, resumed, bytes within the blobs + 2 chunks', async () => {
    const r = await s.rig();
    onFullChunk(r.proxy, 2, CHUNK, { reset: true });
    const files = randomFiles('reset', 24 * MiB);
    const src = await s.image('reset', files);
    const target = uniqueName('reset');
    const repo = `${APP}/${target}`;
    const run = await s.push(r, src, target, { upload: 'chunked', 'chunk-size': '4MB' });
    expectPushed(run);
    expect(run.outputs.attempts).toBe('1');

    const uploads = uploadsOf(r.proxy, repo);
    expect(uploads.filter((u) => u.reset)).toHaveLength(1);
    const held = await rawManifest(r.reg, repo, '1.0.0');
    const blobs = (held?.json.config?.size ?? 0) + (held?.json.layers ?? []).reduce((n, l) => n + l.size, 0);
    const sent = bytesOf(uploads);
    expect(sent).toBeLessThanOrEqual(blobs + 2 * CHUNK);
    expect(run.stdout).toMatch(/resuming at /);
    expect((await heldImage(r.reg, repo, '1.0.0')).files).toEqual(digests(files));
    expect(entries(run.job.runnerTemp)).toEqual([]);
    process.stderr.write(
      `[chunked A] reset before forwarding: ${sent} bytes on upload paths for ${blobs} bytes of blobs (+${sent - blobs})\n`,
    );
  });

  test('a reset in the middle of a chunk whose first bytes reached the registry: the blob starts again, attempt 1, the log says a new upload starts', async () => {
    const r = await s.rig();
    onFullChunk(r.proxy, 3, CHUNK, { resetAfterBytes: 1 * MiB });
    const files = randomFiles('restart', 24 * MiB);
    const src = await s.image('restart', files);
    const target = uniqueName('restart');
    const repo = `${APP}/${target}`;
    const run = await s.push(r, src, target, { upload: 'chunked', 'chunk-size': '4MB' });
    expectPushed(run);
    expect(run.outputs.attempts).toBe('1');
    expect(uploadsOf(r.proxy, repo).filter((u) => u.reset)).toHaveLength(1);
    expect(run.stdout).toMatch(/starting this blob again in a new upload \(chunk at \d+: /);
    expect((await heldImage(r.reg, repo, '1.0.0')).files).toEqual(digests(files));
    expect(entries(run.job.runnerTemp)).toEqual([]);
  });

  test('SIGINT while chunks are in flight (each PATCH held 10 s at the proxy): exit 130, no tag, no child left, nothing under RUNNER_TEMP', async () => {
    const r = await s.rig();
    r.proxy.addFault({ method: 'PATCH', path: UPLOADS, action: { delayMs: 10_000 } });
    const src = await s.image('cancel', randomFiles('cancel', 12 * MiB));
    const target = uniqueName('cancel');
    const repo = `${APP}/${target}`;
    const job = new Job();
    s.jobs.push(job);
    const step = startMain(job, s.inputs(r, src, target, { upload: 'chunked', 'chunk-size': '4MB' }), {
      DOCKER_HOST: eng.host,
    });
    const deadline = Date.now() + 90_000;
    while (r.proxy.count('PATCH', UPLOADS) === 0) {
      if (Date.now() > deadline || step.child.exitCode !== null) {
        process.kill(step.pid, 'SIGKILL');
        throw new Error(`no PATCH reached the proxy:\n${tail(step.stdout())}`);
      }
      await sleep(100);
    }
    const { end, sent } = await cancelLikeRunner(step, 'SIGINT');
    // past the delay of the PATCH in flight: a push that went on after the exit would have reached the registry
    await sleep(11_000);
    expect({
      signals: sent.map((x) => x.signal),
      code: end.code,
      descendants: descendants(step.pid),
      manifestPuts: r.proxy.count('PUT', /\/manifests\//),
      tag: await manifestDigest(r.reg, repo, '1.0.0'),
      tags: await listTags(r.reg, repo),
      reachedRegistryAfterExit: r.proxy.requests
        .filter((q) => q.startedAt > end.endedAt + 500 && q.upstreamStatus !== 0)
        .map((q) => `${q.method} ${q.path}`),
      runnerTemp: entries(job.runnerTemp),
    }).toEqual({
      signals: ['SIGINT'],
      code: 130,
      descendants: [],
      manifestPuts: 0,
      tag: null,
      tags: [],
      reachedRegistryAfterExit: [],
      runnerTemp: [],
    });
    const post = await job.post(end.state);
    expect({ code: post.code, runnerTemp: entries(job.runnerTemp) }).toEqual({ code: 0, runnerTemp: [] });
  });
});

describeEngine('B', 'chunked uploads on engine B (containerd store)', (eng) => {
  const s = suite(eng);

  // The issue's target is the first row, with DEFAULT inputs: chunk-size 32MB. The second changes chunk-size only,
  // so the rest of the path (docker's 524, the chunked retry, the same manifest) is proven whatever the first does.
  test.each([
    ['default inputs', {}],
    ['default inputs but chunk-size 4MB', { 'chunk-size': '4MB' }],
  ])(
    '%s, a 12 MB layer behind a 524 for anything over 8 MB: docker push meets the 524, the retry is chunked, attempts 2, the manifest docker push --platform would push',
    async (_name: string, extra: Record<string, string>) => {
      const r = await s.rig();
      refuseOver8MB(r.proxy);
      const files = randomFiles('twelve', 12 * MiB);
      const src = await s.image('twelve', files);
      const target = uniqueName('twelve');
      const repo = `${APP}/${target}`;
      const run = await s.push(r, src, target, extra);
      const uploads = uploadsOf(r.proxy, repo);
      const timeline = uploads.map(
        (u) => `${u.method} ${u.requestBytes} ${u.status} ${u.userAgent ? 'docker' : 'action'}`,
      );
      expectPushed(run, 'upload requests at the proxy (method, bytes, status, sender):', ...timeline);
      expect(run.outputs.attempts).toBe('2');

      // two attempts at the proxy: docker's (a User-Agent) met the 524; then the action's own. With the default
      // chunk-size (32MB) the uploader's first request carries the whole 12 MB blob and meets the 524 as docker's did;
      // it then halves its requests itself, within the same attempt, and every later request passes.
      const firstAction = uploads.findIndex((u) => !byDocker(u));
      const dockers = uploads.slice(0, firstAction);
      const actions = uploads.slice(firstAction);
      expect(firstAction).toBeGreaterThan(0);
      expect(dockers.every(byDocker)).toBe(true);
      expect(dockers.filter((u) => u.status === 524).length).toBeGreaterThanOrEqual(1);
      expect(actions.filter(byDocker)).toEqual([]);
      const refused = actions.filter((u) => u.requestBytes > LIMIT || u.status === 524);
      expect(refused.length).toBeLessThanOrEqual(1);
      const after = actions.slice(actions.indexOf(refused[0]) + 1).filter((u) => u.method === 'PATCH');
      expect(after.length).toBeGreaterThan(0);
      expect(after.every((u) => u.requestBytes <= LIMIT && u.status === 202)).toBe(true);
      expect(r.proxy.requests.filter((q) => /\/manifests\//.test(q.path) && q.method === 'PUT').map(byDocker)).toEqual([
        false,
      ]);
      expect(run.stdout).toMatch(/in chunks/);

      // what docker push --platform sends, to a clean registry without the proxy: the same manifest, the same config
      const clean = await startRegistry();
      try {
        const env = await loggedIn(eng, clean, s.dirs);
        const ref = `${clean.host}/${repo}:1.0.0`;
        s.images.push(ref);
        await docker(eng.host, ['tag', src, ref]);
        await docker(eng.host, ['push', '--platform', 'linux/amd64', ref], env);
        const reference = await rawManifest(clean, repo, '1.0.0');
        const held = await rawManifest(r.reg, repo, '1.0.0');
        expect(held?.json.config?.digest).toBe(reference?.json.config?.digest);
        expect(held?.json.layers?.map((l) => l.digest)).toEqual(reference?.json.layers?.map((l) => l.digest));
        expect(held?.digest).toBe(reference?.digest);
        expect(held?.digest).toBe(run.outputs.digest);
      } finally {
        await clean.stop();
      }
      expect((await heldImage(r.reg, repo, '1.0.0')).files).toEqual(digests(files));
      expect(entries(run.job.runnerTemp)).toEqual([]);
    },
  );

  test('a registry that refuses chunked PATCHes (400 to a PATCH carrying Content-Range): one request per blob, the log says so, pushed', async () => {
    const r = await s.rig();
    r.proxy.addFault({
      method: 'PATCH',
      path: UPLOADS,
      match: (q) => q.headers['content-range'] !== undefined,
      action: {
        status: 400,
        body: JSON.stringify({
          errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'chunked uploads not supported', detail: null }],
        }),
        headers: { 'content-type': 'application/json' },
      },
    });
    const files = randomFiles('nochunks', 6 * MiB);
    const src = await s.image('nochunks', files);
    const target = uniqueName('nochunks');
    const repo = `${APP}/${target}`;
    const run = await s.push(r, src, target, { upload: 'chunked', 'chunk-size': '4MB' });
    expectPushed(run);
    expect(run.outputs.attempts).toBe('1');
    expect(run.stdout).toMatch(
      /the registry refused a chunked upload \(HTTP 400[^)]*\); sending this blob in one request/,
    );
    // after the refusals, each blob went in one PUT with its body
    const uploads = uploadsOf(r.proxy, repo);
    const held = await rawManifest(r.reg, repo, '1.0.0');
    const layer = held?.json.layers?.[0];
    expect(uploads.some((u) => u.method === 'PUT' && u.requestBytes === layer?.size && u.status === 201)).toBe(true);
    expect((await heldImage(r.reg, repo, '1.0.0')).files).toEqual(digests(files));
    expect(entries(run.job.runnerTemp)).toEqual([]);
  });
});
