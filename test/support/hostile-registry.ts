// A registry that misbehaves in ways a proxy in front of a real registry cannot fake (issue 11 item 3 and 8): it
// accepts the login (GET /v2/ with a Bearer challenge whose realm is itself, a token at once for the login's
// unscoped request), then answers what comes after badly:
// - token 'drip': the repository-scoped token one byte every few seconds (a connection that is never idle);
// - token 'huge': a 50 MB JSON body, streamed (a client without a body cap holds all of it, then sends it back);
// - token 'garbage': 200 with a body that is no JSON;
// - realm 'other-host': the challenge names a realm on another host over plain http (127.0.0.2, still loopback
//   but not the registry's host), served by a second server that records every Authorization it is sent;
// - hangManifestHead: a manifest HEAD is read and never answered;
// - uploadAnswer: a blob upload's POST is answered with this status and JSON body (error codes and messages that
//   carry newlines and workflow commands: text the action did not write, issue 18).
// It records every request with its times and the bytes it sent, so tests assert on what reached it.
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type TokenBehaviour = 'ok' | 'drip' | 'huge' | 'garbage';

export interface HostileOptions {
  /** What the token endpoint does for a repository-scoped request; the login's unscoped one is always answered. */
  readonly token?: TokenBehaviour;
  /**
   * Where the challenge's realm is: 'self'; 'other-host' for every challenge (the login's included); or
   * 'other-host-scoped': the login's realm is the registry itself, the repository-scoped challenge names the other.
   */
  readonly realm?: 'self' | 'other-host' | 'other-host-scoped';
  /** A manifest HEAD is read and never answered. */
  readonly hangManifestHead?: boolean;
  /** A blob upload's POST (/v2/NAME/blobs/uploads/) is answered with this, instead of 404 MANIFEST_UNKNOWN. */
  readonly uploadAnswer?: { readonly status: number; readonly body: unknown } | null;
  /** 'drip': the wait between two bytes (default 5 s). */
  readonly dripIntervalMs?: number;
  /** 'huge': the body size (default 50 MB). */
  readonly hugeBytes?: number;
  /** Address of the other-host realm server (default 127.0.0.2). */
  readonly otherHost?: string;
}

export interface HostileRequest {
  readonly server: 'registry' | 'realm';
  readonly method: string;
  readonly path: string;
  readonly url: string;
  /** The Authorization header as sent ('' when none). */
  readonly authorization: string;
  readonly userAgent: string;
  readonly startedAt: number;
  /** When the response ended or the connection closed; 0 while in flight. */
  readonly endedAt: number;
  /** Response-body bytes written to the socket (for a cut-off body: how far the client read before it hung up). */
  readonly bytesSent: number;
}

export interface HostileRegistry {
  /** '127.0.0.1:PORT' */
  readonly host: string;
  readonly url: string;
  /** The other-host realm server's 'HOST:PORT' (realm other-host*), else ''. */
  readonly realmHost: string;
  readonly requests: readonly HostileRequest[];
  /** Requests whose connection is still open (a drip or a hang the client has not given up on). */
  openRequests(): HostileRequest[];
  stop(): Promise<void>;
}

interface Entry {
  server: 'registry' | 'realm';
  method: string;
  path: string;
  url: string;
  authorization: string;
  userAgent: string;
  startedAt: number;
  endedAt: number;
  bytesSent: number;
}

const SERVICE = 'hostile-registry';
const REPO_PATH = /^\/v2\/(.+?)\/(?:manifests|blobs|tags)\//;

function listen(server: http.Server, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve(`${host}:${(server.address() as AddressInfo).port}`));
  });
}

function json(
  res: ServerResponse,
  entry: Entry,
  status: number,
  body: unknown,
  headers: http.OutgoingHttpHeaders = {},
) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'docker-distribution-api-version': 'registry/2.0',
    ...headers,
  });
  entry.bytesSent += Buffer.byteLength(text);
  res.end(text);
}

class Hostile implements HostileRegistry {
  readonly requests: Entry[] = [];
  host = '';
  url = '';
  realmHost = '';
  private readonly tokens = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly registry = http.createServer((req, res) => this.handle('registry', req, res));
  private readonly realm = http.createServer((req, res) => this.handle('realm', req, res));
  private readonly opts: Required<HostileOptions>;

  constructor(opts: HostileOptions) {
    this.opts = {
      token: opts.token ?? 'ok',
      realm: opts.realm ?? 'self',
      hangManifestHead: opts.hangManifestHead ?? false,
      uploadAnswer: opts.uploadAnswer ?? null,
      dripIntervalMs: opts.dripIntervalMs ?? 5_000,
      hugeBytes: opts.hugeBytes ?? 50 * 1024 * 1024,
      otherHost: opts.otherHost ?? '127.0.0.2',
    };
  }

  async start(): Promise<void> {
    this.host = await listen(this.registry, '127.0.0.1');
    this.url = `http://${this.host}`;
    if (this.opts.realm !== 'self') this.realmHost = await listen(this.realm, this.opts.otherHost);
  }

  openRequests(): Entry[] {
    return this.requests.filter((r) => r.endedAt === 0);
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    const closing = [this.registry, this.realm]
      .filter((s) => s.listening)
      .map((s) => {
        const closed = new Promise<void>((resolve) => s.close(() => resolve()));
        s.closeAllConnections();
        return closed;
      });
    await Promise.all(closing);
  }

  private realmFor(scoped: boolean): string {
    const elsewhere = this.opts.realm === 'other-host' || (this.opts.realm === 'other-host-scoped' && scoped);
    return `http://${elsewhere ? this.realmHost : this.host}/token`;
  }

  private challenge(path: string): string {
    const repo = REPO_PATH.exec(path)?.[1];
    const scope = repo ? `,scope="repository:${repo}:pull,push"` : '';
    return `Bearer realm="${this.realmFor(!!repo)}",service="${SERVICE}"${scope}`;
  }

  private handle(server: 'registry' | 'realm', req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const entry: Entry = {
      server,
      method: req.method ?? 'GET',
      path: url.split('?')[0],
      url,
      authorization: String(req.headers.authorization ?? ''),
      userAgent: String(req.headers['user-agent'] ?? ''),
      startedAt: Date.now(),
      endedAt: 0,
      bytesSent: 0,
    };
    this.requests.push(entry);
    const ended = () => {
      entry.endedAt ||= Date.now();
    };
    res.on('finish', ended);
    res.on('close', ended);
    req.resume(); // no request here has a body worth reading
    if (entry.path === '/token') return this.token(req, res, entry);
    if (server === 'realm') return json(res, entry, 404, { errors: [{ code: 'NOT_FOUND', message: 'not found' }] });

    const bearer = /^Bearer\s+(\S+)$/i.exec(entry.authorization)?.[1] ?? '';
    if (!this.tokens.has(bearer)) {
      return json(
        res,
        entry,
        401,
        { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required', detail: null }] },
        { 'www-authenticate': this.challenge(entry.path) },
      );
    }
    if (entry.path === '/v2/') return json(res, entry, 200, {});
    if (/\/manifests\//.test(entry.path) && entry.method === 'HEAD' && this.opts.hangManifestHead) return; // never answered
    const upload = this.opts.uploadAnswer;
    if (upload && entry.method === 'POST' && /\/blobs\/uploads\/$/.test(entry.path))
      return json(res, entry, upload.status, upload.body);
    json(res, entry, 404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: null }] });
  }

  /** The login's unscoped request gets a token at once; a repository-scoped one gets the configured behaviour. */
  private token(_req: IncomingMessage, res: ServerResponse, entry: Entry): void {
    const scope = new URL(entry.url, 'http://x').searchParams.get('scope') ?? '';
    const token = `hr-${randomBytes(12).toString('hex')}`;
    this.tokens.add(token);
    const body = JSON.stringify({ token, access_token: token, expires_in: 300 });
    if (!scope.startsWith('repository:') || this.opts.token === 'ok') {
      return json(res, entry, 200, JSON.parse(body) as unknown);
    }
    if (this.opts.token === 'garbage') {
      const text = '<html><body>502 Bad Gateway</body></html>{"token":';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      entry.bytesSent += Buffer.byteLength(text);
      return void res.end(text);
    }
    if (this.opts.token === 'drip') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.flushHeaders();
      let i = 0;
      const timer = setInterval(() => {
        if (res.destroyed || i >= body.length) {
          clearInterval(timer);
          this.timers.delete(timer);
          if (!res.destroyed) res.end();
          return;
        }
        entry.bytesSent += 1;
        res.write(body[i++]);
      }, this.opts.dripIntervalMs);
      this.timers.add(timer);
      return;
    }
    // huge: {"token":"AAAA…"} of hugeBytes, written as fast as the client reads
    const head = '{"token":"';
    const tail = '"}';
    const fill = this.opts.hugeBytes - head.length - tail.length;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': this.opts.hugeBytes });
    const chunk = Buffer.alloc(64 * 1024, 'A');
    let left = fill;
    const write = (b: Buffer | string): boolean => {
      entry.bytesSent += Buffer.byteLength(b);
      return res.write(b);
    };
    write(head);
    const pump = () => {
      while (left > 0 && !res.destroyed) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!write(piece)) return void res.once('drain', pump);
      }
      if (!res.destroyed) {
        write(tail);
        res.end();
      }
    };
    pump();
  }
}

export async function startHostileRegistry(opts: HostileOptions = {}): Promise<HostileRegistry> {
  const r = new Hostile(opts);
  await r.start();
  return r;
}
