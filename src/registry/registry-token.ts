// How the credentials reach a token realm (pure; registry-client.ts sends it): a username and password as Basic on
// a GET; an identity token (docker's `identitytoken`, a helper's `<token>` user) as an OAuth2 refresh token POSTed
// in a form, as docker does, the realm's query (service, scope) in the form; nothing when anonymous. And the
// challenge of a 401 that names the realm, parsed.
export interface Credentials {
  readonly username: string;
  readonly password: string;
  /** An identity token (docker's `identitytoken`, a helper's `<token>` user): a refresh token for the token realm. */
  readonly identityToken?: string;
}

export interface TokenRequest {
  readonly url: URL;
  readonly method: 'GET' | 'POST';
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
}

/** `Basic base64(user:password)`, or '' when there is nothing to send (anonymous, or an identity token alone). */
export function basicAuthorization(creds: Credentials | null): string {
  if (!creds || (creds.identityToken && !creds.username)) return '';
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
}

/** The token request for a realm URL that already carries service and scope. */
export function tokenRequest(url: URL, creds: Credentials | null): TokenRequest {
  if (creds?.identityToken) {
    const form = new URLSearchParams(url.searchParams);
    form.set('grant_type', 'refresh_token');
    form.set('refresh_token', creds.identityToken);
    form.set('client_id', 'replicated-push');
    const post = new URL(url);
    post.search = '';
    const headers = { 'Content-Type': 'application/x-www-form-urlencoded' };
    return { url: post, method: 'POST', headers, body: Buffer.from(form.toString()) };
  }
  const basic = basicAuthorization(creds);
  return { url, method: 'GET', headers: basic ? { Authorization: basic } : {} };
}

export interface Challenge {
  readonly scheme: string;
  readonly params: Record<string, string>;
}

/** `Bearer realm="...",service="...",scope="..."` -> scheme (lower case) and parameters. */
export function parseChallenge(header: string): Challenge {
  const m = /^(\w+)\s*(.*)$/s.exec(header.trim());
  const params: Record<string, string> = {};
  if (!m) return { scheme: '', params };
  for (const p of m[2].matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) params[p[1].toLowerCase()] = p[2] ?? p[3];
  return { scheme: m[1].toLowerCase(), params };
}
