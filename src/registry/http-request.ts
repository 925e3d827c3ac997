// The one HTTP request function every registry call goes through, over node:http/https (Node's global fetch loads
// undici on first use, ~40 ms on this path; these calls need none of it).
//
// Every request is bounded: a wall-clock deadline from the call to the last byte of the answer (not an idle timeout:
// a server that drips one byte every few seconds is cut off too), a cap on the answer's body, and an optional
// AbortSignal. httpStream hands the answer's body over as a stream once the headers are in (a blob to read while it
// uploads): the deadline then ends at the headers, an idle deadline bounds each wait for a byte the reader asked
// for (not a reader that is slow to ask), and the cap still holds. Failures are one typed error, HttpError, whose message names the method, host and path but never a
// query string (upload URLs carry state there) nor credentials. An HTTP status is an answer, not an error.
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
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

export interface HttpStreamOptions extends Omit<HttpRequestOptions, 'body'> {
  /** deadlineMs ends at the answer's headers; then each byte the reader waits for must come within idleMs. */
  idleMs?: number;
}

/** An answer whose body is a stream: read it to its end or destroy it. It fails with an HttpError. */
export interface HttpStreamResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  readonly body: Readable;
}

export type HttpStreamRequest = (url: string | URL, options?: HttpStreamOptions) => Promise<HttpStreamResponse>;

export const DEFAULT_IDLE_MS = 60_000;

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

/** What a request is, settled before anything is sent: an HttpError instead when it cannot be sent at all. */
interface Plan {
  readonly method: string;
  readonly target: URL;
  /** describeRequest's text, the prefix of every error message. */
  readonly what: string;
  readonly route: ProxyRoute;
  readonly deadlineMs: number;
  readonly maxBodyBytes: number;
}

function planRequest(url: string | URL, options: HttpRequestOptions): Plan | HttpError {
  const method = (options.method ?? 'GET').toUpperCase();
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    // URL's own message repeats the input, query and credentials included.
    return new HttpError('network', method, 'not a valid URL');
  }
  const what = describeRequest(method, target);
  let route: ProxyRoute;
  try {
    route = proxyRoute(target, options.proxyEnv ?? process.env);
  } catch (e) {
    return new HttpError('proxy-config', what, (e as Error).message);
  }
  const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  return { method, target, what, route, deadlineMs, maxBodyBytes };
}

/** The caller's headers, with the Content-Length of a Buffer body unless the caller set one. */
function headersFor(options: HttpRequestOptions): Record<string, string> {
  const headers: Record<string, string> = { ...options.headers };
  const { body } = options;
  if (Buffer.isBuffer(body) && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length'))
    headers['Content-Length'] = String(body.length);
  return headers;
}

/** A failure to connect names the proxy it went through (host:port and the variable, never its credentials). */
function viaText(route: ProxyRoute): string {
  return route.kind === 'proxy' ? ` (through the proxy ${route.display} from ${route.variable})` : '';
}

function responseOf<B>(
  res: http.IncomingMessage,
  body: B,
): { status: number; ok: boolean; headers: HttpResponse['headers']; body: B } {
  const status = res.statusCode ?? 0;
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: {
      get: (name) => {
        const v = res.headers[name.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
      },
    },
    body,
  };
}

/**
 * An answer's body handed to the reader: bytes flow only while the reader asks (backpressure pauses the socket),
 * the idle deadline runs only while it waits, and the cap, a cut connection or an abort destroy it with an HttpError.
 */
class GuardedBody extends Readable {
  private received = 0;
  private idle: NodeJS.Timeout | undefined;
  private readonly onAbort = () => this.fail('aborted', 'aborted');

  constructor(
    private readonly res: http.IncomingMessage,
    private readonly plan: Plan,
    private readonly idleMs: number,
    private readonly signal: AbortSignal | undefined,
    private readonly release: () => void,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    res.pause();
    res.on('data', (chunk: Buffer) => this.onChunk(chunk));
    res.on('end', () => {
      clearTimeout(this.idle);
      this.push(null);
    });
    res.on('error', (err) => this.fail('network', networkDetail(err), err));
    res.on('close', () => {
      if (!res.complete) this.fail('network', 'connection closed before the answer ended');
    });
    if (signal?.aborted) queueMicrotask(this.onAbort);
    else signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private onChunk(chunk: Buffer): void {
    clearTimeout(this.idle);
    this.received += chunk.length;
    if (this.received > this.plan.maxBodyBytes)
      return this.fail(
        'too-large',
        `answer body over the ${formatLimit(this.plan.maxBodyBytes)} limit; connection closed`,
      );
    if (this.push(chunk)) this.armIdle();
    else this.res.pause();
  }

  private armIdle(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(
      () => this.fail('timeout', `no byte of the answer for ${formatMs(this.idleMs)} (idle deadline)`),
      clampTimerMs(this.idleMs),
    );
  }

  override _read(): void {
    // res.complete is set when the last byte is parsed, which may still wait in res's buffer: only 'end' says done
    if (this.res.readableEnded) return;
    this.armIdle();
    this.res.resume();
  }

  private fail(kind: HttpErrorKind, detail: string, cause?: unknown): void {
    if (this.destroyed) return;
    this.destroy(new HttpError(kind, this.plan.what, detail, cause === undefined ? undefined : { cause }));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.idle);
    this.signal?.removeEventListener('abort', this.onAbort);
    if (!this.res.readableEnded) {
      this.res.destroy();
      this.release();
    }
    callback(error);
  }
}

/**
 * One request in flight. It settles once: with the answer at its last byte, or with the first failure (deadline,
 * abort, cap, network), which then ends everything the request still holds (body stream, tunnel, socket).
 */
class Exchange {
  private settled = false;
  private req: http.ClientRequest | null = null;
  // The CONNECT to a proxy is part of the request: its deadline or abort ends a tunnel still being opened.
  private readonly connecting = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private readonly stream: Readable | null;
  private readonly onAbort = () => this.fail('aborted', 'aborted', this.options.signal?.reason);

  constructor(
    private readonly plan: Plan,
    private readonly options: HttpRequestOptions,
    private readonly resolve: (response: HttpResponse) => void,
    private readonly reject: (error: HttpError) => void,
    /** httpStream: the answer is handed over at its headers instead of read here. */
    private readonly handOver?: (res: http.IncomingMessage, release: () => void) => void,
  ) {
    const { body } = options;
    this.stream = body && !Buffer.isBuffer(body) ? body : null;
  }

  start(): void {
    const { deadlineMs } = this.plan;
    const { signal } = this.options;
    this.timer = setTimeout(
      () => this.fail('timeout', `no complete answer within ${formatMs(deadlineMs)} (deadline)`),
      clampTimerMs(deadlineMs),
    );
    if (signal?.aborted) return this.onAbort();
    signal?.addEventListener('abort', this.onAbort, { once: true });
    this.req = this.open();
    if (this.req) this.send(this.req);
  }

  /** The request on its route: direct, through a CONNECT tunnel (https), or as an absolute URI (http proxy). */
  private open(): http.ClientRequest | null {
    const { method, target, route } = this.plan;
    const headers = headersFor(this.options);
    const onResponse = (res: http.IncomingMessage) => this.read(res);
    try {
      const lib = target.protocol === 'https:' ? https : http;
      if (target.protocol !== 'https:' && target.protocol !== 'http:') {
        this.fail('network', `unsupported protocol ${target.protocol}`);
        return null;
      }
      if (route.kind === 'direct') return lib.request(target, { method, headers }, onResponse);
      if (lib === https) {
        const createConnection = tunnelConnection(route, target, this.connecting.signal);
        return https.request(target, { method, headers, createConnection }, onResponse);
      }
      const viaProxy = absoluteUriOptions(route, target);
      return http.request({ ...viaProxy, method, headers: { ...headers, ...viaProxy.headers } }, onResponse);
    } catch (err) {
      // Thrown synchronously for e.g. an invalid header value; node's message names the header, not its value.
      this.fail('network', networkDetail(err), err);
      return null;
    }
  }

  private send(req: http.ClientRequest): void {
    req.on('error', (err) => this.fail('network', `${networkDetail(err)}${viaText(this.plan.route)}`, err));
    const { stream } = this;
    if (stream) {
      stream.on('error', (err) => this.fail('network', `request body: ${networkDetail(err)}`, err));
      stream.pipe(req);
    } else {
      req.end(this.options.body);
    }
  }

  /** Reads the answer's body under its cap: the declared length first, then every byte that arrives. */
  private read(res: http.IncomingMessage): void {
    const { method, maxBodyBytes } = this.plan;
    // A HEAD's Content-Length is the size of the body a GET would get: nothing to cap.
    const declared = method === 'HEAD' ? 0 : Number(res.headers['content-length']);
    if (declared > maxBodyBytes)
      return this.fail('too-large', `answer body of ${declared} bytes is over the ${formatLimit(maxBodyBytes)} limit`);
    if (this.handOver) {
      this.settled = true;
      this.cleanup();
      return this.handOver(res, () => this.req?.destroy());
    }
    const chunks: Buffer[] = [];
    let received = 0;
    res.on('data', (chunk: Buffer) => {
      if (this.settled) return;
      received += chunk.length;
      if (received > maxBodyBytes)
        return this.fail('too-large', `answer body over the ${formatLimit(maxBodyBytes)} limit; connection closed`);
      chunks.push(chunk);
    });
    res.on('error', (err) => this.fail('network', networkDetail(err), err));
    res.on('close', () => {
      if (!res.complete) this.fail('network', 'connection closed before the answer ended');
    });
    res.on('end', () => this.succeed(res, chunks));
  }

  private succeed(res: http.IncomingMessage, chunks: Buffer[]): void {
    if (this.settled) return;
    this.settled = true;
    this.cleanup();
    // The server answered before taking the whole body (e.g. 401 to an upload): the rest is not sent.
    if (this.stream && !this.req?.writableFinished) {
      this.stream.destroy();
      this.req?.destroy();
    }
    this.resolve(responseOf(res, Buffer.concat(chunks)));
  }

  /** The first failure wins: it becomes the HttpError and ends the body stream, the tunnel and the socket. */
  private fail(kind: HttpErrorKind, detail: string, cause?: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.cleanup();
    const error = new HttpError(kind, this.plan.what, detail, cause === undefined ? undefined : { cause });
    this.stream?.destroy();
    this.connecting.abort();
    this.req?.destroy();
    this.reject(error);
  }

  private cleanup(): void {
    clearTimeout(this.timer);
    this.options.signal?.removeEventListener('abort', this.onAbort);
  }
}

export const httpRequest: HttpRequest = (url, options = {}) => {
  const planned = planRequest(url, options);
  if (planned instanceof HttpError) return Promise.reject(planned);
  return new Promise<HttpResponse>((resolve, reject) => new Exchange(planned, options, resolve, reject).start());
};

/** A GET (or any request without a body) whose answer's body is read as a stream: see the top of this file. */
export const httpStream: HttpStreamRequest = (url, options = {}) => {
  const planned = planRequest(url, options);
  if (planned instanceof HttpError) return Promise.reject(planned);
  const idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
  return new Promise<HttpStreamResponse>((resolve, reject) =>
    new Exchange(
      planned,
      options,
      () => undefined,
      reject,
      (res, release) => resolve(responseOf(res, new GuardedBody(res, planned, idleMs, options.signal, release))),
    ).start(),
  );
};
