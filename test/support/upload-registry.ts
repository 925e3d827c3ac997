// A scripted registry on loopback for the uploader's protocol tests: the blob-upload part of the distribution API in
// memory, behaving as the rig's distribution 2.8.2 does (checked there): Content-Range is not checked and re-sent
// bytes are appended (or, `strict`, answered 416 as newer registries do); every Location carries the upload's offset
// in `_state`, and a request with a stale one answers 404 BLOB_UPLOAD_INVALID and cancels the upload; bytes of a
// request cut mid-body are kept. A script injects faults per request and every request is recorded.
import { createHash, randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RegistryTransport, TransportRequest } from '../../src/upload/transport.js';
import { httpRequest } from '../../src/registry/http-request.js';

export interface RecordedRequest {
  readonly index: number;
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly contentRange: string | null;
  readonly contentLength: string | null;
  readonly contentType: string | null;
  /** Upload session, for requests on one. */
  readonly uuid: string | null;
  /** Body bytes the server received (all of them, also when the fault cut the connection). */
  bodyBytes: number;
  /** Bytes the upload held when the request arrived (upload requests). */
  heldBefore: number | null;
  status: number;
}

export type UploadFault =
  /** Answer this without touching the upload (the body is read and dropped), after delayMs when given. */
  | {
      readonly status: number;
      readonly body?: string;
      readonly headers?: Record<string, string>;
      readonly delayMs?: number;
    }
  /** Write this many body bytes to the upload, then cut the connection (a reset mid-chunk). */
  | { readonly resetAfterBytes: number }
  /** Cut the connection before reading anything: nothing reaches the upload. */
  | { readonly reset: true }
  /** Handle the request fully, then cut the connection instead of answering (an answer lost behind a proxy). */
  | { readonly loseAnswer: true }
  /** Wait, then handle it. */
  | { readonly delayMs: number };

export interface ScriptedRegistryOptions {
  /** Answer 416 to a PATCH whose Content-Range start is not the upload's size (distribution 3). */
  readonly strict?: boolean;
  /** Refuse every PATCH that carries a Content-Range with this status (a registry without chunked uploads). */
  readonly refuseChunksWith?: number;
  /** OCI-Chunk-Min-Length on the POST's answer (a string: sent as it is, absurd values included). */
  readonly chunkMinLength?: number | string;
  /** OCI-Chunk-Max-Length on the POST's answer; a PATCH whose Content-Length is above it is answered 416. */
  readonly chunkMaxLength?: number;
  /** Locations as paths relative to the upload directory, instead of absolute URLs. */
  readonly relativeLocations?: boolean;
  /** Ignore `_state`: any Location of an upload reaches it, and GET tells what it really holds (so an upload cut
   *  mid-chunk can be resumed). Pair with `strict`, as a registry that resumes must check starts. */
  readonly ignoreState?: boolean;
  readonly script?: (req: RecordedRequest) => UploadFault | undefined;
}

interface Upload {
  readonly repo: string;
  readonly parts: Buffer[];
  size: number;
}

export interface ScriptedRegistry {
  readonly url: string;
  readonly requests: RecordedRequest[];
  readonly blobs: Map<string, Buffer>;
  readonly manifests: Map<string, { body: Buffer; contentType: string }>;
  /** PATCHes that sent bytes an upload already held (start below its size): must never happen. */
  readonly overlaps: RecordedRequest[];
  setScript(script: ScriptedRegistryOptions['script']): void;
  /** Requests as `METHOD kind [Content-Range]` lines, for exact sequence assertions. */
  sequence(): string[];
  transport(): RegistryTransport;
  stop(): Promise<void>;
}

const BLOB_UPLOAD_INVALID = JSON.stringify({
  errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'blob upload invalid' }],
});
const BLOB_UPLOAD_UNKNOWN = JSON.stringify({
  errors: [{ code: 'BLOB_UPLOAD_UNKNOWN', message: 'blob upload unknown' }],
});

function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

function kind(path: string): string {
  if (/\/blobs\/uploads\/$/.test(path)) return 'uploads';
  if (/\/blobs\/uploads\/[^/]+$/.test(path)) return 'upload';
  if (/\/blobs\/sha256:/.test(path)) return 'blob';
  if (/\/manifests\//.test(path)) return 'manifest';
  return path;
}

export async function startScriptedRegistry(opts: ScriptedRegistryOptions = {}): Promise<ScriptedRegistry> {
  const requests: RecordedRequest[] = [];
  const overlaps: RecordedRequest[] = [];
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, { body: Buffer; contentType: string }>();
  const uploads = new Map<string, Upload>();
  let script = opts.script;
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;
  let base = '';

  const send = (
    res: ServerResponse,
    rec: RecordedRequest,
    status: number,
    headers: Record<string, string> = {},
    body = '',
  ) => {
    rec.status = status;
    res.writeHead(status, { 'Content-Length': String(Buffer.byteLength(body)), ...headers });
    res.end(body);
  };

  const location = (repo: string, uuid: string, offset: number) =>
    opts.relativeLocations ? `${uuid}?_state=${offset}` : `${base}/v2/${repo}/blobs/uploads/${uuid}?_state=${offset}`;

  const uploadHeaders = (repo: string, uuid: string, size: number): Record<string, string> => ({
    Location: location(repo, uuid, size),
    Range: `0-${Math.max(0, size - 1)}`,
    'Docker-Upload-UUID': uuid,
  });

  /** Reads the body; `keep(piece)` sees each piece; stops after `limit` bytes and cuts the connection. */
  const readBody = (req: IncomingMessage, rec: RecordedRequest, keep: (b: Buffer) => void, limit?: number) =>
    new Promise<boolean>((resolve) => {
      let done = false;
      const finish = (complete: boolean) => {
        if (done) return;
        done = true;
        resolve(complete);
      };
      req.on('data', (c: Buffer) => {
        if (done) return;
        const room = limit === undefined ? c.length : Math.max(0, limit - rec.bodyBytes);
        const piece = c.subarray(0, Math.min(room, c.length));
        rec.bodyBytes += piece.length;
        keep(piece);
        if (limit !== undefined && rec.bodyBytes >= limit) {
          req.socket.destroy();
          finish(false);
        }
      });
      req.on('end', () => finish(true));
      req.on('close', () => finish(false));
      req.on('error', () => finish(false));
    });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', base);
    const m = /^\/v2\/(.+?)\/(blobs|manifests)\/(.*)$/.exec(url.pathname);
    const uuidMatch = /\/blobs\/uploads\/([^/]+)$/.exec(url.pathname);
    const uuid = uuidMatch?.[1] ?? null;
    const rec: RecordedRequest = {
      index: requests.length,
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.search,
      contentRange: (req.headers['content-range'] as string | undefined) ?? null,
      contentLength: (req.headers['content-length'] as string | undefined) ?? null,
      contentType: (req.headers['content-type'] as string | undefined) ?? null,
      uuid,
      bodyBytes: 0,
      heldBefore: uuid ? (uploads.get(uuid)?.size ?? null) : null,
      status: 0,
    };
    requests.push(rec);
    const fault = script?.(rec);
    if (fault && 'reset' in fault) return void req.socket.destroy();
    if (fault && 'delayMs' in fault && fault.delayMs) {
      await new Promise<void>((r) => {
        const t = setTimeout(() => (timers.delete(t), r()), fault.delayMs);
        timers.add(t);
      });
      if (stopped) return;
    }
    if (fault && 'status' in fault) {
      await readBody(req, rec, () => undefined);
      return send(res, rec, fault.status, fault.headers, fault.body ?? '');
    }
    const limit = fault && 'resetAfterBytes' in fault ? fault.resetAfterBytes : undefined;
    const answer = (status: number, headers: Record<string, string> = {}, body = '') => {
      if (fault && 'loseAnswer' in fault) {
        rec.status = 0;
        return void req.socket.destroy();
      }
      send(res, rec, status, headers, body);
    };
    if (!m) return answer(404);
    const [, repo, area, rest] = m;

    if (area === 'manifests') {
      const chunks: Buffer[] = [];
      await readBody(req, rec, (b) => chunks.push(b));
      if (req.method === 'PUT') {
        const body = Buffer.concat(chunks);
        const entry = { body, contentType: String(req.headers['content-type'] ?? '') };
        manifests.set(`${repo}:${rest}`, entry);
        manifests.set(`${repo}@${sha256(body)}`, entry);
        return answer(201, { 'Docker-Content-Digest': sha256(body) });
      }
      return answer(manifests.has(`${repo}:${rest}`) ? 200 : 404);
    }
    if (req.method === 'HEAD' && rest.startsWith('sha256:')) {
      const blob = blobs.get(rest);
      return answer(blob ? 200 : 404, blob ? { 'Docker-Content-Digest': rest } : {});
    }
    if (req.method === 'POST' && rest === 'uploads/') {
      await readBody(req, rec, () => undefined);
      const id = randomUUID();
      uploads.set(id, { repo, parts: [], size: 0 });
      const headers = uploadHeaders(repo, id, 0);
      if (opts.chunkMinLength) headers['OCI-Chunk-Min-Length'] = String(opts.chunkMinLength);
      if (opts.chunkMaxLength) headers['OCI-Chunk-Max-Length'] = String(opts.chunkMaxLength);
      return answer(202, headers);
    }
    if (!uuid) return answer(404);
    const up = uploads.get(uuid);
    if (!up) {
      await readBody(req, rec, () => undefined);
      return answer(404, {}, BLOB_UPLOAD_UNKNOWN);
    }
    const state = Number(url.searchParams.get('_state'));
    if (!opts.ignoreState && state !== up.size) {
      // distribution 2.8: "upload resumed at wrong offset", and the upload is cancelled
      uploads.delete(uuid);
      await readBody(req, rec, () => undefined);
      return answer(404, {}, BLOB_UPLOAD_INVALID);
    }
    if (req.method === 'GET' || req.method === 'HEAD') return answer(204, uploadHeaders(repo, uuid, up.size));
    if (req.method === 'PATCH') {
      const range = /^(\d+)-(\d+)$/.exec(rec.contentRange ?? '');
      if (range && opts.refuseChunksWith) {
        await readBody(req, rec, () => undefined);
        return answer(opts.refuseChunksWith);
      }
      if (opts.chunkMaxLength && Number(rec.contentLength) > opts.chunkMaxLength) {
        await readBody(req, rec, () => undefined);
        return answer(416, { Range: `0-${Math.max(0, up.size - 1)}` });
      }
      if (range && Number(range[1]) < up.size) overlaps.push(rec);
      if (range && opts.strict && Number(range[1]) !== up.size) {
        await readBody(req, rec, () => undefined);
        return answer(416, { Range: `0-${Math.max(0, up.size - 1)}` });
      }
      const complete = await readBody(
        req,
        rec,
        (b) => {
          up.parts.push(Buffer.from(b));
          up.size += b.length;
        },
        limit,
      );
      if (!complete) return;
      return answer(202, uploadHeaders(repo, uuid, up.size));
    }
    if (req.method === 'PUT') {
      const complete = await readBody(req, rec, (b) => {
        up.parts.push(Buffer.from(b));
        up.size += b.length;
      });
      if (!complete) return;
      const digest = url.searchParams.get('digest') ?? '';
      const bytes = Buffer.concat(up.parts);
      uploads.delete(uuid);
      if (sha256(bytes) !== digest)
        return answer(400, {}, JSON.stringify({ errors: [{ code: 'DIGEST_INVALID', message: 'digest mismatch' }] }));
      blobs.set(digest, bytes);
      return answer(201, { 'Docker-Content-Digest': digest, Location: `/v2/${repo}/blobs/${digest}` });
    }
    if (req.method === 'DELETE') {
      uploads.delete(uuid);
      return answer(204);
    }
    return answer(405);
  };

  const server = http.createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    requests,
    blobs,
    manifests,
    overlaps,
    setScript: (s) => (script = s),
    sequence: () =>
      requests.map(
        (r) =>
          `${r.method} ${kind(r.path)}${r.contentRange ? ` ${r.contentRange}` : ''}${r.status ? ` -> ${r.status}` : ' -> none'}`,
      ),
    transport: () => loopbackTransport(base),
    stop: () =>
      new Promise<void>((resolve) => {
        stopped = true;
        for (const t of timers) clearTimeout(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A RegistryTransport over httpRequest with no auth (or Basic), for registries on loopback. */
export function loopbackTransport(base: string, basic?: { username: string; password: string }): RegistryTransport {
  const auth = basic ? `Basic ${Buffer.from(`${basic.username}:${basic.password}`).toString('base64')}` : undefined;
  return {
    send: (req: TransportRequest) =>
      httpRequest(/^https?:\/\//.test(req.url) ? req.url : `${base}${req.url}`, {
        method: req.method,
        headers: auth ? { ...req.headers, Authorization: auth } : req.headers,
        body: req.body,
        deadlineMs: req.deadlineMs,
        signal: req.signal,
      }),
  };
}
