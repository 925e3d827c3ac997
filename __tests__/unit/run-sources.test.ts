// The run with an image from a source (an OCI layout, an archive, a registry, the engine's multi-platform image
// saved): no docker call for a daemonless source, the index the registry ends up holding, what is verified, what
// the run reports, and that the source is closed whatever happens. Fakes: core-fakes.ts (the uploader stores what
// it is sent in the fake registry, as a registry would).
import { ActionFailure, runAction, type RunResult } from '../../src/core/run.js';
import { readConfig } from '../../src/core/inputs.js';
import type { SourceImage } from '../../src/image/image-model.js';
import { RegistryError } from '../../src/registry/registry-client.js';
import { resultOutputs } from '../../src/adapters/wiring.js';
import {
  config,
  harness,
  image,
  modelIndex,
  modelManifest,
  sha,
  type Harness,
} from '../../test/fixtures/core-fakes.js';

const REPO = 'my-app/api';
const AMD = modelManifest('linux/amd64', ['amd64 layer one', 'amd64 layer two']);
const ARM = modelManifest('linux/arm64', ['arm64 layer one', 'arm64 layer two']);
const BUILDX = modelIndex([AMD, ARM], { attested: true });

async function fails(p: Promise<RunResult>): Promise<ActionFailure> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ActionFailure);
  return e as ActionFailure;
}

/** The index the registry holds under the tag: its entries' digests. */
function pushedIndex(h: Harness, tag = '1.0.0'): { digest: string; entries: string[] } {
  const digest = h.registry.tags.get(`${REPO}:${tag}`) as string;
  const doc = JSON.parse(h.registry.manifests.get(digest) as string) as { manifests: { digest: string }[] };
  return { digest, entries: doc.manifests.map((m) => m.digest) };
}

function layout(h: Harness, img: SourceImage = BUILDX, name = 'oci:out'): void {
  h.sources.images.set(name, img);
}

const OCI = { image: 'oci:out', 'target-image': 'api' };

describe('an OCI layout of a two-platform buildx image, default inputs', () => {
  test('the registry holds an index of exactly the two platform manifests; no docker call at all', async () => {
    const h = harness();
    layout(h);
    const r = await runAction(config(OCI), h.deps);
    const pushed = pushedIndex(h);
    expect(pushed.entries).toEqual([AMD.digest, ARM.digest]);
    expect(r.digest).toBe(pushed.digest);
    expect(r.digest).not.toBe(BUILDX.digest); // the index changed: its attestation entries are gone
    for (const a of BUILDX.attestations) expect(h.registry.manifests.has(a.digest)).toBe(false);
    // every platform manifest byte-identical to the source's
    expect(h.registry.manifests.get(AMD.digest)).toBe(AMD.bytes.toString());
    expect(h.registry.manifests.get(ARM.digest)).toBe(ARM.bytes.toString());
    expect(h.docker.calls).toEqual([]); // no readImage, no docker login, no push, no rm
    expect(h.sources.opened).toEqual(['oci:out']);
    expect(h.sources.closed).toEqual(['oci:out']);
  });

  test('the log says the index digest changed; outputs and verification name every platform', async () => {
    const h = harness();
    layout(h);
    const r = await runAction(config(OCI), h.deps);
    expect(h.log.lines).toContain(
      `the source index ${BUILDX.digest}; pushed without its 2 attestation manifests as ${r.digest}`,
    );
    expect(r.platforms).toEqual({ 'linux/amd64': AMD.digest, 'linux/arm64': ARM.digest });
    expect(JSON.parse(resultOutputs({ images: [r], durationMs: 0 }).platforms)).toEqual(r.platforms);
    expect(r.indexChanged).toEqual({ from: BUILDX.digest, to: r.digest, attestations: 2, platforms: 0 });
    // the tag, then each platform manifest by digest, asked of the registry after the push
    expect(h.registry.heads.slice(-3)).toEqual([`${REPO}:1.0.0`, `${REPO}:${AMD.digest}`, `${REPO}:${ARM.digest}`]);
  });

  test('the plan is made from the model: layers from the configs, sizes from the manifests', async () => {
    const h = harness();
    layout(h);
    const r = await runAction(config(OCI), h.deps);
    expect(r.layerCount).toBe(4);
    expect(r.plan.layers.map((l) => l.instruction)).toEqual([
      'COPY amd64 layer one /',
      'COPY amd64 layer two /',
      'COPY arm64 layer one /',
      'COPY arm64 layer two /',
    ]);
    expect(r.plan.layers[0].diffId).toBe(sha('amd64 layer one'));
    expect(r.totalSize).toBe([...AMD.layers, ...ARM.layers].reduce((n, l) => n + l.size, 0));
  });

  test('a config whose history does not match its layers leaves the instructions unknown, not the push', async () => {
    const h = harness();
    layout(h, modelManifest('linux/amd64', ['a', 'b'], { history: false }));
    const r = await runAction(config(OCI), h.deps);
    expect(r.plan.layers.map((l) => l.instruction)).toEqual([null, null]);
    expect(r.digest).toBe(h.registry.tags.get(`${REPO}:1.0.0`));
  });
});

describe('platforms and attestations', () => {
  test('platforms: linux/arm64 pushes an index of that one manifest', async () => {
    const h = harness();
    layout(h);
    const r = await runAction(config({ ...OCI, platforms: 'linux/arm64' }), h.deps);
    expect(pushedIndex(h).entries).toEqual([ARM.digest]);
    expect(h.registry.manifests.has(AMD.digest)).toBe(false);
    expect(r.platforms).toEqual({ 'linux/arm64': ARM.digest });
    expect(h.log.lines).toContain(
      `the source index ${BUILDX.digest}; pushed without its 2 attestation manifests and 1 platform not in ` +
        `'platforms' as ${r.digest}`,
    );
  });

  test('a platform the index lacks: an error naming platforms, nothing pushed, the source closed', async () => {
    const h = harness();
    layout(h);
    const e = await fails(runAction(config({ ...OCI, platforms: 'linux/s390x' }), h.deps));
    expect(e.opts).toMatchObject({ input: 'platforms', attempts: 0 });
    expect(e.message).toContain('linux/s390x is not in oci:out (its platforms: linux/amd64, linux/arm64)');
    expect(h.uploader.images).toEqual([]);
    expect(h.registry.tags.size).toBe(0);
    expect(h.sources.closed).toEqual(['oci:out']);
  });

  test('attestations: keep pushes the source index as it is, attestations included', async () => {
    const h = harness();
    layout(h);
    const r = await runAction(config({ ...OCI, attestations: 'keep' }), h.deps);
    expect(r.digest).toBe(BUILDX.digest);
    expect(r.indexChanged).toBeNull();
    for (const a of BUILDX.attestations) expect(h.registry.manifests.has(a.digest)).toBe(true);
  });

  test('a single manifest: pushed as it is; platforms {}', async () => {
    const h = harness();
    layout(h, AMD, 'oci-archive:app.tar');
    const r = await runAction(config({ image: 'oci-archive:app.tar', 'target-image': 'api' }), h.deps);
    expect(r.digest).toBe(AMD.digest);
    expect(h.registry.tags.get(`${REPO}:1.0.0`)).toBe(AMD.digest);
    expect(r.platforms).toEqual({});
    expect(resultOutputs({ images: [r], durationMs: 0 }).platforms).toBe('{}');
  });
});

describe('bad sources: an error naming image before anything is pushed', () => {
  test.each([
    ['oci:missing-dir', new Error('open oci:missing-dir: no such file or directory')],
    ['oci:out:v9', new Error("the layout has no manifest named 'v9'")],
    ['docker-archive:junk.tar', new Error('neither a docker save archive nor an OCI layout')],
    ['docker://127.0.0.1:5000/src/api:1', new Error('127.0.0.1:5000 answered 401: unauthorized')],
  ])('%s', async (source, why) => {
    const h = harness();
    h.sources.images.set(source, why);
    const e = await fails(runAction(config({ image: source, 'target-image': 'api' }), h.deps));
    expect(e.opts).toMatchObject({ input: 'image', attempts: 0 });
    expect(e.message).toBe(`Input 'image': ${source} cannot be read: ${why.message}`);
    expect(h.uploader.images).toEqual([]);
    expect(h.registry.tags.size).toBe(0);
    expect(h.docker.calls).toEqual([]);
  });

  test('a login refusal after the source opened: the run fails and the source is closed', async () => {
    const h = harness();
    layout(h);
    h.registry.headErrors = [new RegistryError('registry.example.com: HEAD answered 401', 401)];
    const e = await fails(runAction(config(OCI), h.deps));
    expect(e.title).not.toBe('replicated-push failed');
    expect(h.sources.closed).toEqual(['oci:out']);
    expect(h.uploader.images).toEqual([]);
  });
});

describe('the push and its verification', () => {
  test('a failed upload is retried under the policy, the same image each attempt', async () => {
    const h = harness();
    layout(h);
    h.uploader.imageResults = [{ ok: false, stop: { status: 503, phase: 'chunk', message: '503' }, layer: 1 }];
    const r = await runAction(config(OCI), h.deps);
    expect(r.attempts).toBe(2);
    expect(h.uploader.images).toHaveLength(2);
    expect(h.uploader.images[1].image).toBe(h.uploader.images[0].image);
    expect(pushedIndex(h).entries).toEqual([AMD.digest, ARM.digest]);
  });

  test('a registry that refuses the index itself: one attempt, an error saying so, platforms: as the way out', async () => {
    const h = harness();
    layout(h);
    h.uploader.imageResults = [
      { ok: false, stop: { status: 400, phase: 'index', message: 'manifest invalid' }, layer: null },
    ];
    const e = await fails(runAction(config(OCI), h.deps));
    expect(e.title).toBe('Registry refused the index');
    expect(e.opts.attempts).toBe(1);
    expect(e.message).toContain('stored every platform manifest (linux/amd64, linux/arm64) and blob');
    expect(e.message).toContain('`platforms: linux/amd64`');
    expect(h.uploader.images).toHaveLength(1);
  });

  test('a 503 to the index PUT is retried as any 5xx', async () => {
    const h = harness();
    layout(h);
    h.uploader.imageResults = [{ ok: false, stop: { status: 503, phase: 'index', message: '503' }, layer: null }];
    const r = await runAction(config(OCI), h.deps);
    expect(r.attempts).toBe(2);
    expect(pushedIndex(h).entries).toEqual([AMD.digest, ARM.digest]);
  });

  test('a registry that lost a platform manifest after the push fails the run', async () => {
    const h = harness();
    layout(h);
    h.registry.lie = (key) => (key === `${REPO}:${ARM.digest}` ? null : undefined);
    const e = await fails(runAction(config(OCI), h.deps));
    expect(e.title).toBe('Platform manifest missing after push');
    expect(e.message).toContain(ARM.digest);
  });

  test('dry-run: nothing is pushed, the source is closed', async () => {
    const h = harness();
    layout(h);
    const r = await runAction(config({ ...OCI, 'dry-run': 'true' }), h.deps);
    expect(r.digest).toBeNull();
    expect(h.uploader.images).toEqual([]);
    expect(h.registry.tags.size).toBe(0);
    expect(h.sources.closed).toEqual(['oci:out']);
  });
});

describe('a registry source', () => {
  test('source-username and source-token reach the opener, the job environment too; no child sees the token', async () => {
    const h = harness({ env: { DOCKER_CONFIG: '/home/runner/.docker' } });
    h.sources.images.set('docker://ghcr.io/org/api@sha256:' + 'a'.repeat(64), BUILDX);
    const c = readConfig(
      (n) =>
        ({
          'app-slug': 'my-app',
          image: `docker://ghcr.io/org/api@sha256:${'a'.repeat(64)}`,
          token: 's3cret-token',
          tag: '1.0.0',
          registry: 'registry.example.com',
          'source-username': 'bot',
          'source-token': 'ghcr-secret',
        })[n] ?? '',
      { ref: '' },
    );
    expect(c.target).toBe('api');
    await runAction(c, h.deps);
    const req = h.sources.requests[0];
    expect(req).toMatchObject({ username: 'bot', token: 'ghcr-secret' });
    expect(req.jobEnv.DOCKER_CONFIG).toBe('/home/runner/.docker'); // the job's config, not the run's
    expect(Object.values(req.childEnv).some((v) => v?.includes('ghcr-secret'))).toBe(false);
    expect(pushedIndex(h).entries).toEqual([AMD.digest, ARM.digest]);
  });
});

describe('the engine: a multi-platform image with attestations, default inputs', () => {
  function engineIndex(h: Harness): void {
    const img = image([1000], { containerd: true });
    h.docker.add('api:dev', {
      ...img,
      image: {
        ...img.image,
        Descriptor: { mediaType: 'application/vnd.oci.image.index.v1+json', digest: 'x', size: 1 },
      },
      manifests: [
        { Descriptor: { platform: { os: 'linux', architecture: 'amd64' } } },
        { Descriptor: { platform: { os: 'linux', architecture: 'arm64' } } },
        { Kind: 'attestation', Descriptor: { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } } },
      ],
    });
    h.sources.images.set('docker-daemon:api:dev', BUILDX);
  }

  test('read with docker save and pushed as an index of every platform, by the action, not docker push', async () => {
    const h = harness();
    engineIndex(h);
    const r = await runAction(config(), h.deps);
    expect(h.sources.opened).toEqual(['docker-daemon:api:dev']);
    expect(pushedIndex(h).entries).toEqual([AMD.digest, ARM.digest]);
    expect(r.digest).toBe(pushedIndex(h).digest);
    expect(h.docker.calls.filter((c) => c.startsWith('push ') || c.startsWith('tag '))).toEqual([]);
    expect(h.sources.closed).toEqual(['docker-daemon:api:dev']);
  });

  test('layer-split: auto is refused naming layer-split: it re-layers one image', async () => {
    const h = harness();
    engineIndex(h);
    const e = await fails(runAction(config({ 'layer-split': 'auto' }), h.deps));
    expect(e.opts).toMatchObject({ input: 'layer-split', attempts: 0 });
    expect(h.sources.opened).toEqual([]);
    expect(h.registry.tags.size).toBe(0);
  });
});

describe('the layers of the plan, as the uploader numbers a failed one (numberedLayers)', () => {
  test('a blob one manifest names twice is listed at each place; one another platform shares, once', async () => {
    const h = harness();
    const amd = modelManifest('linux/amd64', ['base', 'app', 'base']);
    const arm = modelManifest('linux/arm64', ['base', 'arm app']);
    layout(h, modelIndex([amd, arm]));
    const r = await runAction(config(OCI), h.deps);
    expect(r.plan.layers.map((l) => [l.index, l.diffId])).toEqual([
      [1, sha('base')],
      [2, sha('app')],
      [3, sha('base')],
      [4, sha('arm app')],
    ]);
    expect(pushedIndex(h).entries).toEqual([amd.digest, arm.digest]);
  });
});
