// A prepared image (the split's pieces) and its early blobs, sent to the scripted loopback registry: the manifest
// under every tag with its blobs, the failure naming the 1-based layer it stopped at, and an early blob's one try
// (its failure said, not thrown: the push that follows sends it again).
import { createHash, randomBytes } from 'node:crypto';
import { bufferBlobSource, type BlobSource } from '../../../src/image/blob-source.js';
import { MEDIA_TYPES } from '../../../src/image/oci.js';
import { pushPreparedBlob, pushPreparedImage, type PreparedImage } from '../../../src/upload/prepared-image.js';
import { startScriptedRegistry, type ScriptedRegistry } from '../../../test/support/upload-registry.js';

const REPO = 'app/prepared';
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let reg: ScriptedRegistry;
afterEach(async () => reg?.stop());

function prepared(): PreparedImage {
  const layers = [1, 2].map(() => bufferBlobSource(randomBytes(2_000), MEDIA_TYPES.dockerLayerGzip));
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
    config,
    layers,
    manifest: { mediaType: MEDIA_TYPES.dockerManifest, bytes, digest: sha(bytes) },
    dir: '/nowhere',
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

test('the prepared image under every tag, every blob with it', async () => {
  reg = await startScriptedRegistry();
  const image = prepared();
  const result = await pushPreparedImage({ ...common(), image, tags: ['1.0', 'latest'] });
  expect(result).toEqual({ ok: true, digest: image.manifest.digest });
  for (const tag of ['1.0', 'latest'])
    expect(reg.manifests.get(`${REPO}:${tag}`)?.body.equals(image.manifest.bytes)).toBe(true);
  for (const b of [image.config, ...image.layers]) expect(reg.blobs.get(b.digest)?.length).toBe(b.size);
});

test('a refused layer: never thrown, the failure names that layer (1-based)', async () => {
  reg = await startScriptedRegistry();
  const image = prepared();
  const second = image.layers[1].digest;
  reg.setScript((r) =>
    r.method === 'PUT' && r.query.includes(encodeURIComponent(second)) ? { status: 403 } : undefined,
  );
  const result = await pushPreparedImage({ ...common(), image, tags: ['1.0'] });
  expect(result.ok).toBe(false);
  expect(result.ok === false && result.layer).toBe(2);
  expect(reg.manifests.has(`${REPO}:1.0`)).toBe(false);
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
