// The action end to end (issue 2): the committed dist/ run as the runner runs it, against a real engine and a
// real registry behind the fault proxy (which also plays the Replicated registry's token auth). What the
// registry holds is read from the registry, never from the action's own log.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job, type StepRun } from '../../test/support/action-runner.js';
import { startFaultProxy, type FaultProxy } from '../../test/support/fault-proxy.js';
import {
  buildImage,
  describeEachEngine,
  describeEngine,
  imageExists,
  removeImages,
  uniqueName,
  type Engine,
} from '../../test/support/images.js';
import { listTags, manifestDigest, rawManifest, startRegistry, type Registry } from '../../test/support/registry.js';

const TOKEN = 'rp-secret-token-8f2b1c';
const EMAIL = 'vendor@example.com';

/** Every file and line the job produced, except the runner's own mask command. */
function leaks(run: StepRun, secret: string): string[] {
  const texts = [run.stdout, run.stderr, ...Object.values(run.files)];
  return texts.flatMap((t) => t.split('\n')).filter((l) => l.includes(secret) && !l.startsWith('::add-mask::'));
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name));
}

function anyFileContains(dir: string, needle: string): string[] {
  return filesUnder(dir).filter((f) => readFileSync(f).includes(needle));
}

describeEachEngine('$label', (eng: Engine) => {
  let upstream: Registry;
  let proxy: FaultProxy;
  let home: string;
  const images: string[] = [];

  beforeAll(async () => {
    upstream = await startRegistry();
    proxy = await startFaultProxy({ upstream, auth: { scheme: 'bearer', token: TOKEN } });
    home = mkdtempSync(join(tmpdir(), 'rp-home-'));
  });
  afterAll(async () => {
    await removeImages(eng, images);
    await proxy?.stop();
    await upstream?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  async function image(
    files: Record<string, number | string> = { '/data/a.bin': 20_000, '/etc/b.txt': 'hello' },
  ): Promise<string> {
    const ref = `${uniqueName('rp-e2e')}:build`;
    images.push(ref);
    return buildImage(eng, ref, { files });
  }

  const env = () => ({ DOCKER_HOST: eng.host, HOME: home });

  test('pushes several tags; outputs, registry and summary agree; no credential left, token in no log', async () => {
    const job = new Job();
    const src = await image();
    const run = await job.main(
      {
        'app-slug': 'my-app',
        image: src,
        'target-image': 'worker',
        tag: '1.4.0\nstable, latest',
        token: TOKEN,
        registry: proxy.host,
      },
      { env: env() },
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const repo = 'my-app/worker';
    const held = await Promise.all(['1.4.0', 'stable', 'latest'].map((t) => manifestDigest(upstream, repo, t)));
    expect(held[0]).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(new Set(held)).toEqual(new Set([run.outputs.digest]));
    expect(run.outputs.ref).toBe(`${proxy.host}/${repo}:1.4.0`);
    expect(run.outputs.refs.split('\n')).toEqual(
      ['1.4.0', 'stable', 'latest'].map((t) => `${proxy.host}/${repo}:${t}`),
    );
    expect(run.outputs['pinned-ref']).toBe(`${proxy.host}/${repo}@${held[0]}`);
    expect(run.outputs.attempts).toBe('1');
    expect(run.summary).toContain(`| \`${proxy.host}/${repo}:stable\` | \`${held[0]}\``);
    // the registry holds exactly the requested tags, nothing else
    expect((await listTags(upstream, repo)).sort()).toEqual(['1.4.0', 'latest', 'stable']);
    expect(leaks(run, TOKEN)).toEqual([]);
    expect(run.stdout).toContain(`::add-mask::${TOKEN}`);
    // the credentials lived in RUNNER_TEMP and are gone; ~/.docker was never written
    expect(run.state.workDir).toContain(job.runnerTemp);
    expect(existsSync(run.state.workDir)).toBe(false);
    expect(anyFileContains(job.runnerTemp, TOKEN)).toEqual([]);
    expect(existsSync(join(home, '.docker', 'config.json'))).toBe(false);
    const post = await job.post(run.state, { env: env() });
    expect(post.code).toBe(0);
    job.cleanup();
  });

  test('tag defaults to the git tag, without the v of a semantic version', async () => {
    const job = new Job();
    const src = await image({ '/x': 'tagged' });
    const run = await job.main(
      { 'app-slug': 'my-app', image: src, 'target-image': 'from-ref', token: TOKEN, registry: proxy.host },
      { env: { ...env(), GITHUB_REF: 'refs/tags/v2.7.1' } },
    );
    expect(run.code).toBe(0);
    expect(await listTags(upstream, 'my-app/from-ref')).toEqual(['2.7.1']);
    expect(await manifestDigest(upstream, 'my-app/from-ref', '2.7.1')).toBe(run.outputs.digest);
    job.cleanup();
  });

  test('on a branch with no tag input it refuses, naming the input, and pushes nothing', async () => {
    const job = new Job();
    const src = await image({ '/x': 'branch' });
    const run = await job.main(
      { 'app-slug': 'my-app', image: src, 'target-image': 'branch', token: TOKEN, registry: proxy.host },
      { env: { ...env(), GITHUB_REF: 'refs/heads/main' } },
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^::error title=Invalid input 'tag'::Input 'tag' is empty/m);
    expect(await listTags(upstream, 'my-app/branch')).toEqual([]);
    job.cleanup();
  });

  test('dry run validates the credentials and pushes nothing, not even a local tag', async () => {
    const job = new Job();
    const src = await image({ '/x': 'dry' });
    const run = await job.main(
      {
        'app-slug': 'my-app',
        image: src,
        'target-image': 'dry',
        tag: '9.9.9',
        token: TOKEN,
        registry: proxy.host,
        'dry-run': 'true',
      },
      { env: env() },
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`push: ${proxy.host}/my-app/dry:9.9.9`);
    expect(await listTags(upstream, 'my-app/dry')).toEqual([]);
    expect(proxy.count('PUT', /\/v2\/my-app\/dry\//)).toBe(0);
    expect(await imageExists(eng, `${proxy.host}/my-app/dry:9.9.9`)).toBe(false);
    expect(run.summary).toContain('dry run (nothing pushed)');
    job.cleanup();
  });

  test('a wrong token fails at login with a credentials message and no retry', async () => {
    const job = new Job();
    const src = await image({ '/x': 'wrong' });
    const before = proxy.requests.length;
    const run = await job.main(
      {
        'app-slug': 'my-app',
        image: src,
        'target-image': 'wrong',
        tag: '1.0.0',
        token: 'not-the-token',
        registry: proxy.host,
      },
      { env: env() },
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /^::error title=Registry rejected the credentials::.*token-type 'service-account'.*service account token/m,
    );
    expect(await listTags(upstream, 'my-app/wrong')).toEqual([]);
    // one login conversation, not three
    expect(proxy.requests.slice(before).filter((r) => r.path === '/token').length).toBeLessThanOrEqual(1);
    expect(leaks(run, 'not-the-token')).toEqual([]);
    job.cleanup();
  });

  test('an image the engine does not have is an error naming the image', async () => {
    const job = new Job();
    const run = await job.main(
      { 'app-slug': 'my-app', image: 'rp-no-such-image:1', tag: '1.0.0', token: TOKEN, registry: proxy.host },
      { env: env() },
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /^::error title=Image not found::Input 'image': the engine has no image 'rp-no-such-image:1'/m,
    );
    job.cleanup();
  });
});

describeEngine('A', 'token types (engine A)', (eng) => {
  let upstream: Registry;
  const images: string[] = [];
  beforeAll(async () => {
    upstream = await startRegistry();
  });
  afterAll(async () => {
    await removeImages(eng, images);
    await upstream?.stop();
  });

  test.each([
    { type: 'user', username: EMAIL, usernames: [EMAIL], warning: null },
    { type: 'password', username: EMAIL, usernames: [EMAIL], warning: null },
    { type: 'service-account', username: '', usernames: undefined, warning: null },
    { type: 'team', username: '', usernames: undefined, warning: 'Team API tokens are deprecated' },
  ])('$type', async ({ type, username, usernames, warning }) => {
    const proxy = await startFaultProxy({ upstream, auth: { scheme: 'basic', token: TOKEN, usernames } });
    const job = new Job();
    try {
      const src = `${uniqueName('rp-tt')}:b`;
      images.push(src);
      await buildImage(eng, src, { files: { '/t': type } });
      const run = await job.main(
        {
          'app-slug': 'tt',
          image: src,
          'target-image': type,
          tag: '1',
          'token-type': type,
          token: TOKEN,
          username,
          registry: proxy.host,
        },
        { env: { DOCKER_HOST: eng.host } },
      );
      expect(run.code).toBe(0);
      expect(await manifestDigest(upstream, `tt/${type}`, '1')).toBe(run.outputs.digest);
      if (warning) expect(run.stdout).toContain(`::warning title=${warning}::`);
      else expect(run.stdout).not.toContain('::warning');
    } finally {
      job.cleanup();
      await proxy.stop();
    }
  });

  test('user token without the email username is an input error naming username', async () => {
    const job = new Job();
    const run = await job.main({
      'app-slug': 'tt',
      image: 'x:1',
      tag: '1',
      'token-type': 'user',
      token: TOKEN,
      registry: upstream.host,
    });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^::error title=Invalid input 'username'::/m);
    job.cleanup();
  });
});

describeEngine('A', 'progress during a long push (engine A)', (eng) => {
  test('prints which layer, how far and how long, every 15 seconds', async () => {
    const upstream = await startRegistry();
    const proxy = await startFaultProxy({ upstream, auth: { scheme: 'bearer', token: TOKEN } });
    // a slow registry: the big layer's upload is held for 17 s, past the first progress tick
    proxy.addFault({ method: 'PUT', path: /\/blobs\/uploads\//, times: 1, action: { delayMs: 17_000 } });
    proxy.addFault({ method: 'PATCH', path: /\/blobs\/uploads\//, times: 1, action: { delayMs: 17_000 } });
    const src = `${uniqueName('rp-slow')}:b`;
    const job = new Job();
    try {
      await buildImage(eng, src, { files: { '/opt/model.bin': 300_000, '/etc/conf': 'x' } });
      const run = await job.main(
        { 'app-slug': 'slow', image: src, 'target-image': 'svc', tag: '1', token: TOKEN, registry: proxy.host },
        { env: { DOCKER_HOST: eng.host } },
      );
      expect(run.code).toBe(0);
      const progress = run.stdout.split('\n').filter((l) => l.startsWith('push: ') && l.includes('elapsed'));
      expect(progress.length).toBeGreaterThanOrEqual(1);
      expect(progress[0]).toMatch(
        /^push: [0-2]\/2 layers done \(.* of 300 kB\); layer 1 \(300 kB, COPY file:[a-f0-9]{12}… in \/opt\/model\.bin\) uploading; .*1[5-9]\.\ds elapsed$/,
      );
    } finally {
      job.cleanup();
      await removeImages(eng, [src]);
      await proxy.stop();
      await upstream.stop();
    }
  });
});

describeEngine('A', 'post step after a cancelled run (engine A)', (eng) => {
  test('a run killed mid-push leaves its credentials until post removes them', async () => {
    const upstream = await startRegistry();
    const proxy = await startFaultProxy({ upstream, auth: { scheme: 'bearer', token: TOKEN } });
    proxy.addFault({ method: 'PATCH', path: /\/blobs\/uploads\//, action: { delayMs: 60_000 } });
    proxy.addFault({ method: 'PUT', path: /\/blobs\/uploads\//, action: { delayMs: 60_000 } });
    const src = `${uniqueName('rp-cancel')}:b`;
    const job = new Job();
    try {
      await buildImage(eng, src, { files: { '/big': 200_000 } });
      const run = await job.main(
        { 'app-slug': 'c', image: src, tag: '1', token: TOKEN, registry: proxy.host },
        { env: { DOCKER_HOST: eng.host }, timeoutMs: 8_000 },
      );
      expect(run.code).not.toBe(0);
      const dir = join(run.state.workDir, 'docker');
      expect(existsSync(join(dir, 'config.json'))).toBe(true);
      expect(readFileSync(join(dir, 'config.json'), 'utf8')).toContain('"auths"');
      const post = await job.post(run.state, { env: { DOCKER_HOST: eng.host } });
      expect(post.code).toBe(0);
      expect(existsSync(dir)).toBe(false);
      expect(filesUnder(job.runnerTemp)).toEqual([]);
    } finally {
      job.cleanup();
      await removeImages(eng, [src]);
      await proxy.stop();
      await upstream.stop();
    }
  });
});

describeEngine('B', 'attestations on the current engine (engine B)', (eng) => {
  let upstream: Registry;
  let proxy: FaultProxy;
  const images: string[] = [];
  beforeAll(async () => {
    upstream = await startRegistry();
    proxy = await startFaultProxy({ upstream, auth: { scheme: 'bearer', token: TOKEN } });
    proxy.rejectAttestations();
  });
  afterAll(async () => {
    await removeImages(eng, images);
    await proxy?.stop();
    await upstream?.stop();
  });

  test('a buildx image with default provenance pushes green as its platform manifest alone', async () => {
    const src = `${uniqueName('rp-att')}:b`;
    images.push(src);
    await buildImage(eng, src, {
      files: { '/a': 5000 },
      builder: 'buildkit',
      extraBuildArgs: ['--provenance=mode=min'],
    });
    const job = new Job();
    const run = await job.main(
      { 'app-slug': 'att', image: src, 'target-image': 'svc', tag: '1.0.0', token: TOKEN, registry: proxy.host },
      { env: { DOCKER_HOST: eng.host } },
    );
    expect(run.code).toBe(0);
    const held = await rawManifest(upstream, 'att/svc', '1.0.0');
    expect(held?.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(JSON.stringify(held?.json)).not.toContain('attestation');
    expect(held?.digest).toBe(run.outputs.digest);
    expect(run.summary).toContain('provenance attestations were stripped');
    job.cleanup();
  });

  // issue 19: no longer refused. The engine's image is read with docker save and the action writes an index of its
  // platforms; the proxy answers 400 to any attestation manifest, and the push passes on its first attempt.
  test('a multi-platform image with attestations, default inputs: an index of every platform, no attestation', async () => {
    const src = `${uniqueName('rp-multi')}:b`;
    images.push(src);
    await buildImage(eng, src, {
      files: { '/a': 'multi' },
      builder: 'buildkit',
      extraBuildArgs: ['--platform', 'linux/amd64,linux/arm64'],
    });
    const job = new Job();
    const run = await job.main(
      { 'app-slug': 'att', image: src, 'target-image': 'multi', tag: '1.0.0', token: TOKEN, registry: proxy.host },
      { env: { DOCKER_HOST: eng.host } },
    );
    expect(run.stdout).not.toMatch(/^::error/m);
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('1');
    const held = await rawManifest(upstream, 'att/multi', '1.0.0');
    expect(held?.digest).toBe(run.outputs.digest);
    const entries = held?.json.manifests ?? [];
    expect(entries.map((m) => `${m.platform?.os}/${m.platform?.architecture}`).sort()).toEqual([
      'linux/amd64',
      'linux/arm64',
    ]);
    expect(JSON.parse(run.outputs.platforms)).toEqual(
      Object.fromEntries(entries.map((m) => [`${m.platform?.os}/${m.platform?.architecture}`, m.digest])),
    );
    expect(run.stdout).toMatch(/pushed without its 2 attestation manifests as sha256:/);
    job.cleanup();
  });

  test('a multi-platform image built without attestations is pushed as one clean index', async () => {
    const src = `${uniqueName('rp-multi-clean')}:b`;
    images.push(src);
    await buildImage(eng, src, {
      files: { '/a': 'multi clean' },
      builder: 'buildkit',
      extraBuildArgs: ['--platform', 'linux/amd64,linux/arm64', '--provenance=false'],
    });
    const job = new Job();
    const run = await job.main(
      {
        'app-slug': 'att',
        image: src,
        'target-image': 'multi-clean',
        tag: '1.0.0',
        token: TOKEN,
        registry: proxy.host,
      },
      { env: { DOCKER_HOST: eng.host } },
    );
    expect(run.code).toBe(0);
    const held = await rawManifest(upstream, 'att/multi-clean', '1.0.0');
    expect(held?.digest).toBe(run.outputs.digest);
    // an index either way: the engine may send it as a Docker manifest list
    expect(held?.mediaType).toMatch(
      /^application\/vnd\.(oci\.image\.index\.v1|docker\.distribution\.manifest\.list\.v2)\+json$/,
    );
    expect(held?.json.manifests?.map((m) => `${m.platform?.os}/${m.platform?.architecture}`).sort()).toEqual([
      'linux/amd64',
      'linux/arm64',
    ]);
    job.cleanup();
  });

  test('attestations: keep sends the index, gets the 400 once, and explains it', async () => {
    const src = `${uniqueName('rp-keep')}:b`;
    images.push(src);
    await buildImage(eng, src, {
      files: { '/a': 5000 },
      builder: 'buildkit',
      extraBuildArgs: ['--provenance=mode=min'],
    });
    const job = new Job();
    const run = await job.main(
      {
        'app-slug': 'att',
        image: src,
        'target-image': 'keep',
        tag: '1.0.0',
        token: TOKEN,
        registry: proxy.host,
        attestations: 'keep',
        'retry-delay': '100ms',
      },
      { env: { DOCKER_HOST: eng.host } },
    );
    expect(run.code).toBe(1);
    expect(run.outputs.attempts).toBe('1');
    expect(run.stdout).toMatch(/^::error title=Provenance attestations rejected \(HTTP 400\)::.*--provenance=false/m);
    expect(await listTags(upstream, 'att/keep')).toEqual([]);
    job.cleanup();
  });
});
