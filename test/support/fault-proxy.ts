// An HTTP reverse proxy in front of a real registry (test/support/registry.ts) that plays the parts of the
// Replicated registry a local registry cannot: its token authentication (any username with the right token),
// Cloudflare's 524 on slow uploads (at once, or after the origin stored the upload), 5xx, connection resets,
// a per-client rate limit with Retry-After, the 400 on manifests carrying provenance attestations, a request-body
// limit (nginx's client_max_body_size, Cloudflare's 100/200/500 MB by plan: 413), and a registry that stops answering
// mid-upload (hang). Every request is recorded with its start and end time, so tests assert
// waits where they happen: at the registry. Bodies are streamed: layers can be hundreds of MB.
import { randomBytes } from 'node:crypto';
import http, {
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline, Readable, Transform } from 'node:stream';
import type { Registry } from './registry.js';

export interface StatusAction {
  readonly status: number;
  readonly body?: string;
  readonly headers?: Record<string, string>;
}

export type FaultAction =
  | StatusAction
  | { readonly reset: true }
  /** Forward, but destroy the client's socket once this many request-body bytes arrived. */
  | { readonly resetAfterBytes: number }
  /** Forward, but destroy the client's socket once this many bytes of the answer's body went to it (a download). */
  | { readonly resetResponseAfterBytes: number }
  /** Wait, then forward. */
  | { readonly delayMs: number }
  /**
   * A registry that stopped answering mid-upload: read the request body, send nothing, keep the connection open until
   * the client goes (its endedAt says when) or the proxy stops. The status stays 0.
   */
  | { readonly hang: true }
  /**
   * Forward the whole request and let the registry answer (it stores the blob or manifest), then send the client
   * this status instead: what a slow commit behind Cloudflare looks like (the origin finished, the edge gave up).
   */
  | { readonly forwardThen: StatusAction };

export interface FaultRequest {
  readonly method: string;
  /** The path without its query string. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** Only for manifest PUTs: the only bodies the proxy buffers. */
  readonly body?: Buffer;
}

export interface FaultRule {
  readonly method?: string;
  /** Tested against the path without its query string. */
  readonly path: RegExp;
  /** How many requests the rule applies to; Infinity when omitted. */
  readonly times?: number;
  readonly action: FaultAction;
  readonly match?: (req: FaultRequest) => boolean;
}

export interface ProxyAuth {
  readonly scheme: 'basic' | 'bearer';
  readonly token: string;
  /** Usernames accepted with the token; omitted: any (Replicated service accounts accept any username). */
  readonly usernames?: string[];
}

export interface FaultProxyOptions {
  readonly upstream: Registry;
  readonly auth?: ProxyAuth;
}

export interface ProxiedRequest {
  readonly method: string;
  /** The path without its query string. */
  readonly path: string;
  /** Path and query, as the client sent it. */
  readonly url: string;
  /** The status the client got; 0 when it got none (reset, or still in flight). */
  readonly status: number;
  readonly requestBytes: number;
  /** The proxy cut the client's connection. */
  readonly reset: boolean;
  /** The client's User-Agent ('' when none): docker and containerd send one, the action's own client does not. */
  readonly userAgent: string;
  /** When the request arrived (Date.now() ms). */
  readonly startedAt: number;
  /** When the response was sent in full or the connection closed (Date.now() ms); 0 while in flight. */
  readonly endedAt: number;
  /** The registry's own status for a forwarded request (differs from `status` under forwardThen); 0 if not forwarded. */
  readonly upstreamStatus: number;
}

export interface RateLimitOptions {
  /** The request that trips the limit (the proxy answers it 429 too). */
  readonly method?: string;
  readonly path: RegExp;
  /** How long every request is refused once the limit tripped. */
  readonly forMs: number;
  /** Retry-After as delta-seconds (rounded up) or as an HTTP-date (RFC 9110 section 10.2.3). */
  readonly form: 'seconds' | 'date';
}

export interface RateLimit {
  /** When the limit tripped (Date.now() ms); 0 until then. */
  readonly trippedAt: number;
  /** When requests are accepted again (Date.now() ms); 0 until tripped. For the date form, a whole second. */
  readonly until: number;
}

export interface FaultProxy {
  /** '127.0.0.1:PORT' */
  readonly host: string;
  readonly url: string;
  /** Every request, in arrival order. */
  readonly requests: readonly ProxiedRequest[];
  /** Request-body bytes received from clients, all requests together. */
  readonly bytesUploaded: number;
  addFault(rule: FaultRule): void;
  /** Removes every rule, rejectAttestations' included. */
  clearFaults(): void;
  /**
   * From now on a manifest PUT that is or carries a provenance attestation gets a 400 with `body` (by default
   * distribution's MANIFEST_INVALID, see REJECTION_BODIES for the wordings of other registries).
   */
  rejectAttestations(body?: string): void;
  /**
   * A per-client rate limit as an edge in front of a registry applies it (Cloudflare's rate limiting rules: once the
   * rule trips, every request from that client is answered 429 with Retry-After until the mitigation timeout ends,
   * whatever the path). Requests that arrive while it holds get 429 TOOMANYREQUESTS with the time left.
   */
  limitRate(opts: RateLimitOptions): RateLimit;
  /**
   * From now on a request whose body is over `maxBytes` is answered 413 as nginx answers it (client_max_body_size):
   * at once when its Content-Length says so, after reading that much of a chunked body (which nginx buffers before it
   * passes it on); either way nothing of it reaches the registry. A smaller chunked body is forwarded whole.
   */
  limitBodies(maxBytes: number): void;
  /** Requests with this method (any when undefined) whose path matches, and with this status when given. */
  count(method: string | undefined, path: RegExp, status?: number): number;
  stop(): Promise<void>;
}

/** Cloudflare's own error page for an origin error, e.g. cloudflareError(524) for the upload timeout. */
export function cloudflareError(status: number): StatusAction {
  return { status, body: `error code: ${status}`, headers: { 'content-type': 'text/plain; charset=UTF-8' } };
}

/**
 * What real registries answer (HTTP 400) when they refuse an image index with attestation manifests or another
 * manifest they will not store. None names attestations: a client cannot tell an attestation rejection from any
 * other invalid manifest by the text alone.
 * - distribution: a registry behind an internal proxy refusing BuildKit 0.11's index with attestations
 *   (moby/buildkit#3579): `{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{}}]}`.
 *   Distribution's own MANIFEST_INVALID message is "manifest invalid" (registry/api/errcode, api/v2/errors.go).
 * - quay: quay.io refusing cosign attestation manifests (tektoncd/chains#252, GoogleContainerTools/jib#2470):
 *   MANIFEST_INVALID, "manifest invalid", detail {"message": "failed to parse manifest: manifest data does not
 *   match schema"} / "manifest schema version not supported".
 * - blobUnknown: GitLab refusing an attestation whose subject manifest is not stored yet (moby/buildkit#7007):
 *   `error from registry: blob unknown to registry - sha256:...` (distribution's MANIFEST_BLOB_UNKNOWN, HTTP 400;
 *   registry:2 answers the same for an index naming a manifest it lacks, opencontainers/distribution-spec#310).
 * No public record says what registry.replicated.com answers; it is run on distribution, so `distribution` is
 * the default here.
 */
export const REJECTION_BODIES = {
  distribution: JSON.stringify({ errors: [{ code: 'MANIFEST_INVALID', message: 'manifest invalid', detail: {} }] }),
  quay: JSON.stringify({
    errors: [
      {
        code: 'MANIFEST_INVALID',
        detail: { message: 'failed to parse manifest: manifest data does not match schema' },
        message: 'manifest invalid',
      },
    ],
  }),
  blobUnknown: (digest: string) =>
    JSON.stringify({
      errors: [{ code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown to registry', detail: digest }],
    }),
} as const;

/** The default rejection: distribution's MANIFEST_INVALID with an empty detail. */
export const ATTESTATION_REJECTION = REJECTION_BODIES.distribution;

const TOO_MANY_REQUESTS = JSON.stringify({
  errors: [{ code: 'TOOMANYREQUESTS', message: 'too many requests', detail: null }],
});

/**
 * nginx's own answer to a body over client_max_body_size (ngx_http_special_response.c): the status line's reason
 * phrase, the HTML page, and `Connection: close`.
 */
export const NGINX_413_BODY =
  '<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n' +
  '<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';
/** nginx's lingering_time: how long it keeps reading (and dropping) the body of a request it answered early. */
const LINGERING_MS = 30_000;

const MANIFEST_PATH = /^\/v2\/.+\/manifests\/[^/]+$/;
const REPO_PATH = /^\/v2\/(.+?)\/(?:manifests|blobs|tags)\//;
// Hop-by-hop: they describe one connection and must not be copied to the other side.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
]);
const MAX_BUFFERED_BODY = 4 * 1024 * 1024;
const REALM = 'fault-proxy';

interface Manifestish {
  manifests?: Array<{ annotations?: Record<string, string>; platform?: { os?: string } }>;
  layers?: Array<{ mediaType?: string }>;
}

/** An index listing an attestation manifest, or an in-toto attestation manifest itself. */
export function isAttestationManifest(body: Buffer | undefined): boolean {
  if (!body) return false;
  let doc: Manifestish;
  try {
    doc = JSON.parse(body.toString('utf8')) as Manifestish;
  } catch {
    return false;
  }
  const listsAttestation = (doc.manifests ?? []).some(
    (m) => m.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || m.platform?.os === 'unknown',
  );
  const isInToto = (doc.layers ?? []).some((l) => l.mediaType === 'application/vnd.in-toto+json');
  return listsAttestation || isInToto;
}

function isStatusAction(a: FaultAction): a is StatusAction {
  return 'status' in a;
}

/** Resolves after ms, or at once when the proxy stops, so no timer outlives it. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

function readAll(stream: Readable, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) stream.destroy(new Error(`body over ${limit} bytes`));
      else chunks.push(c);
    });
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

function parseBasic(header: string | undefined): { user: string; pass: string } | null {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!m) return null;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const at = text.indexOf(':');
  return at < 0 ? null : { user: text.slice(0, at), pass: text.slice(at + 1) };
}

function copyHeaders(from: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(from)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

function sendJson(
  res: ServerResponse,
  entry: Entry,
  status: number,
  body: unknown,
  headers: OutgoingHttpHeaders = {},
): void {
  // recorded before the client can see it: a test may read proxy.requests the moment docker exits
  entry.status = status;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'docker-distribution-api-version': 'registry/2.0',
    ...headers,
  });
  res.end(text);
}

const UNAUTHORIZED = { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required', detail: null }] };

interface Rule {
  readonly spec: FaultRule;
  remaining: number;
}

interface Entry {
  method: string;
  path: string;
  url: string;
  status: number;
  requestBytes: number;
  reset: boolean;
  userAgent: string;
  startedAt: number;
  endedAt: number;
  upstreamStatus: number;
}

interface Limit extends RateLimit {
  trippedAt: number;
  until: number;
}

class FaultProxyServer implements FaultProxy {
  readonly requests: Entry[] = [];
  bytesUploaded = 0;
  host = '';
  url = '';
  private rules: Rule[] = [];
  private limits: Array<{ opts: RateLimitOptions; state: Limit }> = [];
  private bodyLimit: number | null = null;
  private readonly tokens = new Set<string>();
  private readonly server = http.createServer((req, res) => void this.handle(req, res));
  private readonly agent = new http.Agent({ keepAlive: true });
  private readonly stopping = new AbortController();
  private readonly upstreamAuth: string;

  constructor(
    private readonly upstream: Registry,
    private readonly auth: ProxyAuth | undefined,
  ) {
    const [user, pass] = Object.entries(upstream.users)[0] ?? ['', ''];
    this.upstreamAuth = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.host = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
        this.url = `http://${this.host}`;
        resolve();
      });
    });
  }

  addFault(rule: FaultRule): void {
    this.rules.push({ spec: rule, remaining: rule.times ?? Infinity });
  }

  clearFaults(): void {
    this.rules = [];
    this.limits = [];
    this.bodyLimit = null;
  }

  limitBodies(maxBytes: number): void {
    this.bodyLimit = maxBytes;
  }

  rejectAttestations(body: string = ATTESTATION_REJECTION): void {
    this.addFault({
      method: 'PUT',
      path: MANIFEST_PATH,
      match: (r) => isAttestationManifest(r.body),
      action: { status: 400, body, headers: { 'content-type': 'application/json; charset=utf-8' } },
    });
  }

  limitRate(opts: RateLimitOptions): RateLimit {
    const state: Limit = { trippedAt: 0, until: 0 };
    this.limits.push({ opts, state });
    return state;
  }

  /** The 429 a tripped (or tripping) limit gives this request, or undefined. */
  private rateLimited(method: string, path: string, now: number): StatusAction | undefined {
    for (const { opts, state } of this.limits) {
      if (!state.trippedAt && (!opts.method || opts.method.toUpperCase() === method) && opts.path.test(path)) {
        state.trippedAt = now;
        // an HTTP-date has whole seconds: round the end up so that the header says exactly when it ends
        state.until = opts.form === 'date' ? Math.ceil((now + opts.forMs) / 1000) * 1000 : now + opts.forMs;
      }
      if (state.trippedAt && now < state.until) {
        const retryAfter =
          opts.form === 'date' ? new Date(state.until).toUTCString() : String(Math.ceil((state.until - now) / 1000));
        return {
          status: 429,
          body: TOO_MANY_REQUESTS,
          headers: { 'content-type': 'application/json; charset=utf-8', 'retry-after': retryAfter },
        };
      }
    }
    return undefined;
  }

  count(method: string | undefined, path: RegExp, status?: number): number {
    return this.requests.filter(
      (r) =>
        (!method || r.method === method.toUpperCase()) &&
        path.test(r.path) &&
        (status === undefined || r.status === status),
    ).length;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    this.agent.destroy();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const entry: Entry = {
      method: req.method ?? 'GET',
      path: url.split('?')[0],
      url,
      status: 0,
      requestBytes: 0,
      reset: false,
      userAgent: String(req.headers['user-agent'] ?? ''),
      startedAt: Date.now(),
      endedAt: 0,
      upstreamStatus: 0,
    };
    this.requests.push(entry);
    // 'finish' when the whole response was handed to the kernel, 'close' when the connection went first
    const ended = () => {
      entry.endedAt ||= Date.now();
    };
    res.on('finish', ended);
    res.on('close', ended);
    try {
      const limited = this.bodyLimit === null ? null : await this.withinBodyLimit(req, res, entry, this.bodyLimit);
      if (limited === 'refused') return;
      // Manifest PUTs are buffered so that rules can look at them; everything else streams.
      const body =
        limited ??
        (entry.method === 'PUT' && MANIFEST_PATH.test(entry.path)
          ? await readAll(this.metered(req, entry), MAX_BUFFERED_BODY)
          : undefined);
      const rated = this.rateLimited(entry.method, entry.path, entry.startedAt);
      if (rated) return this.fail(req, res, entry, rated, body);
      const rule = this.takeRule({ method: entry.method, path: entry.path, headers: req.headers, body });
      const action = rule?.action;
      if (action && isStatusAction(action)) return this.fail(req, res, entry, action, body);
      if (action && 'reset' in action) return this.reset(req, entry);
      if (action && 'hang' in action) return void this.drain(req, entry);
      if (action && 'delayMs' in action) await sleep(action.delayMs, this.stopping.signal);
      // the client may have given up during a delay (req.destroyed is no use: a fully read request is destroyed too)
      if (this.stopping.signal.aborted || req.socket.destroyed) return;
      if (this.auth && !(await this.authenticate(req, res, entry, body))) return;
      this.forward(req, res, entry, body, {
        resetAfterBytes: action && 'resetAfterBytes' in action ? action.resetAfterBytes : undefined,
        resetResponseAfterBytes:
          action && 'resetResponseAfterBytes' in action ? action.resetResponseAfterBytes : undefined,
        instead: action && 'forwardThen' in action ? action.forwardThen : undefined,
      });
    } catch (e) {
      if (!res.headersSent && !res.destroyed)
        sendJson(res, entry, 502, { errors: [{ code: 'UNKNOWN', message: `fault-proxy: ${(e as Error).message}` }] });
    }
  }

  /**
   * The body limit, as nginx applies it before anything else: a declared length over it is refused at once; a
   * chunked body is read (buffered, as nginx's proxy_request_buffering does) and refused once it passes the limit,
   * else handed back to be forwarded whole. 'refused': answered. undefined: a declared length within the limit.
   */
  private async withinBodyLimit(
    req: IncomingMessage,
    res: ServerResponse,
    entry: Entry,
    max: number,
  ): Promise<Buffer | 'refused' | undefined> {
    const declared = req.headers['content-length'];
    if (declared !== undefined) {
      if (Number(declared) <= max) return undefined;
      this.tooLarge(req, res, entry);
      return 'refused';
    }
    if (!req.headers['transfer-encoding']) return undefined;
    const body = await readAll(this.metered(req, entry), max).catch(() => null);
    if (body) return body;
    this.tooLarge(req, res, entry);
    return 'refused';
  }

  /**
   * nginx's 413: the answer goes out at once, whole (its Content-Length), and the connection stays open while the
   * client still sends, the bytes dropped (lingering close, up to lingering_time), then closes: a client writing
   * its body sees the answer rather than a reset.
   */
  private tooLarge(req: IncomingMessage, res: ServerResponse, entry: Entry): void {
    entry.status = 413;
    res.statusMessage = 'Request Entity Too Large';
    res.writeHead(413, {
      server: 'nginx',
      'content-type': 'text/html',
      'content-length': Buffer.byteLength(NGINX_413_BODY),
      connection: 'close',
    });
    res.write(NGINX_413_BODY);
    const close = () => {
      clearTimeout(timer);
      if (!res.writableEnded) res.end();
    };
    const timer = setTimeout(() => req.socket.destroy(), LINGERING_MS);
    this.stopping.signal.addEventListener('abort', close, { once: true });
    if (req.readableEnded) return close();
    req.on('data', (c: Buffer) => {
      entry.requestBytes += c.length;
      this.bytesUploaded += c.length;
    });
    req.on('end', close);
    req.on('close', close);
  }

  private takeRule(req: FaultRequest): FaultRule | undefined {
    const rule = this.rules.find(
      ({ spec, remaining }) =>
        remaining > 0 &&
        (!spec.method || spec.method.toUpperCase() === req.method) &&
        spec.path.test(req.path) &&
        (!spec.match || spec.match(req)),
    );
    if (rule) rule.remaining--;
    return rule?.spec;
  }

  /** Counts request-body bytes as they pass; past `limit` it cuts the client off. */
  private metered(req: IncomingMessage, entry: Entry, limit?: number): Transform {
    const meter = new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        if (entry.reset) return done();
        entry.requestBytes += chunk.length;
        this.bytesUploaded += chunk.length;
        const over = limit === undefined ? -1 : entry.requestBytes - limit;
        if (over < 0) return done(null, chunk);
        done(null, chunk.subarray(0, chunk.length - over));
        this.reset(req, entry);
      },
    });
    return req.pipe(meter);
  }

  private reset(req: IncomingMessage, entry: Entry): void {
    entry.reset = true;
    // Unread bytes in the kernel buffer make this an RST, as a dropped connection looks to the client.
    req.socket.destroy();
  }

  /** Answers with the rule's status after the client sent its whole body, as an origin timeout would. */
  private fail(req: IncomingMessage, res: ServerResponse, entry: Entry, action: StatusAction, buffered?: Buffer): void {
    void this.drain(req, entry, buffered).then(() => this.answer(res, entry, action));
  }

  private answer(res: ServerResponse, entry: Entry, action: StatusAction): void {
    if (res.destroyed) return;
    const body = action.body ?? '';
    entry.status = action.status;
    res.writeHead(action.status, { 'content-length': Buffer.byteLength(body), ...action.headers });
    res.end(body);
  }

  /** Reads and discards the request body (unless it was buffered already): answering early would break the client's write. */
  private drain(req: IncomingMessage, entry: Entry, buffered?: Buffer): Promise<void> {
    if (buffered) return Promise.resolve();
    return new Promise((resolve) => this.metered(req, entry).on('end', resolve).resume());
  }

  /** True when the client's credentials are good; otherwise it has answered (401, or the token endpoint). */
  private async authenticate(req: IncomingMessage, res: ServerResponse, entry: Entry, body?: Buffer): Promise<boolean> {
    const auth = this.auth as ProxyAuth;
    if (auth.scheme === 'bearer' && entry.path === '/token') {
      await this.issueToken(req, res, entry, body);
      return false;
    }
    const header = req.headers.authorization;
    const ok =
      auth.scheme === 'basic'
        ? this.validCredentials(parseBasic(header))
        : this.tokens.has(/^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1] ?? '');
    if (ok) return true;
    void this.drain(req, entry, body);
    sendJson(res, entry, 401, UNAUTHORIZED, { 'www-authenticate': this.challenge(entry.path) });
    return false;
  }

  private validCredentials(creds: { user: string; pass: string } | null): boolean {
    const auth = this.auth as ProxyAuth;
    return !!creds && creds.pass === auth.token && (!auth.usernames || auth.usernames.includes(creds.user));
  }

  private challenge(path: string): string {
    if (this.auth?.scheme === 'basic') return `Basic realm="${REALM}"`;
    const repo = REPO_PATH.exec(path)?.[1];
    const scope = repo ? `,scope="repository:${repo}:pull,push"` : '';
    return `Bearer realm="${this.url}/token",service="${REALM}"${scope}`;
  }

  /**
   * GET with Basic credentials (the docker engine's login), or POST with an OAuth2 password grant (containerd
   * tries that first and falls back to GET on 401/404).
   */
  private async issueToken(req: IncomingMessage, res: ServerResponse, entry: Entry, body?: Buffer): Promise<void> {
    let creds = parseBasic(req.headers.authorization);
    if (req.method === 'POST') {
      const form = new URLSearchParams(
        (body ?? (await readAll(this.metered(req, entry), MAX_BUFFERED_BODY))).toString('utf8'),
      );
      creds =
        form.get('grant_type') === 'password'
          ? { user: form.get('username') ?? '', pass: form.get('password') ?? '' }
          : null;
    } else {
      void this.drain(req, entry, body);
    }
    if (!this.validCredentials(creds)) return sendJson(res, entry, 401, UNAUTHORIZED);
    const token = `fp-${randomBytes(16).toString('hex')}`;
    this.tokens.add(token);
    sendJson(res, entry, 200, { token, access_token: token, expires_in: 3600, issued_at: new Date().toISOString() });
  }

  private upstreamHeaders(req: IncomingMessage, body?: Buffer): OutgoingHttpHeaders {
    const headers = copyHeaders(req.headers);
    headers.host = this.upstream.host;
    if (this.auth) headers.authorization = this.upstreamAuth;
    if (body) {
      delete headers['transfer-encoding'];
      headers['content-length'] = body.length;
    }
    return headers;
  }

  private responseHeaders(from: IncomingHttpHeaders): OutgoingHttpHeaders {
    const headers = copyHeaders(from);
    // Node frames the body itself; a copied Transfer-Encoding would double it.
    delete headers['transfer-encoding'];
    const location = headers.location;
    if (typeof location === 'string') headers.location = location.replace(this.upstream.url, this.url);
    return headers;
  }

  private forward(
    req: IncomingMessage,
    res: ServerResponse,
    entry: Entry,
    body: Buffer | undefined,
    opts: { resetAfterBytes?: number; resetResponseAfterBytes?: number; instead?: StatusAction },
  ): void {
    const { resetAfterBytes, resetResponseAfterBytes, instead } = opts;
    const target = new URL(this.upstream.url);
    const upReq = http.request({
      host: target.hostname,
      port: target.port,
      method: entry.method,
      path: entry.url,
      headers: this.upstreamHeaders(req, body),
      agent: this.agent,
    });
    upReq.on('response', (upRes) => {
      entry.upstreamStatus = upRes.statusCode ?? 502;
      if (instead) {
        // the registry finished (and stored what it was sent); the client hears only the edge's answer
        upRes.resume();
        upRes.on('end', () => this.answer(res, entry, instead));
        return;
      }
      if (entry.reset || res.destroyed) return void upRes.resume();
      entry.status = upRes.statusCode ?? 502;
      res.writeHead(entry.status, this.responseHeaders(upRes.headers));
      if (resetResponseAfterBytes === undefined) return void pipeline(upRes, res, () => undefined);
      pipeline(upRes, this.cutAnswer(req, res, entry, resetResponseAfterBytes), res, () => undefined);
    });
    upReq.on('error', (e) => {
      if (entry.reset || res.destroyed) return;
      if (res.headersSent) res.destroy();
      else sendJson(res, entry, 502, { errors: [{ code: 'UNKNOWN', message: `fault-proxy: upstream: ${e.message}` }] });
    });
    res.on('close', () => {
      if (!res.writableFinished) upReq.destroy();
    });
    const source = body ? this.replay(body, req, entry, resetAfterBytes) : this.metered(req, entry, resetAfterBytes);
    pipeline(source, upReq, () => undefined);
  }

  /** Passes `limit` bytes of an answer to the client, then cuts its connection once they are written. */
  private cutAnswer(req: IncomingMessage, res: ServerResponse, entry: Entry, limit: number): Transform {
    let passed = 0;
    return new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        const room = limit - passed;
        if (entry.reset || room <= 0) return done();
        passed += chunk.length;
        if (room > chunk.length) return done(null, chunk);
        res.write(chunk.subarray(0, room), () => this.reset(req, entry));
        done();
      },
    });
  }

  /** A buffered body as a stream again (already counted), cut short like metered() when there is a limit. */
  private replay(body: Buffer, req: IncomingMessage, entry: Entry, limit?: number): Readable {
    if (limit === undefined || body.length < limit) return Readable.from([body]);
    const cut = Readable.from([body.subarray(0, limit)]);
    cut.on('end', () => this.reset(req, entry));
    return cut;
  }
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const proxy = new FaultProxyServer(opts.upstream, opts.auth);
  await proxy.listen();
  return proxy;
}
