// Issue 19: every image a release pipeline has. dist/ run as the runner runs it, pushing a two-platform buildx image
// with its provenance attestations (built on engine B beforehand) from an OCI layout, an OCI archive, a docker
// archive and another registry, with NO docker on PATH and DOCKER_HOST naming a socket that does not exist; and from
// engine B's containerd store with the default inputs. What the registry holds is read from the registry: an index
// of exactly the two platform manifests, byte-identical to the source's (the same digests), no attestation.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Job, type StepRun } from '../../test/support/action-runner.js';
import { ATTESTATION_REJECTION, startFaultProxy } from '../../test/support/fault-proxy.js';
import { describeEngine, docker, removeImages, uniqueName, type Engine } from '../../test/support/images.js';
import { listTags, manifestDigest, rawManifest, startRegistry, type Registry } from '../../test/support/registry.js';

const execFileP = promisify(execFile);

interface Layout {
  /** The buildx index (index.json's one entry), its digest. */
  readonly index: string;
  /** platform -> manifest digest, as the source's index lists them. */
  readonly platforms: Record<string, string>;
  readonly attestations: readonly string[];
}

interface IndexEntry {
  digest: string;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

/** What the layout on disk holds, read from its files (never from the action). */
function readLayout(dir: string): Layout {
  const blob = (d: string) => readFileSync(join(dir, 'blobs', 'sha256', d.slice('sha256:'.length)), 'utf8');
  const top = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: IndexEntry[] };
  const index = top.manifests[0].digest;
  const entries = (JSON.parse(blob(index)) as { manifests: IndexEntry[] }).manifests;
  const isAttestation = (e: IndexEntry) => e.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest';
  const platforms: Record<string, string> = {};
  for (const e of entries.filter((x) => !isAttestation(x)))
    platforms[`${e.platform?.os}/${e.platform?.architecture}`] = e.digest;
  return { index, platforms, attestations: entries.filter(isAttestation).map((e) => e.digest) };
}

function noDockerEnv(base: string): NodeJS.ProcessEnv {
  // a PATH that holds no docker (nor anything else), and a socket that does not exist
  const bin = join(base, 'bin-without-docker');
  mkdirSync(bin, { recursive: true });
  return { PATH: bin, DOCKER_HOST: `unix://${join(base, 'no-such-engine.sock')}` };
}

describeEngine('B', 'sources (issue 19): an image from a layout, an archive or a registry', (eng: Engine) => {
  let target: Registry;
  let source: Registry;
  let work: string;
  let layoutDir: string;
  let ociTar: string;
  let dockerTar: string;
  let built: Layout;
  let offline: NodeJS.ProcessEnv;
  const images: string[] = [];
  const TARGET_USER = 'rp-target';
  const TARGET_PASS = 'target-secret-4c1d';

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'rp-sources-'));
    [target, source] = await Promise.all([
      startRegistry({ users: { [TARGET_USER]: TARGET_PASS } }),
      startRegistry({ users: { 'rp-source': 'source-secret-9a7e' } }),
    ]);
    const ctx = join(work, 'ctx');
    mkdirSync(ctx);
    writeFileSync(join(ctx, 'a.txt'), 'the first layer\n');
    writeFileSync(join(ctx, 'b.bin'), Buffer.alloc(50_000, 7));
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY a.txt /a.txt\nCOPY b.bin /b.bin\n');
    const build = ['buildx', 'build', '--platform', 'linux/amd64,linux/arm64', '--provenance=mode=min'];
    layoutDir = join(work, 'layout');
    ociTar = join(work, 'image.oci.tar');
    dockerTar = join(work, 'image.docker.tar');
    const name = `${uniqueName('rp-sources')}:build`;
    images.push(name);
    // the same build three ways: BuildKit's cache makes every platform manifest the same each time
    await docker(eng.host, [...build, '--output', `type=oci,dest=${layoutDir},tar=false`, ctx]);
    await docker(eng.host, [...build, '--output', `type=oci,dest=${ociTar}`, ctx]);
    await docker(eng.host, [...build, '--load', '-t', name, ctx]);
    await docker(eng.host, ['save', name, '-o', dockerTar]);
    built = readLayout(layoutDir);
    // the registry source: the layout copied as it is (every manifest and the index byte for byte)
    await execFileP('skopeo', [
      'copy',
      '--all',
      '--preserve-digests',
      '--dest-tls-verify=false',
      '--dest-creds',
      'rp-source:source-secret-9a7e',
      `oci:${layoutDir}`,
      `docker://${source.host}/src/app:1.0`,
    ]);
    offline = noDockerEnv(work);
  }, 180_000);

  afterAll(async () => {
    await removeImages(eng, images);
    await Promise.all([target?.stop(), source?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  test('the rig: a two-platform image with an attestation per platform; PATH holds no docker', () => {
    expect(Object.keys(built.platforms).sort()).toEqual(['linux/amd64', 'linux/arm64']);
    expect(built.attestations).toHaveLength(2);
    const found = spawnSync('docker', ['version'], { env: offline });
    expect((found.error as NodeJS.ErrnoException | undefined)?.code).toBe('ENOENT');
    expect(existsSync((offline.DOCKER_HOST as string).slice('unix://'.length))).toBe(false);
  });

  function inputs(image: string, repo: string, more: Record<string, string> = {}): Record<string, string> {
    return {
      'app-slug': 'my-app',
      image,
      tag: '1.0.0',
      token: TARGET_PASS,
      username: TARGET_USER,
      registry: target.host,
      repository: repo,
      ...more,
    };
  }

  /** The registry holds under the tag an index of exactly `platforms`, each manifest the source's own. */
  async function expectIndex(run: StepRun, repo: string, src: Layout): Promise<void> {
    const { platforms } = src;
    expect(run.stderr + run.stdout).not.toMatch(/::error/);
    expect(run.code).toBe(0);
    const digest = await manifestDigest(target, repo, '1.0.0');
    expect(run.outputs.digest).toBe(digest);
    const index = await rawManifest(target, repo, '1.0.0');
    expect(index?.json.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    const entries = index?.json.manifests ?? [];
    const listed = Object.fromEntries(entries.map((e) => [`${e.platform?.os}/${e.platform?.architecture}`, e.digest]));
    expect(listed).toEqual(platforms);
    expect(JSON.parse(run.outputs.platforms)).toEqual(platforms);
    for (const d of Object.values(platforms)) expect((await rawManifest(target, repo, d))?.digest).toBe(d);
    expect(src.attestations).toHaveLength(2);
    for (const a of src.attestations) expect(await rawManifest(target, repo, a)).toBeNull();
    // the log says the index changed, and why
    expect(run.stdout).toContain(`the source index ${src.index}; pushed without its 2 attestation manifests`);
  }

  test('oci:DIR (target-image given), no docker: an index of the two platform manifests', async () => {
    const job = new Job();
    try {
      const run = await job.main(inputs(`oci:${layoutDir}`, 'vendor/layout', { 'target-image': 'app' }), {
        env: offline,
      });
      await expectIndex(run, 'vendor/layout', built);
      expect(run.summary).toContain('linux/arm64');
    } finally {
      job.cleanup();
    }
  });

  test('oci-archive:FILE, no docker', async () => {
    const job = new Job();
    try {
      const run = await job.main(inputs(`oci-archive:${ociTar}`, 'vendor/ociarchive', { 'target-image': 'app' }), {
        env: offline,
      });
      await expectIndex(run, 'vendor/ociarchive', extracted(ociTar));
    } finally {
      job.cleanup();
    }
  });

  test('docker-archive:FILE (docker save of the loaded image), no docker', async () => {
    const job = new Job();
    try {
      const run = await job.main(
        inputs(`docker-archive:${dockerTar}`, 'vendor/dockerarchive', { 'target-image': 'app' }),
        {
          env: offline,
        },
      );
      await expectIndex(run, 'vendor/dockerarchive', extracted(dockerTar));
    } finally {
      job.cleanup();
    }
  });

  test('docker://SRC/src/app:1.0, credentials from the DOCKER_CONFIG the job has, no docker', async () => {
    const config = join(work, 'docker-config');
    mkdirSync(config, { recursive: true });
    const auth = Buffer.from('rp-source:source-secret-9a7e').toString('base64');
    writeFileSync(join(config, 'config.json'), JSON.stringify({ auths: { [source.host]: { auth } } }));
    const job = new Job();
    try {
      const run = await job.main(inputs(`docker://${source.host}/src/app:1.0`, 'vendor/promoted'), {
        env: { ...offline, DOCKER_CONFIG: config },
      });
      await expectIndex(run, 'vendor/promoted', built);
      expect(run.outputs.ref).toBe(`${target.host}/vendor/promoted:1.0.0`);
    } finally {
      job.cleanup();
    }
  });

  test('platforms: linux/arm64 pushes an index of that one manifest', async () => {
    const job = new Job();
    try {
      const run = await job.main(
        inputs(`oci:${layoutDir}`, 'vendor/arm', { 'target-image': 'app', platforms: 'linux/arm64' }),
        { env: offline },
      );
      expect(run.code).toBe(0);
      const index = await rawManifest(target, 'vendor/arm', '1.0.0');
      expect(index?.json.manifests?.map((e) => e.digest)).toEqual([built.platforms['linux/arm64']]);
      expect(await rawManifest(target, 'vendor/arm', built.platforms['linux/amd64'])).toBeNull();
      expect(JSON.parse(run.outputs.platforms)).toEqual({ 'linux/arm64': built.platforms['linux/arm64'] });
    } finally {
      job.cleanup();
    }
  });

  test('a registry that refuses the index itself: an error saying so and naming platforms:, one attempt', async () => {
    const proxy = await startFaultProxy({ upstream: target, auth: { scheme: 'basic', token: 'proxy-pass-3b' } });
    proxy.addFault({
      method: 'PUT',
      path: /^\/v2\/.+\/manifests\/[^/]+$/,
      match: (r) => /"application\/vnd\.oci\.image\.index\.v1\+json"/.test(r.body?.toString('utf8') ?? ''),
      action: { status: 400, body: ATTESTATION_REJECTION, headers: { 'content-type': 'application/json' } },
    });
    const job = new Job();
    try {
      const run = await job.main(
        {
          ...inputs(`oci:${layoutDir}`, 'vendor/noindex', { 'target-image': 'app' }),
          registry: proxy.host,
          token: 'proxy-pass-3b',
        },
        { env: offline },
      );
      expect(run.code).toBe(1);
      expect(run.outputs.attempts).toBe('1');
      expect(run.stdout).toMatch(/^::error title=Registry refused the index::.*`platforms: linux\/amd64`/m);
      expect(await listTags(target, 'vendor/noindex')).toEqual([]);
      // every platform manifest went first, by digest
      for (const d of Object.values(built.platforms))
        expect((await rawManifest(target, 'vendor/noindex', d))?.digest).toBe(d);
    } finally {
      job.cleanup();
      await proxy.stop();
    }
  });

  test('a tombstone with no docker on PATH replaces the tag with an image of no files', async () => {
    const job = new Job();
    try {
      const before = await manifestDigest(target, 'vendor/layout', '1.0.0');
      expect(before).not.toBeNull(); // pushed by the oci: test above
      const run = await job.main(
        { ...inputs('', 'vendor/layout'), mode: 'tombstone', 'target-image': 'app', image: '' },
        { env: offline },
      );
      expect(run.code).toBe(0);
      const after = await rawManifest(target, 'vendor/layout', '1.0.0');
      expect(after?.digest).toBe(run.outputs.digest);
      expect(after?.digest).not.toBe(before);
      expect(after?.json.layers).toHaveLength(1);
      expect(run.outputs['replaced-digest']).toBe(before);
    } finally {
      job.cleanup();
    }
  });

  test.each([
    ['no such directory', () => ({ image: `oci:${join(work, 'nope')}`, 'target-image': 'app' }), 'image'],
    ['a REF the layout lacks', () => ({ image: `oci:${layoutDir}:v9`, 'target-image': 'app' }), 'image'],
    [
      'a tarball that is neither format',
      () => ({ image: `docker-archive:${junkTar()}`, 'target-image': 'app' }),
      'image',
    ],
    [
      'a registry refusing the credentials',
      () => ({ image: `docker://${source.host}/src/app:1.0`, 'source-username': 'rp-source', 'source-token': 'wrong' }),
      'image',
    ],
    ['an OCI layout without target-image', () => ({ image: `oci:${layoutDir}` }), 'target-image'],
  ])('bad input, %s: an ::error naming it, nothing pushed', async (_what, more, input) => {
    const repo = 'vendor/bad';
    const tagsBefore = await listTags(target, repo);
    const job = new Job();
    try {
      const run = await job.main(inputs('', repo, more()), { env: offline });
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(new RegExp(`^::error title=[^:]*::Input '${input}'`, 'm'));
      expect(await listTags(target, repo)).toEqual(tagsBefore);
    } finally {
      job.cleanup();
    }
  });

  function junkTar(): string {
    const dir = join(work, 'junk');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'readme.txt'), 'not an image');
    const file = join(work, 'junk.tar');
    spawnSync('tar', ['-cf', file, '-C', dir, 'readme.txt']);
    return file;
  }

  /** What a tarball holds (an OCI archive, or a containerd-store docker save: both a layout inside). */
  function extracted(file: string): Layout {
    const dir = mkdtempSync(join(work, 'x-'));
    spawnSync('tar', ['-xf', file, '-C', dir]);
    return readLayout(dir);
  }

  test('engine B (containerd store): a multi-platform image with attestations, default inputs: every platform', async () => {
    const name = `${uniqueName('rp-sources-engine')}:build`;
    images.push(name);
    const ctx = join(work, 'ctx');
    await docker(eng.host, [
      'buildx',
      'build',
      '--platform',
      'linux/amd64,linux/arm64',
      '--provenance=mode=min',
      '--load',
      '-t',
      name,
      ctx,
    ]);
    const saved = join(work, 'engine-saved.tar');
    await docker(eng.host, ['save', name, '-o', saved]);
    const job = new Job();
    try {
      const run = await job.main(inputs(name, 'vendor/engine', { 'target-image': 'app' }), {
        env: { DOCKER_HOST: eng.host },
      });
      await expectIndex(run, 'vendor/engine', extracted(saved));
    } finally {
      job.cleanup();
    }
  });
});
