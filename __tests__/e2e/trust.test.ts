// Issue 11: the action does only what it says. Checked from outside the action, never from its own words:
// what the registry holds (skopeo, the v2 API), what the engine has named (docker image ls), what is left
// under RUNNER_TEMP, which processes are alive and what environment each child got (a docker first on PATH
// that records every call, test/support/trust-spy.ts).
//   item 2: two runs at once on one engine (two apps, one target and tag, layer-split: auto)
//   item 7: cancel mid-push, as the runner cancels (SIGINT, then SIGTERM), and SIGTERM alone
//   item 9: no child (docker, zstd) gets the token in its environment
//   and nothing is left behind by a failed run.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job } from '../../test/support/action-runner.js';
import { startFaultProxy, type FaultProxy } from '../../test/support/fault-proxy.js';
import { describeEachEngine, docker, removeImages, uniqueName, type Engine } from '../../test/support/images.js';
import { listTags, manifestDigest, startRegistry, type Registry } from '../../test/support/registry.js';
import { buildOneLayerImage, digests, heldImage } from '../../test/support/trust-image.js';
import {
  cancelLikeRunner,
  createSpy,
  descendants,
  recordEngine,
  startMain,
  type SpiedCall,
} from '../../test/support/trust-spy.js';

const MB = 1_000_000;
/** Six 1 MB files of random bytes in one layer: with max-layer-size 2MB, layer-split: auto must cut it. */
function sixMegabytes(label: string): Record<string, Buffer | string> {
  const files: Record<string, Buffer | string> = { 'app.txt': `${label}\n` };
  for (let i = 0; i < 6; i++) files[`data/part-${i}.bin`] = randomBytes(MB);
  return files;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** Every name the engine has (repository:tag), dangling images left out. */
async function localNames(e: Engine): Promise<string[]> {
  const out = await docker(e.host, ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']);
  return out.split('\n').filter((n) => n && !n.includes('<none>'));
}

/** The run IDs in the names the runs gave their own images (replicated-push-split-RUNID:N), from docker's argv. */
/**
 * The run IDs in the names a run gave images: in docker CLI arguments (docker load's archive names its image) and
 * in the engine API requests the action made itself (tag, image rm), seen by the engine recorder.
 */
function runIds(calls: readonly SpiedCall[], requests: readonly string[] = []): Set<string> {
  const ids = new Set<string>();
  const texts = [...calls.flatMap((c) => c.args), ...requests.map((r) => decodeURIComponent(r))];
  for (const t of texts) for (const m of t.matchAll(/replicated-push-[a-z]+-([0-9a-f]+)(?::|&tag=)\d+/g)) ids.add(m[1]);
  return ids;
}

/**
 * The local names a run could have left: its own images (by run ID) and every name holding the test's target
 * image name, which is unique to the test (the refs REGISTRY/APP/TARGET:TAG it tagged, and the old shared name
 * TARGET:TAG-split). Other suites share the engines: only names of this test count.
 */
async function leftovers(e: Engine, opts: { ids: Set<string>; target: string }): Promise<string[]> {
  return (await localNames(e)).filter((n) => n.includes(opts.target) || [...opts.ids].some((id) => n.includes(id)));
}

/** Resolves once no request is in flight at the proxy and none arrived for `forMs`; at most `timeoutMs`. */
async function quiet(proxy: FaultProxy, forMs: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const busy = proxy.requests.some((r) => r.endedAt === 0);
    const last = Math.max(0, ...proxy.requests.map((r) => Math.max(r.startedAt, r.endedAt)));
    if ((!busy && Date.now() - last >= forMs) || Date.now() > deadline) return;
    await sleep(250);
  }
}

/** The proxy's requests, one a line: start and end (ms from `t0`), method, path, status to the client and from upstream. */
function timeline(proxy: FaultProxy, t0: number): string {
  return proxy.requests
    .map(
      (r) =>
        `  ${r.startedAt - t0}..${r.endedAt ? r.endedAt - t0 : 'open'} ${r.method} ${r.path.replace(/[0-9a-f-]{36}$/, 'UUID')} ` +
        `${r.status}${r.upstreamStatus ? ` (upstream ${r.upstreamStatus})` : ''}`,
    )
    .join('\n');
}

/** The blobs the registry has linked into a repository (distribution's filesystem layout): committed uploads. */
function blobsLinked(reg: Registry, repo: string): string[] {
  const dir = join(reg.dataDir, 'docker/registry/v2/repositories', repo, '_layers/sha256');
  return existsSync(dir) ? readdirSync(dir) : [];
}

function entries(dir: string): string[] {
  return readdirSync(dir);
}

/** Enough of a step's output to see why an expectation failed. */
function tail(text: string, chars = 4000): string {
  return text.length > chars ? `...${text.slice(-chars)}` : text;
}

const DENIED = JSON.stringify({
  errors: [{ code: 'DENIED', message: 'requested access to the resource is denied', detail: null }],
});

describeEachEngine('trust on $label', (eng: Engine) => {
  const images: string[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    await removeImages(eng, images);
    for (const c of cleanups.reverse()) await c();
  });

  /** A directory for a spy, removed after the suite. */
  function spyDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'rp-spy-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  async function registry(): Promise<Registry> {
    const reg = await startRegistry();
    cleanups.push(() => reg.stop());
    return reg;
  }

  async function proxied(token: string): Promise<{ reg: Registry; proxy: FaultProxy }> {
    const reg = await registry();
    const proxy = await startFaultProxy({ upstream: reg, auth: { scheme: 'bearer', token } });
    cleanups.push(() => proxy.stop());
    return { reg, proxy };
  }

  // Issue 11 item 2. Before the fix both runs tagged the re-layered image TARGET:TAG-split, one name for every
  // app: a run could push the other's image, and the name was never removed.
  test('two runs at once, two apps, one target and tag, layer-split: auto: each app holds its own files, nothing is left', async () => {
    const reg = await registry();
    const [user, password] = Object.entries(reg.users)[0];
    const target = uniqueName('shared');
    const files = { one: sixMegabytes('app-one'), two: sixMegabytes('app-two') };
    const src = { one: `${uniqueName('rp-trust-one')}:src`, two: `${uniqueName('rp-trust-two')}:src` };
    images.push(src.one, src.two);
    await Promise.all([buildOneLayerImage(eng, src.one, files.one), buildOneLayerImage(eng, src.two, files.two)]);
    const spies = { one: createSpy(spyDir()), two: createSpy(spyDir()) };
    const recorders = { one: await recordEngine(spyDir(), eng.host), two: await recordEngine(spyDir(), eng.host) };
    cleanups.push(
      () => recorders.one.close(),
      () => recorders.two.close(),
    );
    const jobs = { one: new Job(), two: new Job() };
    cleanups.push(
      () => jobs.one.cleanup(),
      () => jobs.two.cleanup(),
    );
    const run = (app: 'one' | 'two') =>
      jobs[app].main(
        {
          'app-slug': `app-${app}`,
          image: src[app],
          'target-image': target,
          tag: '1.0.0',
          registry: reg.host,
          username: user,
          token: password,
          'max-layer-size': '2MB',
          'layer-split': 'auto',
          // the path that names a re-layered image in the engine (docker load, then docker push)
          upload: 'docker',
          'retry-delay': '200ms',
        },
        { env: { DOCKER_HOST: recorders[app].host, PATH: spies[app].path() }, timeoutMs: 240_000 },
      );
    const started = Date.now();
    const [one, two] = await Promise.all([run('one'), run('two')]);
    const seconds = (Date.now() - started) / 1000;
    expect({ code: one.code, out: tail(one.stdout) }).toMatchObject({ code: 0 });
    expect({ code: two.code, out: tail(two.stdout) }).toMatchObject({ code: 0 });

    // the registry's own answer: each app's tag has its own files, and the big layer was cut into pieces
    for (const app of ['one', 'two'] as const) {
      const held = await heldImage(reg, `app-${app}/${target}`, '1.0.0');
      expect(held.files).toEqual(digests(files[app]));
      expect(held.layerSizes.length).toBeGreaterThanOrEqual(3);
      for (const size of held.layerSizes) expect(size).toBeLessThanOrEqual(2.1 * MB);
    }

    // two runs, two names of their own; none of them, none of the refs (they were new), nothing -split left
    const ids = new Set([
      ...runIds(spies.one.calls(), recorders.one.requests()),
      ...runIds(spies.two.calls(), recorders.two.requests()),
    ]);
    expect({ runsWithOwnNames: ids.size }).toEqual({ runsWithOwnNames: 2 });
    expect(await leftovers(eng, { ids, target })).toEqual([]);
    expect(entries(jobs.one.runnerTemp)).toEqual([]);
    expect(entries(jobs.two.runnerTemp)).toEqual([]);
    process.stderr.write(`[trust ${eng.name}] two concurrent split pushes: ${seconds.toFixed(1)} s\n`);
  });

  // Issue 11 item 7. The GitHub runner cancels a step with kill(pid, SIGINT), then after 7.5 s kill(pid, SIGTERM),
  // then after 2.5 s SIGKILL, to the step's pid only (actions/runner src/Runner.Sdk/ProcessInvoker.cs,
  // CancelAndKillProcessTree / SendSignal, _sigintTimeout 7500 ms, _sigtermTimeout 2500 ms): the docker children
  // get no signal from the runner, the step has to end them.
  const UPLOAD_DELAY_MS = 10_000;
  const cancelCases = [
    { first: 'SIGINT', upload: 'auto', by: 'docker push' },
    { first: 'SIGTERM', upload: 'auto', by: 'docker push' },
    { first: 'SIGINT', upload: 'chunked', by: 'the chunked uploader' },
  ] as const;
  for (const { first, upload, by } of cancelCases) {
    const code = first === 'SIGINT' ? 130 : 143;
    test(`${first} mid-push (upload: ${upload}, ${by}): exits ${code}, the tag never appears, no child or file left`, async () => {
      const token = `trust-cancel-${randomBytes(12).toString('hex')}`;
      const { reg, proxy } = await proxied(token);
      // every upload start waits 10 s at the proxy: the push is in flight when the cancel comes, and a push that
      // went on after it would go through 10 s later
      proxy.addFault({ method: 'POST', path: /\/blobs\/uploads\/$/, action: { delayMs: UPLOAD_DELAY_MS } });
      const target = uniqueName('cancel');
      const repo = `cancel/${target}`;
      const src = `${uniqueName('rp-trust-cancel')}:src`;
      images.push(src);
      await buildOneLayerImage(eng, src, { 'payload.bin': randomBytes(512 * 1024), 'app.txt': 'cancel\n' });
      const spy = createSpy(spyDir());
      const job = new Job();
      cleanups.push(() => job.cleanup());
      const step = startMain(
        job,
        {
          'app-slug': 'cancel',
          image: src,
          'target-image': target,
          tag: '1.0.0',
          registry: proxy.host,
          token,
          upload,
        },
        { DOCKER_HOST: eng.host, PATH: spy.path() },
      );
      try {
        await waitFor(
          'the first blob upload at the proxy',
          () => proxy.count('POST', /\/blobs\/uploads\/$/) > 0,
          90_000,
        );
      } catch (e) {
        process.kill(step.pid, 'SIGKILL');
        throw new Error(`${(e as Error).message}\n${tail(step.stdout())}`, { cause: e });
      }
      const inFlightAt = Date.now();
      const pushes = spy.alive().filter((c) => c.args[0] === 'push');
      const before = {
        // a docker push whose reference names the registry (through the proxy)
        pushingToRegistry: pushes.some((c) => c.args.at(-1)!.startsWith(`${proxy.host}/`)),
        // on the containerd store the chunked uploader reads the image through the engine's own push to the run's
        // receiver on 127.0.0.1 (loopback-push.ts); that push never talks to the registry
        pushingElsewhere: pushes.filter((c) => !c.args.at(-1)!.startsWith(`${proxy.host}/`)).map((c) => c.args.at(-1)),
        children: descendants(step.pid).length > 0,
      };
      const cancel = await cancelLikeRunner(step, first);
      const { end } = cancel;
      const atExit = {
        signalsSent: cancel.sent.map((s) => s.signal),
        code: end.code,
        claimsPushed: /^pushed: /m.test(end.stdout),
        dockerAlive: spy.alive().map((c) => `${c.pid} docker ${c.args.join(' ')}`),
        descendants: descendants(step.pid).map((d) => `${d.pid} ${d.cmdline}`),
        workDirInState: (end.state.workDir ?? '').startsWith(join(job.runnerTemp, 'replicated-push-')),
        runnerTemp: entries(job.runnerTemp),
      };

      // wait past when the push would have ended: until the registry has heard nothing for longer than the delay
      await quiet(proxy, UPLOAD_DELAY_MS + 3_000, 150_000);
      const afterwards = {
        // the registry hears nothing new once the step is gone (docker 20.10's daemon finishes the one request it
        // had in flight and begins the next, which it cuts at once: neither reaches the registry with anything)
        reachedRegistryAfterExit: proxy.requests
          .filter((r) => r.startedAt > end.endedAt + 500 && r.upstreamStatus !== 0)
          .map((r) => `${r.method} ${r.path} ${r.upstreamStatus}`),
        blobsInRepository: blobsLinked(reg, repo),
        manifestPuts: proxy.count('PUT', /\/manifests\//),
        tag: await manifestDigest(reg, repo, '1.0.0'),
        tags: await listTags(reg, repo),
        dockerAlive: spy.alive().map((c) => `${c.pid} docker ${c.args.join(' ')}`),
        // the ref the run tagged was new: gone
        localNames: await leftovers(eng, { ids: runIds(spy.calls()), target }),
      };
      const post = await job.post(end.state);
      const afterPost = { code: post.code, runnerTemp: entries(job.runnerTemp) };
      process.stderr.write(
        `[trust ${eng.name}] ${first} mid-push (upload: ${upload}): step exited ${end.code ?? end.signal} ${end.endedAt - inFlightAt} ms ` +
          `after the signal; docker push alive at the first upload: ${JSON.stringify(pushes.map((c) => c.args.at(-1)))}; ` +
          `proxy timeline (ms from the signal):\n${timeline(proxy, inFlightAt)}\n`,
      );

      // docker push to the registry is the step's child while it uploads; the chunked uploader is the step itself,
      // and any push it runs goes to its own receiver on 127.0.0.1 (whether that push is still alive at the first
      // upload the proxy sees depends on timing, so only where it goes is asserted)
      const loopbackRef = /^127\.0\.0\.1:\d+\/replicated-push-[^/]+\/upload:[^/]+$/;
      if (upload === 'chunked') {
        expect({
          pushingToRegistry: before.pushingToRegistry,
          otherPushesGoToLoopback: before.pushingElsewhere.every((r) => loopbackRef.test(r!)),
        }).toEqual({ pushingToRegistry: false, otherPushesGoToLoopback: true });
      } else {
        expect(before).toEqual({ pushingToRegistry: true, pushingElsewhere: [], children: true });
      }
      expect({ atExit, afterwards, afterPost }).toEqual({
        atExit: {
          signalsSent: [first],
          code,
          claimsPushed: false,
          dockerAlive: [],
          descendants: [],
          workDirInState: true,
          runnerTemp: [],
        },
        afterwards: {
          reachedRegistryAfterExit: [],
          blobsInRepository: [],
          manifestPuts: 0,
          tag: null,
          tags: [],
          dockerAlive: [],
          localNames: [],
        },
        afterPost: { code: 0, runnerTemp: [] },
      });
    });
  }

  // Issue 11 item 7, the relayer's children: before the fix `docker save` went on after the step was gone.
  test('SIGINT while the image is re-layered (docker save | relayer | docker load): exits 130, no docker child left, nothing pushed', async () => {
    const token = `trust-cancel-split-${randomBytes(12).toString('hex')}`;
    const { reg, proxy } = await proxied(token);
    const target = uniqueName('cancelsplit');
    const repo = `cancelsplit/${target}`;
    const src = `${uniqueName('rp-trust-cancel-split')}:src`;
    images.push(src);
    const files: Record<string, Buffer | string> = { 'app.txt': 'cancel split\n' };
    for (let i = 0; i < 48; i++) files[`data/part-${i}.bin`] = randomBytes(MB);
    await buildOneLayerImage(eng, src, files);
    const spy = createSpy(spyDir());
    const recorder = await recordEngine(spyDir(), eng.host);
    cleanups.push(() => recorder.close());
    const job = new Job();
    cleanups.push(() => job.cleanup());
    const step = startMain(
      job,
      {
        'app-slug': 'cancelsplit',
        image: src,
        'target-image': target,
        tag: '1.0.0',
        registry: proxy.host,
        token,
        'max-layer-size': '8MB',
        'layer-split': 'auto',
        upload: 'docker',
      },
      { DOCKER_HOST: recorder.host, PATH: spy.path() },
    );
    const relayering = () => spy.alive().filter((c) => c.args[0] === 'save' || c.args[0] === 'load');
    let caught: string[] = [];
    try {
      await waitFor(
        'docker save or docker load running',
        () => (caught = relayering().map((c) => c.args[0])).length > 0,
        90_000,
      );
    } catch (e) {
      process.kill(step.pid, 'SIGKILL');
      throw new Error(`${(e as Error).message}\n${tail(step.stdout())}`, { cause: e });
    }
    const signalledAt = Date.now();
    const cancel = await cancelLikeRunner(step, 'SIGINT');
    const { end } = cancel;
    // the split image, if docker load got as far as naming it
    const ids = new Set([
      ...runIds(spy.calls(), recorder.requests()),
      ...[...end.stdout.matchAll(/replicated-push-split-([0-9a-f]+):\d+/g)].map((m) => m[1]),
    ]);
    const observed = {
      signalsSent: cancel.sent.map((s) => s.signal),
      code: end.code,
      dockerAlive: spy.alive().map((c) => `${c.pid} docker ${c.args.join(' ')}`),
      descendants: descendants(step.pid).map((d) => `${d.pid} ${d.cmdline}`),
      runnerTemp: entries(job.runnerTemp),
      uploads: proxy.count('POST', /\/blobs\/uploads\/$/),
      manifestPuts: proxy.count('PUT', /\/manifests\//),
      tag: await manifestDigest(reg, repo, '1.0.0'),
      localNames: await leftovers(eng, { ids, target }),
    };
    const post = await job.post(end.state);
    process.stderr.write(
      `[trust ${eng.name}] SIGINT during ${caught.join('+')}: step exited ${end.code ?? end.signal} ` +
        `${end.endedAt - signalledAt} ms after the signal\n`,
    );
    expect({ ...observed, post: post.code, runnerTempAfterPost: entries(job.runnerTemp) }).toEqual({
      signalsSent: ['SIGINT'],
      code: 130,
      dockerAlive: [],
      descendants: [],
      runnerTemp: [],
      uploads: 0,
      manifestPuts: 0,
      tag: null,
      localNames: [],
      post: 0,
      runnerTempAfterPost: [],
    });
  });

  // Issue 11 item 9. The token reaches the step as INPUT_TOKEN (and here also as another variable of the job);
  // no child may inherit either. layer-split: auto so that docker save and docker load run too.
  test('no docker or zstd child gets the token in its environment; DOCKER_CONFIG is the run’s own under RUNNER_TEMP', async () => {
    const token = `trust-secret-${randomBytes(16).toString('hex')}`;
    const { reg, proxy } = await proxied(token);
    const target = uniqueName('secret');
    const src = `${uniqueName('rp-trust-env')}:src`;
    images.push(src);
    const files = sixMegabytes('env');
    // on engine B the layer is zstd-compressed: the action's Node 24 decompresses it with zlib, in its own process
    await buildOneLayerImage(eng, src, files, { zstd: eng.name === 'B' });
    const spy = createSpy(spyDir());
    const job = new Job();
    cleanups.push(() => job.cleanup());
    const run = await job.main(
      {
        'app-slug': 'secret',
        image: src,
        'target-image': target,
        tag: '1.0.0',
        registry: proxy.host,
        token,
        'max-layer-size': '2MB',
        'layer-split': 'auto',
        // the path with every kind of child: docker save, docker load, docker push
        upload: 'docker',
      },
      // a job that also hands the secret to the step under another name, as `env: REPLICATED_TOKEN: ${{ secrets.X }}` does
      { env: { DOCKER_HOST: eng.host, PATH: spy.path(), REPLICATED_TOKEN: token, DEPLOY_NOTE: `token is ${token}` } },
    );
    expect({ code: run.code, out: tail(run.stdout) }).toMatchObject({ code: 0 });
    const held = await heldImage(reg, `secret/${target}`, '1.0.0');
    expect(held.files).toEqual(digests(files));
    // the one 6 MB layer arrived in pieces of at most 2 MB: the relayer read it (on B: decompressed the zstd)
    expect(held.layerSizes.length).toBeGreaterThanOrEqual(3);

    const calls = spy.calls();
    const verbs = new Set(calls.filter((c) => c.command === 'docker').map((c) => c.args[0]));
    // the children that matter were seen: login (the secret on stdin), push, and the relayer's save and load
    for (const verb of ['login', 'push', 'save', 'load']) expect([...verbs]).toContain(verb);
    // Node 24 has zlib zstd (22.15+): the relayer starts no zstd command, on either engine
    expect(calls.filter((c) => c.command === 'zstd')).toEqual([]);
    const leaks = calls.flatMap((c) => {
      const where = `${c.command} ${c.args.slice(0, 2).join(' ')} (pid ${c.pid})`;
      return [
        ...Object.entries(c.env)
          .filter(([name, value]) => name === 'INPUT_TOKEN' || value.includes(token))
          .map(([name]) => `${where}: env ${name}`),
        ...c.args.filter((a) => a.includes(token)).map(() => `${where}: argv`),
      ];
    });
    expect(leaks).toEqual([]);
    // docker's credentials are the run's own; zstd needs none
    for (const c of calls.filter((d) => d.command === 'docker')) {
      expect({ call: `${c.command} ${c.args[0]}`, DOCKER_CONFIG: c.env.DOCKER_CONFIG ?? '' }).toEqual({
        call: `${c.command} ${c.args[0]}`,
        DOCKER_CONFIG: expect.stringMatching(new RegExp(`^${join(job.runnerTemp, 'replicated-push-')}`)),
      });
    }
    // the variables that do not hold the secret still reach the children (the engine is found through them)
    expect(calls.filter((c) => c.command === 'docker').every((c) => c.env.DOCKER_HOST === eng.host)).toBe(true);
    // `::add-mask::` is how the runner learns to mask it; nowhere else may the log hold it
    expect(run.stdout.split('\n').filter((l) => !l.startsWith('::add-mask::') && l.includes(token))).toEqual([]);
    expect(entries(job.runnerTemp)).toEqual([]);
    process.stderr.write(
      `[trust ${eng.name}] environment of ${calls.length} children checked (docker ${[...verbs].sort().join(', ')}; ` +
        `zstd x${calls.filter((c) => c.command === 'zstd').length})\n`,
    );
  });

  test('a failed push (403 on the manifest) leaves nothing: own images gone, a ref that existed points where it did', async () => {
    const token = `trust-denied-${randomBytes(12).toString('hex')}`;
    const { reg, proxy } = await proxied(token);
    proxy.addFault({
      method: 'PUT',
      path: /\/manifests\//,
      action: { status: 403, body: DENIED, headers: { 'content-type': 'application/json; charset=utf-8' } },
    });
    const target = uniqueName('denied');
    const src = `${uniqueName('rp-trust-denied')}:src`;
    const other = `${uniqueName('rp-trust-other')}:before`;
    // the ref the run will tag already names another image on this engine: it must name it again afterwards
    const ref = `${proxy.host}/denied/${target}:1.0.0`;
    images.push(src, other, ref);
    await Promise.all([
      buildOneLayerImage(eng, src, sixMegabytes('denied')),
      buildOneLayerImage(eng, other, { 'other.txt': 'the image the ref named before\n' }),
    ]);
    await docker(eng.host, ['tag', other, ref]);
    const idOf = (name: string) => docker(eng.host, ['image', 'inspect', '--format', '{{.Id}}', name]);
    const before = await idOf(ref);
    const spy = createSpy(spyDir());
    const recorder = await recordEngine(spyDir(), eng.host);
    cleanups.push(() => recorder.close());
    const job = new Job();
    cleanups.push(() => job.cleanup());
    const run = await job.main(
      {
        'app-slug': 'denied',
        image: src,
        'target-image': target,
        tag: '1.0.0',
        registry: proxy.host,
        token,
        'max-layer-size': '2MB',
        'layer-split': 'auto',
        upload: 'docker',
        retries: '0',
      },
      { env: { DOCKER_HOST: recorder.host, PATH: spy.path() } },
    );
    expect({ code: run.code, out: tail(run.stdout) }).toMatchObject({ code: 1 });
    expect(run.stdout).toMatch(/^::error /m);
    expect(proxy.count('PUT', /\/manifests\//, 403)).toBeGreaterThanOrEqual(1);
    expect(await manifestDigest(reg, `denied/${target}`, '1.0.0')).toBeNull();

    const ids = runIds(spy.calls(), recorder.requests());
    expect({
      refNamesWhatItDidBefore: (await idOf(ref)) === before,
      localNames: (await leftovers(eng, { ids, target })).filter((n) => n !== ref),
      runnerTemp: entries(job.runnerTemp),
      runsWithOwnNames: ids.size,
    }).toEqual({ refNamesWhatItDidBefore: true, localNames: [], runnerTemp: [], runsWithOwnNames: 1 });
  });
});
