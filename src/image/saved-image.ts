// Which entries of an OCI layout or a saved archive are the image: the one place that reads index.json (nested
// indexes, BuildKit's attestation manifests beside the platforms) and manifest.json (`docker save`'s list, with
// its RepoTags). Every reader of a layout or a `docker save` archive asks here: the OCI layout and archive sources,
// the docker-archive source, the engine's `docker save` (upload/image-source.ts, through selectManifest) and the
// split's reader (oci-layout-read.ts). Pure: documents in (a ReadDoc), choices out; how the bytes are stored (a
// directory, byte ranges of a tar, a spilled stream) is the caller's.
import { createHash } from 'node:crypto';
import {
  blobName,
  INDEX_MEDIA_TYPES,
  isAttestation,
  MEDIA_TYPES,
  platformString,
  type Descriptor,
  type ManifestDoc,
  type Platform,
} from './oci.js';
import { logText } from '../util/untrusted.js';

/** A layout's or an archive's file by name (`index.json`, `blobs/sha256/HEX`); undefined when it has none. */
export type ReadDoc = (name: string) => Buffer | undefined;

/** The largest document (index, manifest, config) read into memory. */
export const MAX_DOCUMENT_SIZE = 4 * 1024 * 1024;
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
/** What containerd's `docker save` names an index.json entry (`docker.io/library/app:1`). */
export const IMAGE_NAME_ANNOTATION = 'io.containerd.image.name';
const MAX_DEPTH = 4;

const MANIFEST_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);

export interface IndexDoc {
  readonly mediaType?: string;
  readonly manifests?: readonly Descriptor[];
}

/** An image manifest found in the layout: its bytes exact and checked against the descriptor's digest. */
export interface LayoutManifest {
  readonly descriptor: Descriptor;
  readonly bytes: Buffer;
  readonly digest: string;
  readonly mediaType: string;
  readonly doc: ManifestDoc;
  /** os/architecture[/variant] as the descriptor or else the config says; '' when neither does. */
  readonly platform: string;
}

/** What one layout entry is: an image manifest, or the index that holds the platform manifests. */
export type LayoutImage =
  | { readonly kind: 'manifest'; readonly manifest: LayoutManifest }
  | {
      readonly kind: 'index';
      readonly bytes: Buffer;
      readonly digest: string;
      readonly mediaType: string;
      readonly descriptors: readonly Descriptor[];
      /** Platform manifests the layout holds, in index order (a descriptor whose manifest is absent is left out). */
      readonly manifests: readonly LayoutManifest[];
      readonly attestations: readonly LayoutManifest[];
    };

/** One image of `docker save`'s manifest.json. */
export interface SavedManifestEntry {
  /** Archive entry names. */
  readonly config: string;
  readonly layers: readonly string[];
  readonly repoTags: readonly string[];
}

export function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw new Error(`${what} is not JSON: ${(e as Error).message}`, { cause: e });
  }
}

export function sha256Of(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * The document a descriptor names, its size and digest checked against its bytes; undefined when the layout does
 * not hold it. A document over MAX_DOCUMENT_SIZE, or whose bytes are not what the descriptor says, throws naming it.
 */
export function readVerified(read: ReadDoc, d: Descriptor, what: string): Buffer | undefined {
  if (typeof d.size === 'number' && d.size > MAX_DOCUMENT_SIZE)
    throw new Error(`the ${what} ${d.digest} is ${d.size} bytes, over the ${MAX_DOCUMENT_SIZE} a document may be`);
  const bytes = read(blobName(d.digest));
  if (!bytes) return undefined;
  const actual = sha256Of(bytes);
  if (actual !== d.digest) throw new Error(`the ${what} ${d.digest} does not match its bytes (they hash to ${actual})`);
  if (typeof d.size === 'number' && d.size !== bytes.length)
    throw new Error(`the ${what} ${d.digest} is ${bytes.length} bytes, its descriptor says ${d.size}`);
  return bytes;
}

function mustRead(read: ReadDoc, d: Descriptor, what: string): Buffer {
  const bytes = readVerified(read, d, what);
  if (!bytes) throw new Error(`the layout lacks the ${what} ${d.digest}`);
  return bytes;
}

const isIndex = (d: Descriptor) => !!d.mediaType && INDEX_MEDIA_TYPES.has(d.mediaType);
const isManifest = (d: Descriptor) => !d.mediaType || MANIFEST_TYPES.has(d.mediaType);

/** index.json's entries (the layout's own file, not a blob). */
export function layoutEntries(read: ReadDoc): readonly Descriptor[] {
  const bytes = read('index.json');
  if (!bytes) throw new Error('it has no index.json');
  const doc = parseJson<IndexDoc>(bytes, 'index.json');
  if (!Array.isArray(doc.manifests)) throw new Error('index.json lists no manifests');
  return doc.manifests;
}

function describeEntry(d: Descriptor): string {
  const name = d.annotations?.[REF_NAME_ANNOTATION] ?? d.annotations?.[IMAGE_NAME_ANNOTATION];
  return name ? `${logText(name)} (${logText(d.digest)})` : logText(d.digest);
}

/**
 * The index.json entry to open: the one whose ref name annotation is `ref` (or that `matches`, when given); with
 * neither, the only entry. Throws listing the entries when none or several fit.
 */
export function pickLayoutEntry(
  entries: readonly Descriptor[],
  ref: string | null,
  matches?: (d: Descriptor) => boolean,
): Descriptor {
  const list = () => entries.map(describeEntry).join(', ') || 'none';
  if (ref === null && !matches) {
    if (entries.length === 1) return entries[0];
    throw new Error(`index.json lists ${entries.length} images (${list()}); name one`);
  }
  const fits = entries.filter((d) => (matches ? matches(d) : d.annotations?.[REF_NAME_ANNOTATION] === ref));
  if (fits.length === 1) return fits[0];
  const what = fits.length === 0 ? 'no image' : `${fits.length} images`;
  throw new Error(`index.json lists ${what} named ${JSON.stringify(ref)} (it has ${list()})`);
}

/** The image manifest a descriptor names, checked (readVerified); null when the layout does not hold it. */
export function layoutManifest(read: ReadDoc, d: Descriptor, what: string): LayoutManifest | null {
  const bytes = readVerified(read, d, what);
  if (!bytes) return null;
  const doc = parseJson<ManifestDoc>(bytes, `${what} ${d.digest}`);
  if (!doc.config?.digest || !Array.isArray(doc.layers)) throw new Error(`${what} ${d.digest} names no config`);
  const mediaType = doc.mediaType ?? d.mediaType ?? MEDIA_TYPES.ociManifest;
  let p: Platform | undefined = d.platform;
  if (!p?.os && !isAttestation(d)) {
    const config = readVerified(read, doc.config, 'config');
    p = config ? parseJson<Platform>(config, `config ${doc.config.digest}`) : undefined;
  }
  const platform = p ? platformString({ os: p.os, architecture: p.architecture, variant: p.variant }) : '';
  return { descriptor: d, bytes, digest: d.digest, mediaType, doc, platform };
}

/**
 * The image an index.json entry names. A chain of indexes that each hold one index (buildx: index.json -> the
 * image's index) is followed to the index that holds the manifests; that one, bytes exact, is the image.
 */
export function resolveLayoutImage(read: ReadDoc, entry: Descriptor): LayoutImage {
  let d = entry;
  for (let depth = 0; ; depth++) {
    if (depth > MAX_DEPTH) throw new Error('the layout nests indexes too deeply');
    if (!isIndex(d)) {
      if (!isManifest(d)) throw new Error(`${d.digest} is a ${d.mediaType}, not an image manifest or index`);
      const manifest = layoutManifest(read, d, 'manifest');
      if (!manifest) throw new Error(`the layout lacks the manifest ${d.digest}`);
      return { kind: 'manifest', manifest };
    }
    const bytes = mustRead(read, d, 'index');
    const doc = parseJson<IndexDoc>(bytes, `index ${d.digest}`);
    const descriptors = Array.isArray(doc.manifests) ? doc.manifests : [];
    if (descriptors.length === 1 && isIndex(descriptors[0])) {
      d = descriptors[0];
      continue;
    }
    if (descriptors.some(isIndex)) throw new Error(`the index ${d.digest} mixes indexes and manifests`);
    const mediaType = doc.mediaType ?? d.mediaType ?? MEDIA_TYPES.ociIndex;
    const found = (attestation: boolean) =>
      descriptors
        .filter((m) => isAttestation(m) === attestation && isManifest(m))
        .flatMap((m) => layoutManifest(read, m, attestation ? 'attestation manifest' : 'manifest') ?? []);
    const manifests = found(false);
    if (manifests.length === 0) throw new Error(`the layout holds none of the manifests the index ${d.digest} lists`);
    return { kind: 'index', bytes, digest: d.digest, mediaType, descriptors, manifests, attestations: found(true) };
  }
}

/**
 * Every image manifest descriptor reachable from index.json (nested indexes followed, attestations skipped), each
 * digest once: what a reader that takes one platform (the engine's save, the split) chooses from.
 */
export function reachableManifests(read: ReadDoc): Descriptor[] {
  const found: Descriptor[] = [];
  const visit = (manifests: readonly Descriptor[] | undefined, depth: number) => {
    if (depth > MAX_DEPTH) throw new Error('index.json nests indexes too deeply');
    for (const d of manifests ?? []) {
      if (isAttestation(d)) continue;
      if (isIndex(d)) {
        const nested = read(blobName(d.digest));
        if (!nested) throw new Error(`the archive lacks the index ${d.digest}`);
        visit(parseJson<IndexDoc>(nested, `index ${d.digest}`).manifests, depth + 1);
      } else if (isManifest(d)) found.push(d);
    }
  };
  const index = read('index.json');
  if (!index) throw new Error('the archive has no index.json');
  visit(parseJson<IndexDoc>(index, 'index.json').manifests, 0);
  return [...new Map(found.map((d) => [d.digest, d])).values()];
}

/** `app`, `app:1`, `docker.io/library/app:1` -> one form (`app:1`), as docker shows a name. */
export function familiarName(name: string): string {
  let n = name.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
  if (!/:[^/]*$/.test(n) && !n.includes('@')) n = `${n}:latest`;
  return n;
}

/** The images of `docker save`'s manifest.json, checked for the fields every reader uses. */
export function savedManifest(read: ReadDoc): SavedManifestEntry[] {
  const bytes = read('manifest.json');
  if (!bytes) throw new Error('the archive has no manifest.json');
  const list = parseJson<Array<{ Config?: unknown; Layers?: unknown; RepoTags?: unknown }>>(bytes, 'manifest.json');
  if (!Array.isArray(list)) throw new Error('manifest.json is not a list of images');
  return list.map((m) => {
    if (typeof m?.Config !== 'string' || !Array.isArray(m.Layers) || !m.Layers.every((l) => typeof l === 'string'))
      throw new Error('manifest.json has no Config or Layers');
    const tags = Array.isArray(m.RepoTags) ? m.RepoTags.filter((t): t is string => typeof t === 'string') : [];
    return { config: m.Config, layers: m.Layers as string[], repoTags: tags };
  });
}

/** The manifest.json image `name` tags (any, when null and there is one); throws listing the images otherwise. */
export function pickSavedImage(list: readonly SavedManifestEntry[], name: string | null): SavedManifestEntry {
  const describe = () => list.map((m) => logText(m.repoTags.join(' ') || m.config)).join(', ') || 'none';
  if (name === null) {
    if (list.length === 1) return list[0];
    throw new Error(`the archive holds ${list.length} images (${describe()}); name one`);
  }
  const want = familiarName(name);
  const fits = list.filter((m) => m.repoTags.some((t) => familiarName(t) === want));
  if (fits.length === 1) return fits[0];
  throw new Error(`the archive holds no image tagged ${JSON.stringify(name)} (it has ${describe()})`);
}

/** Whether an index.json entry is the image `name` (containerd's name annotation, else the ref name as a tag). */
export function entryNamed(name: string): (d: Descriptor) => boolean {
  const want = familiarName(name);
  return (d) => {
    const full = d.annotations?.[IMAGE_NAME_ANNOTATION];
    return full ? familiarName(full) === want : d.annotations?.[REF_NAME_ANNOTATION] === name;
  };
}

/** A classic-store image of a saved archive: its config as saved and each layer tar with the diff ID it must have. */
export interface ClassicImage {
  readonly configName: string;
  readonly configBytes: Buffer;
  /** os/architecture[/variant] as the config says; '' when it does not. */
  readonly platform: string;
  /** In manifest.json's order (a layer may be listed twice). */
  readonly layers: readonly { readonly name: string; readonly diffId: string }[];
}

/** An archive entry named by a digest whose bytes hash to another. */
export class BlobDigestError extends Error {
  constructor(
    readonly entry: string,
    readonly actual: string,
  ) {
    super(`the archive's ${entry} is not what its name says: its bytes hash to ${actual}`);
    this.name = 'BlobDigestError';
  }
}

/** The digest an archive entry's name claims: `<hex>.json` (a classic config), `blobs/sha256/<hex>`; else null. */
function claimedDigest(name: string): string | null {
  const m = /^(?:([a-f0-9]{64})\.json|blobs\/sha256\/([a-f0-9]{64}))$/.exec(name);
  return m ? `sha256:${m[1] ?? m[2]}` : null;
}

/**
 * The manifest.json image `name` tags (the only one when null), its config read and checked: its bytes are what
 * its name says, and it names one diff ID per layer listed.
 */
export function classicImage(read: ReadDoc, name: string | null): ClassicImage {
  const entry = pickSavedImage(savedManifest(read), name);
  const configBytes = read(entry.config);
  if (!configBytes) throw new Error(`the archive has no config document ${logText(entry.config)}`);
  const claimed = claimedDigest(entry.config);
  const actual = sha256Of(configBytes);
  if (claimed && claimed !== actual) throw new BlobDigestError(entry.config, actual);
  const config = parseJson<Platform & { rootfs?: { diff_ids?: unknown } }>(configBytes, 'the image config');
  const diffIds = Array.isArray(config.rootfs?.diff_ids) ? (config.rootfs.diff_ids as unknown[]) : [];
  if (diffIds.length !== entry.layers.length)
    throw new Error(`the config names ${diffIds.length} layers, the archive lists ${entry.layers.length}`);
  const layers = entry.layers.map((l, i) => {
    const diffId = diffIds[i];
    if (typeof diffId !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(diffId))
      throw new Error(`the config's diff ID ${i + 1} is not a sha256 digest`);
    return { name: l, diffId };
  });
  const platform = platformString({ os: config.os, architecture: config.architecture, variant: config.variant });
  return { configName: entry.config, configBytes, platform, layers };
}
