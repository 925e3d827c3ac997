// Layer facts of an image read from a source, as the engine's inspect and history give them for a local image:
// each layer's diff ID and instruction from its platform's config (rootfs.diff_ids, history), its size from the
// manifest (compressed: what the upload sends). The config is a small blob, read capped; a config that cannot be
// read or matched leaves the instructions unknown, never the push.
import { cleanInstruction, type LayerFact } from '../../image/layers.js';
import { shortDigest } from '../../image/oci.js';
import type { ManifestImage } from '../../image/image-model.js';
import { sha256Digest } from '../../image/blob-source.js';
import { numberedLayers } from '../../upload/push-image.js';

/** A config is a few KiB; BuildKit's with a long history a few hundred. More is not read. */
export const CONFIG_MAX_BYTES = 4 * 1024 * 1024;

interface ConfigDoc {
  rootfs?: { diff_ids?: unknown };
  history?: Array<{ created_by?: unknown; empty_layer?: unknown }>;
}

/** One pushed platform manifest, for the log, the summary and the `platforms` output. */
export interface PlatformFacts {
  readonly platform: string;
  readonly digest: string;
  readonly layers: number;
  /** The layers' sizes as the manifest gives them (compressed). */
  readonly size: number;
}

/** The config's bytes, at most CONFIG_MAX_BYTES and only when they are what its digest says; else null. */
async function readConfig(manifest: ManifestImage, signal: AbortSignal): Promise<ConfigDoc | null> {
  const { config } = manifest;
  if (config.size > CONFIG_MAX_BYTES) return null;
  const chunks: Buffer[] = [];
  let total = 0;
  const stream = config.open(0);
  try {
    for await (const chunk of stream) {
      if (signal.aborted) return null;
      total += (chunk as Buffer).length;
      if (total > CONFIG_MAX_BYTES) return null;
      chunks.push(chunk as Buffer);
    }
  } catch {
    return null;
  } finally {
    stream.destroy();
  }
  const bytes = Buffer.concat(chunks);
  if (sha256Digest(bytes) !== config.digest) return null;
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as ConfigDoc;
    return doc && typeof doc === 'object' ? doc : null;
  } catch {
    return null;
  }
}

/** The instructions of the history entries that made a layer, oldest first; null when they do not match. */
function instructions(doc: ConfigDoc | null, layers: number): (string | null)[] {
  const rows = Array.isArray(doc?.history) ? doc.history.filter((h) => h && h.empty_layer !== true) : [];
  if (rows.length !== layers) return new Array<null>(layers).fill(null);
  return rows.map((h) => (typeof h.created_by === 'string' ? cleanInstruction(h.created_by) : ''));
}

function diffIds(doc: ConfigDoc | null): readonly unknown[] {
  const ids = doc?.rootfs?.diff_ids;
  return Array.isArray(ids) ? ids : [];
}

/**
 * Every layer the pushed manifests name, numbered from 1 as the uploader names a failed one (numberedLayers: each
 * manifest's in its order, a blob an earlier platform named not again); and a line of facts per platform.
 */
export async function modelFacts(
  manifests: readonly ManifestImage[],
  signal: AbortSignal,
): Promise<{ layers: LayerFact[]; platforms: PlatformFacts[] }> {
  const configs: { ids: readonly unknown[]; said: (string | null)[] }[] = [];
  for (const m of manifests) {
    const doc = await readConfig(m, signal);
    configs.push({ ids: diffIds(doc), said: instructions(doc, m.layers.length) });
  }
  const layers = numberedLayers(manifests).map(({ manifest, at, blob }, i): LayerFact => {
    const id = configs[manifest].ids[at];
    const diffId = typeof id === 'string' && /^sha256:[a-f0-9]{64}$/.test(id) ? id : blob.digest;
    return {
      index: i + 1,
      diffId,
      shortId: shortDigest(diffId),
      size: blob.size,
      instruction: configs[manifest].said[at],
    };
  });
  const platforms = manifests.map((m) => {
    const size = m.layers.reduce((sum, l) => sum + l.size, 0);
    return { platform: m.platform, digest: m.digest, layers: m.layers.length, size };
  });
  return { layers, platforms };
}
