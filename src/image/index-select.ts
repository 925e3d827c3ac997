// Which manifests of an index to push, and the index that lists them. Pure.
// - Every platform manifest the source holds, or the `platforms` asked for (matched as containerd matches:
//   oci-layout.ts platformMatches); a platform the index lacks is an error listing what it has.
// - BuildKit's attestation manifests dropped with 'strip'; with 'keep', dropped only when the manifest they
//   describe (their `vnd.docker.reference.digest`) is left out.
// - Nothing left out: the source's index, bytes unchanged (its digest too). Else a new index: the source's JSON
//   with only the kept entries, each descriptor the object the source wrote (platform, annotations, any field this
//   code does not know), so every platform manifest keeps its digest; only the index's own digest changes.
import { sha256Digest } from './blob-source.js';
import type { IndexImage, ManifestImage } from './image-model.js';
import { parsePlatform, platformMatches } from './oci-layout.js';
import { platformString, type Platform } from './oci.js';
import { logText } from '../util/untrusted.js';

export interface SelectPlatformsOptions {
  /** os/arch[/variant] to keep; null: every platform. */
  readonly platforms: readonly string[] | null;
  readonly attestations: 'strip' | 'keep';
}

/** The index to push: an IndexImage of the kept entries (descriptors, manifests, attestations, in index order). */
export interface SelectedIndex extends IndexImage {
  /** False when the bytes are the source's own. */
  readonly changed: boolean;
}

/** BuildKit's annotation on an attestation manifest naming the manifest it describes. */
export const ATTESTATION_SUBJECT_ANNOTATION = 'vnd.docker.reference.digest';

function platformOf(m: ManifestImage): Platform | null {
  if (!m.platform) return null;
  try {
    return parsePlatform(m.platform);
  } catch {
    return null;
  }
}

/** The platform manifests `platforms` asks for (each must match one at least), in index order. */
function chosenManifests(index: IndexImage, platforms: readonly string[] | null): ManifestImage[] {
  if (platforms === null) return [...index.manifests];
  const has = index.manifests.map((m) => logText(m.platform || m.digest)).join(', ') || 'none';
  const wanted = platforms.map((p) => parsePlatform(p));
  for (const want of wanted) {
    if (!index.manifests.some((m) => matches(want, m)))
      throw new Error(`the image has no ${platformString(want)} manifest (it has ${has})`);
  }
  return index.manifests.filter((m) => wanted.some((want) => matches(want, m)));
}

function matches(want: Platform, m: ManifestImage): boolean {
  const have = platformOf(m);
  return have !== null && platformMatches(want, have);
}

/** The source index's JSON and its `manifests` array, as written (objects kept whole). */
function parseIndex(index: IndexImage): { doc: Record<string, unknown>; entries: readonly unknown[] } {
  const doc = JSON.parse(index.bytes.toString('utf8')) as Record<string, unknown>;
  const entries = doc.manifests;
  if (!Array.isArray(entries) || entries.length !== index.descriptors.length)
    throw new Error(`the index ${index.digest} does not list the descriptors it was read with`);
  return { doc, entries };
}

export function selectPlatforms(index: IndexImage, opts: SelectPlatformsOptions): SelectedIndex {
  const manifests = chosenManifests(index, opts.platforms);
  const keptDigests = new Set(manifests.map((m) => m.digest));
  const attestations =
    opts.attestations === 'strip'
      ? []
      : index.attestations.filter((a) => {
          const d = index.descriptors.find((x) => x.digest === a.digest);
          const subject = d?.annotations?.[ATTESTATION_SUBJECT_ANNOTATION];
          return subject === undefined || keptDigests.has(subject);
        });
  for (const a of attestations) keptDigests.add(a.digest);
  const keep = index.descriptors.map((d) => keptDigests.has(d.digest));
  const descriptors = index.descriptors.filter((_, i) => keep[i]);
  const common = { kind: 'index' as const, mediaType: index.mediaType, descriptors, manifests, attestations };
  if (keep.every(Boolean)) return { ...common, bytes: index.bytes, digest: index.digest, changed: false };
  const { doc, entries } = parseIndex(index);
  const bytes = Buffer.from(JSON.stringify({ ...doc, manifests: entries.filter((_, i) => keep[i]) }));
  return { ...common, bytes, digest: sha256Digest(bytes), changed: true };
}
