// Issue 20: several images in one step, through dist/ as the runner runs it, against a real registry behind the
// fault proxy (the Replicated registry's token auth). Two OCI layouts built FROM scratch on engine B (buildx, no
// docker needed to push them) that share a 2 MB layer, and one image in engine A's classic store. What the registry
// holds is read from the registry (tag lists, manifest digests, blobs), never from the action's own words.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job, type StepRun } from '../../test/support/action-runner.js';
import { startFaultProxy, type FaultProxy } from '../../test/support/fault-proxy.js';
import { buildImage, docker, engine, removeImages, uniqueName } from '../../test/support/images.js';
import { listTags, manifestDigest, rawBytes, startRegistry, type Registry } from '../../test/support/registry.js';

const TOKEN = 'rp-multi-token-5e1a';
const SHARED_SIZE = 2 * 1024 * 1024;
const engA = engine('A');
const engB = engine('B');

interface ImageEntry {
  source: string;
  target: string;
  refs: string[];
  digest: string;
  'pinned-ref': string;
  attempts: number;
}

function layoutBlob(dir: string, digest: string): Buffer {
  return readFileSync(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));
}

/** The layer digests of a one-platform OCI layout, read from its files. */
function layersOf(dir: string): string[] {
  const blob = (d: string) => readFileSync(join(dir, 'blobs', 'sha256', d.slice('sha256:'.length)), 'utf8');
  const top = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(blob(top.manifests[0].digest)) as { layers: { digest: string }[] };
  return manifest.layers.map((l) => l.digest);
}

/** The step's error annotation, its workflow-command escapes undone (%0A a newline, %3A a colon in the title). */
function errorAnnotation(run: StepRun): string {
  const line = run.stdout.split('\n').find((l) => l.startsWith('::error')) ?? '';
  return line
    .replace(/%0A/g, '\n')
    .replace(/%0D/g, '\r')
    .replace(/%3A/g, ':')
    .replace(/%2C/g, ',')
    .replace(/%25/g, '%');
}

describe('several images in one step (issue 20)', () => {
  let upstream: Registry;
  let proxy: FaultProxy;
  let work: string;
  let web: string;
  let worker: string;
  let shared: string;
  const engineImage = `${uniqueName('rp-multi-api')}:dev`;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'rp-multi-'));
    upstream = await startRegistry();
    proxy = await startFaultProxy({ upstream, auth: { scheme: 'bearer', token: TOKEN } });
    const ctx = join(work, 'ctx');
    mkdirSync(ctx);
    // the same file COPYed first in both: BuildKit makes the same layer, byte for byte
    writeFileSync(join(ctx, 'shared.bin'), randomBytes(SHARED_SIZE));
    writeFileSync(join(ctx, 'web.txt'), 'the web front\n');
    writeFileSync(join(ctx, 'worker.txt'), 'the worker\n');
    const build = async (name: string) => {
      writeFileSync(join(ctx, `${name}.Dockerfile`), `FROM scratch\nCOPY shared.bin /shared.bin\nCOPY ${name}.txt /\n`);
      const dest = join(work, name);
      await docker(engB.host, [
        'buildx',
        'build',
        '--platform',
        'linux/amd64',
        '--provenance=false',
        '-f',
        join(ctx, `${name}.Dockerfile`),
        '--output',
        `type=oci,dest=${dest},tar=false`,
        ctx,
      ]);
      return dest;
    };
    [web, worker] = await Promise.all([
      build('web'),
      build('worker'),
      buildImage(engA, engineImage, { files: { '/api.bin': 300_000 } }),
    ]);
    [shared] = layersOf(web);
  }, 180_000);

  afterAll(async () => {
    await removeImages(engA, [engineImage]);
    await proxy?.stop();
    await upstream?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  function inputs(image: string, tag: string, more: Record<string, string> = {}): Record<string, string> {
    return { 'app-slug': 'my-app', image, tag, token: TOKEN, registry: proxy.host, 'retry-delay': '1s', ...more };
  }

  async function step(image: string, tag: string, more: Record<string, string> = {}): Promise<StepRun> {
    const job = new Job();
    try {
      return await job.main(inputs(image, tag, more), { env: { DOCKER_HOST: engA.host }, timeoutMs: 240_000 });
    } finally {
      job.cleanup();
    }
  }

  test('the rig: both layouts start with the same 2 MB layer', () => {
    expect(layersOf(worker)[0]).toBe(shared);
    expect(layersOf(web)[1]).not.toBe(layersOf(worker)[1]);
  });

  test('three images, two tags, one step: every reference in the registry, the images output agreeing', async () => {
    const run = await step(`web=oci:${web}\nworker=oci:${worker}\napi=${engineImage}`, '1.0.0, 1.0');
    expect(run.stdout).not.toMatch(/^::error/m);
    expect(run.code).toBe(0);
    for (const t of ['web', 'worker', 'api'])
      expect((await listTags(upstream, `my-app/${t}`)).sort()).toEqual(['1.0', '1.0.0']);
    const images = JSON.parse(run.outputs.images) as ImageEntry[];
    expect(images.map((i) => i.target)).toEqual(['web', 'worker', 'api']);
    expect(images.map((i) => i.source)).toEqual([`oci:${web}`, `oci:${worker}`, engineImage]);
    for (const i of images) {
      expect(i.refs).toEqual(['1.0.0', '1.0'].map((t) => `${proxy.host}/my-app/${i.target}:${t}`));
      for (const t of ['1.0.0', '1.0']) expect(await manifestDigest(upstream, `my-app/${i.target}`, t)).toBe(i.digest);
      expect(i['pinned-ref']).toBe(`${proxy.host}/my-app/${i.target}@${i.digest}`);
    }
    expect(run.outputs.refs.split('\n')).toEqual(images.flatMap((i) => i.refs));
    expect(run.outputs.ref).toBe(images[0].refs[0]);
    expect(run.outputs.digest).toBe(images[0].digest);
    expect(run.summary).toContain('pushed 3 images');
    for (const t of ['web', 'worker', 'api']) expect(run.summary).toContain(`| \`${t}\` |`);
  });

  test('two images sharing a layer: its bytes cross the wire once, and both repositories serve it', async () => {
    const before = proxy.requests.length;
    const run = await step(`web2=oci:${web}\nworker2=oci:${worker}`, '1.0.0');
    expect(run.code).toBe(0);
    const mine = proxy.requests.slice(before);
    const commits = mine.filter((r) => r.method === 'PUT' && r.url.includes(`digest=${encodeURIComponent(shared)}`));
    expect(commits).toHaveLength(1);
    const sent = mine.filter((r) => r.method === 'PATCH' || r.method === 'PUT').reduce((n, r) => n + r.requestBytes, 0);
    expect(sent).toBeGreaterThan(SHARED_SIZE);
    expect(sent).toBeLessThan(2 * SHARED_SIZE);
    const mounted = mine.filter((r) => r.method === 'POST' && r.url.includes(`mount=${encodeURIComponent(shared)}`));
    // the mount was asked once (a 401 first is the token challenge for its scope) and the registry linked it
    expect(mounted.filter((r) => r.status === 201)).toHaveLength(1);
    for (const repo of ['my-app/web2', 'my-app/worker2']) {
      const blob = await rawBytes(upstream, repo, 'blobs', shared);
      expect(blob?.bytes.equals(layoutBlob(web, shared))).toBe(true);
    }
  });

  test('one bad image among three: the step fails naming it, and no tag list changes', async () => {
    const repos = ['web', 'worker', 'api', 'missing'].map((t) => `my-app/${t}`);
    const tagsBefore = await Promise.all(repos.map((r) => listTags(upstream, r)));
    const run = await step(`web=oci:${web}\nmissing=oci:${join(work, 'no-such-layout')}\napi=${engineImage}`, '2.0.0');
    expect(run.code).toBe(1);
    const error = errorAnnotation(run);
    expect(error).toMatch(/^::error title=missing: Image not readable::image 'missing' \(oci:.*no-such-layout\): /);
    expect(error).toContain('\n\nNothing was pushed: every image is read and checked before the first push');
    expect(await Promise.all(repos.map((r) => listTags(upstream, r)))).toEqual(tagsBefore);
  });

  test('a push failure of one image: the error names it, lists the others as pushed or not, the registry agrees', async () => {
    proxy.addFault({
      method: 'PUT',
      path: /^\/v2\/my-app\/worker\/manifests\/3\.0\.0$/,
      action: {
        status: 403,
        body: '{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}',
      },
    });
    try {
      const run = await step(`web=oci:${web}\nworker=oci:${worker}\napi=${engineImage}`, '3.0.0', { retries: '0' });
      expect(run.code).toBe(1);
      const error = errorAnnotation(run);
      expect(error).toMatch(/^::error title=worker: /);
      expect(error).toContain("image 'worker' (oci:");
      expect(await listTags(upstream, 'my-app/worker')).not.toContain('3.0.0');
      // the outputs name exactly the images pushed and verified before the failure, as the registry holds them
      const outputImages = JSON.parse(run.outputs.images ?? '[]') as ImageEntry[];
      expect(run.outputs.refs ?? '').toBe(outputImages.flatMap((i) => i.refs).join('\n'));
      for (const i of outputImages)
        expect(await manifestDigest(upstream, `my-app/${i.target}`, '3.0.0')).toBe(i.digest);
      // every other image is in exactly one list, and the registry says the same
      for (const t of ['web', 'api']) {
        const held = (await listTags(upstream, `my-app/${t}`)).includes('3.0.0');
        const pushed = new RegExp(`^- image '${t}' \\([^)]*\\): .*my-app/${t}:3\\.0\\.0`, 'm').test(error);
        const notStarted = new RegExp(`^Not pushed \\(never started\\): .*image '${t}'`, 'm').test(error);
        const stopped = new RegExp(`^Stopped while pushing .*image '${t}'`, 'm').test(error);
        expect([pushed, notStarted, stopped].filter(Boolean)).toHaveLength(1);
        expect(outputImages.some((i) => i.target === t)).toBe(pushed);
        if (pushed) expect(held).toBe(true);
        if (notStarted) expect(held).toBe(false);
      }
    } finally {
      proxy.clearFaults();
    }
  });
});
