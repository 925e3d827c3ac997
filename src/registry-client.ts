// Asks the registry itself what a tag points to (v2 API), with the same credentials the push used:
// Basic, or a Bearer token fetched from the realm the 401 challenge names.
import { httpFetch, type HttpFetch, type HttpResponse } from './http-request.js';
import { MANIFEST_ACCEPT } from './oci.js';
import { isLoopbackRegistry } from './reference.js';


export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export interface ManifestHead {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
}

export class RegistryError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

/** Parses `Bearer realm="...",service="...",scope="..."` into its parameters. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^(\w+)\s*(.*)$/s.exec(header.trim());
  const params: Record<string, string> = {};
  if (!m) return { scheme: '', params };
  for (const p of m[2].matchAll(/(\w+)="([^"]*)"/g)) params[p[1].toLowerCase()] = p[2];
  return { scheme: m[1].toLowerCase(), params };
}

export class RegistryClient {
  private readonly base: string;
  /** The Authorization that worked last: later requests send it at once instead of meeting the 401 again. */
  private authorization: string | null = null;

  constructor(
    readonly host: string,
    private readonly creds: Credentials,
    private readonly fetchFn: HttpFetch = httpFetch,
  ) {
    this.base = `${isLoopbackRegistry(host) ? 'http' : 'https'}://${host}`;
  }

  private basic(): string {
    return `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}`;
  }

  private async token(challenge: string, repository: string): Promise<string> {
    const { params } = parseChallenge(challenge);
    if (!params.realm) throw new RegistryError(`${this.host}: Bearer challenge without a realm`, 401);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    const scope = params.scope ?? (repository ? `repository:${repository}:pull` : '');
    if (scope) url.searchParams.set('scope', scope);
    const res = await this.fetchFn(url, { headers: { Authorization: this.basic() } });
    if (!res.ok) throw new RegistryError(`${this.host}: token endpoint answered ${res.status}`, res.status);
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError(`${this.host}: token endpoint returned no token`, null);
    return token;
  }

  private async request(
    method: string,
    path: string,
    repository: string,
    headers: Record<string, string>,
  ): Promise<HttpResponse> {
    const send = (auth: string | null) =>
      this.fetchFn(`${this.base}${path}`, { method, headers: auth ? { ...headers, Authorization: auth } : headers });
    let res = await send(this.authorization);
    if (res.status === 401) {
      const challenge = res.headers.get('www-authenticate') ?? '';
      const { scheme } = parseChallenge(challenge);
      if (scheme === 'bearer') {
        this.authorization = `Bearer ${await this.token(challenge, repository)}`;
      } else {
        this.authorization = this.basic();
      }
      res = await send(this.authorization);
    }
    return res;
  }

  /** The manifest a tag (or digest) resolves to, or null when the registry does not have it. */
  async headManifest(repository: string, reference: string): Promise<ManifestHead | null> {
    const res = await this.request('HEAD', `/v2/${repository}/manifests/${reference}`, repository, {
      Accept: MANIFEST_ACCEPT,
    });
    if (res.status === 404) return null;
    if (!res.ok)
      throw new RegistryError(`${this.host}: HEAD ${repository}:${reference} answered ${res.status}`, res.status);
    const digest = res.headers.get('docker-content-digest');
    if (!digest)
      throw new RegistryError(`${this.host}: no Docker-Content-Digest for ${repository}:${reference}`, res.status);
    return {
      digest,
      mediaType: (res.headers.get('content-type') ?? '').split(';')[0],
      size: Number(res.headers.get('content-length') ?? 0),
    };
  }

  /** GET /v2/ with credentials: how long a 429 asks to wait (ms), or null when the registry is willing. */
  async retryAfterMs(): Promise<number | null> {
    const res = await this.request('GET', '/v2/', '', {});
    if (res.status !== 429 && res.status !== 503) return null;
    const header = res.headers.get('retry-after');
    if (!header) return null;
    const seconds = Number(header);
    if (Number.isFinite(seconds)) return seconds * 1000;
    const date = Date.parse(header);
    return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
  }
}
