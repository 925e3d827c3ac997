// Cross-repository mount (distribution spec): a blob read from another repository of the target's own registry is
// not copied but mounted, `POST /v2/TARGET/blobs/uploads/?mount=DIGEST&from=SOURCE`. 201: the registry linked it, no
// byte is sent. 202: it could not (the source repository is not readable with these credentials, or the blob is
// not there) and opened an upload session instead, which the upload then uses as a POST's own. Any other answer,
// or none, leaves the upload as it would have been: mounting is an optimisation, never a failure.
import type { BlobUpload } from './blob-upload.js';
import { resolveLocation } from './protocol.js';
import { chunkLimits, type ChunkLimits } from '../registry/registry-values.js';

export interface UploadSession {
  readonly location: string;
  readonly limits: ChunkLimits;
}

/** Sessions a 202 to a mount opened, handed to the upload's first POST instead of opening another. */
const offered = new WeakMap<BlobUpload, UploadSession>();

/** The repository to mount from: the blob's source repository when it is on this very registry, else null. */
export function mountSource(
  target: { readonly host?: string; readonly repository: string },
  source: { readonly host: string; readonly repository: string } | undefined,
): string | null {
  if (!source || !target.host || source.host !== target.host || source.repository === target.repository) return null;
  return source.repository;
}

/**
 * Tries the mount, from `from` (a repository of this registry another image of the run uploaded the blob to,
 * shared-blobs.ts) or else the blob's source repository; the repository mounted from when the registry now holds the
 * blob (201), else null. A 202's session is kept for the upload.
 */
export async function mountBlob(up: BlobUpload, sibling?: string): Promise<string | null> {
  const from =
    sibling && sibling !== up.repository
      ? sibling
      : mountSource({ host: up.transport.host, repository: up.repository }, up.source.sourceRepository);
  if (!from) return null;
  const url =
    `/v2/${up.repository}/blobs/uploads/?mount=${encodeURIComponent(up.digest)}` + `&from=${encodeURIComponent(from)}`;
  const { res } = await up.send('start', { method: 'POST', url, headers: { 'Content-Length': '0' }, mountFrom: from });
  if (res?.status === 201) {
    up.checkEcho('start', res);
    return from;
  }
  const location = res?.headers.get('location');
  if (res?.status === 202 && location)
    offered.set(up, {
      location: resolveLocation(`/v2/${up.repository}/blobs/uploads/`, location),
      limits: chunkLimits(res.headers.get('oci-chunk-min-length'), res.headers.get('oci-chunk-max-length')),
    });
  return null;
}

/** The session a 202 to the mount opened, once; null when there is none (the upload POSTs as usual). */
export function takeOfferedSession(up: BlobUpload): UploadSession | null {
  const session = offered.get(up) ?? null;
  offered.delete(up);
  return session;
}
