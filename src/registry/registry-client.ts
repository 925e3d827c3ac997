// The registry's v2 API with the credentials the push uses: Basic, or a Bearer token from the realm the 401 challenge
// names, scoped to the repository (pull to read manifests, pull,push to upload). Every request, the token request
// included, goes through httpRequest: a wall-clock deadline and a body cap, never an open-ended wait.
//
// Authentication: a request is sent with the Authorization remembered for its scope (none at first); a 401 fetches a
// fresh one from the challenge and the request is sent once more. A request with a body (the uploader's PATCH/PUT) is
// authorized before it is sent, so its bytes cross the wire once: from the challenge already seen, or from a GET /v2/
// that fetches it. A stream body cannot be sent twice: if it still meets a 401, that 401 is the answer (the
// remembered Authorization for its scope is dropped, so the caller's next request fetches a fresh one).
//
// Credentials go only to the registry's own origin and to a token realm that is https, or plain http on the origin of
// a loopback registry; a Location on another origin (e.g. blob storage) is sent no Authorization at all, and a plain
// http one from an https registry is refused (the rules: registry-origin.ts). Every value the registry sends that
// the code acts on (Retry-After, Docker-Content-Digest) is read through registry-values.ts.
import {
  DEFAULT_DEADLINE_MS,
  DEFAULT_MAX_BODY_BYTES,
  httpRequest,
  httpStream,
  type HttpRequest,
  type HttpResponse,
  type HttpStreamRequest,
} from './http-request.js';
import { MANIFEST_ACCEPT } from '../image/oci.js';
import { isLoopbackRegistry } from '../image/reference.js';
import { locationRule, realmRefusal } from './registry-origin.js';
import {
  basicAuthorization,
  parseChallenge,
  tokenRequest,
  type Challenge,
  type Credentials,
} from './registry-token.js';
import { isRegistryDigest, quoteValue, retryAfterMs as parseRetryAfter } from './registry-values.js';
import type { Readable } from 'node:stream';

export type { Credentials } from './registry-token.js';

export interface ManifestHead {
  readonly digest: string;
  readonly mediaType: string;
}

/**
 * The registry answered, but not as hoped: `status` is its HTTP status (null when the answer itself was unusable).
 * `kind`: 'status' for an HTTP status a retry may change; 'protocol' for an answer no client can use (garbage
 * JSON, no token, an unknown scheme, a digest that is none); 'unsafe-realm' when the credentials were withheld from
 * a token realm; 'unsafe-location' when a request to a Location was not sent (plain http from an https registry).
 */
export class RegistryError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly kind: 'status' | 'protocol' | 'unsafe-realm' | 'unsafe-location' = 'status',
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

export interface RegistryRequest {
  method: string;
  /** absolute URL (a Location from the registry, relative Locations resolved against the registry) or a path starting /v2/ */
  url: string;
  repository: string; // for the scope
  push?: boolean; // scope pull,push instead of pull
  /** A cross-repository mount's source: the token also asks pull there, as docker asks for a mount. */
  mountFrom?: string;
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  deadlineMs?: number;
  signal?: AbortSignal;
  /** Cap on the answer's body; the client's default (1 MiB) otherwise. */
  maxBodyBytes?: number;
}

export interface RegistryResponse {
  status: number;
  headers: { get(name: string): string | null };
  body: Buffer;
}

/** A GET whose answer's body is streamed (a blob): the deadline ends at the headers, then idleMs bounds each wait. */
export interface RegistryStreamRequest extends Omit<RegistryRequest, 'method' | 'body' | 'push'> {
  idleMs?: number;
}

export interface RegistryStreamResponse {
  status: number;
  headers: { get(name: string): string | null };
  /** Read it to its end or destroy it; it fails with an HttpError. */
  body: Readable;
}

/** What the uploader needs: one authenticated, deadline-bound request at a time. */
export interface RegistryTransport {
  /** The registry's host[:port], when known: a blob from another repository there is mounted (upload/blob-mount.ts). */
  readonly host?: string;
  send(req: RegistryRequest): Promise<RegistryResponse>;
}

export interface RegistryClientOptions {
  /** The HTTP layer (tests may wrap it). */
  request?: HttpRequest;
  /** The HTTP layer of streamed answers (RegistryClient.stream). */
  streamRequest?: HttpStreamRequest;
  /** Deadline of every request that does not set its own, and of every token request. */
  deadlineMs?: number;
  /** Cap on answer bodies (tokens, JSON) unless a request sets its own. */
  maxBodyBytes?: number;
}

function scopeOf(repository: string, push: boolean | undefined): string {
  return repository ? `repository:${repository}:${push ? 'pull,push' : 'pull'}` : '';
}

/** Bytes a header value may hold (RFC 9110 visible characters), so a token can never smuggle a header. */
const HEADER_SAFE = /^[\x21-\x7e]+$/;

export class RegistryClient implements RegistryTransport {
  /** The registry's origin: relative URLs (a Location) resolve against it. */
  readonly base: URL;
  private readonly requestFn: HttpRequest;
  private readonly streamFn: HttpStreamRequest;
  private readonly deadlineMs: number;
  private readonly maxBodyBytes: number;
  /** The last challenge the registry sent: how to authorize a new scope without meeting a 401 first. */
  private challenge: Challenge | null = null;
  /** The Authorization that worked, per scope: later requests send it at once instead of meeting the 401 again. */
  private readonly authorizations = new Map<string, string>();
  /** The GET /v2/ that fetches the challenge before the first body is sent; shared, and done once unless it fails. */
  private probe: Promise<void> | null = null;
  /** Token requests under way, per scope: parallel uploads share one. */
  private readonly pending = new Map<string, Promise<string>>();

  constructor(
    readonly host: string,
    /** null: anonymous (a public source registry). */
    private readonly creds: Credentials | null,
    options: RegistryClientOptions = {},
  ) {
    this.base = new URL(`${isLoopbackRegistry(host) ? 'http' : 'https'}://${host}`);
    this.requestFn = options.request ?? httpRequest;
    this.streamFn = options.streamRequest ?? httpStream;
    this.deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  }

  /** The manifest a tag (or digest) resolves to; null only when the registry answers 404. */
  async headManifest(repository: string, reference: string, signal?: AbortSignal): Promise<ManifestHead | null> {
    const res = await this.send({
      method: 'HEAD',
      url: `/v2/${repository}/manifests/${reference}`,
      repository,
      headers: { Accept: MANIFEST_ACCEPT },
      signal,
    });
    const ref = `${repository}${reference.includes(':') ? '@' : ':'}${reference}`;
    if (res.status === 404) return null;
    if (res.status < 200 || res.status >= 300)
      throw new RegistryError(`${this.host}: HEAD ${ref} answered ${res.status}`, res.status);
    const digest = res.headers.get('docker-content-digest');
    if (!digest) throw new RegistryError(`${this.host}: no Docker-Content-Digest in the answer for ${ref}`, res.status);
    if (!isRegistryDigest(digest))
      throw new RegistryError(
        `${this.host}: the Docker-Content-Digest for ${ref} is not a digest: ${quoteValue(digest)}`,
        res.status,
        'protocol',
      );
    return { digest, mediaType: (res.headers.get('content-type') ?? '').split(';')[0].trim() };
  }

  /**
   * GET /v2/ with credentials: how long a 429 or 503 asks to wait (ms, at most MAX_RETRY_AFTER_MS), or null when it
   * does not say.
   */
  async retryAfterMs(signal?: AbortSignal): Promise<number | null> {
    const res = await this.send({ method: 'GET', url: '/v2/', repository: '', signal });
    if (res.status !== 429 && res.status !== 503) return null;
    return parseRetryAfter(res.headers.get('retry-after'), Date.now());
  }

  /** One request to the registry, authorized for its repository's scope (see the top of this file). */
  async send(req: RegistryRequest): Promise<RegistryResponse> {
    const target = new URL(req.url, this.base);
    const scope = scopeOf(req.repository, req.push) + (req.mountFrom ? ` repository:${req.mountFrom}:pull` : '');
    const send = (authorization: string | null) =>
      this.requestFn(target, {
        method: req.method,
        headers: authorization ? { ...req.headers, Authorization: authorization } : req.headers,
        body: req.body,
        deadlineMs: req.deadlineMs ?? this.deadlineMs,
        maxBodyBytes: req.maxBodyBytes ?? this.maxBodyBytes,
        signal: req.signal,
      });
    const rule = locationRule(this.base, target);
    if (rule.kind === 'refused') {
      if (req.body && !Buffer.isBuffer(req.body)) req.body.destroy();
      throw new RegistryError(
        `${this.host}: refusing to send ${req.method} to ${target.host}: ${rule.why}`,
        null,
        'unsafe-location',
      );
    }
    if (rule.kind === 'elsewhere') return send(null);

    const replayable = !req.body || Buffer.isBuffer(req.body);
    let authorization = this.remembered(scope);
    if (!authorization && req.body && (!Buffer.isBuffer(req.body) || req.body.length > 0))
      authorization = await this.preauthorize(scope, req.signal);
    const res = await send(authorization);
    if (res.status !== 401) return res;

    const header = res.headers.get('www-authenticate');
    if (!replayable || !header) {
      this.authorizations.delete(scope);
      return res;
    }
    this.challenge = parseChallenge(header);
    const fresh = await this.authorize(scope, req.signal);
    if (fresh === authorization) return res; // Basic: the same credentials again would meet the same 401
    const again = await send(fresh);
    if (again.status === 401) this.authorizations.delete(scope);
    return again;
  }

  /**
   * A GET whose body is streamed (a blob), authorized as send() authorizes: no body to send, so a 401 is answered
   * with a fresh Authorization and the request sent once more; a Location elsewhere gets none.
   */
  async stream(req: RegistryStreamRequest): Promise<RegistryStreamResponse> {
    const target = new URL(req.url, this.base);
    const scope = scopeOf(req.repository, false);
    const rule = locationRule(this.base, target);
    if (rule.kind === 'refused')
      throw new RegistryError(
        `${this.host}: refusing to send GET to ${target.host}: ${rule.why}`,
        null,
        'unsafe-location',
      );
    const send = (authorization: string | null) =>
      this.streamFn(target, {
        headers: authorization ? { ...req.headers, Authorization: authorization } : req.headers,
        deadlineMs: req.deadlineMs ?? this.deadlineMs,
        maxBodyBytes: req.maxBodyBytes ?? this.maxBodyBytes,
        idleMs: req.idleMs,
        signal: req.signal,
      });
    if (rule.kind === 'elsewhere') return send(null);
    const authorization = this.remembered(scope);
    const res = await send(authorization);
    const header = res.headers.get('www-authenticate');
    if (res.status !== 401 || !header) return res;
    this.challenge = parseChallenge(header);
    const fresh = await this.authorize(scope, req.signal).catch((err: unknown) => {
      res.body.destroy();
      throw err;
    });
    if (fresh === authorization) return res; // Basic: the same credentials again would meet the same 401
    res.body.destroy();
    const again = await send(fresh);
    if (again.status === 401) this.authorizations.delete(scope);
    return again;
  }

  private remembered(scope: string): string | null {
    if (this.challenge?.scheme === 'basic') return this.basic() || null;
    // A pull,push token also reads.
    return this.authorizations.get(scope) ?? this.authorizations.get(scope.replace(/:pull$/, ':pull,push')) ?? null;
  }

  /** The Authorization for a scope before a request that cannot afford a 401 round trip; null if none is asked for. */
  private async preauthorize(scope: string, signal: AbortSignal | undefined): Promise<string | null> {
    if (!this.challenge) {
      this.probe ??= this.fetchChallenge(signal).catch((err: unknown) => {
        this.probe = null;
        throw err;
      });
      await this.probe;
      if (!this.challenge) return null;
    }
    return this.authorize(scope, signal);
  }

  /** GET /v2/ without credentials: the registry's challenge, if it asks for credentials at all. */
  private async fetchChallenge(signal: AbortSignal | undefined): Promise<void> {
    const res = await this.requestFn(new URL('/v2/', this.base), {
      deadlineMs: this.deadlineMs,
      maxBodyBytes: this.maxBodyBytes,
      signal,
    });
    const header = res.headers.get('www-authenticate');
    if (res.status === 401 && header) this.challenge = parseChallenge(header);
  }

  /** A fresh Authorization for a scope from the last challenge, remembered for that scope. */
  private authorize(scope: string, signal: AbortSignal | undefined): Promise<string> {
    const under = this.pending.get(scope);
    if (under) return under;
    const challenge = this.challenge as Challenge;
    const work = (async () => {
      if (challenge.scheme === 'basic') return this.basic();
      if (challenge.scheme !== 'bearer')
        throw new RegistryError(
          `${this.host}: unsupported authentication scheme "${challenge.scheme}"`,
          401,
          'protocol',
        );
      return `Bearer ${await this.token(challenge, scope, signal)}`;
    })();
    this.pending.set(scope, work);
    return work.then(
      (authorization) => {
        this.pending.delete(scope);
        this.authorizations.set(scope, authorization);
        return authorization;
      },
      (err: unknown) => {
        this.pending.delete(scope);
        throw err;
      },
    );
  }

  private basic(): string {
    return basicAuthorization(this.creds);
  }

  /** The realm rule (registry-origin.ts): the Basic credentials go only where realmRefusal allows. */
  private checkRealm(realm: URL): void {
    const why = realmRefusal(this.base, realm);
    if (why === null) return;
    throw new RegistryError(
      `${this.host}: refusing to send credentials to the token realm ${realm.host}: ${why} ` +
        `(a realm must use https, or plain http only on a loopback registry's own origin)`,
      null,
      'unsafe-realm',
    );
  }

  private tokenRequest(url: URL, signal: AbortSignal | undefined): Promise<HttpResponse> {
    const { url: to, method, headers, body } = tokenRequest(url, this.creds);
    return this.requestFn(to, {
      method,
      headers,
      body,
      deadlineMs: this.deadlineMs,
      maxBodyBytes: this.maxBodyBytes,
      signal,
    });
  }

  private async token(challenge: Challenge, scope: string, signal: AbortSignal | undefined): Promise<string> {
    const { realm, service } = challenge.params;
    if (!realm) throw new RegistryError(`${this.host}: Bearer challenge without a realm`, 401, 'protocol');
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError(`${this.host}: the Bearer challenge's realm is not a URL`, 401, 'protocol');
    }
    this.checkRealm(url);
    if (service) url.searchParams.set('service', service);
    const wanted = scope || challenge.params.scope;
    // several scopes (a mount's) are one scope parameter each, as docker sends them
    for (const one of (wanted ?? '').split(' ').filter(Boolean)) url.searchParams.append('scope', one);
    const res = await this.tokenRequest(url, signal);
    const from = `the token realm ${url.host}`;
    if (!res.ok) throw new RegistryError(`${this.host}: ${from} answered ${res.status}`, res.status);
    let body: unknown;
    try {
      body = JSON.parse(res.body.toString('utf8'));
    } catch {
      throw new RegistryError(
        `${this.host}: ${from} answered ${res.body.length} bytes that are not JSON`,
        res.status,
        'protocol',
      );
    }
    const fields = (body ?? {}) as { token?: unknown; access_token?: unknown };
    const token = fields.token ?? fields.access_token;
    if (typeof token !== 'string' || !token)
      throw new RegistryError(`${this.host}: ${from} returned no token`, null, 'protocol');
    if (!HEADER_SAFE.test(token))
      throw new RegistryError(
        `${this.host}: ${from} returned a token that is not a valid header value`,
        null,
        'protocol',
      );
    return token;
  }
}
