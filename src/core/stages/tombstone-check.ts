// After a tombstone push: ask the registry whether the tag now serves an image with no files. The manifest and
// its layers are fetched (each layer is a few bytes: an empty tar) and every layer must be an empty archive.
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { MANIFEST_ACCEPT, INDEX_MEDIA_TYPES } from '../../image/oci.js';
import { ActionFailure, type StageContext } from '../ports.js';
import { isRegistryDigest, quoteValue } from '../../registry/registry-values.js';

/** An empty layer is a tar of zero blocks only; a tombstone's is a few dozen bytes compressed. */
const MAX_EMPTY_LAYER_BYTES = 64 * 1024;

/** A layer blob (gzip or plain tar) that holds no entry: after decompression every byte is zero. */
export function isEmptyLayer(blob: Buffer): boolean {
  let tar: Buffer;
  try {
    tar =
      blob.length >= 2 && blob[0] === 0x1f && blob[1] === 0x8b
        ? gunzipSync(blob, { maxOutputLength: MAX_EMPTY_LAYER_BYTES })
        : blob;
  } catch {
    return false;
  }
  return tar.every((b) => b === 0);
}

interface ManifestJson {
  mediaType?: string;
  layers?: { digest: string; size: number }[];
}

export async function checkTombstone(ctx: StageContext, repositoryPath: string, digest: string): Promise<void> {
  const notEmpty = (why: string) =>
    new ActionFailure(
      'Tombstone check failed',
      `${repositoryPath}@${digest} should be an image with no files, but ${why}.`,
      { attempts: 1 },
    );
  const res = await ctx.registry.send({
    method: 'GET',
    url: `/v2/${repositoryPath}/manifests/${digest}`,
    repository: repositoryPath,
    headers: { Accept: MANIFEST_ACCEPT },
    signal: ctx.signal,
  });
  if (res.status !== 200) throw notEmpty(`the registry answered ${res.status} for its manifest`);
  let manifest: ManifestJson;
  try {
    manifest = JSON.parse(res.body.toString('utf8')) as ManifestJson;
  } catch {
    throw notEmpty('its manifest is not JSON');
  }
  if (INDEX_MEDIA_TYPES.has(manifest.mediaType ?? '') || !Array.isArray(manifest.layers))
    throw notEmpty('it is not a single image manifest');
  for (const layer of manifest.layers) {
    // The manifest is the registry's answer: a digest goes into a URL path and a message only when it is one.
    const named = typeof layer?.digest === 'string' ? layer.digest : String(layer?.digest);
    if (!named.startsWith('sha256:') || !isRegistryDigest(named))
      throw notEmpty(`a layer's digest is ${quoteValue(named)}, not a sha256 digest`);
    if (typeof layer.size !== 'number' || !(layer.size >= 0) || layer.size > MAX_EMPTY_LAYER_BYTES)
      throw notEmpty(`layer ${named} is ${quoteValue(String(layer.size))} bytes`);
    let blob = await ctx.registry.send({
      method: 'GET',
      url: `/v2/${repositoryPath}/blobs/${layer.digest}`,
      repository: repositoryPath,
      signal: ctx.signal,
      maxBodyBytes: MAX_EMPTY_LAYER_BYTES,
    });
    const location = blob.headers.get('location');
    // Registries may serve blobs from storage elsewhere (a redirect); that host gets no credentials.
    if (blob.status >= 300 && blob.status < 400 && location)
      blob = await ctx.registry.send({
        method: 'GET',
        url: location,
        repository: repositoryPath,
        signal: ctx.signal,
        maxBodyBytes: MAX_EMPTY_LAYER_BYTES,
      });
    if (blob.status !== 200) throw notEmpty(`the registry answered ${blob.status} for layer ${named}`);
    // bytes that are not the layer's would make any tag look empty
    if (`sha256:${createHash('sha256').update(blob.body).digest('hex')}` !== named)
      throw notEmpty(`the registry served other bytes for layer ${named}`);
    if (!isEmptyLayer(blob.body)) throw notEmpty(`layer ${named} holds files`);
  }
  ctx.log.info(`verified: ${repositoryPath}@${digest} is an image with no files`);
}
