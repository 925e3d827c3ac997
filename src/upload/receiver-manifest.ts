// The loopback receiver's manifest endpoint: HEAD is answered 404 (the engine always asks before it puts), and one
// manifest in all may be PUT, under the push's tag or its own digest, of a manifest type, within its cap.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ReceiveError, type ReceiverContext, type Send } from './receiver-state.js';

const MANIFEST_TYPES = new Set([
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.index.v1+json',
]);

/** A request to manifests/REFERENCE (a tag or a digest, its syntax already checked). */
export async function manifestRequest(
  ctx: ReceiverContext,
  reference: string,
  req: IncomingMessage,
  send: Send,
): Promise<void> {
  const method = req.method ?? 'GET';
  if (method === 'HEAD' || method === 'GET') {
    req.resume();
    throw new ReceiveError(404, 'MANIFEST_UNKNOWN', 'manifest unknown');
  }
  if (method !== 'PUT') throw new ReceiveError(405, 'UNSUPPORTED', method);
  if (!reference.startsWith('sha256:') && reference !== ctx.tag)
    throw new ReceiveError(400, 'TAG_INVALID', `a manifest under ${reference}, not the push's tag`);
  // The first manifest is the one kept and the only one held (a second could only come from someone else).
  if (ctx.state.manifests.size > 0) throw new ReceiveError(400, 'MANIFEST_INVALID', 'a manifest was already received');
  const mediaType = String(req.headers['content-type'] ?? '')
    .split(';')[0]
    .trim();
  if (!MANIFEST_TYPES.has(mediaType)) throw new ReceiveError(400, 'MANIFEST_INVALID', `type ${mediaType}`);
  const bytes = await readCapped(req, ctx.limits.maxManifest);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (reference.startsWith('sha256:') && reference !== digest)
    throw new ReceiveError(400, 'DIGEST_INVALID', `manifest ${reference} hashed to ${digest}`);
  // asked again: another PUT may have been stored while this body arrived
  if (ctx.state.manifests.size > 0) throw new ReceiveError(400, 'MANIFEST_INVALID', 'a manifest was already received');
  ctx.state.manifests.set(reference, { reference, mediaType, bytes, digest });
  ctx.state.progressed('stored');
  send(201, { Location: `${ctx.prefix}manifests/${digest}`, 'Docker-Content-Digest': digest });
}

/** The request body, refused as soon as it passes `max` bytes. */
async function readCapped(req: IncomingMessage, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > max) throw new ReceiveError(413, 'SIZE_INVALID', `a manifest over ${max} bytes`);
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}
