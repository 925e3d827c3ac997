// Another registry as the image's source (`docker://HOST/REPO[:TAG|@DIGEST]`). The manifest is fetched with every
// media type accepted, under a 4 MiB cap, and its bytes hashed: by digest they must be that digest, by tag the
// Docker-Content-Digest (when sent) must be their hash. An index's children are fetched by digest with the same
// checks, images and attestation manifests apart; each blob is a BlobSource streaming from the registry
// (registry-blob.ts), so nothing is downloaded before the uploader reads it. Any failure here is an error naming
// the source registry, raised before anything is pushed.
import { sha256Digest } from '../image/blob-source.js';
import type { IndexImage, ManifestImage, OpenedImage, OpenSourceOptions } from '../image/image-model.js';
import { INDEX_MEDIA_TYPES, isAttestation, MANIFEST_ACCEPT, MEDIA_TYPES, platformString } from '../image/oci.js';
import type { Descriptor, ManifestDoc } from '../image/oci-layout.js';
import { RegistryBlobReader } from './registry-blob.js';
import { RegistryClient, RegistryError, type Credentials, type RegistryClientOptions } from './registry-client.js';
import { isRegistryDigest, quoteValue } from './registry-values.js';

export interface RegistrySourceRef {
  readonly host: string;
  readonly repository: string;
  /** A tag or a digest (`sha256:…`). */
  readonly reference: string;
}

export interface RegistrySourceOptions extends OpenSourceOptions, RegistryClientOptions {
  /** null: anonymous. */
  readonly credentials: Credentials | null;
  /** A blob read that receives nothing for this long is cut and resumed; default 60 s. */
  readonly idleMs?: number;
  /** Resumes one blob read may make after a reset or stall; default 5. */
  readonly maxResumes?: number;
  /** Wait before the n-th resume of a blob read (tests). */
  readonly resumeDelayMs?: (n: number) => number;
}

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const IMAGE_MANIFESTS: ReadonlySet<string> = new Set([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
/** Docker Hub's name in references, and where its v2 API is. */
const HUB_API = 'registry-1.docker.io';

interface Fetched {
  readonly bytes: Buffer;
  readonly digest: string;
  readonly mediaType: string;
  readonly doc: Record<string, unknown>;
}

/** The source's failure, its message naming the registry (the client's own messages start with its host). */
function sourceError(host: string, what: string, status: number | null, kind?: RegistryError['kind']): RegistryError {
  return new RegistryError(`the source registry ${host}: ${what}`, status, kind);
}

/** GET one manifest; its bytes checked against the digest asked for, or the one the registry says it sent. */
async function fetchManifest(client: RegistryClient, repository: string, reference: string, signal?: AbortSignal) {
  const byDigest = reference.startsWith('sha256:');
  const ref = `${repository}${byDigest ? '@' : ':'}${reference}`;
  const res = await client.send({
    method: 'GET',
    url: `/v2/${repository}/manifests/${reference}`,
    repository,
    headers: { Accept: MANIFEST_ACCEPT },
    maxBodyBytes: MAX_MANIFEST_BYTES,
    signal,
  });
  if (res.status === 401 || res.status === 403)
    throw sourceError(client.host, `refused the credentials for ${ref} (${res.status})`, res.status);
  if (res.status === 404) throw sourceError(client.host, `has no manifest ${ref} (404)`, 404);
  if (res.status !== 200) throw sourceError(client.host, `GET ${ref} answered ${res.status}`, res.status);
  const digest = sha256Digest(res.body);
  const said = res.headers.get('docker-content-digest');
  if (byDigest && digest !== reference)
    throw sourceError(client.host, `the manifest ${ref} has the digest ${digest}`, 200, 'protocol');
  if (!byDigest && said && said !== digest)
    throw sourceError(
      client.host,
      `the manifest ${ref} hashes to ${digest}, not its Docker-Content-Digest ` +
        (isRegistryDigest(said) ? said : quoteValue(said)),
      200,
      'protocol',
    );
  let doc: unknown;
  try {
    doc = JSON.parse(res.body.toString('utf8'));
  } catch {
    throw sourceError(client.host, `the manifest ${ref} is not JSON`, 200, 'protocol');
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    throw sourceError(client.host, `the manifest ${ref} is not a JSON object`, 200, 'protocol');
  const fields = doc as Record<string, unknown>;
  const declared = typeof fields.mediaType === 'string' ? fields.mediaType : '';
  const header = (res.headers.get('content-type') ?? '').split(';')[0].trim();
  const mediaType = declared || (Array.isArray(fields.manifests) ? MEDIA_TYPES.ociIndex : header);
  return { bytes: res.body, digest, mediaType, doc: fields } satisfies Fetched;
}

function isDescriptor(d: unknown): d is Descriptor {
  const x = d as Descriptor | null;
  return !!x && typeof x === 'object' && isRegistryDigest(x.digest) && Number.isSafeInteger(x.size) && x.size >= 0;
}

/** An image manifest's config and layers as BlobSources; `platform` from the index, else ''. */
function manifestImage(host: string, fetched: Fetched, platform: string, reader: RegistryBlobReader): ManifestImage {
  if (!IMAGE_MANIFESTS.has(fetched.mediaType))
    throw sourceError(host, `${fetched.digest} is a ${quoteValue(fetched.mediaType)}, not an image manifest`, 200);
  const doc = fetched.doc as unknown as ManifestDoc;
  const layers = Array.isArray(doc.layers) ? doc.layers : [];
  if (!isDescriptor(doc.config) || !layers.every(isDescriptor))
    throw sourceError(host, `the manifest ${fetched.digest} names a blob without a digest and size`, 200, 'protocol');
  const blob = (d: Descriptor) =>
    reader.source({ digest: d.digest, size: d.size, mediaType: d.mediaType ?? 'application/octet-stream' });
  return {
    kind: 'manifest',
    bytes: fetched.bytes,
    digest: fetched.digest,
    mediaType: fetched.mediaType,
    platform,
    config: blob(doc.config),
    layers: layers.map(blob),
  };
}

/** An index: each child fetched by digest (its size as the descriptor says), images and attestations apart. */
async function indexImage(
  client: RegistryClient,
  repository: string,
  fetched: Fetched,
  reader: RegistryBlobReader,
  signal?: AbortSignal,
): Promise<IndexImage> {
  const entries = Array.isArray(fetched.doc.manifests) ? (fetched.doc.manifests as unknown[]) : [];
  if (!entries.every(isDescriptor))
    throw sourceError(client.host, `the index ${fetched.digest} names a manifest without a digest and size`, 200);
  const manifests: ManifestImage[] = [];
  const attestations: ManifestImage[] = [];
  for (const d of entries) {
    const child = await fetchManifest(client, repository, d.digest, signal);
    if (child.bytes.length !== d.size)
      throw sourceError(client.host, `${d.digest} is ${child.bytes.length} bytes, the index says ${d.size}`, 200);
    const image = manifestImage(client.host, child, d.platform ? platformString(d.platform) : '', reader);
    (isAttestation(d) ? attestations : manifests).push(image);
  }
  return {
    kind: 'index',
    bytes: fetched.bytes,
    digest: fetched.digest,
    mediaType: fetched.mediaType,
    descriptors: entries,
    manifests,
    attestations,
  };
}

/**
 * Opens `docker://HOST/REPO[:TAG|@DIGEST]`: the manifest or index and every child manifest fetched and checked,
 * every blob streamed when the uploader reads it. Throws a RegistryError naming the source registry.
 */
export async function openRegistrySource(src: RegistrySourceRef, opts: RegistrySourceOptions): Promise<OpenedImage> {
  const hub = src.host === 'docker.io';
  const host = hub ? HUB_API : src.host;
  const repository = hub && !src.repository.includes('/') ? `library/${src.repository}` : src.repository;
  const client = new RegistryClient(host, opts.credentials, opts);
  const reader = new RegistryBlobReader(client, repository, {
    idleMs: opts.idleMs,
    maxResumes: opts.maxResumes,
    resumeDelayMs: opts.resumeDelayMs,
    signal: opts.signal,
  });
  const name = `docker://${src.host}/${src.repository}${src.reference.startsWith('sha256:') ? '@' : ':'}${src.reference}`;
  try {
    const fetched = await fetchManifest(client, repository, src.reference, opts.signal);
    const image = INDEX_MEDIA_TYPES.has(fetched.mediaType)
      ? await indexImage(client, repository, fetched, reader, opts.signal)
      : manifestImage(client.host, fetched, '', reader);
    return { image, name, close: async () => undefined };
  } catch (e) {
    if (e instanceof RegistryError && e.message.startsWith('the source registry')) throw e;
    // the token realm or the network: the client's message (it starts with the host) under the source's name
    const message = (e as Error).message.replace(`${host}: `, '');
    throw sourceError(host, message, e instanceof RegistryError ? e.status : null);
  }
}
