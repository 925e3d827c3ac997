// An image of the model (here as the split makes one) and its early blobs, sent to the scripted loopback registry:
// the manifest under every tag with its blobs, the failure naming the 1-based layer it stopped at as the plan numbers
// them, and an early blob's one try (its failure said, not thrown: the push that follows sends it again).
import { createHash, randomBytes } from 'node:crypto';
import { bufferBlobSource, type BlobSource } from '../../../src/image/blob-source.js';
import { MEDIA_TYPES } from '../../../src/image/oci.js';
import type { ManifestImage } from '../../../src/image/image-model.js';
import { numberedLayers, pushImage, pushPreparedBlob } from '../../../src/upload/push-image.js';
import { startScriptedRegistry, type ScriptedRegistry } from '../../../test/support/upload-registry.js';

const REPO = 'app/prepared';
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let reg: ScriptedRegistry;
afterEach(async () => reg?.stop());

function prepared(count = 2): ManifestImage {
  const layers = Array.from({ length: count }, () => bufferBlobSource(randomBytes(2_000), MEDIA_TYPES.dockerLayerGzip));
  const config = bufferBlobSource(
    Buffer.from(`{"os":"linux","n":"${randomBytes(4).toString('hex')}"}`),
    MEDIA_TYPES.dockerConfig,
  );
  const desc = (b: BlobSource) => ({ mediaType: b.mediaType, size: b.size, digest: b.digest });
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.dockerManifest,
      config: desc(config),
      layers: layers.map(desc),
    }),
  );
  return {
    kind: 'manifest',
    bytes,
    digest: sha(bytes),
    mediaType: MEDIA_TYPES.dockerManifest,
    platform: 'linux',
    config,
    layers,
  };
}

const common = () => ({
  repositoryPath: REPO,
  chunkSize: 1_000_000,
  signal: new AbortController().signal,
  transport: reg.transport(),
  onEvent: () => undefined,
  onProgress: () => undefined,
});

test('the image under every tag, every blob with it', async () => {
  reg = await startScriptedRegistry();
  const image = prepared();
  const result = await pushImage({ ...common(), image, tags: ['1.0', 'latest'] });
  expect(result).toEqual({ ok: true, digest: image.digest });
  for (const tag of ['1.0', 'latest']) expect(reg.manifests.get(`${REPO}:${tag}`)?.body.equals(image.bytes)).toBe(true);
  for (const b of [image.config, ...image.layers]) expect(reg.blobs.get(b.digest)?.length).toBe(b.size);
});

test('a refused layer: never thrown, the failure names that layer (1-based)', async () => {
  reg = await startScriptedRegistry();
  const image = prepared();
  const second = image.layers[1].digest;
  reg.setScript((r) =>
    r.method === 'PUT' && r.query.includes(encodeURIComponent(second)) ? { status: 403 } : undefined,
  );
  const result = await pushImage({ ...common(), image, tags: ['1.0'] });
  expect(result.ok).toBe(false);
  expect(result.ok === false && result.layer).toBe(2);
  expect(reg.manifests.has(`${REPO}:1.0`)).toBe(false);
});

test('layers numbered as the plan numbers them: a repeat in one manifest at each place, a shared one once', () => {
  const [a, b, c] = prepared(3).layers;
  const first = { ...prepared(), layers: [a, b, a] };
  const second = { ...prepared(), layers: [a, c] };
  expect(numberedLayers([first]).map((l) => l.blob)).toEqual([a, b, a]);
  expect(numberedLayers([first, second]).map((l) => [l.manifest, l.at, l.blob])).toEqual([
    [0, 0, a],
    [0, 1, b],
    [0, 2, a],
    [1, 1, c],
  ]);
});

test('an early blob: null once the registry holds it, what went wrong (one try) when it does not', async () => {
  reg = await startScriptedRegistry();
  const [ok, refused] = prepared().layers;
  expect(await pushPreparedBlob({ ...common(), blob: ok })).toBeNull();
  expect(reg.blobs.get(ok.digest)?.length).toBe(ok.size);
  reg.setScript((r) => (r.method === 'POST' ? { status: 503 } : undefined));
  const said = await pushPreparedBlob({ ...common(), blob: refused });
  expect(said).toMatch(/503/);
  expect(reg.requests.filter((r) => r.method === 'POST')).toHaveLength(2); // one for each: no retry of the second
  expect(reg.blobs.has(refused.digest)).toBe(false);
});
