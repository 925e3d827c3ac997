// The loopback receiver's router: the credential first (the body unread), then each path to its endpoint's handler,
// and every refusal answered as the registry API's error document. Only what a push needs is routed: GET /v2/, blob
// upload sessions, HEAD of a blob, manifests; anything else is a 404.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { headBlob, startUpload, writeUpload } from './receiver-blobs.js';
import { REALM, requireCredential } from './receiver-credential.js';
import { manifestRequest } from './receiver-manifest.js';
import { ReceiveError, type ReceiverContext, type Send } from './receiver-state.js';

/** Serves one request; throws a ReceiveError (or any error) for `refuse` to answer. */
export async function route(ctx: ReceiverContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  const send: Send = (status, headers = {}, body = '') => {
    res.writeHead(status, { 'Docker-Distribution-API-Version': 'registry/2.0', ...headers });
    res.end(body);
  };
  // Before anything else, the body unread: no other local process gets a byte stored or a wait held.
  requireCredential(req, ctx.expected, ctx.state.refused);
  if (path === '/v2/' || path === '/v2') return send(200, { 'Content-Type': 'application/json' }, '{}');
  if (!path.startsWith(ctx.prefix)) throw new ReceiveError(404, 'NAME_UNKNOWN', 'not this repository');
  const rest = path.slice(ctx.prefix.length);
  let m: RegExpExecArray | null;
  if (method === 'POST' && rest === 'blobs/uploads/') return startUpload(ctx, req, url, send);
  if ((m = /^blobs\/uploads\/([a-f0-9]{24})$/.exec(rest)) && (method === 'PATCH' || method === 'PUT'))
    return writeUpload(ctx, m[1], req, url, send);
  if ((m = /^blobs\/(sha256:[a-f0-9]{64})$/.exec(rest)) && (method === 'HEAD' || method === 'GET'))
    return headBlob(ctx, m[1], req, send);
  if ((m = /^manifests\/([A-Za-z0-9_][A-Za-z0-9._-]{0,127}|sha256:[a-f0-9]{64})$/.exec(rest)))
    return manifestRequest(ctx, m[1], req, send);
  req.resume();
  throw new ReceiveError(404, 'UNSUPPORTED', `${method} ${rest}`);
}

/** Answers a refused request; never throws (a throw here would be an unhandled rejection, ending the run
 *  before its cleanup), a socket it cannot answer is cut. */
export function refuse(req: IncomingMessage, res: ServerResponse, e: unknown): void {
  try {
    const err = e instanceof ReceiveError ? e : new ReceiveError(500, 'UNKNOWN', String((e as Error)?.message ?? e));
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = JSON.stringify({ errors: [{ code: err.code, message: err.message }] });
    res.writeHead(err.status, {
      'Content-Type': 'application/json',
      'Docker-Distribution-API-Version': 'registry/2.0',
      ...(err.status === 401 ? { 'WWW-Authenticate': REALM } : {}),
      // a request whose body was not read cannot share its connection with the next
      ...(req.complete ? {} : { Connection: 'close' }),
    });
    res.end(body);
    // a request refused mid-body is not read further
    if (!req.complete) req.destroy();
  } catch {
    res.destroy();
  }
}
