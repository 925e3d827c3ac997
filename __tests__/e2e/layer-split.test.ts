// layer-split: auto through the action (issue 5): the big layer is split before the first upload, or halved
// after a 524, the registry ends up with smaller layers, and the image pulled back has the same filesystem. With
// the default upload (auto) the pieces go to the registry directly as blobs (issue 12): no docker load, nothing new
// in the engine; upload: docker keeps save -> load -> docker push.
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job } from '../../test/support/action-runner.js';
import { exportFilesystem } from '../../test/support/export.js';
import { startFaultProxy } from '../../test/support/fault-proxy.js';
import {
  describeEachEngine,
  describeEngine,
  docker,
  removeImages,
  uniqueName,
  type Engine,
} from '../../test/support/images.js';
import { rawManifest, startRegistry, type Registry } from '../../test/support/registry.js';
import { runnerCommands } from '../../test/support/runner-commands.js';

const TOKEN = 'split-token-51d0';

/** Pulls what the registry holds (skopeo, not the action) into the engine under `name`. */
async function pullBack(e: Engine, reg: Registry, repo: string, tag: string, name: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-pull-'));
  try {
    const [user, password] = Object.entries(reg.users)[0];
    const archive = join(dir, 'image.tar');
    await new Promise<void>((resolve, reject) => {
      const child = spawn('skopeo', [
        'copy',
        '--src-tls-verify=false',
        '--src-creds',
        `${user}:${password}`,
        `docker://${reg.host}/${repo}:${tag}`,
        `docker-archive:${archive}:${name}`,
      ]);
      let err = '';
      child.stderr.on('data', (c) => {
        err += c;
      });
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`skopeo copy: ${err}`))));
    });
    await docker(e.host, ['load', '-i', archive]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describeEachEngine('layer-split: auto on $label', (eng: Engine) => {
  let reg: Registry;
  const images: string[] = [];
  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => {
    await removeImages(eng, images);
    await reg?.stop();
  });

  test.each([
    ['auto', 'its pieces uploaded directly: no docker load, nothing new in the engine'],
    ['docker', 'saved, loaded and docker pushed'],
  ])(
    'upload: %s: splits the layer over max-layer-size before the first upload, %s; same filesystem after a round trip',
    async (upload) => {
      const src = `${uniqueName('rp-split')}:b`;
      const back = `${uniqueName('rp-back')}:pulled`;
      const app = `split-${upload}`;
      images.push(src, back, 'big:1.0.0-split');
      // one COPY of a directory: a single ~800 kB layer of eight files
      await buildDirImage(eng, src, 8, 100_000);
      const [user, password] = Object.entries(reg.users)[0];
      const before = await engineImages(eng);
      const since = Math.floor(Date.now() / 1000) - 1;
      const job = new Job();
      const run = await job.main(
        {
          'app-slug': app,
          image: src,
          'target-image': 'big',
          tag: '1.0.0',
          registry: reg.host,
          username: user,
          token: password,
          'max-layer-size': '300kB',
          'layer-split': 'auto',
          upload,
        },
        { env: { DOCKER_HOST: eng.host } },
      );
      const until = Math.floor(Date.now() / 1000) + 1;
      expect(run.code).toBe(0);
      // what the run left in the engine: nothing (the split image of upload: docker is removed at the end)
      const after = await engineImages(eng);
      expect(newImages(before, after, reg.host)).toEqual([]);
      const loads = await loadsOfNewImages(eng, before, since, until);
      if (upload === 'auto') {
        expect(loads).toEqual([]);
        expect(run.stdout).not.toMatch(/Loaded image/);
        expect(run.stdout).toMatch(/^::group::Push .* in chunks$/m);
        expect(run.stdout).toMatch(/blobs \(.* gzipped here/);
        // pipelined: the pieces went while the split was cutting; the push's HEADs find them there
        expect(run.stdout).toMatch(/^::group::Split layers[\s\S]*: uploaded [\s\S]*::endgroup::\n::group::Push/m);
        expect(run.stdout).toMatch(/already in the registry/);
      } else {
        // the check above sees a load when there is one
        expect(loads.length).toBeGreaterThanOrEqual(1);
      }
      expect(run.stdout).toMatch(/^::warning title=Layer 1 is 8\d\d kB::/m);
      expect(run.stdout).toMatch(/layer-split: 1 layers became [3-9]/);
      expect(run.summary).toContain('layer-split: auto re-layered the image: 1 layers became');
      const held = await rawManifest(reg, `${app}/big`, '1.0.0');
      expect(held?.digest).toBe(run.outputs.digest);
      const layers = held?.json.layers as { size: number }[];
      expect(layers.length).toBeGreaterThanOrEqual(3);
      // compressed random data is as big as the data: each blob stays near the limit (tar headers aside)
      for (const l of layers) expect(l.size).toBeLessThanOrEqual(310_000);
      await pullBack(eng, reg, `${app}/big`, '1.0.0', back);
      const [original, pulled] = await Promise.all([exportFilesystem(eng.host, src), exportFilesystem(eng.host, back)]);
      expect(Object.keys(pulled).filter((p) => p.startsWith('data'))).toHaveLength(9); // /data and its eight files
      expect(pulled).toEqual(original);
      job.cleanup();
    },
  );
});

describeEngine('B', 'adaptive re-split after a 524 (engine B: no per-layer retry in the engine)', (eng) => {
  test('halves the layer that timed out until the uploads pass, then pushes', async () => {
    const reg = await startRegistry();
    const proxy = await startFaultProxy({ upstream: reg, auth: { scheme: 'bearer', token: TOKEN } });
    // Cloudflare's 524 in miniature: any blob upload bigger than 350 kB times out, every time.
    proxy.addFault({
      method: 'PUT',
      path: /\/blobs\/uploads\//,
      action: { status: 524, body: 'error code: 524' },
      match: (req) => Number(req.headers['content-length'] ?? 0) > 350_000,
    });
    const src = `${uniqueName('rp-adapt')}:b`;
    const job = new Job();
    try {
      // a single 900 kB layer of nine files, under max-layer-size, so only the 524 can set off a split
      await buildDirImage(eng, src, 9, 100_000);
      const run = await job.main(
        {
          'app-slug': 'adapt',
          image: src,
          'target-image': 'svc',
          tag: '1.0.0',
          registry: proxy.host,
          token: TOKEN,
          'layer-split': 'auto',
          'max-layer-size': '10MB',
          // the re-split after a 524 on docker push (upload: auto would first retry in chunks)
          upload: 'docker',
          retries: '3',
          'retry-delay': '100ms',
        },
        { env: { DOCKER_HOST: eng.host } },
      );
      expect(run.code).toBe(0);
      expect(Number(run.outputs.attempts)).toBeGreaterThanOrEqual(2);
      expect(run.stdout).toMatch(/^::group::Re-split layer 1 to \d+ kB$/m);
      expect(proxy.count('PUT', /\/blobs\/uploads\//, 524)).toBeGreaterThanOrEqual(1);
      const held = await rawManifest(reg, 'adapt/svc', '1.0.0');
      expect(held?.digest).toBe(run.outputs.digest);
      for (const l of held?.json.layers as { size: number }[]) expect(l.size).toBeLessThanOrEqual(350_000);
    } finally {
      job.cleanup();
      await removeImages(eng, [src, 'svc:1.0.0-split']);
      await proxy.stop();
      await reg.stop();
    }
  });
});

describeEachEngine('a 524 on a piece uploaded directly on $label', (eng: Engine) => {
  test('re-splits from the user image into new, smaller blobs until the uploads pass; nothing loaded', async () => {
    const reg = await startRegistry();
    const proxy = await startFaultProxy({ upstream: reg, auth: { scheme: 'bearer', token: TOKEN } });
    // any upload request carrying more than 350 kB times out: the uploader's chunk cannot go under 1 MB, so only
    // smaller pieces get through
    proxy.addFault({
      path: /\/blobs\/uploads\//,
      action: { status: 524, body: 'error code: 524' },
      match: (req) => Number(req.headers['content-length'] ?? 0) > 350_000,
    });
    const src = `${uniqueName('rp-direct524')}:b`;
    const back = `${uniqueName('rp-back')}:pulled`;
    const job = new Job();
    try {
      // 900 kB in nine files, split to 500 kB pieces first: still over the proxy's limit
      await buildDirImage(eng, src, 9, 100_000);
      const before = await engineImages(eng);
      const run = await job.main(
        {
          'app-slug': 'direct524',
          image: src,
          'target-image': 'svc',
          tag: '1.0.0',
          registry: proxy.host,
          token: TOKEN,
          'layer-split': 'auto',
          'max-layer-size': '500kB',
          retries: '4',
          'retry-delay': '100ms',
        },
        { env: { DOCKER_HOST: eng.host } },
      );
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^::group::Split layers over max-layer-size$/m);
      expect(run.stdout).toMatch(/^::group::Re-split layer [\d, ]+ to \d+ kB$/m);
      expect(run.stdout).not.toMatch(/Loaded image/);
      expect(Number(run.outputs.attempts)).toBeGreaterThanOrEqual(2);
      expect(proxy.count(undefined, /\/blobs\/uploads\//, 524)).toBeGreaterThanOrEqual(1);
      const held = await rawManifest(reg, 'direct524/svc', '1.0.0');
      expect(held?.digest).toBe(run.outputs.digest);
      for (const l of held?.json.layers as { size: number }[]) expect(l.size).toBeLessThanOrEqual(350_000);
      expect(newImages(before, await engineImages(eng), proxy.host)).toEqual([]);
      await pullBack(eng, reg, 'direct524/svc', '1.0.0', back);
      const [original, pulled] = await Promise.all([exportFilesystem(eng.host, src), exportFilesystem(eng.host, back)]);
      expect(pulled).toEqual(original);
    } finally {
      job.cleanup();
      await removeImages(eng, [src, back]);
      await proxy.stop();
      await reg.stop();
    }
  });
});

// Issue 18: whoever built the base image chose its file names. A file too big to split, named with a newline, a
// workflow command and a legacy `##[` command, is reported as data: in the step's real stdout the runner finds no
// command the action did not write, and the summary holds none of it raw.
describeEngine('A', 'layer-split: auto and a hostile file name (engine A)', (eng) => {
  const NAME = 'a\n::error title=pwned::x ##[error]y';
  test('the unsplittable file is named as data: no workflow command, no line of its own', async () => {
    const reg = await startRegistry();
    const src = `${uniqueName('rp-name')}:b`;
    const job = new Job();
    const ctx = mkdtempSync(join(tmpdir(), 'rp-namectx-'));
    try {
      mkdirSync(join(ctx, 'data'));
      writeFileSync(join(ctx, 'data', NAME), randomBytes(400_000));
      for (let i = 0; i < 3; i++) writeFileSync(join(ctx, 'data', `part-${i}.bin`), randomBytes(100_000));
      writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY data /data\nCMD ["/nothing"]\n');
      await docker(eng.host, ['build', '-q', '-t', src, ctx], { DOCKER_BUILDKIT: '0' });
      const [user, password] = Object.entries(reg.users)[0];
      const run = await job.main(
        {
          'app-slug': 'names',
          image: src,
          'target-image': 'svc',
          tag: '1.0.0',
          registry: reg.host,
          username: user,
          token: password,
          'max-layer-size': '300kB',
          'layer-split': 'auto',
        },
        { env: { DOCKER_HOST: eng.host } },
      );
      expect(run.code).toBe(0);
      const commands = [...runnerCommands(run.stdout), ...runnerCommands(run.stderr)];
      expect(commands.filter((c) => c.form === 'legacy' || c.properties.includes('pwned'))).toEqual([]);
      expect(commands.filter((c) => c.command === 'error')).toEqual([]);
      // the name is there, shown: its newline as \n, its ##[ defused
      expect(run.stdout).toMatch(/^unsplittable: \/data\/a\\n::error title=pwned::x ##\\\[error\]y \(/m);
      expect(run.stdout).toMatch(/^::warning title=File bigger than a layer may be::\/data\/a\\n::error title=pwned/m);
      expect(run.summary).not.toMatch(/^\s*::|(?<!\\)##\[/m);
      const held = await rawManifest(reg, 'names/svc', '1.0.0');
      expect(held?.digest).toBe(run.outputs.digest);
    } finally {
      rmSync(ctx, { recursive: true, force: true });
      job.cleanup();
      await removeImages(eng, [src]);
      await reg.stop();
    }
  });
});

/** Every image the engine lists (intermediate ones too), as "repository:tag id". */
async function engineImages(e: Engine): Promise<string[]> {
  const out = await docker(e.host, ['images', '-a', '--no-trunc', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']);
  return out.split('\n').filter(Boolean).sort();
}

/**
 * What is listed after and was not before under a name this run could have made: its split image (replicated-push-split-*) or
 * one under the registry it pushed to. Other tests and benchmarks build on the same engines at the same time, so
 * their images are not ours to count; a loaded image without a name is caught by loadsOfNewImages.
 */
function newImages(before: string[], after: string[], registryHost: string): string[] {
  const had = new Set(before);
  return after.filter(
    (l) => !had.has(l) && (l.startsWith('replicated-push-split-') || l.startsWith(`${registryHost}/`)),
  );
}

/** The engine's `load` events in the window for images it did not hold before (a split image loaded). */
async function loadsOfNewImages(e: Engine, before: string[], since: number, until: number): Promise<string[]> {
  const ids = new Set(before.map((l) => l.slice(l.lastIndexOf(' ') + 1)));
  const out = await docker(e.host, [
    'events',
    '--since',
    String(since),
    '--until',
    String(until),
    '--filter',
    'type=image',
    '--filter',
    'event=load',
    '--format',
    '{{.Actor.ID}}',
  ]);
  return out.split('\n').filter((id) => id && !ids.has(id));
}

/** An image whose one layer holds `count` random files of `size` bytes (one COPY of a directory). */
async function buildDirImage(e: Engine, ref: string, count: number, size: number): Promise<void> {
  const ctx = mkdtempSync(join(tmpdir(), 'rp-dirctx-'));
  try {
    mkdirSync(join(ctx, 'data'));
    for (let i = 0; i < count; i++) writeFileSync(join(ctx, 'data', `part-${i}.bin`), randomBytes(size));
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY data /data\nCMD ["/nothing"]\n');
    const builder =
      e.name === 'A' ? ['build', '-q', '-t', ref, ctx] : ['buildx', 'build', '-q', '--load', '-t', ref, ctx];
    await docker(e.host, builder, e.name === 'A' ? { DOCKER_BUILDKIT: '0' } : {});
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}
