// The one HTTP request function every registry call goes through, over node:http/https (Node's global fetch loads
// undici on first use, ~40 ms on this path; these calls need none of it).
//
// Every request is bounded: a wall-clock deadline from the call to the last byte of the answer (not an idle timeout:
// a server that drips one byte every few seconds is cut off too), a cap on the answer's body, and an optional
// AbortSignal. Failures are one typed error, HttpError, whose message names the method, host and path but never a
// query string (upload URLs carry state there) nor credentials. An HTTP status is an answer, not an error.
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { clampTimerMs } from '../util/timers.js';
import { absoluteUriOptions, tunnelConnection } from './proxy-connect.js';
import { proxyRoute, type ProxyRoute } from './proxy-env.js';

export const DEFAULT_DEADLINE_MS = 30_000;
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** proxy-config: HTTPS_PROXY / HTTP_PROXY cannot be used (proxy-env.ts); nothing was sent. */
export type HttpErrorKind = 'timeout' | 'too-large' | 'network' | 'aborted' | 'proxy-config';

export class HttpError extends Error {
  constructor(
    readonly kind: HttpErrorKind,
    /** e.g. `GET registry.example.com/v2/app/manifests/1`: method, host and path, no query, no credentials. */
    readonly request: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${request}: ${detail}`, options);
    this.name = 'HttpError';
  }
}

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A Buffer is sent with its Content-Length; a stream is piped (with the Content-Length header when given,
   *  chunked otherwise) and destroyed if the request fails. */
  body?: Buffer | Readable;
  /** Wall-clock limit from the call to the answer's last byte. */
  deadlineMs?: number;
  /** The answer's body may hold at most this many bytes; more is an error and the connection is closed. */
  maxBodyBytes?: number;
  signal?: AbortSignal;
  /** Where HTTPS_PROXY / HTTP_PROXY / NO_PROXY are read (proxy-env.ts); default process.env. */
  proxyEnv?: NodeJS.ProcessEnv;
}

export interface HttpResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  readonly body: Buffer;
}

export type HttpRequest = (url: string | URL, options?: HttpRequestOptions) => Promise<HttpResponse>;

/** `METHOD host/path`, for messages: never the query (upload state) nor a user:password@ part. */
export function describeRequest(method: string, url: URL): string {
  return `${method} ${url.host}${url.pathname}`;
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

function formatLimit(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}

function networkDetail(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  const text = e?.message || e?.code || String(err);
  return e?.code && !text.includes(e.code) ? `${text} (${e.code})` : text;
}

export const httpRequest: HttpRequest = (url, options = {}) => {
  const method = (options.method ?? 'GET').toUpperCase();
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    // URL's own message repeats the input, query and credentials included.
    return Promise.reject(new HttpError('network', method, 'not a valid URL'));
  }
  const what = describeRequest(method, target);
  const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const { body, signal } = options;
  const stream = body && !Buffer.isBuffer(body) ? body : null;
  let route: ProxyRoute;
  try {
    route = proxyRoute(target, options.proxyEnv ?? process.env);
  } catch (e) {
    return Promise.reject(new HttpError('proxy-config', what, (e as Error).message));
  }
  // A failure to connect names the proxy it went through (host:port and the variable, never its credentials).
  const via = route.kind === 'proxy' ? ` (through the proxy ${route.display} from ${route.variable})` : '';

  return new Promise<HttpResponse>((resolve, reject) => {
    let settled = false;
    let req: http.ClientRequest | null = null;
    // The CONNECT to a proxy is part of the request: its deadline or abort ends a tunnel still being opened.
    const connecting = new AbortController();
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const fail = (kind: HttpErrorKind, detail: string, cause?: unknown) => {
      if (settled) return;
      settled = true;
      cleanup();
      const error = new HttpError(kind, what, detail, cause === undefined ? undefined : { cause });
      stream?.destroy();
      connecting.abort();
      req?.destroy();
      reject(error);
    };
    const onAbort = () => fail('aborted', 'aborted', signal?.reason);
    const timer = setTimeout(
      () => fail('timeout', `no complete answer within ${formatMs(deadlineMs)} (deadline)`),
      clampTimerMs(deadlineMs),
    );
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });

    const headers: Record<string, string> = { ...options.headers };
    if (Buffer.isBuffer(body) && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length'))
      headers['Content-Length'] = String(body.length);

    try {
      const lib = target.protocol === 'https:' ? https : http;
      if (target.protocol !== 'https:' && target.protocol !== 'http:')
        return fail('network', `unsupported protocol ${target.protocol}`);
      const onResponse = (res: http.IncomingMessage) => {
        // A HEAD's Content-Length is the size of the body a GET would get: nothing to cap.
        const declared = method === 'HEAD' ? 0 : Number(res.headers['content-length']);
        if (declared > maxBodyBytes)
          return fail('too-large', `answer body of ${declared} bytes is over the ${formatLimit(maxBodyBytes)} limit`);
        const chunks: Buffer[] = [];
        let received = 0;
        res.on('data', (chunk: Buffer) => {
          if (settled) return;
          received += chunk.length;
          if (received > maxBodyBytes)
            return fail('too-large', `answer body over the ${formatLimit(maxBodyBytes)} limit; connection closed`);
          chunks.push(chunk);
        });
        res.on('error', (err) => fail('network', networkDetail(err), err));
        res.on('close', () => {
          if (!res.complete) fail('network', 'connection closed before the answer ended');
        });
        res.on('end', () => {
          if (settled) return;
          settled = true;
          cleanup();
          // The server answered before taking the whole body (e.g. 401 to an upload): the rest is not sent.
          if (stream && !req?.writableFinished) {
            stream.destroy();
            req?.destroy();
          }
          const status = res.statusCode ?? 0;
          resolve({
            status,
            ok: status >= 200 && status < 300,
            headers: {
              get: (name) => {
                const v = res.headers[name.toLowerCase()];
                return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
              },
            },
            body: Buffer.concat(chunks),
          });
        });
      };
      if (route.kind === 'direct') req = lib.request(target, { method, headers }, onResponse);
      else if (lib === https)
        req = https.request(
          target,
          { method, headers, createConnection: tunnelConnection(route, target, connecting.signal) },
          onResponse,
        );
      else {
        const viaProxy = absoluteUriOptions(route, target);
        req = http.request({ ...viaProxy, method, headers: { ...headers, ...viaProxy.headers } }, onResponse);
      }
    } catch (err) {
      // Thrown synchronously for e.g. an invalid header value; node's message names the header, not its value.
      return fail('network', networkDetail(err), err);
    }
    req.on('error', (err) => fail('network', `${networkDetail(err)}${via}`, err));
    if (stream) {
      stream.on('error', (err) => fail('network', `request body: ${networkDetail(err)}`, err));
      stream.pipe(req);
    } else {
      req.end(body);
    }
  });
};
