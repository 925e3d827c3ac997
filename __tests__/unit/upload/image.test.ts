// uploadImage against the scripted loopback registry: layers a few at a time, the config after them, the manifest
// under each tag with its own media type, the digest checked against the registry's.
import { createHash, randomBytes } from 'node:crypto';
import { manifestMediaType, uploadImage, type ManifestBlobs } from '../../../src/upload/image.js';
import { bufferBlobSource, type BlobSource } from '../../../src/image/blob-source.js';
import { MEDIA_TYPES } from '../../../src/image/oci.js';
import { startScriptedRegistry, type ScriptedRegistry } from '../../../test/support/upload-registry.js';

const REPO = 'app/image';
let reg: ScriptedRegistry;
afterEach(async () => reg?.stop());

function image(layerCount: number, opts: { docker?: boolean; omitMediaType?: boolean } = {}): ManifestBlobs {
  const layers = Array.from({ length: layerCount }, () =>
    bufferBlobSource(randomBytes(3_000), opts.docker ? MEDIA_TYPES.dockerLayerGzip : MEDIA_TYPES.ociLayerGzip),
  );
  const config = bufferBlobSource(
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', n: randomBytes(4).toString('hex') })),
    opts.docker ? MEDIA_TYPES.dockerConfig : MEDIA_TYPES.ociConfig,
  );
  const desc = (b: BlobSource) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size });
  const doc: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: opts.docker ? MEDIA_TYPES.dockerManifest : MEDIA_TYPES.ociManifest,
    config: desc(config),
    layers: layers.map(desc),
  };
  if (opts.omitMediaType) delete doc.mediaType;
  return { bytes: Buffer.from(JSON.stringify(doc)), config, layers };
}

const TAGS = ['1.0', 'latest'];
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('uploadImage', () => {
  test('layers and the config side by side, then the manifest under each tag with its media type', async () => {
    reg = await startScriptedRegistry();
    const img = image(2, { docker: true });
    const result = await uploadImage(reg.transport(), REPO, img, TAGS, { chunkSize: 1_024, retryDelayMs: () => 0 });
    expect(result.digest).toBe(sha(img.bytes));
    expect(result.mediaType).toBe(MEDIA_TYPES.dockerManifest);
    expect(result.references).toEqual(['1.0', 'latest']);
    for (const b of [...img.layers, img.config]) expect(reg.blobs.get(b.digest)?.length).toBe(b.size);
    for (const tag of ['1.0', 'latest']) {
      expect(reg.manifests.get(`${REPO}:${tag}`)).toEqual({
        body: img.bytes,
        contentType: MEDIA_TYPES.dockerManifest,
      });
    }
    // the config's upload does not wait for the layers (3 at once: two layers and the config), the manifest waits
    // for every blob
    const blobPuts = reg.requests.filter((r) => r.method === 'PUT' && r.query.includes('digest='));
    const lastLayerPut = Math.max(
      ...blobPuts
        .filter((r) => img.layers.some((l) => r.query.includes(encodeURIComponent(l.digest))))
        .map((r) => r.index),
    );
    const configHead = reg.requests.find((r) => r.method === 'HEAD' && r.path.endsWith(img.config.digest));
    expect(configHead!.index).toBeLessThan(lastLayerPut);
    const manifestPuts = reg.requests.filter((r) => r.path.includes('/manifests/'));
    expect(Math.min(...manifestPuts.map((r) => r.index))).toBeGreaterThan(Math.max(...blobPuts.map((r) => r.index)));
    expect(manifestPuts.map((r) => [r.method, r.path, r.contentType])).toEqual([
      ['PUT', `/v2/${REPO}/manifests/1.0`, MEDIA_TYPES.dockerManifest],
      ['PUT', `/v2/${REPO}/manifests/latest`, MEDIA_TYPES.dockerManifest],
    ]);
    expect(result.blobs.map((b) => b.mode)).toEqual(['chunked', 'chunked', 'chunked']);
  });

  test('no tags: the manifest goes by digest', async () => {
    reg = await startScriptedRegistry();
    const img = image(1);
    const result = await uploadImage(reg.transport(), REPO, img, [], { retryDelayMs: () => 0 });
    expect(result.references).toEqual([sha(img.bytes)]);
    expect(reg.manifests.get(`${REPO}:${sha(img.bytes)}`)?.contentType).toBe(MEDIA_TYPES.ociManifest);
  });

  test('at most 3 blobs at once; blobs the registry holds are skipped', async () => {
    reg = await startScriptedRegistry();
    const img = image(7);
    reg.blobs.set(img.layers[0].digest, Buffer.alloc(0));
    let open = 0;
    let peak = 0;
    const transport = reg.transport();
    const counting = {
      send: async (req: Parameters<typeof transport.send>[0]) => {
        if (req.method === 'POST') peak = Math.max(peak, ++open);
        const res = await transport.send(req);
        await new Promise((r) => setTimeout(r, 20));
        if (req.method === 'PUT' && req.url.includes('/blobs/')) open--;
        return res;
      },
    };
    const result = await uploadImage(counting, REPO, img, TAGS, { retryDelayMs: () => 0 });
    expect(peak).toBe(3);
    expect(result.blobs.filter((b) => b.mode === 'exists')).toHaveLength(1);
    expect(reg.requests.filter((r) => r.method === 'POST')).toHaveLength(7);
  });

  test('blobs sent before (sentBefore) are found by their HEAD and not reported again; others the registry holds are', async () => {
    reg = await startScriptedRegistry();
    const img = image(3);
    const [early, held, fresh] = img.layers;
    for (const b of [early, held]) reg.blobs.set(b.digest, Buffer.alloc(b.size));
    const events: string[] = [];
    const progressed = new Set<string>();
    await uploadImage(reg.transport(), REPO, img, TAGS, {
      retryDelayMs: () => 0,
      sentBefore: new Set([early.digest]),
      onEvent: (e) => events.push(`${e.type} ${e.digest}`),
      onProgress: (p) => progressed.add(p.digest),
    });
    expect(reg.requests.filter((r) => r.method === 'HEAD' && r.path.endsWith(early.digest))).toHaveLength(1);
    expect(events.filter((e) => e.startsWith('exists '))).toEqual([`exists ${held.digest}`]);
    expect([...progressed].sort()).toEqual([held.digest, fresh.digest, img.config.digest].sort());
  });

  test('one layer failing for good stops the others and nothing more is sent', async () => {
    reg = await startScriptedRegistry();
    const img = image(5);
    reg.setScript((r) => (r.method === 'POST' ? { status: 403 } : undefined));
    await expect(uploadImage(reg.transport(), REPO, img, TAGS, { retryDelayMs: () => 0 })).rejects.toMatchObject({
      name: 'UploadError',
      phase: 'start',
      status: 403,
      aborted: false,
    });
    expect(reg.requests.filter((r) => r.method === 'POST').length).toBeLessThanOrEqual(3);
    expect(reg.requests.some((r) => r.path.includes('/manifests/'))).toBe(false);
  });

  test('an abort stops every upload at once', async () => {
    reg = await startScriptedRegistry();
    const img = image(5);
    reg.setScript((r) => (r.method === 'PATCH' ? { delayMs: 5_000 } : undefined));
    const ac = new AbortController();
    // the abort once three chunks are under way (the concurrency), whatever the machine's load: a fixed 150 ms
    // came before the first PATCH at load average 9
    const patches = () => reg.requests.filter((r) => r.method === 'PATCH').length;
    const aborted = (async () => {
      const t0 = Date.now();
      while (patches() < 3 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 10));
      ac.abort();
      return Date.now();
    })();
    await expect(uploadImage(reg.transport(), REPO, img, TAGS, { signal: ac.signal })).rejects.toMatchObject({
      aborted: true,
    });
    expect(Date.now() - (await aborted)).toBeLessThan(1_500);
    // a request written just before the abort may reach the registry after the rejection on a loaded machine (seen
    // at load average 15): let those land, then nothing more may come
    await new Promise((r) => setTimeout(r, 300));
    const count = reg.requests.length;
    await new Promise((r) => setTimeout(r, 500));
    expect(reg.requests.length).toBe(count);
    expect(reg.requests.filter((r) => r.method === 'PATCH')).toHaveLength(3);
  });

  test('a manifest PUT that meets a 524 is tried again; a 400 is final', async () => {
    reg = await startScriptedRegistry();
    const img = image(1);
    let puts = 0;
    reg.setScript((r) => (r.path.includes('/manifests/') && ++puts === 1 ? { status: 524 } : undefined));
    await uploadImage(reg.transport(), REPO, img, TAGS, { retryDelayMs: () => 0 });
    expect(reg.requests.filter((r) => r.path.includes('/manifests/')).map((r) => r.status)).toEqual([524, 201, 201]);

    reg.setScript((r) =>
      r.path.includes('/manifests/')
        ? { status: 400, body: '{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}' }
        : undefined,
    );
    await expect(uploadImage(reg.transport(), REPO, image(1), TAGS, { retryDelayMs: () => 0 })).rejects.toThrow(
      /manifest PUT failed \(HTTP 400 MANIFEST_INVALID\)/,
    );
  });

  test.each([
    [`sha256:${'1'.repeat(64)}`, `stored the manifest as sha256:${'1'.repeat(64)}, not sha256:`],
    ['::error::x', 'stored the manifest as "\\::error::x" (not a digest), not sha256:'],
  ])("the registry's Docker-Content-Digest must be the manifest's: %j", async (echoed, message) => {
    reg = await startScriptedRegistry();
    reg.setScript((r) =>
      r.path.includes('/manifests/') ? { status: 201, headers: { 'Docker-Content-Digest': echoed } } : undefined,
    );
    const err = await uploadImage(reg.transport(), REPO, image(1), TAGS, { retryDelayMs: () => 0 }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ name: 'UploadError', phase: 'manifest' });
    expect((err as Error).message).toContain(message);
    expect(reg.requests.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/'))).toHaveLength(1);
  });
});

describe('manifestMediaType', () => {
  test.each([
    ['docker', image(1, { docker: true }), MEDIA_TYPES.dockerManifest],
    ['oci', image(1), MEDIA_TYPES.ociManifest],
    ['oci without mediaType', image(1, { omitMediaType: true }), MEDIA_TYPES.ociManifest],
    ['docker without mediaType', image(1, { docker: true, omitMediaType: true }), MEDIA_TYPES.dockerManifest],
  ])('%s', (_name, img, expected) => {
    expect(manifestMediaType(img)).toBe(expected);
  });

  const good = image(2);
  const other = bufferBlobSource(Buffer.from('other'), MEDIA_TYPES.ociLayerGzip);
  test.each<[string, Partial<ManifestBlobs>, RegExp]>([
    ['not JSON', { bytes: Buffer.from('{') }, /not JSON/],
    [
      'an index',
      { bytes: Buffer.from(JSON.stringify({ mediaType: MEDIA_TYPES.ociIndex, manifests: [] })) },
      /not an image manifest/,
    ],
    ['another config', { config: other }, /names config/],
    ['a layer missing', { layers: [good.layers[0]] }, /names layer/],
    ['a layer too many', { layers: [...good.layers, other] }, /does not name/],
    ['a layer of another size', { layers: [good.layers[0], { ...good.layers[1], size: 1 }] }, /names layer/],
  ])('refused before any request: %s', (_name, change, message) => {
    expect(() => manifestMediaType({ ...good, ...change })).toThrow(message);
  });
});
