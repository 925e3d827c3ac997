// Several images in one step (issue 20), with the fakes of core-fakes.ts: every image read and checked before the
// first push, one docker login, at most MAX_PARALLEL_IMAGES pushed at once, and after a failure nothing more pushed,
// with the failure naming the image and what became of the others. The registry's own state is what is asserted.
import { ActionFailure, MAX_PARALLEL_IMAGES, runImages, type RunResult, type RunResults } from '../../src/core/run.js';
import { readConfigs, type Config } from '../../src/core/inputs.js';
import type { ImagePushRequest } from '../../src/upload/push-image.js';
import type { ChunkedPushResult } from '../../src/upload/errors.js';
import { outputLines, pushedOutputs, pushedSoFar, resultOutputs } from '../../src/adapters/wiring.js';
import { harness, image, modelManifest, type Harness } from '../../test/fixtures/core-fakes.js';

const WEB = modelManifest('linux/amd64', ['web layer']);
const WORKER = modelManifest('linux/amd64', ['worker layer']);
const JOBS = modelManifest('linux/amd64', ['jobs layer']);
const DOCS = modelManifest('linux/amd64', ['docs layer']);

function configs(imageText: string, more: Record<string, string> = {}): readonly Config[] {
  const all: Record<string, string> = {
    'app-slug': 'my-app',
    image: imageText,
    token: 's3cret-token',
    tag: '1.0.0, 1.0',
    registry: 'registry.example.com',
    'retry-delay': '1s',
    ...more,
  };
  return readConfigs((name) => all[name] ?? '', { ref: '' });
}

function setUp(): Harness {
  const h = harness();
  h.docker.add('api:dev', image([1000, 2000]));
  h.sources.images.set('oci:web', WEB);
  h.sources.images.set('oci:worker', WORKER);
  h.sources.images.set('oci:jobs', JOBS);
  h.sources.images.set('oci:docs', DOCS);
  return h;
}

const THREE = 'api:dev\nweb=oci:web\nworker=oci:worker';

async function failure(p: Promise<RunResults>): Promise<ActionFailure> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ActionFailure);
  return e as ActionFailure;
}

/** Every tag the registry holds (repository:tag), the ones by digest left out. */
const tagsHeld = (h: Harness) =>
  [...h.registry.tags.keys()].filter((k) => !k.includes('@') && !k.includes(':sha256')).sort();

/** Until the registry holds both tags of `repo` (its push and verification ended), a few hundred turns at most. */
async function untilTagged(h: Harness, repo: string): Promise<void> {
  for (let i = 0; i < 500 && tagsHeld(h).filter((t) => t.startsWith(`${repo}:`)).length < 2; i++)
    await new Promise((ok) => setImmediate(ok));
}

/** pushImage held until released (or aborted, as the real uploader ends then), counting how many run at once. */
function gated(h: Harness) {
  const real = h.deps.ports.pushImage;
  const waiting = new Map<string, (r?: ChunkedPushResult) => void>();
  const started: string[] = [];
  let inFlight = 0;
  let most = 0;
  const pushImage = async (req: ImagePushRequest): Promise<ChunkedPushResult> => {
    started.push(req.repositoryPath);
    most = Math.max(most, ++inFlight);
    try {
      const scripted = await new Promise<ChunkedPushResult | undefined>((resolve) => {
        waiting.set(req.repositoryPath, resolve);
        req.signal.addEventListener('abort', () =>
          resolve({ ok: false, stop: { status: null, phase: 'chunk', message: 'upload cancelled' }, layer: 1 }),
        );
      });
      return scripted ?? (await real(req));
    } finally {
      inFlight--;
    }
  };
  const release = async (repo: string, r?: ChunkedPushResult) => {
    for (let i = 0; i < 50 && !waiting.has(repo); i++) await new Promise((ok) => setImmediate(ok));
    const go = waiting.get(repo);
    if (!go) throw new Error(`${repo} never started`);
    waiting.delete(repo);
    go(r);
  };
  return { deps: { ...h.deps, ports: { ...h.deps.ports, pushImage } }, started, release, most: () => most };
}

const REFUSED: ChunkedPushResult = {
  ok: false,
  stop: { status: 400, phase: 'manifest', message: 'MANIFEST_INVALID: manifest invalid' },
  layer: null,
};

describe('runImages: several images', () => {
  test('three images, two tags: every reference in the registry, one login, outputs agree with it', async () => {
    const h = setUp();
    const r = await runImages(configs(THREE), h.deps);
    expect(r.images.map((i) => i.target)).toEqual(['api', 'web', 'worker']);
    expect(tagsHeld(h)).toEqual(
      ['api', 'web', 'worker'].flatMap((t) => [`my-app/${t}:1.0`, `my-app/${t}:1.0.0`]).sort(),
    );
    expect(h.docker.calls.filter((c) => c.startsWith('login') || c.startsWith('start-login'))).toEqual([
      'start-login registry.example.com replicated-push',
      'login registry.example.com replicated-push',
    ]);
    const out = resultOutputs(r);
    const images = JSON.parse(out.images) as Array<{ target: string; refs: string[]; digest: string }>;
    for (const entry of images)
      for (const ref of entry.refs) {
        const key = ref.slice('registry.example.com/'.length);
        expect(h.registry.tags.get(key)).toBe(entry.digest);
      }
    expect(images.map((i) => i.target)).toEqual(['api', 'web', 'worker']);
    expect(out.refs.split('\n')).toHaveLength(6);
    expect(out.ref).toBe('registry.example.com/my-app/api:1.0.0');
    expect(out.digest).toBe(images[0].digest);
    expect(h.sources.closed.sort()).toEqual(['oci:web', 'oci:worker']);
    // each image's lines say whose they are
    expect(h.log.lines.some((l) => l.startsWith('[web] '))).toBe(true);
  });

  test('a missing image among three: the step fails naming it, and nothing at all is pushed', async () => {
    const h = setUp();
    const e = await failure(runImages(configs('api:dev\nweb=oci:missing\nworker=oci:worker'), h.deps));
    expect(e.title).toMatch(/^web: /);
    expect(e.message).toMatch(/^image 'web' \(oci:missing\): .*no such file/);
    expect(e.message).toContain('Nothing was pushed');
    expect(tagsHeld(h)).toEqual([]);
    expect(h.docker.calls.filter((c) => c.startsWith('push'))).toEqual([]);
    expect(h.uploader.images).toEqual([]);
    expect(h.sources.closed).toEqual(['oci:worker']); // what was opened is closed again
  });

  test(`at most ${MAX_PARALLEL_IMAGES} at once; the fourth starts when one ends`, async () => {
    expect(MAX_PARALLEL_IMAGES).toBe(3);
    const h = setUp();
    const g = gated(h);
    const run = runImages(configs('web=oci:web\nworker=oci:worker\njobs=oci:jobs\ndocs=oci:docs'), g.deps);
    for (let i = 0; i < 50 && g.started.length < 3; i++) await new Promise((ok) => setImmediate(ok));
    expect(g.started).toEqual(['my-app/web', 'my-app/worker', 'my-app/jobs']);
    await g.release('my-app/worker');
    await g.release('my-app/docs');
    await g.release('my-app/web');
    await g.release('my-app/jobs');
    await run;
    expect(g.most()).toBe(MAX_PARALLEL_IMAGES);
    expect(g.started).toEqual(['my-app/web', 'my-app/worker', 'my-app/jobs', 'my-app/docs']);
  });

  test('one image fails: the one in flight is stopped, the next never started, and the message says so', async () => {
    const h = setUp();
    const g = gated(h);
    const run = runImages(
      configs('web=oci:web\nworker=oci:worker\njobs=oci:jobs\ndocs=oci:docs', { retries: '0' }),
      g.deps,
    );
    const failed = failure(run);
    await g.release('my-app/worker', REFUSED);
    const e = await failed;
    expect(e.title).toMatch(/^worker: /);
    expect(e.message).toMatch(/^image 'worker' \(oci:worker\): /);
    expect(e.message).toContain('No image was pushed completely.');
    expect(e.message).toContain(
      "Stopped while pushing (some of their tags may have reached the registry): image 'web'",
    );
    expect(e.message).toMatch(/Stopped while pushing[^\n]*image 'jobs' \(oci:jobs\)/);
    expect(e.message).toContain("Not pushed (never started): image 'docs' (oci:docs)");
    expect(g.started).toEqual(['my-app/web', 'my-app/worker', 'my-app/jobs']);
    expect(tagsHeld(h)).toEqual([]);
  });

  test('one image fails after another was pushed: that one is listed with every tag', async () => {
    const h = setUp();
    const g = gated(h);
    const told: Array<{ r: RunResult; i: number }> = [];
    const record = pushedSoFar();
    expect(record.outputs()).toBeNull();
    const run = runImages(configs('web=oci:web\nworker=oci:worker\njobs=oci:jobs', { retries: '0' }), g.deps, {
      onPushed: (r, i) => {
        told.push({ r, i });
        record.hooks.onPushed?.(r, i);
      },
    });
    const failed = failure(run);
    await g.release('my-app/web');
    await untilTagged(h, 'my-app/web');
    await g.release('my-app/jobs', REFUSED);
    const e = await failed;
    expect(e.title).toMatch(/^jobs: /);
    expect(e.message).toContain(
      "Already pushed, with every tag:\n- image 'web' (oci:web): registry.example.com/my-app/web:1.0.0, " +
        'registry.example.com/my-app/web:1.0',
    );
    expect(e.message).toContain(
      "Stopped while pushing (some of their tags may have reached the registry): image 'worker'",
    );
    expect(tagsHeld(h)).toEqual(['my-app/web:1.0', 'my-app/web:1.0.0']);
    // what the outputs say after the failure: the one image the registry holds, by its line
    expect(told.map((t) => [t.r.target, t.i])).toEqual([['web', 0]]);
    const out = pushedOutputs(told.map((t) => t.r));
    expect(record.outputs()).toEqual(out);
    expect(out.refs).toBe('registry.example.com/my-app/web:1.0.0\nregistry.example.com/my-app/web:1.0');
    const [entry] = JSON.parse(out.images) as Array<{ target: string; digest: string }>;
    expect(entry.target).toBe('web');
    expect(entry.digest).toBe(h.registry.tags.get('my-app/web:1.0.0'));
    // the CLI prints them a line each, the list of refs on one line
    expect(outputLines(out).split('\n')).toEqual([
      'refs=registry.example.com/my-app/web:1.0.0,registry.example.com/my-app/web:1.0',
      `images=${out.images}`,
      '',
    ]);
  });

  test("the runner's cancel: a Cancelled that lists what was pushed", async () => {
    const h = setUp();
    const g = gated(h);
    const run = runImages(configs('web=oci:web\nworker=oci:worker\njobs=oci:jobs'), g.deps);
    await g.release('my-app/web');
    await untilTagged(h, 'my-app/web');
    h.controller.abort();
    const e = await failure(run);
    expect(e.title).toBe('Cancelled');
    expect(e.message).toContain("- image 'web' (oci:web)");
    expect(e.message).toContain('Stopped while pushing');
    expect(tagsHeld(h)).toEqual(['my-app/web:1.0', 'my-app/web:1.0.0']);
  });
});
